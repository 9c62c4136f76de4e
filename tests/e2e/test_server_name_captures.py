"""Captures of a regex server_name are variables for the request ($1.., and named ones that
outlive a later location regex match), as in nginx: `root /sites/$sub;` style configs."""

from __future__ import annotations

from harness import free_port, raw_request


def test_regex_server_name_captures(truehop):
    port = free_port()
    truehop(r"""
server {
    listen 127.0.0.1:@@PORT@@;
    server_name ~^(?<sub>[a-z]+)\.(example)\.test$;
    location / { return 200 "sub=$sub one=$1 two=$2\n"; }
    location ~ ^/(x+)$ { return 200 "sub=$sub one=$1\n"; }
}""", port=port)

    def body(host: str, path: str = "/") -> bytes:
        data, _ = raw_request(port, f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode(),
                              timeout=3)
        return data.rsplit(b"\r\n\r\n", 1)[1].strip()

    assert body("blog.example.test") == b"sub=blog one=blog two=example"
    # a location regex replaces $1.., the named capture stays
    assert body("shop.example.test", "/xx") == b"sub=shop one=xx"
