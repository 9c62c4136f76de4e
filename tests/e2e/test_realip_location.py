"""realip settings in a location apply once that location is chosen (nginx runs the module
again in its preaccess phase, before content), unless the server-level run already replaced
the address."""

from __future__ import annotations

import httpx
from harness import free_port


def test_location_level_real_ip_header(truehop, upstream):
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    set_real_ip_from 127.0.0.1/32;
    proxy_set_header X-Real-IP $remote_addr;
    location / { proxy_pass http://127.0.0.1:@@UP@@; }
    location /custom {
        real_ip_header X-Real-IP-Custom;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
}""", port=port, up=upstream.port)

    def seen(path: str, headers: dict[str, str]) -> str:
        got = httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers).json()
        return {k.lower(): v for k, v in got["headers"]}["x-real-ip"]

    assert seen("/", {"X-Real-IP": "192.0.2.1"}) == "192.0.2.1"
    assert seen("/custom", {"X-Real-IP-Custom": "192.0.2.7"}) == "192.0.2.7"
    # the server-level run (X-Real-IP) replaced it already: the location's is not read
    assert seen("/custom", {"X-Real-IP": "192.0.2.1", "X-Real-IP-Custom": "192.0.2.7"}) == \
        "192.0.2.1"
