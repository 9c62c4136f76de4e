"""client_alpn: the ALPN list of a ClientHello read from the raw TLS records (used to refuse a
handshake with no common protocol, as nginx does)."""

from __future__ import annotations

import ssl

from truehop.net.tls import client_alpn


def hello(alpn: list[str] | None, sni: str | None = "example.test") -> bytes:
    ctx = ssl.create_default_context()
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def test_alpn_list_is_read() -> None:
    assert client_alpn(hello(["h2", "http/1.1"])) == [b"h2", b"http/1.1"]
    assert client_alpn(hello(["h2"], sni=None)) == [b"h2"]


def test_no_alpn_extension() -> None:
    assert client_alpn(hello(None)) == []


def test_incomplete_or_foreign_data() -> None:
    data = hello(["h2"])
    assert client_alpn(data[:10]) is None
    assert client_alpn(data[:-1]) is None
    assert client_alpn(b"GET / HTTP/1.1\r\n") is None


def test_hello_split_over_records() -> None:
    data = hello(["h2", "http/1.1"])
    body = data[5:]
    split = b"".join(b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part
                     for part in (body[:7], body[7:100], body[100:]))
    assert client_alpn(split) == [b"h2", b"http/1.1"]
    assert client_alpn(split[:-3]) is None
