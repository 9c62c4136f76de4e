"""brotli: the third-party ngx_brotli module (google/ngx_brotli), its filter
(ngx_http_brotli_filter_module) and brotli_static, with Google's own binding of the encoder
(the `brotli` package, installed with `pip install 'truehop[brotli]'`; the configuration is
refused when `brotli on` is written without it).

ngx_brotli's filter runs just before gzip's in nginx's chain, and decides as gzip does with
its own directives: status 200, 403 or 404; no Content-Encoding; a known length not below
brotli_min_length; a type in brotli_types (text/html always). A considered response is
marked for `Vary: Accept-Encoding` (gzip_vary decides whether it is written); it is
compressed when Accept-Encoding names "br" with a quality that is not zero (its own parser,
http.coding.accepts_br: unlike gzip, no HTTP version, Via or User-Agent test). Then
Content-Encoding: br, no Content-Length or Accept-Ranges, a weak ETag; gzip, which comes
next, finds the response encoded and leaves it. The window is made smaller for a short
known length, as ngx_brotli does; a flush is BROTLI_OPERATION_FLUSH; $brotli_ratio is
in/out like $gzip_ratio.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

from truehop.conf.model import Settings
from truehop.http.coding import accepts_br
from truehop.http.exchange import ResponseBody
from truehop.proxy.gzip import (
    GZIP_STATUSES,
    content_type,
    field,
    ratio,
    type_listed,
    unchanged,
    weak_etag,
)
from truehop.route.state import RequestState

try:    # optional: only `brotli on` needs it (conf.parsers refuses that without it)
    import brotli as _brotli
    ENCODER: Any = _brotli
except ImportError:     # pragma: no cover - the test extra installs it
    ENCODER = None

BodyFactory = Callable[[ResponseBody], ResponseBody]

# BROTLI_MIN_WINDOW_BITS
_MIN_WBITS: Final = 10
_READ_CHUNK: Final = 64 * 1024


def window(s: Settings, content_length: int | None) -> int:
    """ngx_http_brotli_filter_ensure_stream_initialized: the smallest window that holds a
    body of known length, up to brotli_window's."""
    lg = s.brotli_window
    if content_length is None or content_length <= 0:
        return lg
    wbits = _MIN_WBITS
    while wbits < lg and content_length > (1 << wbits):
        wbits += 1
    return wbits


def header_filter(r: RequestState, s: Settings, status: int, headers: list[tuple[str, str]],
                  content_length: int | None) -> BodyFactory | None:
    """ngx_http_brotli_header_filter (brotli on assumed): changes `headers` in place and
    returns what builds the compressing body, or None."""
    if status not in GZIP_STATUSES:
        return None
    if field(headers, "content-encoding"):
        return None
    if content_length is not None and content_length < s.brotli_min_length:
        return None
    if not type_listed(s.brotli_types, content_type(headers)):
        return None
    r.vary_encoding = True
    ae = r.head.get("accept-encoding")
    if ae is None or not accepts_br(ae) or ENCODER is None:
        return None
    kept = weak_etag([kv for kv in headers
                      if not (len(kv[0]) == 13 and kv[0].lower() == "accept-ranges")])
    headers[:] = kept
    headers.append(("Content-Encoding", "br"))
    if r.head.method == "HEAD":
        return unchanged
    quality = s.brotli_comp_level
    lgwin = window(s, content_length)

    def make_body(nxt: ResponseBody) -> ResponseBody:
        return BrotliBody(nxt, r, quality, lgwin)
    return make_body


class BrotliBody(ResponseBody):
    """The compressing body filter (ngx_http_brotli_body_filter), in front of `next`."""

    __slots__ = ("next", "r", "enc", "zin", "zout", "dirty")

    def __init__(self, next: ResponseBody, r: RequestState, quality: int, lgwin: int) -> None:
        self.next = next
        self.r = r
        self.enc: Any = ENCODER.Compressor(quality=quality, lgwin=lgwin)
        self.zin = 0
        self.zout = 0
        self.dirty = False

    def _out(self, data: bytes) -> None:
        if data:
            self.zout += len(data)
            self.next.write(data)

    def write(self, data: bytes) -> None:
        if data:
            self.zin += len(data)
            self.dirty = True
            self._out(self.enc.process(data))

    def flush(self) -> None:
        if self.dirty:
            self.dirty = False
            self._out(self.enc.flush())
        self.next.flush()

    async def drain(self) -> None:
        await self.next.drain()

    @property
    def write_blocked(self) -> bool:
        return self.next.write_blocked

    async def sendfile(self, f: Any, offset: int, count: int) -> None:
        fd = f.fileno()
        while count > 0:
            data = os.pread(fd, min(count, _READ_CHUNK), offset)
            if not data:
                raise OSError(f"file shrank while being sent ({count} bytes short)")
            offset += len(data)
            count -= len(data)
            self.write(data)
            if self.next.write_blocked:
                await self.next.drain()

    def end(self) -> None:
        self._out(self.enc.finish())
        if self.zout > 0:
            self.r.brotli_ratio = ratio(self.zin, self.zout)
        self.next.end()

    def abort(self) -> None:
        self.next.abort()
