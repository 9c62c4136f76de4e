"""The response filter chain (proxy.filters): the header filters' decisions, pure over
headers, for settings compiled from real configuration text; and the body-filter chain with
a filter written here (uppercasing) in front of a real sink."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from truehop.conf.compile import load
from truehop.conf.model import ServerConf
from truehop.http.events import RequestHead
from truehop.http.exchange import ResponseBody
from truehop.proxy import filters
from truehop.proxy.filters import (
    BodyFilter,
    HeadersOut,
    chain_body,
    filter_head,
    writer_fields,
)
from truehop.route.state import ConnectionInfo, RequestState

# a test that subclasses the chain's classes needs them interpreted: mypyc-compiled classes
# take no Python subclasses (and `mypyc_attr`, which would allow it, is no runtime
# dependency); the header-filter tests below run on both builds
COMPILED = not filters.__file__.endswith(".py")
needs_pure = pytest.mark.skipif(COMPILED, reason="subclasses a compiled class")


def server_of(tmp_path: Path, body: str) -> ServerConf:
    p = tmp_path / "site.conf"
    p.write_text("server { listen 127.0.0.1:8080; " + body + " }")
    return load(str(p), str(tmp_path)).http.servers[0]


def request(srv: ServerConf, uri: str = "/") -> RequestState:
    head = RequestHead("GET", uri, uri, None, "1.1", [], "localhost", None, False, True)
    r = RequestState(ConnectionInfo("127.0.0.1", 1, "127.0.0.1", 8080, "http", 1), head, srv)
    loc, _, _ = srv.tree.lookup(uri)
    r.loc = loc if loc is not None else srv.default_loc
    return r


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [k for k, _ in headers]


# -- add_header ----------------------------------------------------------------------------


@pytest.mark.parametrize("status,added", [
    (200, ["X-A", "X-B"]), (204, ["X-A", "X-B"]), (304, ["X-A", "X-B"]), (308, ["X-A", "X-B"]),
    (404, ["X-B"]), (500, ["X-B"]), (101, ["X-B"]),
])
def test_add_header_status_rule_and_always(tmp_path: Path, status: int, added: list[str]) -> None:
    srv = server_of(tmp_path, "location / { add_header X-A a; add_header X-B b always; }")
    r = request(srv)
    h = filter_head(r, status, [("Content-Type", "text/plain")])
    assert names(h.headers) == ["Content-Type", *added]
    # $status and $sent_http_* read what the filters left
    assert r.status == status and r.sent_headers is h.headers


def test_add_header_empty_value_adds_nothing(tmp_path: Path) -> None:
    srv = server_of(tmp_path, 'location / { set $v ""; add_header X-V $v; add_header X-W w; }')
    h = filter_head(request(srv), 200, [])
    assert h.headers == [("X-W", "w")]


def test_add_header_etag_and_last_modified_replace_in_place(tmp_path: Path) -> None:
    srv = server_of(tmp_path, 'location / { add_header ETag "\\"new\\""; '
                              'set $e ""; add_header Last-Modified $e; }')
    h = filter_head(request(srv), 200, [("ETag", '"old"'), ("Content-Type", "t"),
                                        ("Last-Modified", "Thu, 01 Jan 1970 00:00:01 GMT")])
    # ETag keeps its place with the new value; an empty Last-Modified removes the field
    assert h.headers == [("ETag", '"new"'), ("Content-Type", "t")]


def test_add_header_inherited_only_when_location_has_none(tmp_path: Path) -> None:
    srv = server_of(tmp_path, "add_header X-S s; location / { } location /own { add_header X-O o; }")
    assert names(filter_head(request(srv, "/"), 200, []).headers) == ["X-S"]
    assert names(filter_head(request(srv, "/own"), 200, []).headers) == ["X-O"]


# -- expires -------------------------------------------------------------------------------


def test_expires_replaces_the_response_fields_for_its_statuses(tmp_path: Path) -> None:
    srv = server_of(tmp_path, "location / { expires 1h; }")
    h = filter_head(request(srv), 200, [("Cache-Control", "no-store"), ("X", "1"),
                                        ("Expires", "0")])
    assert names(h.headers) == ["X", "Expires", "Cache-Control"]
    assert ("Cache-Control", "max-age=3600") in h.headers
    # not for a 404
    h = filter_head(request(srv), 404, [("Cache-Control", "no-store")])
    assert h.headers == [("Cache-Control", "no-store")]


def test_expires_modified_counts_from_the_file_or_last_modified(tmp_path: Path) -> None:
    srv = server_of(tmp_path, "location / { expires modified 1d; }")
    h = filter_head(request(srv), 200, [], mtime=0.0)
    assert ("Expires", "Fri, 02 Jan 1970 00:00:00 GMT") in h.headers
    h = filter_head(request(srv), 200, [("Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT")])
    assert ("Expires", "Fri, 02 Jan 1970 00:00:00 GMT") in h.headers
    assert ("Cache-Control", "no-cache") in h.headers      # long past: a negative max-age


def test_expires_with_a_variable_ignored_when_bad(tmp_path: Path) -> None:
    srv = server_of(tmp_path, 'location / { set $e "x"; expires $e; }')
    r = request(srv)
    r.vars["e"] = "nonsense"        # what `set` left (rewrite instructions are not run here)
    h = filter_head(r, 200, [("Cache-Control", "private")])
    assert h.headers == [("Cache-Control", "private")]
    r = request(srv)
    r.vars["e"] = "epoch"
    h = filter_head(r, 200, [])
    assert h.headers == [("Expires", "Thu, 01 Jan 1970 00:00:01 GMT"),
                         ("Cache-Control", "no-cache")]


def test_expires_runs_before_add_header(tmp_path: Path) -> None:
    # nginx's ngx_http_headers_filter: expires first, then the add_header list
    srv = server_of(tmp_path, 'location / { expires epoch; add_header Cache-Control "x"; }')
    h = filter_head(request(srv), 200, [])
    assert names(h.headers) == ["Expires", "Cache-Control", "Cache-Control"]
    assert h.headers[-1] == ("Cache-Control", "x")


# -- fields carried across an internal redirect --------------------------------------------


def test_carried_fields_replace_the_final_answers_and_expires_still_applies(
        tmp_path: Path) -> None:
    srv = server_of(tmp_path, "location / { expires 10s; add_header X-A a; }")
    r = request(srv)
    r.carried_headers = [("Content-Type", "application/pdf"), ("Expires", "never"),
                         ("Content-Disposition", "attachment")]
    h = filter_head(r, 200, [("content-type", "text/html"), ("ETag", '"e"')])
    assert names(h.headers) == ["ETag", "Content-Type", "Content-Disposition", "Expires",
                                "Cache-Control", "X-A"]
    assert ("Cache-Control", "max-age=10") in h.headers


def test_no_location_reads_the_servers_settings(tmp_path: Path) -> None:
    srv = server_of(tmp_path, "server_tokens off; add_header X-S s always;")
    r = request(srv)
    r.loc = None                    # a request refused before any location was chosen
    assert names(filter_head(r, 400, []).headers) == ["X-S"]
    assert writer_fields(srv.settings)[0] == ("Server", "truehop")
    on = server_of(tmp_path, "")
    assert writer_fields(on.settings)[0] == ("Server", filters.SERVER_FULL)
    assert names(writer_fields(on.settings)) == ["Server", "Date"]


# -- body filters --------------------------------------------------------------------------


class Sink(BodyFilter):
    """The end of a chain in a test, where the exchange sits in truehop: it keeps what
    reaches it."""

    def __init__(self) -> None:
        super().__init__(self)      # never passed on
        self.out: list[bytes | str] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def flush(self) -> None:
        self.out.append("flush")

    async def drain(self) -> None:
        pass

    @property
    def write_blocked(self) -> bool:
        return False

    def end(self) -> None:
        self.out.append("end")


class Upper(BodyFilter):
    def write(self, data: bytes) -> None:
        self.next.write(data.upper())


class Tagged(BodyFilter):
    """Marks each chunk, and adds a tail at the end: what a compressing filter does."""

    def write(self, data: bytes) -> None:
        self.next.write(b"<" + data + b">")

    def end(self) -> None:
        self.next.write(b"tail")
        self.next.end()


@needs_pure
def test_no_body_filter_is_the_sink_itself() -> None:
    sink = Sink()
    h = HeadersOut(200, [], 3, None)
    assert h.body_filters is None
    assert chain_body(sink, []) is sink


@needs_pure
def test_body_filters_run_in_the_order_added() -> None:
    sink = Sink()
    h = HeadersOut(200, [], 3, None)
    h.add_body_filter(Upper)
    h.add_body_filter(Tagged)
    assert h.body_filters is not None
    body: ResponseBody = chain_body(sink, h.body_filters)
    body.write(b"ab")
    body.flush()
    body.write(b"c")
    body.end()
    # Upper saw the bytes first, then Tagged, then the sink; flush and end pass through
    assert sink.out == [b"<AB>", "flush", b"<C>", b"tail", "end"]
    h2 = HeadersOut(200, [], 3, None)
    h2.add_body_filter(Tagged)
    h2.add_body_filter(Upper)
    assert h2.body_filters is not None
    sink2 = Sink()
    b2 = chain_body(sink2, h2.body_filters)
    b2.write(b"ab")
    b2.end()
    assert sink2.out == [b"<AB>", b"TAIL", "end"]


@needs_pure
def test_sendfile_through_a_body_filter_reads_the_file(tmp_path: Path) -> None:
    p = tmp_path / "f"
    data = os.urandom(150_000).hex().encode()       # beyond one read of the fallback
    p.write_bytes(data)
    sink = Sink()
    body = chain_body(sink, [Upper])
    with open(p, "rb") as f:
        asyncio.run(body.sendfile(f, 7, len(data) - 17))
    got = b"".join(x for x in sink.out if isinstance(x, bytes))
    assert got == data[7:-10].upper()
    with open(p, "rb") as f, pytest.raises(OSError):
        asyncio.run(body.sendfile(f, len(data) - 5, 10))     # past the end: short
