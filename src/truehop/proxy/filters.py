"""The response filter chain: what every response head and body passes through on its way
to the client, in the order nginx's filter modules run (ngx_http_top_header_filter and
ngx_http_top_body_filter).

Proxied, static and `return`/special responses all send their head through `send_header`,
which runs the header filters and hands back what the body is written to; the 101 of an
upgrade tunnel runs the same header filters (`filter_head`) and writes its head itself.

Header filters, in nginx's order (each module prepends itself at init, so the last module
in the list runs first; nginx 1.30's order, with those truehop has):

    carried_filter      the fields kept across an internal redirect (X-Accel-Redirect's
                        Content-Type, Set-Cookie..., an intercepted 401's
                        WWW-Authenticate): nginx keeps them in r->headers_out, so they
                        are there before any filter runs
    (not_modified)      304 and 412 for a static file: decided by static.plan_response,
                        which knows the file (ngx_http_not_modified_filter)
    expires_filter      `expires` (ngx_http_headers_filter, first part)
    add_header_filter   `add_header`, with nginx's status rule and `always` (its second)
    charset_filter      `charset` (proxy.charset: ngx_http_charset_header_filter)
    gzip_filter         `gunzip`, ngx_brotli's `brotli` (proxy/brotli.py), then `gzip`
                        (ngx_http_gzip_header_filter), and the `Vary` the header writer
                        adds for them (proxy/gzip.py)
    ... sub: issue 15 adds it here
    (range)             byte ranges of a static file: static.plan_response
    limit_rate_filter   limit_rate / proxy_limit_rate (proxy.pacing): adds the pacing
                        body filter, which must be last (nginx paces in its write filter)
    header writer       Server and Date first, then the fields (ngx_http_header_filter),
                        written by the exchange (HTTP/1 or HTTP/2)

Body filters run in the same order: a header filter that wants to transform the body
(gzip drops Content-Length, adds Vary, then compresses) adds a `BodyFilter` to
`HeadersOut.body_filters`; `send_header` then wraps the exchange so that the first one
added sees the bytes first and the exchange (nginx's chunked and write filters) last.
What is added is a constructor taking the next body (a BodyFilter subclass, or a function
that builds a filter with its own parameters, as gzip's does).
With no body filter active the exchange itself is returned: the hot path pays nothing.

X-Accel-* are not here: nginx reads them in the upstream module when it processes the
upstream's head (ngx_http_upstream_process_headers), before ngx_http_send_header, because
they decide what is sent at all (X-Accel-Redirect replaces the response) and how the body
is relayed (X-Accel-Buffering); see proxy.response.process_accel.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

from truehop import __version__
from truehop.clock import wall as _time
from truehop.conf.model import Settings
from truehop.conf.values import parse_expires
from truehop.http.exchange import Exchange, ResponseBody
from truehop.proxy import brotli, gzip
from truehop.proxy.charset import charset_filter
from truehop.proxy.pacing import limit_rate_filter
from truehop.proxy.static import (
    EXPIRES_STATUSES,
    ExpiresSpec,
    expires_headers,
    http_date,
    parse_http_date,
)
from truehop.route.state import RequestState

SERVER_FULL: Final = f"truehop/{__version__}"
# the statuses add_header applies to without `always` (ngx_http_headers_filter)
ADD_HEADER_STATUSES: Final = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})
# what the sendfile fallback of a body filter reads at a time
_SENDFILE_CHUNK: Final = 64 * 1024


class BodyFilter(ResponseBody):
    """One body filter (nginx's ngx_http_output_body_filter_pt), written in front of the
    next one. The defaults pass everything on: a filter overrides what it transforms.
    `sendfile` falls back to reading the file and writing through `write`, since a
    transformed body cannot go from the file to the socket untouched."""

    __slots__ = ("next",)

    def __init__(self, next: ResponseBody) -> None:
        self.next = next

    def write(self, data: bytes) -> None:
        self.next.write(data)

    def flush(self) -> None:
        self.next.flush()

    async def drain(self) -> None:
        await self.next.drain()

    @property
    def write_blocked(self) -> bool:
        return self.next.write_blocked

    async def sendfile(self, f: Any, offset: int, count: int) -> None:
        fd = f.fileno()
        while count > 0:
            data = os.pread(fd, min(count, _SENDFILE_CHUNK), offset)
            if not data:
                raise OSError(f"file shrank while being sent ({count} bytes short)")
            offset += len(data)
            count -= len(data)
            self.write(data)
            if self.write_blocked:
                await self.drain()

    def end(self) -> None:
        self.next.end()

    def abort(self) -> None:
        self.next.abort()


# what builds one body filter in front of the next body
BodyMaker = Callable[[ResponseBody], ResponseBody]


class HeadersOut:
    """The response head as the header filters see and change it (nginx's
    r->headers_out): status, fields (Server, Date and framing excepted), the body's length
    (None: unknown, or none for 304), the file's mtime for `expires modified` (None: taken
    from a Last-Modified field), and the body filters a header filter turned on."""

    __slots__ = ("status", "headers", "content_length", "mtime", "body_filters")

    def __init__(self, status: int, headers: list[tuple[str, str]], content_length: int | None,
                 mtime: float | None) -> None:
        self.status = status
        self.headers = headers
        self.content_length = content_length
        self.mtime = mtime
        # constructors of the body filters to run, in order (None: none; most responses):
        # a BodyFilter class, or anything that makes one from the next body (limit_rate's
        # carries its pacer)
        self.body_filters: list[BodyMaker] | None = None

    def add_body_filter(self, f: BodyMaker) -> None:
        if self.body_filters is None:
            self.body_filters = [f]
        else:
            self.body_filters.append(f)


# -- header filters, in nginx's order ------------------------------------------------------


def carried_filter(r: RequestState, h: HeadersOut) -> None:
    """The fields an earlier answer handed on across an internal redirect replace the final
    answer's own fields of the same names (nginx keeps them in headers_out)."""
    carried = r.carried_headers
    if carried:
        names = {k.lower() for k, _ in carried}
        h.headers = [kv for kv in h.headers if kv[0].lower() not in names] + carried


def expires_filter(r: RequestState, s: Settings, h: HeadersOut) -> None:
    """`expires` (ngx_http_set_expires): for EXPIRES_STATUSES, Expires and Cache-Control
    replace the response's own; `modified` counts from the file's mtime, or a proxied
    Last-Modified; `expires $var` is parsed per request and ignored if bad."""
    ex = s.expires
    if ex is None or ex.kind == "off" or h.status not in EXPIRES_STATUSES:
        return
    kind, secs = ex.kind, int(ex.seconds)
    if ex.value is not None:
        try:
            kind, secs = parse_expires(ex.value.render(r), kind == "modified")
        except ValueError:
            return
        if kind == "off":
            return
    headers = h.headers
    mtime = h.mtime
    if kind == "modified" and mtime is None:
        for k, v in headers:
            if k.lower() == "last-modified":
                mtime = parse_http_date(v)
                break
    headers = [kv for kv in headers if kv[0].lower() not in ("expires", "cache-control")]
    headers.extend(expires_headers(ExpiresSpec(kind, secs), _time(), mtime))
    h.headers = headers


def add_header_filter(r: RequestState, s: Settings, h: HeadersOut) -> None:
    """`add_header` (ngx_http_headers_filter): for ADD_HEADER_STATUSES, or any status with
    `always`; an empty value adds nothing; ETag and Last-Modified replace the response's
    own field in place (ngx_http_set_response_header / set_last_modified), an empty value
    removes it."""
    if not s.add_header:
        return
    ok = h.status in ADD_HEADER_STATUSES
    headers = h.headers
    for a in s.add_header:
        if ok or a.always:
            v = a.value.render(r)
            lname = a.name.lower()
            if lname in ("etag", "last-modified"):
                headers = _replace_header(headers, lname, a.name, v)
            elif v:
                headers.append((a.name, v))
    h.headers = headers


def _replace_header(headers: list[tuple[str, str]], lname: str, name: str,
                    value: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    done = not value
    for k, v in headers:
        if k.lower() == lname:
            if not done:
                out.append((name, value))
                done = True
            continue
        out.append((k, v))
    if not done:
        out.append((name, value))
    return out


def gzip_filter(r: RequestState, s: Settings, h: HeadersOut) -> None:
    """`gunzip`, ngx_brotli's filter (proxy/brotli.py), then `gzip` (proxy/gzip.py),
    which also writes the Vary any of them asked for: with all off and no module having
    looked at the request (gzip_static, brotli_static), nothing to do."""
    if s.gunzip:
        make = gzip.gunzip_filter(r, s, h.status, h.headers, h.content_length)
        if make is not None:
            h.content_length = None
            h.add_body_filter(make)
    if s.brotli:
        make = brotli.header_filter(r, s, h.status, h.headers, h.content_length)
        if make is not None:
            h.content_length = None
            h.add_body_filter(make)
    if not s.gzip and not r.vary_encoding:
        return
    make = gzip.header_filter(r, s, h.status, h.headers, h.content_length)
    if make is not None:
        h.content_length = None
        h.add_body_filter(make)


def header_filters(r: RequestState, s: Settings, h: HeadersOut) -> None:
    """The header filters, in nginx's order (the module docstring). Written out as calls
    rather than a loop over a tuple: compiled, each is then a direct native call, and each
    returns at once when its directive is not set."""
    carried_filter(r, h)
    expires_filter(r, s, h)
    add_header_filter(r, s, h)
    charset_filter(r, s, h.headers)
    gzip_filter(r, s, h)
    # last: limit_rate paces in nginx's write filter, the last body filter
    limit_rate_filter(r, s, h)


def writer_fields(s: Settings) -> list[tuple[str, str]]:
    """What the header writer puts first (ngx_http_header_filter): Server, then Date."""
    return [("Server", SERVER_FULL if s.server_tokens else "truehop"),
            ("Date", http_date(_time()))]


# -- sending -------------------------------------------------------------------------------


def filter_head(r: RequestState, status: int, headers: list[tuple[str, str]],
                content_length: int | None = None, mtime: float | None = None) -> HeadersOut:
    """Run the header filters on a response head (for the settings of the request's
    location, else its server's); records $status and the $sent_http_* fields."""
    loc = r.loc
    s = loc.settings if loc is not None else r.server.settings
    h = HeadersOut(status, headers, content_length, mtime)
    header_filters(r, s, h)
    r.status = h.status
    r.sent_headers = h.headers
    return h


def send_header(r: RequestState, ex: Exchange, status: int, headers: list[tuple[str, str]],
                content_length: int | None, reason: str | None, mtime: float | None = None,
                close: bool = False, cork: bool = False) -> ResponseBody:
    """Send a response head through the header filters (nginx's ngx_http_send_header) and
    return what its body is written to: the exchange itself, or the first of the body
    filters a header filter turned on, in front of it. `status` is the one to send (an
    error_page's override applied by the caller); `headers` is the caller's list, which the
    filters may replace and the exchange extends with Server, Date and framing."""
    h = filter_head(r, status, headers, content_length, mtime)
    out = h.headers
    loc = r.loc
    out[0:0] = writer_fields(loc.settings if loc is not None else r.server.settings)
    ex.start_response(h.status, out, h.content_length, reason, close=close, cork=cork)
    bf = h.body_filters
    if bf is None:
        return ex
    return chain_body(ex, bf)


def chain_body(sink: ResponseBody, filters: list[BodyMaker]) -> ResponseBody:
    """The body filters in front of `sink`: the first in the list sees the bytes first."""
    body = sink
    for f in reversed(filters):
        body = f(body)
    return body
