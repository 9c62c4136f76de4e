"""What net/h2conn.py reads off a connection for the variables ($ssl_*) and for routing
streams (which servers on a listener have HTTP/2)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from truehop.net.h2conn import connection_info, http2_servers


class FakeSsl:
    def __init__(self, reused: bool) -> None:
        self.session_reused = reused
        self.sni = "a.test"

    def version(self) -> str:
        return "TLSv1.3"

    def cipher(self) -> tuple[str, str, int]:
        return ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128)


class FakeTransport:
    def __init__(self, ssl_obj: Any) -> None:
        self.extra = {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 443),
                      "ssl_object": ssl_obj}

    def get_extra_info(self, name: str) -> Any:
        return self.extra.get(name)


LISTENER = SimpleNamespace(key=("127.0.0.1", 443))


def test_session_reused_exposed() -> None:
    for reused in (False, True):
        info = connection_info(FakeTransport(FakeSsl(reused)), LISTENER, "https")  # type: ignore[arg-type]
        assert info.ssl_session_reused is reused
        assert (info.ssl_protocol, info.ssl_server_name) == ("TLSv1.3", "a.test")
    info = connection_info(FakeTransport(None), LISTENER, "http")  # type: ignore[arg-type]
    assert info.ssl_session_reused is False


def _srv(http2: bool, listen_http2: bool = False, port: int = 8443) -> SimpleNamespace:
    return SimpleNamespace(http2=http2, listens=[SimpleNamespace(port=port, http2=listen_http2)])


def test_http2_servers() -> None:
    on, off = _srv(True), _srv(False)
    lst = SimpleNamespace(key=("127.0.0.1", 8443), servers=[on, off])
    assert http2_servers(lst) == frozenset({id(on)})  # type: ignore[arg-type]
    # every server has it: no per-stream check at all
    assert http2_servers(SimpleNamespace(key=("*", 8443), servers=[on])) is None  # type: ignore[arg-type]
    # `listen ... http2` enables it for every server on that address (nginx's addr_conf)
    lst2 = SimpleNamespace(key=("*", 8443), servers=[_srv(True, True), off])
    assert http2_servers(lst2) is None  # type: ignore[arg-type]
