"""gzip's pure parts: the Accept-Encoding and User-Agent tests (http.coding), the decision
of the header filter for settings compiled from real configuration text (proxy.gzip), the
directives' parsing and errors, $gzip_ratio's rounding, and the body filter round-tripping
through zlib with flushes that make each part decodable on its own."""

from __future__ import annotations

import asyncio
import os
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.conf.model import ServerConf, Settings
from truehop.http.coding import accepts_br, accepts_gzip, is_msie6
from truehop.http.events import RequestHead
from truehop.http.exchange import ResponseBody
from truehop.proxy import brotli as brotli_mod
from truehop.proxy import gzip
from truehop.proxy.filters import filter_head
from truehop.route.state import ConnectionInfo, RequestState

# the sink below subclasses a compiled class, which mypyc does not allow: those tests run on
# the pure build (the end-to-end tests cover the compiled filter)
COMPILED = not gzip.__file__.endswith(".py")
needs_pure = pytest.mark.skipif(COMPILED, reason="subclasses a compiled class")

# -- Accept-Encoding ---------------------------------------------------------------------


@pytest.mark.parametrize("value, ok", [
    ("gzip", True),
    ("gzip, deflate, br", True),
    ("gzip,deflate", True),
    ("deflate, gzip", True),
    ("br,gzip", True),
    ("GZIP", True),
    ("deflate, GZip;q=0.5", True),
    ("gzip;q=1", True),
    ("gzip;q=1.0", True),
    ("gzip; q=0.001", True),
    ("gzip;Q=0.5", True),
    ("gzip ;q=0.5", True),
    ("gzip;q=0", False),
    ("gzip;q=0.0", False),
    ("gzip;q=0.000", False),
    ("gzip; q=0, deflate", False),
    ("gzip;q=2", False),           # not 0 or 1 before the point
    ("gzip;q=0.0001", False),      # more than three decimals
    ("gzip;q=1.5", False),         # above 1
    ("gzip;level=1", False),       # a parameter other than q
    ("gzip;", True),               # nginx: a bare ";" at the end is accepted
    ("gzip;q", False),
    ("gzip;q=", False),
    ("x-gzip", False),
    ("gzipped", False),
    ("identity", False),
    ("*", False),                  # nginx does not read "*"
    ("", False),
    ("gzi", False),
    ("deflate,gzip;q=0,gzip", False),   # the first gzip token decides
    ("xgzipgzip", True),           # nginx's search restarts just after a bad match
])
def test_accepts_gzip(value: str, ok: bool) -> None:
    assert accepts_gzip(value) is ok


@pytest.mark.parametrize("value, ok", [
    ("gzip, deflate, br", True), ("br", True), ("BR", True), ("br;q=0", False),
    ("brotli", False), ("abr", False), ("gzip", False), ("b", False),
    ("gzip, br;q=0.9", True), ("br ; q = 0", False), ("br;q=0.", False),
    ("br;q=0.0", False), ("br;q=0.000", False), ("br;q=0.0001", False),
    ("br;q=0.001", True), ("br;q=1", True), ("br;q=0,gzip", False),
    ("br;level=1", True),          # ngx_brotli accepts any parameter but q=0
    ("br;q=0x", False),            # after "0", anything but "." refuses
    ("xbr, br", True),             # the search goes on after a bad match
])
def test_accepts_br(value: str, ok: bool) -> None:
    assert accepts_br(value) is ok


@pytest.mark.parametrize("ua, msie6", [
    ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", True),
    ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", False),
    ("Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)", True),
    ("Mozilla/4.0 (compatible; MSIE 4.01; Windows 95)", True),
    ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)", False),
    ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1) Opera 8.50", False),
    ("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", False),
    ("MSIE 6.0", True),
    ("MSIE 6.", False),           # too short after "MSIE " (nginx wants 8 characters)
])
def test_is_msie6(ua: str, msie6: bool) -> None:
    assert is_msie6(ua) is msie6


@pytest.mark.parametrize("zin, zout, text", [
    (3600, 75, "48.00"), (1000, 3, "333.33"), (2125, 1000, "2.13"), (2124, 1000, "2.12"),
    (1999, 1000, "2.00"), (10, 20, "0.50"), (100, 3, "33.33"), (995, 500, "1.99"),
    (9995, 1000, "10.00"),
])
def test_ratio_rounds_as_nginx(zin: int, zout: int, text: str) -> None:
    assert gzip.ratio(zin, zout) == text


# -- the decision ------------------------------------------------------------------------


def server_of(tmp_path: Path, body: str) -> ServerConf:
    p = tmp_path / "site.conf"
    p.write_text("server { listen 127.0.0.1:8080; " + body + " }")
    return load(str(p), str(tmp_path)).http.servers[0]


def request(srv: ServerConf, headers: list[tuple[str, str]], method: str = "GET",
            version: str = "1.1", uri: str = "/") -> RequestState:
    head = RequestHead(method, uri, uri, None, version, headers, "localhost", None, False, True)
    r = RequestState(ConnectionInfo("127.0.0.1", 1, "127.0.0.1", 8080, "http", 1), head, srv)
    loc, _, _ = srv.tree.lookup(uri)
    r.loc = loc if loc is not None else srv.default_loc
    return r


AE = ("Accept-Encoding", "gzip, deflate")
HTML = [("Content-Type", "text/html; charset=utf-8"), ("ETag", '"abc"'),
        ("Accept-Ranges", "bytes")]


def head_of(tmp_path: Path, conf: str, req: list[tuple[str, str]], status: int = 200,
            resp: list[tuple[str, str]] | None = None, length: int | None = 1000,
            method: str = "GET", version: str = "1.1") -> tuple[list[tuple[str, str]], Any]:
    srv = server_of(tmp_path, conf)
    r = request(srv, req, method, version)
    h = filter_head(r, status, list(HTML if resp is None else resp), length)
    return h.headers, h


GZ = "gzip on; gzip_vary on;"


def test_compressed_head(tmp_path: Path) -> None:
    headers, h = head_of(tmp_path, GZ, [AE])
    assert ("Content-Encoding", "gzip") in headers
    assert ("ETag", 'W/"abc"') in headers            # weakened (nginx 1.7.3+)
    assert "Accept-Ranges" not in dict(headers)
    assert ("Vary", "Accept-Encoding") in headers
    assert h.content_length is None and h.body_filters is not None


@pytest.mark.parametrize("conf, req, status, resp, length, method, version, vary", [
    # gzip off: nothing, not even Vary
    ("gzip off; gzip_vary on;", [AE], 200, None, 1000, "GET", "1.1", False),
    # statuses other than 200/403/404
    (GZ, [AE], 500, None, 1000, "GET", "1.1", False),
    (GZ, [AE], 206, None, 1000, "GET", "1.1", False),
    (GZ, [AE], 304, None, None, "GET", "1.1", False),
    (GZ, [AE], 204, None, None, "GET", "1.1", False),
    # already encoded (any value), too short, not a listed type
    (GZ, [AE], 200, [("Content-Type", "text/html"), ("Content-Encoding", "br")], 1000, "GET",
     "1.1", False),
    (GZ, [AE], 200, None, 19, "GET", "1.1", False),
    (GZ, [AE], 200, [("Content-Type", "application/json")], 1000, "GET", "1.1", False),
    (GZ, [AE], 200, [], 1000, "GET", "1.1", False),
    # considered, but the request does not allow it: Vary all the same
    (GZ, [], 200, None, 1000, "GET", "1.1", True),
    (GZ, [("Accept-Encoding", "gzip;q=0")], 200, None, 1000, "GET", "1.1", True),
    (GZ, [AE], 200, None, 1000, "GET", "1.0", True),
    (GZ, [AE, ("Via", "1.1 cache")], 200, None, 1000, "GET", "1.1", True),
    (GZ + " gzip_disable msie6;", [AE, ("User-Agent", "Mozilla/4.0 (compatible; MSIE 6.0; X)")],
     200, None, 1000, "GET", "1.1", True),
    (GZ + ' gzip_disable "curl/";', [AE, ("User-Agent", "CURL/8.0")], 200, None, 1000, "GET",
     "1.1", True),
])
def test_not_compressed(tmp_path: Path, conf: str, req: list[tuple[str, str]], status: int,
                        resp: list[tuple[str, str]] | None, length: int | None, method: str,
                        version: str, vary: bool) -> None:
    headers, h = head_of(tmp_path, conf, req, status, resp, length, method, version)
    assert ("Content-Encoding", "gzip") not in headers
    assert h.body_filters is None and h.content_length == length
    assert (("Vary", "Accept-Encoding") in headers) is vary


@pytest.mark.parametrize("conf, req, status, resp, length, version", [
    (GZ, [AE], 404, None, 1000, "1.1"),
    (GZ, [AE], 403, None, None, "1.1"),
    (GZ + " gzip_http_version 1.0;", [AE], 200, None, 1000, "1.0"),
    (GZ, [AE], 200, None, 1000, "2.0"),
    (GZ + " gzip_types application/json;", [AE], 200,
     [("Content-Type", "Application/JSON; charset=utf-8")], 1000, "1.1"),
    (GZ + " gzip_types *;", [AE], 200, [], 1000, "1.1"),       # `*`: even without a type
    (GZ + " gzip_min_length 0;", [AE], 200, None, 1, "1.1"),
    (GZ, [AE], 200, None, None, "1.1"),                        # unknown length
    (GZ + " gzip_disable msie6;",
     [AE, ("User-Agent", "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)")], 200,
     None, 1000, "1.1"),
    (GZ, [AE], 200, [("Content-Type", "text/html"), ("Content-Encoding", "")], 1000, "1.1"),
])
def test_compressed(tmp_path: Path, conf: str, req: list[tuple[str, str]], status: int,
                    resp: list[tuple[str, str]] | None, length: int | None,
                    version: str) -> None:
    headers, h = head_of(tmp_path, conf, req, status, resp, length, "GET", version)
    assert ("Content-Encoding", "gzip") in headers
    assert h.content_length is None and h.body_filters is not None


@needs_pure
def test_head_gets_the_compressed_head_and_no_body_filter(tmp_path: Path) -> None:
    headers, h = head_of(tmp_path, GZ, [AE], method="HEAD")
    assert ("Content-Encoding", "gzip") in headers and h.content_length is None
    sink = Sink()
    assert h.body_filters is not None and h.body_filters[0](sink) is sink


@pytest.mark.parametrize("proxied, resp, ok", [
    ("off", [], False),
    ("any", [], True),
    ("expired", [], True),                               # no caching fields at all
    ("expired", [("Expires", "Thu, 01 Jan 1970 00:00:01 GMT")], True),
    ("expired", [("Expires", "Thu, 01 Jan 2099 00:00:01 GMT")], False),
    ("expired", [("Expires", "0")], False),              # unparsable
    ("no-cache", [("Expires", "Thu, 01 Jan 1970 00:00:01 GMT")], False),
    ("no-cache", [("Cache-Control", "max-age=0, no-cache")], True),
    ("no-cache", [("Cache-Control", "no-store")], False),
    ("no-store", [("Cache-Control", "No-Store")], True),
    ("private", [("Cache-Control", 'private="x"')], True),
    ("private", [("Cache-Control", "public")], False),
    ("no_last_modified", [("Last-Modified", "Thu, 01 Jan 1970 00:00:01 GMT")], False),
    ("no_last_modified", [], True),
    ("no_etag", [("ETag", '"x"')], False),
    ("no_etag no_last_modified", [("Cache-Control", "no-cache")], False),
    ("expired no-cache no-store private no_last_modified no_etag auth",
     [("Cache-Control", "private")], True),
])
def test_gzip_proxied(tmp_path: Path, proxied: str, resp: list[tuple[str, str]],
                      ok: bool) -> None:
    srv = server_of(tmp_path, f"gzip on; gzip_proxied {proxied};")
    r = request(srv, [AE, ("Via", "1.1 proxy")])
    s = srv.default_loc.settings
    assert gzip.gzip_ok(r, s, [("Content-Type", "text/html"), *resp]) is ok


def test_gzip_proxied_auth(tmp_path: Path) -> None:
    srv = server_of(tmp_path, "gzip on; gzip_proxied auth;")
    s = srv.default_loc.settings
    assert gzip.gzip_ok(request(srv, [AE, ("Via", "x"), ("Authorization", "Basic x")]), s, [])
    assert not gzip.gzip_ok(request(srv, [AE, ("Via", "x")]), s, [("Cache-Control", "x")])


def test_memory_shrinks_for_short_bodies(tmp_path: Path) -> None:
    s = server_of(tmp_path, "gzip on;").default_loc.settings
    assert gzip.memory(s, None) == (15, 8)
    assert gzip.memory(s, 100_000) == (15, 8)
    assert gzip.memory(s, 3600) == (12, 5)     # 3600 >= 2^10 - 262
    assert gzip.memory(s, 1) == (9, 2)
    s = server_of(tmp_path, "gzip on; gzip_window 4k; gzip_hash 1k;").default_loc.settings
    assert (s.gzip_window, s.gzip_hash) == (12, 2)
    assert gzip.memory(s, 1) == (9, 1)


# -- directives ----------------------------------------------------------------------------


def settings(tmp_path: Path, body: str) -> Settings:
    return server_of(tmp_path, body).default_loc.settings


def test_defaults(tmp_path: Path) -> None:
    s = settings(tmp_path, "")
    assert (s.gzip, s.gzip_types, s.gzip_comp_level, s.gzip_min_length, s.gzip_buffers,
            s.gzip_http_version, s.gzip_proxied, s.gzip_vary, s.gzip_disable,
            s.gzip_disable_msie6, s.gzip_static) == (
        False, frozenset({"text/html"}), 1, 20, (32, 4096), "1.1", frozenset({"off"}), False,
        (), False, "off")


def test_types_add_up_per_level_and_replace_the_parent(tmp_path: Path) -> None:
    srv = server_of(tmp_path, "gzip_types text/css; gzip_types Application/JSON; "
                              "location /a { gzip_types image/svg+xml; } "
                              "location /b { gzip_types text/plain *; gzip_types x/y; }")
    assert srv.settings.gzip_types == {"text/html", "text/css", "application/json"}
    a = srv.tree.lookup("/a")[0]
    b = srv.tree.lookup("/b")[0]
    assert a is not None and b is not None
    assert a.settings.gzip_types == {"text/html", "image/svg+xml"}
    assert b.settings.gzip_types == {"*"}


def test_duplicate_mime_type_warns_as_nginx(tmp_path: Path) -> None:
    p = tmp_path / "site.conf"
    p.write_text("server { listen 127.0.0.1:8080;\n gzip_types text/html text/css; }")
    cfg = load(str(p), str(tmp_path))
    assert cfg.warnings == [f'duplicate MIME type "text/html" in {p}:2']


def test_disable_msie6_inherits_apart_from_the_regexes(tmp_path: Path) -> None:
    srv = server_of(tmp_path, 'gzip_disable msie6 "^curl"; location /a { gzip_disable "wget"; }')
    assert srv.settings.gzip_disable_msie6 and len(srv.settings.gzip_disable) == 1
    a = srv.tree.lookup("/a")[0]
    assert a is not None
    assert a.settings.gzip_disable_msie6
    assert [rx.pattern for rx in a.settings.gzip_disable] == ["wget"]
    assert a.settings.gzip_disable[0].search("WGET/1.0")          # caseless


def test_proxied_flags_add_up(tmp_path: Path) -> None:
    s = settings(tmp_path, "gzip_proxied expired; gzip_proxied no-cache Auth;")
    assert s.gzip_proxied == {"expired", "no-cache", "auth"}


@pytest.mark.parametrize("line, message", [
    ("gzip maybe;", 'invalid value "maybe" in "gzip" directive, it must be "on" or "off"'),
    ("gzip_comp_level 0;", '"gzip_comp_level" directive must be between 1 and 9'),
    ("gzip_comp_level 10;", '"gzip_comp_level" directive must be between 1 and 9'),
    ("gzip_comp_level x;", '"gzip_comp_level" directive invalid number'),
    ("gzip_min_length x;", '"gzip_min_length" directive invalid value'),
    ("gzip_buffers 0 4k;", '"gzip_buffers" directive invalid value'),
    ("gzip_buffers 16 x;", '"gzip_buffers" directive invalid value'),
    ("gzip_window 3k;", '"gzip_window" directive must be 512, 1k, 2k, 4k, 8k, 16k, or 32k'),
    ("gzip_hash 256k;", '"gzip_hash" directive must be 512, 1k, 2k, 4k, 8k, 16k, 32k, 64k, or 128k'),
    ("gzip_http_version 2.0;", 'invalid value "2.0"'),
    ("gzip_proxied sometimes;", 'invalid value "sometimes"'),
    ("gzip_static maybe;", 'invalid value "maybe"'),
    ('gzip_disable "(";', 'gzip_disable'),
    ("gzip_types;", 'invalid number of arguments in "gzip_types" directive'),
])
def test_errors(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError) as ei:
        server_of(tmp_path, line)
    assert message in str(ei.value)
    assert "site.conf:1" in str(ei.value)


def test_gzip_is_allowed_in_if_and_the_rest_is_not(tmp_path: Path) -> None:
    server_of(tmp_path, "location / { if ($arg_x) { gzip off; } }")
    with pytest.raises(ConfigError) as ei:
        server_of(tmp_path, "location / { if ($arg_x) { gzip_vary on; } }")
    assert '"gzip_vary" directive is not allowed here' in str(ei.value)


# -- the body filter -----------------------------------------------------------------------


class Sink(ResponseBody):
    __slots__ = ("parts", "flushes", "ended")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.flushes = 0
        self.ended = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def flush(self) -> None:
        self.flushes += 1

    async def drain(self) -> None:
        pass

    @property
    def write_blocked(self) -> bool:
        return False

    def end(self) -> None:
        self.ended = True

    def abort(self) -> None:
        pass


@needs_pure
def test_body_streams_with_sync_flushes_and_sets_the_ratio(tmp_path: Path) -> None:
    srv = server_of(tmp_path, "gzip on;")
    r = request(srv, [AE])
    sink = Sink()
    body = gzip.GzipBody(sink, r, 6, 15, 8)
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    seen = b""
    events = [b"data: %d\n\n" % i * 3 for i in range(5)]
    for ev in events:
        before = len(sink.parts)
        body.write(ev)
        body.flush()
        # what was flushed decodes to everything written so far
        seen += d.decompress(b"".join(sink.parts[before:]))
        assert seen == b"".join(events[:events.index(ev) + 1])
    n = len(sink.parts)
    body.flush()                     # nothing new: no empty sync block
    assert len(sink.parts) == n
    body.end()
    assert sink.ended
    out = b"".join(sink.parts)
    assert zlib.decompress(out, 16 + zlib.MAX_WBITS) == b"".join(events)
    zin = sum(len(e) for e in events)
    assert r.gzip_ratio == gzip.ratio(zin, len(out) - 8)


@needs_pure
def test_sendfile_is_read_and_compressed(tmp_path: Path) -> None:
    srv = server_of(tmp_path, "gzip on;")
    r = request(srv, [AE])
    data = os.urandom(1000) * 200 + b"tail"
    p = tmp_path / "f.bin"
    p.write_bytes(b"xx" + data)
    sink = Sink()
    body = gzip.GzipBody(sink, r, 1, 15, 8)
    with open(p, "rb") as f:
        asyncio.run(body.sendfile(f, 2, len(data)))
    body.end()
    assert zlib.decompress(b"".join(sink.parts), 16 + zlib.MAX_WBITS) == data


# -- brotli ----------------------------------------------------------------------------------


def test_brotli_defaults_and_window(tmp_path: Path) -> None:
    s = settings(tmp_path, "")
    assert (s.brotli, s.brotli_types, s.brotli_comp_level, s.brotli_window,
            s.brotli_min_length, s.brotli_static) == (False, frozenset({"text/html"}), 6, 19,
                                                      20, "off")
    s = settings(tmp_path, "brotli on; brotli_window 16m; brotli_comp_level 0;")
    assert (s.brotli, s.brotli_window, s.brotli_comp_level) == (True, 24, 0)
    assert brotli_mod.window(s, None) == 24
    assert brotli_mod.window(s, 1) == 10
    assert brotli_mod.window(s, 3000) == 12
    assert brotli_mod.window(s, 1 << 30) == 24


@pytest.mark.parametrize("ae, status, resp, encoding, vary", [
    ("br", 200, None, "br", True),
    ("gzip, br", 200, None, "br", True),
    ("gzip", 200, None, "gzip", True),
    ("br;q=0", 200, None, None, True),
    ("br", 500, None, None, False),
    ("br", 200, [("Content-Type", "text/plain")], None, False),
    ("br", 200, [("Content-Type", "text/html"), ("Content-Encoding", "gzip")], "gzip", False),
])
def test_brotli_before_gzip(tmp_path: Path, ae: str, status: int,
                            resp: list[tuple[str, str]] | None, encoding: str | None,
                            vary: bool) -> None:
    conf = "brotli on; gzip on; gzip_vary on;"
    headers, h = head_of(tmp_path, conf, [("Accept-Encoding", ae)], status, resp)
    assert dict(headers).get("Content-Encoding") == encoding
    assert headers.count(("Vary", "Accept-Encoding")) == (1 if vary else 0)
    compressed_here = encoding is not None and resp is None
    assert (h.body_filters is not None) is compressed_here


# -- any header value: a verdict, never an exception -----------------------------------------

@given(st.text(alphabet=st.sampled_from(list("gzipbrGZIPBR ;,=q.0123456789xQ*-\t")),
               max_size=40))
def test_any_accept_encoding_gives_a_verdict(value: str) -> None:
    assert accepts_gzip(value) in (True, False)
    assert accepts_br(value) in (True, False)
    # a value that starts with a plain "gzip," always allows gzip (nginx's fast path)
    assert accepts_gzip("gzip," + value)


@given(st.text(max_size=60))
def test_any_user_agent_gives_a_verdict(ua: str) -> None:
    assert is_msie6(ua) in (True, False)
    assert is_msie6("MSIE 6.0; " + ua) is (not ("Opera" in ua or "SV1" in ua))


# -- gunzip ----------------------------------------------------------------------------------

@pytest.mark.parametrize("req, resp, decoded", [
    ([], [("Content-Type", "text/css"), ("Content-Encoding", "gzip"), ("ETag", '"e"')], True),
    ([AE], [("Content-Type", "text/css"), ("Content-Encoding", "gzip")], False),
    ([("Accept-Encoding", "gzip;q=0")], [("Content-Encoding", "GZIP")], True),
    ([], [("Content-Encoding", "br")], False),
    ([], [("Content-Type", "text/css")], False),
])
def test_gunzip_decision(tmp_path: Path, req: list[tuple[str, str]],
                         resp: list[tuple[str, str]], decoded: bool) -> None:
    headers, h = head_of(tmp_path, "gunzip on; gzip_vary on;", req, 200, resp, 500)
    assert (h.body_filters is not None) is decoded
    if decoded:
        assert "Content-Encoding" not in dict(headers) and h.content_length is None
        assert dict(headers).get("ETag", 'W/"e"') == 'W/"e"'
    vary = any(k.lower() == "content-encoding" and v.lower() == "gzip" for k, v in resp)
    assert (("Vary", "Accept-Encoding") in headers) is vary


@needs_pure
def test_gunzip_body_decodes_and_cuts_a_broken_stream(tmp_path: Path) -> None:
    data = b"hello gunzip " * 500
    z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    packed = z.compress(data) + z.flush()
    sink = Sink()
    body = gzip.GunzipBody(sink)
    for i in range(0, len(packed), 7):
        body.write(packed[i:i + 7])
    body.end()
    assert b"".join(sink.parts) == data and sink.ended
    sink = Sink()
    body = gzip.GunzipBody(sink)
    body.write(packed[: len(packed) // 2])
    body.end()                       # cut short: not ended as if whole
    assert not sink.ended
