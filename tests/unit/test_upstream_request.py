"""proxy.upstream_request: the upstream request the proxy writes, decided without sockets.

Each config is compiled by the real compiler; the request state is the one the pipeline
hands the proxy (its server and location chosen, $proxy_host set by proxy.target)."""

from __future__ import annotations

from pathlib import Path

import pytest

from truehop.conf.compile import load
from truehop.conf.model import Config, LocationConf, ServerConf
from truehop.http.events import RequestHead
from truehop.http.headers import connection_tokens
from truehop.log import ErrorLog
from truehop.process.runtime import Runtime
from truehop.proxy.request_body import BodyFile
from truehop.proxy.target import choose_target
from truehop.proxy.upstream_request import (
    BODY_KEPT,
    BODY_NONE,
    BODY_READ,
    BODY_STREAM,
    RequestPlan,
    UpstreamRequest,
    body_mode,
    build_request,
    reads_body_whole,
    reuse_verdict,
    upgrade_ok,
)
from truehop.route.state import ConnectionInfo, RequestState

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="   # RFC 6455's sample: 16 bytes in base64


class Case:
    """A config compiled from text, and requests to its first server."""

    def __init__(self, tmp_path: Path, http: str, location: str,
                 upstream: str = "upstream app { server 127.0.0.1:3000; }") -> None:
        self.path = tmp_path / "site.conf"
        # line 1: upstream; line 2: the http-level lines; 3: server; 4: listen; 5: location
        self.path.write_text(f"{upstream}\n{http}\nserver {{\n listen 127.0.0.1:8080; "
                             f"server_name site.test;\n location / {{ {location} }}\n}}\n")
        self.cfg: Config = load(str(self.path), str(tmp_path))
        self.rt = Runtime(self.cfg, ErrorLog([("stderr", "emerg")]))
        self.server: ServerConf = self.cfg.http.servers[0]

    def request(self, method: str = "GET", path: str = "/x",
                headers: list[tuple[str, str]] | None = None,
                content_length: int | None = None, chunked: bool = False,
                version: str = "1.1") -> tuple[RequestState, LocationConf, str]:
        hs = [("Host", "site.test")] + (headers or [])
        tokens: frozenset[str] = frozenset()
        for k, v in hs:
            if k.lower() == "connection":
                tokens = tokens | connection_tokens(v)
        upgrade = next((v.lower() for k, v in hs if k.lower() == "upgrade"), None) \
            if "upgrade" in tokens else None
        head = RequestHead(method, path, path, None, version, hs, "site.test", content_length,
                           chunked, "close" not in tokens, upgrade=upgrade,
                           conn_tokens=tokens)
        info = ConnectionInfo("192.0.2.7", 50000, "127.0.0.1", 8080, "http", 1)
        r = RequestState(info, head, self.server)
        r.host = "site.test"
        r.server_name = self.server.server_name
        r.uri = path
        loc = self.server.tree.match(path)[0]
        r.loc = loc
        _up, _scheme, uri = choose_target(self.rt.proxy_rt, r, loc)
        return r, loc, uri

    def build(self, method: str = "GET", headers: list[tuple[str, str]] | None = None,
              body: bytes | BodyFile | None = None, content_length: int | None = None,
              chunked: bool = False, stream: bool = False, version: str = "1.1"
              ) -> UpstreamRequest:
        r, loc, uri = self.request(method, "/x", headers, content_length, chunked, version)
        s = loc.settings
        return build_request(r, s, RequestPlan(s), uri, upgrade_ok(r.head), stream, body,
                             notes=True)

    def line(self, text: str) -> int:
        """The line of the config that holds `text`."""
        for n, ln in enumerate(self.path.read_text().splitlines(), 1):
            if text in ln:
                return n
        raise AssertionError(text)


def names(req: UpstreamRequest) -> list[str]:
    return [k for k, _ in req.headers]


def sources(req: UpstreamRequest) -> dict[str, str]:
    assert req.sources is not None
    assert [(n.name, n.value) for n in req.sources] == req.headers   # one note per header
    return {n.name: n.describe() for n in req.sources}


def dropped(req: UpstreamRequest) -> dict[str, str]:
    """Why each header was left out; for a name left out twice (a proxy_set_header line
    and the client's header it replaces), the first: the line's."""
    assert req.dropped is not None
    out: dict[str, str] = {}
    for n in req.dropped:
        out.setdefault(n.name, n.describe())
    return out


def test_host_defaults_to_proxy_host(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app;")
    req = c.build()
    assert req.headers[0] == ("Host", "app")
    assert sources(req)["Host"] == "default: $proxy_host"
    assert dropped(req)["Host"] == "replaced: Host is $proxy_host unless set"
    assert req.head.startswith(b"GET /x HTTP/1.1\r\nHost: app\r\n")
    c2 = Case(tmp_path, "", "proxy_pass http://127.0.0.1:3001;")
    assert c2.build().headers[0] == ("Host", "127.0.0.1:3001")


def test_host_set_by_proxy_set_header_names_its_line(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app; proxy_set_header Host $host;")
    req = c.build()
    assert req.headers[0] == ("Host", "site.test")
    where = f"{c.path}:{c.line('proxy_set_header Host')}"
    assert sources(req)["Host"] == f"proxy_set_header at {where}"
    assert dropped(req)["Host"] == f"replaced: proxy_set_header at {where}"


def test_hop_by_hop_headers_are_not_forwarded(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app;")
    req = c.build(headers=[("Connection", "keep-alive, X-Private"), ("Keep-Alive", "300"),
                           ("TE", "trailers"), ("Proxy-Connection", "x"), ("X-Private", "1"),
                           ("Transfer-Encoding", "chunked"), ("Expect", "100-continue"),
                           ("Accept", "*/*"), ("X-Public", "2")])
    assert names(req) == ["Host", "Accept", "X-Public"]
    assert sources(req)["Accept"] == "from client"
    why = dropped(req)
    for name in ("Connection", "Keep-Alive", "TE", "Proxy-Connection", "X-Private"):
        assert why[name] == "dropped: hop-by-hop", name
    assert why["Expect"] == "dropped: written by the proxy itself"


def test_proxy_set_header_here_replaces_the_inherited_ones(tmp_path: Path) -> None:
    # nginx: a level with its own proxy_set_header inherits none from above
    c = Case(tmp_path, "proxy_set_header X-Outer outer;",
             "proxy_pass http://app; proxy_set_header X-Inner inner;")
    req = c.build(headers=[("X-Inner", "from-client"), ("X-Outer", "from-client")])
    assert ("X-Inner", "inner") in req.headers
    assert ("X-Inner", "from-client") not in req.headers
    # the outer line does not apply here: the client's own X-Outer goes through
    assert ("X-Outer", "from-client") in req.headers
    assert dropped(req)["X-Inner"] == \
        f"replaced: proxy_set_header at {c.path}:{c.line('X-Inner')}"
    c2 = Case(tmp_path, "proxy_set_header X-Outer outer;", "proxy_pass http://app;")
    assert ("X-Outer", "outer") in c2.build().headers


def test_an_empty_value_removes_the_header(tmp_path: Path) -> None:
    c = Case(tmp_path, "", 'proxy_pass http://app; proxy_set_header Accept-Encoding "";'
                           ' proxy_set_header X-Cookie $http_cookie;')
    req = c.build(headers=[("Accept-Encoding", "gzip")])
    assert "Accept-Encoding" not in names(req)
    assert "X-Cookie" not in names(req)
    why = dropped(req)
    at = f"proxy_set_header at {c.path}:{c.line('Accept-Encoding')}"
    assert f"removed: empty {at}" in [n.describe() for n in req.dropped or ()
                                      if n.name == "Accept-Encoding"]
    assert why["X-Cookie"] == (f"not sent: $http_cookie is empty for this request "
                               f"({at})")
    # with a value, the variable's header is sent
    req2 = c.build(headers=[("Cookie", "a=1")])
    assert ("X-Cookie", "a=1") in req2.headers


def test_proxy_add_x_forwarded_for(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app; "
                           "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")
    assert ("X-Forwarded-For", "192.0.2.7") in c.build().headers
    req = c.build(headers=[("X-Forwarded-For", "203.0.113.1")])
    assert ("X-Forwarded-For", "203.0.113.1, 192.0.2.7") in req.headers
    assert names(req).count("X-Forwarded-For") == 1   # the client's is replaced


WS_IDIOM = "map $http_upgrade $connection_upgrade { default upgrade; '' close; }"
WS_LOC = ("proxy_pass http://app; proxy_set_header Upgrade $http_upgrade; "
          "proxy_set_header Connection $connection_upgrade;")


def test_websocket_idiom_forwards_a_valid_upgrade(tmp_path: Path) -> None:
    c = Case(tmp_path, WS_IDIOM, WS_LOC)
    req = c.build(headers=[("Connection", "Upgrade"), ("Upgrade", "websocket"),
                           ("Sec-WebSocket-Key", WS_KEY), ("Sec-WebSocket-Version", "13")])
    assert req.upgrading is True
    assert ("Upgrade", "websocket") in req.headers
    assert ("Connection", "upgrade") in req.headers
    assert ("Sec-WebSocket-Key", WS_KEY) in req.headers
    assert req.keep_alive is True


def test_websocket_idiom_without_an_upgrade(tmp_path: Path) -> None:
    c = Case(tmp_path, WS_IDIOM, WS_LOC)
    req = c.build()
    # $http_upgrade is empty: no Upgrade; $connection_upgrade is "close": Connection: close
    assert "Upgrade" not in names(req)
    assert ("Connection", "close") in req.headers
    assert req.upgrading is False
    assert req.keep_alive is False
    assert "Connection: close" in req.close_why
    assert dropped(req)["Upgrade"].startswith("not sent: $http_upgrade is empty")


def test_an_upgrade_that_is_no_valid_websocket_is_not_forwarded(tmp_path: Path) -> None:
    c = Case(tmp_path, WS_IDIOM, WS_LOC)
    bad = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "short"),
           ("Sec-WebSocket-Version", "13")]
    req = c.build(headers=bad)
    assert req.upgrading is False
    assert "Upgrade" not in names(req) and "Connection" not in names(req)
    assert dropped(req)["Upgrade"].startswith(
        "not sent: this request is no upgrade the proxy forwards")
    # nor a WebSocket handshake on a POST, nor HTTP/1.0, nor h2c (smuggling, bad-input S77)
    good = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", WS_KEY),
            ("Sec-WebSocket-Version", "13")]
    assert c.build(method="POST", headers=good).upgrading is False
    assert c.build(version="1.0", headers=good).upgrading is False
    h2c = [("Connection", "Upgrade"), ("Upgrade", "h2c")]
    assert c.build(headers=h2c).upgrading is False
    assert c.build(headers=[("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                            ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]).upgrading is False
    # an upgrade with a body is no upgrade (the parser leaves head.upgrade unset)
    assert c.build(method="POST", headers=[("Connection", "Upgrade"), ("Upgrade", "tcp"),
                                           ("Content-Length", "5")],
                   content_length=5).upgrading is False


def test_any_other_protocol_is_forwarded_as_nginx_does(tmp_path: Path) -> None:
    c = Case(tmp_path, WS_IDIOM, WS_LOC)
    # Docker's attach/exec: POST with Upgrade: tcp
    req = c.build(method="POST", headers=[("Connection", "Upgrade"), ("Upgrade", "tcp")])
    assert req.upgrading is True
    assert ("Upgrade", "tcp") in req.headers and ("Connection", "upgrade") in req.headers
    # kubectl exec through an API-server proxy
    req = c.build(headers=[("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")])
    assert req.upgrading is True and ("Upgrade", "SPDY/3.1") in req.headers
    # Upgrade: websocket without a key: nginx forwards it too (proxy_connection_headers.t)
    req = c.build(headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")])
    assert req.upgrading is True


def test_http_1_0_to_the_upstream(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app; proxy_http_version 1.0;")
    req = c.build()
    assert req.version == "1.0"
    assert req.head.startswith(b"GET /x HTTP/1.0\r\n")
    assert req.headers[-1] == ("Connection", "close")
    assert sources(req)["Connection"] == "default: proxy_http_version 1.0"
    assert (req.keep_alive, req.close_why) == (False, "proxy_http_version 1.0")
    # a chunked body must be read whole: HTTP/1.0 needs its length
    r, loc, _ = c.request("POST", chunked=True)
    assert reads_body_whole(loc.settings, r.head) is True
    assert body_mode(loc.settings, r.head, False) == BODY_READ
    req = c.build("POST", body=b"hello", chunked=True)
    assert ("Content-Length", "5") in req.headers
    assert "Transfer-Encoding" not in names(req)


def test_http_1_1_keeps_the_connection(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app;")
    req = c.build()
    assert req.version == "1.1"
    assert "Connection" not in names(req)
    assert req.keep_alive is True
    # proxy_http_version 1.0 with its own Connection: no default Connection: close added
    c2 = Case(tmp_path, "", "proxy_pass http://app; proxy_http_version 1.0; "
                            "proxy_set_header Connection keep-alive;")
    assert [v for k, v in c2.build().headers if k == "Connection"] == ["keep-alive"]


def test_body_framing(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app;")
    assert "Content-Length" not in names(c.build("GET"))
    post = c.build("POST")
    assert post.headers[-1] == ("Content-Length", "0") and post.body == b""
    assert sources(post)["Content-Length"] == "framing"
    buffered = c.build("PUT", body=b"0123456789", content_length=10)
    assert buffered.headers[-1] == ("Content-Length", "10")
    assert (buffered.body, buffered.body_length, buffered.stream_body) == \
        (b"0123456789", 10, False)
    assert buffered.head.endswith(b"Content-Length: 10\r\n\r\n")


def test_streamed_body(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app; proxy_request_buffering off;")
    r, loc, _ = c.request("POST", content_length=10)
    assert reads_body_whole(loc.settings, r.head) is False
    assert body_mode(loc.settings, r.head, False) == BODY_STREAM
    assert body_mode(loc.settings, r.head, True) == BODY_KEPT   # a second pass
    req = c.build("POST", content_length=10, stream=True)
    assert (req.body, req.stream_body, req.body_length) == (None, True, -1)
    assert req.headers[-1] == ("Content-Length", "10")
    chunked = c.build("POST", chunked=True, stream=True)
    assert chunked.headers[-1] == ("Transfer-Encoding", "chunked")
    assert sources(chunked)["Transfer-Encoding"] == "framing"
    r, loc, _ = c.request("GET")
    assert body_mode(loc.settings, r.head, False) == BODY_NONE


def test_proxy_pass_request_headers_off(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app; proxy_pass_request_headers off; "
                           "proxy_set_header X-Set yes;")
    req = c.build(headers=[("Accept", "*/*"), ("Cookie", "a=1")])
    assert names(req) == ["Host", "X-Set"]
    why = dropped(req)
    assert why["Accept"] == why["Cookie"] == "dropped: proxy_pass_request_headers off"


def test_proxy_pass_request_body_off(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app; proxy_pass_request_body off;")
    r, loc, _ = c.request("POST", content_length=5)
    # the body is read (and dropped), never streamed
    assert reads_body_whole(loc.settings, r.head) is True
    req = c.build("POST", body=b"hello", content_length=5)
    assert (req.body, req.headers[-1]) == (b"", ("Content-Length", "0"))


def test_proxy_set_body(tmp_path: Path) -> None:
    c = Case(tmp_path, "", 'proxy_pass http://app; proxy_set_body "user=$remote_addr";')
    r, loc, _ = c.request("POST", content_length=5)
    assert reads_body_whole(loc.settings, r.head) is True
    req = c.build("POST", body=b"hello", content_length=5)
    assert req.body == b"user=192.0.2.7"
    assert req.headers[-1] == ("Content-Length", "14")
    assert req.head.endswith(b"Content-Length: 14\r\n\r\n")
    # even a GET without a body gets it
    assert c.build("GET").body == b"user=192.0.2.7"


def test_proxy_method(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app; proxy_method POST;")
    req = c.build("GET")
    assert req.method == "POST"
    assert req.head.startswith(b"POST /x HTTP/1.1\r\n")


def test_uri_replacement_is_in_the_request_line(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app/base/;")
    req = c.build()
    assert (req.uri, req.head.split(b"\r\n")[0]) == ("/base/x", b"GET /base/x HTTP/1.1")


def test_a_value_with_a_newline_cannot_be_written(tmp_path: Path) -> None:
    c = Case(tmp_path, "", 'proxy_pass http://app; proxy_set_header X-A "$arg_a";')
    r, loc, uri = c.request()
    r.head.query = "a=1%0d%0aX-Evil:%201"
    r.args = "a=1\r\nX-Evil: 1"
    s = loc.settings
    with pytest.raises(ValueError):
        build_request(r, s, RequestPlan(s), uri, False, False, None)


def test_reuse_verdict(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app;")
    up = c.cfg.http.upstreams["app"]
    ok, why = reuse_verdict(c.build(), up)
    assert ok is True
    assert why == (f'upstream "app" ({c.path}:1) has keepalive 32 (nginx 1.30 default) and '
                   'no "Connection: close" is sent')
    closing = Case(tmp_path, "", "proxy_pass http://app; proxy_set_header Connection close;")
    assert reuse_verdict(closing.build(), up) == \
        (False, 'the request carries "Connection: close"')
    old = Case(tmp_path, "", "proxy_pass http://app; proxy_http_version 1.0;")
    assert reuse_verdict(old.build(), up) == (False, "proxy_http_version 1.0")
    kept = Case(tmp_path, "", "proxy_pass http://app;",
                upstream="upstream app { server 127.0.0.1:3000; keepalive 4; }")
    assert reuse_verdict(kept.build(), kept.cfg.http.upstreams["app"])[1].startswith(
        f'upstream "app" ({kept.path}:1) has keepalive 4 and')
    bare = Case(tmp_path, "", "proxy_pass http://127.0.0.1:3001;")
    r, loc, _ = bare.request()
    assert loc.proxy is not None and loc.proxy.upstream is not None
    assert reuse_verdict(bare.build(), loc.proxy.upstream)[0] is False


def test_each_header_names_its_config_line(tmp_path: Path) -> None:
    c = Case(tmp_path, "", "proxy_pass http://app;\n"
                           "  proxy_set_header X-Real-IP $remote_addr;\n"
                           "  proxy_set_header X-Proto $scheme;\n")
    req = c.build(headers=[("Accept", "*/*")])
    assert req.headers == [("Host", "app"), ("X-Real-IP", "192.0.2.7"), ("X-Proto", "http"),
                           ("Accept", "*/*")]
    src = sources(req)
    assert src["X-Real-IP"] == f"proxy_set_header at {c.path}:{c.line('X-Real-IP')}"
    assert src["X-Proto"] == f"proxy_set_header at {c.path}:{c.line('X-Proto')}"
    assert src["Accept"] == "from client"
    # the same decisions without notes: the proxy's own call
    r, loc, uri = c.request(headers=[("Accept", "*/*")])
    s = loc.settings
    plain = build_request(r, s, RequestPlan(s), uri, False, False, None)
    assert (plain.headers, plain.head, plain.sources, plain.dropped) == \
        (req.headers, req.head, None, None)
