"""What a client connection reads off its transport for the variables ($ssl_*,
net.connection, shared by HTTP/1 and HTTP/2) and which servers on a listener take HTTP/2
streams (proxy.pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from truehop.conf.compile import load
from truehop.http.events import RequestHead
from truehop.log import ErrorLog
from truehop.net.connection import connection_info
from truehop.net.listen import Listener
from truehop.process.runtime import Runtime
from truehop.proxy.pipeline import MISDIRECTED, client_cert_refusal, http2_servers
from truehop.route.state import ConnectionInfo


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


def listeners(tmp_path: Path, servers: str) -> dict[tuple[str, int], Listener]:
    """The worker's listeners for an http block holding `servers` (real objects: the
    compiled build checks the types of what connection_info and http2_servers take)."""
    (tmp_path / "logs").mkdir(exist_ok=True)
    conf = tmp_path / "site.conf"
    conf.write_text(f"events {{}}\nhttp {{ access_log off; {servers} }}\n")
    return Runtime(load(str(conf), str(tmp_path)), ErrorLog([("stderr", "emerg")])).listeners


def test_session_reused_exposed(tmp_path: Path) -> None:
    lst = listeners(tmp_path, "server { listen 127.0.0.1:8080; }")[("127.0.0.1", 8080)]
    for reused in (False, True):
        info = connection_info(FakeTransport(FakeSsl(reused)), lst.key, "https")  # type: ignore[arg-type]
        assert info.ssl_session_reused is reused
        assert (info.ssl_protocol, info.ssl_server_name) == ("TLSv1.3", "a.test")
    info = connection_info(FakeTransport(None), lst.key, "http")  # type: ignore[arg-type]
    assert info.ssl_session_reused is False


def test_http2_servers(tmp_path: Path) -> None:
    lst = listeners(tmp_path, "server { listen 127.0.0.1:8443; server_name on; http2 on; } "
                              "server { listen 127.0.0.1:8443; server_name off; }")
    on = lst[("127.0.0.1", 8443)].servers[0]
    assert on.names == ["on"]
    assert http2_servers(lst[("127.0.0.1", 8443)]) == frozenset({id(on)})
    # every server has it: no per-stream check at all
    lst = listeners(tmp_path, "server { listen 8443; http2 on; }")
    assert http2_servers(lst[("*", 8443)]) is None
    # `listen ... http2` enables it for every server on that address (nginx's addr_conf)
    lst = listeners(tmp_path, "server { listen 8443 http2; server_name a; } "
                              "server { listen 8443; server_name b; }")
    assert http2_servers(lst[("*", 8443)]) is None


def _head(host: str) -> RequestHead:
    return RequestHead("GET", "/", "/", None, "2", [("host", host)], host, None, False, False)


def test_http2_refusal_is_the_pipelines(tmp_path: Path) -> None:
    """The owner's answer for an HTTP/2 stream (net asks, the pipeline decides): 421 when
    the Host picks a server with `http2 off`, nothing to refuse otherwise."""
    (tmp_path / "logs").mkdir(exist_ok=True)
    conf = tmp_path / "site.conf"
    conf.write_text("events {}\nhttp { access_log off; "
                    "server { listen 127.0.0.1:8443; server_name on; http2 on; } "
                    "server { listen 127.0.0.1:8443; server_name off; } }\n")
    rt = Runtime(load(str(conf), str(tmp_path)), ErrorLog([("stderr", "emerg")]))
    lst = rt.listeners[("127.0.0.1", 8443)]
    info = ConnectionInfo("127.0.0.1", 5000, "127.0.0.1", 8443, "http", 1, lst.key)
    assert rt.http2_refusal(lst, info, _head("on")) is None
    assert rt.http2_refusal(lst, info, _head("on:8443")) is None
    assert rt.http2_refusal(lst, info, _head("off")) == (421, MISDIRECTED)
    # a plain connection never goes through the client-certificate check (497 path)
    assert client_cert_refusal(lst, info, _head("on")) is None
