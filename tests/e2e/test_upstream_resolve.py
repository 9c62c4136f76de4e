"""`server name resolve` in an upstream block (nginx 1.27.3+): the name is looked up by the
resolver at run time and again when its answer expires (the test DNS server's TTL is 2 s),
so a backend that moves to another address is followed without a reload."""

from __future__ import annotations

import socket
import time

import httpx
from dns_server import DNSServer
from harness import free_port
from raw_upstreams import RawUpstream, saying

HTTP_RESOLVER = """
resolver 127.0.0.1:@@DNS@@ ipv6=off;
upstream app {
    zone app 64k;
    server app.test:@@UP@@ resolve;
}
server {
    listen 127.0.0.1:@@PORT@@;
    location / { proxy_pass http://app; }
}
"""

BLOCK_RESOLVER = """
upstream app {
    zone app 64k;
    resolver 127.0.0.1:@@DNS@@ valid=1s ipv6=off;
    resolver_timeout 2s;
    server app.test:@@UP@@ resolve;
}
server {
    listen 127.0.0.1:@@PORT@@;
    location / { proxy_pass http://app; }
}
"""


def two_addresses_one_port() -> tuple[RawUpstream, RawUpstream]:
    """Servers on 127.0.0.1 and 127.0.0.2 with the same port (the name moves, the port not)."""
    for _ in range(20):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            one = RawUpstream(saying("one"), "127.0.0.1", port)
        except OSError:
            continue
        try:
            return one, RawUpstream(saying("two"), "127.0.0.2", port)
        except OSError:
            one.sock.close()
    raise OSError("no port free on both addresses")


def follows_the_name(truehop, conf: str, wait: float) -> None:
    dns = DNSServer()
    one, two = two_addresses_one_port()
    dns.table["app.test"] = ["127.0.0.1"]
    port = free_port()
    try:
        with one, two:
            truehop(conf, PORT=port, DNS=dns.port, UP=one.port)
            with httpx.Client() as c:
                assert c.get(f"http://127.0.0.1:{port}/").text == "one"
                assert c.get(f"http://127.0.0.1:{port}/").text == "one"
                asked = len(dns.asked)
                assert asked >= 1
                dns.table["app.test"] = ["127.0.0.2"]
                time.sleep(wait)
                assert c.get(f"http://127.0.0.1:{port}/").text == "two"
                assert len(dns.asked) > asked
    finally:
        dns.close()


def test_resolve_with_the_http_resolver_follows_the_ttl(truehop) -> None:
    follows_the_name(truehop, HTTP_RESOLVER, 2.5)


def test_resolve_with_the_upstream_resolver_and_valid(truehop) -> None:
    follows_the_name(truehop, BLOCK_RESOLVER, 1.5)


def test_a_name_that_does_not_resolve_is_a_502(truehop) -> None:
    dns = DNSServer()
    one, two = two_addresses_one_port()
    dns.table["app.test"] = 3
    port = free_port()
    try:
        with one, two:
            tp = truehop(BLOCK_RESOLVER, PORT=port, DNS=dns.port, UP=one.port,
                         allow_log=["could not be resolved"])
            with httpx.Client() as c:
                assert c.get(f"http://127.0.0.1:{port}/").status_code == 502
        assert "app.test could not be resolved (3: Host not found)" in tp.error_log()
        assert "no live upstreams" in tp.error_log()
    finally:
        dns.close()
