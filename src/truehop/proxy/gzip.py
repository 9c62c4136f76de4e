"""gzip: nginx's ngx_http_gzip_filter_module (a header filter that decides, and a streaming
body filter that compresses), ngx_http_gzip_ok of the core module (what the request allows),
ngx_http_gzip_static_module (a `file.gz` served in place of `file`, and ngx_brotli's
brotli_static), and ngx_http_gunzip_module (`gunzip`: a gzip-encoded response decoded for a
client that gzip_ok refuses, before brotli and gzip look at it).

Theory of operation. proxy.filters runs `header_filter` in nginx's place in the chain
(after add_header, before range and the header writer) only when `gzip` is on at the
response's level, or a gzip module already looked at this request (`r.vary_encoding`): with
gzip off, the default, a response pays one attribute test. The filter then decides as
ngx_http_gzip_header_filter does:

1. considered: status 200, 403 or 404; no Content-Encoding (of any value); a known
   Content-Length not below gzip_min_length; a type in gzip_types (text/html always, `*`
   any). (A HEAD request is answered with the compressed response's head: nginx marks
   it header-only after this filter.) A considered response gets
   `Vary: Accept-Encoding` under gzip_vary on, compressed or not (nginx's r->gzip_vary,
   written by the header writer);
2. allowed (ngx_http_gzip_ok): Accept-Encoding allows gzip (http.coding), the request's HTTP
   version is at least gzip_http_version (1.1 by default: HTTP/1.0 is not compressed),
   gzip_disable's msie6 and regexes do not match User-Agent, and a request with `Via` (a
   proxy asking) passes gzip_proxied against its Authorization and the response's Expires,
   Cache-Control, Last-Modified and ETag;
3. then Content-Encoding: gzip is added, Content-Length and Accept-Ranges are dropped (the
   body is sent chunked over HTTP/1.1, with no length over HTTP/2), a strong ETag becomes
   weak (nginx 1.7.3+; an unquoted one is dropped), and `GzipBody` goes in front of the
   exchange.

`GzipBody` compresses as the bytes come (zlib, gzip framing, nginx's window and memory
levels, smaller for a short known length as ngx_http_gzip_filter_memory does): nothing is
held beyond zlib's own window. A `flush` (the relay flushes whenever the upstream has
nothing more to give: SSE events, `proxy_buffering off`, a slow body) becomes
Z_SYNC_FLUSH, so what was written reaches the client decompressible at once. A file sent
with sendfile is read and compressed. At the end $gzip_ratio is set, nginx's "%.2f" of
bytes in over bytes out (gzip header and deflate output, not the trailer, as nginx counts).

Ranges: nginx's range filter runs after gzip and skips a response whose length gzip
cleared, so a Range request for a file that will be compressed gets the whole file,
compressed, as 200 (`drop_range` tells the static path so); a proxied 206 is not
compressed (its status is not 200).
"""

from __future__ import annotations

import errno
import os
import zlib
from collections.abc import Callable
from typing import Any, Final

from truehop.clock import wall as _time
from truehop.conf.model import Settings
from truehop.http.coding import accepts_br, accepts_gzip, is_msie6
from truehop.http.exchange import ResponseBody
from truehop.proxy import static
from truehop.route.state import RequestState

# the statuses ngx_http_gzip_header_filter compresses
GZIP_STATUSES: Final = frozenset({200, 403, 404})
# what a sendfile through the filter reads at a time
_READ_CHUNK: Final = 64 * 1024
# the gzip header nginx writes itself before the raw deflate stream (its $gzip_ratio counts it)
_GZIP_HEADER_LEN: Final = 10
_GZIP_TRAILER_LEN: Final = 8

BodyFactory = Callable[[ResponseBody], ResponseBody]


def field(headers: list[tuple[str, str]], lname: str) -> str | None:
    for k, v in headers:
        if len(k) == len(lname) and k.lower() == lname:
            return v
    return None


def content_type(headers: list[tuple[str, str]]) -> str:
    """The response's type as ngx_http_test_content_type compares it: lower-case, without
    parameters; "" when there is none."""
    v = field(headers, "content-type")
    if not v:
        return ""
    return v.split(";", 1)[0].strip().lower()


def type_listed(types: frozenset[str], ctype: str) -> bool:
    """`gzip_types`: `*` takes any response, even one without a type."""
    if "*" in types:
        return True
    return bool(ctype) and ctype in types


def considered(s: Settings, status: int, headers: list[tuple[str, str]],
               content_length: int | None) -> bool:
    """The first test of ngx_http_gzip_header_filter (gzip on assumed): a response that
    passes gets Vary under gzip_vary, and is compressed if the request allows it. A HEAD
    request is no exception: nginx marks it header-only only in the header writer, after
    this filter, so its answer has the compressed response's head."""
    if status not in GZIP_STATUSES:
        return False
    if content_length is not None and content_length < s.gzip_min_length:
        return False
    if field(headers, "content-encoding"):
        return False
    return type_listed(s.gzip_types, content_type(headers))


def _cache_control_has(headers: list[tuple[str, str]], token: str) -> bool:
    """ngx_http_parse_multi_header_lines: `token` among the comma-separated directives of
    any Cache-Control field (case-insensitive; `token=value` counts)."""
    for k, v in headers:
        if len(k) == 13 and k.lower() == "cache-control":
            for part in v.split(","):
                if part.split("=", 1)[0].strip().lower() == token:
                    return True
    return False


def _proxied_ok(r: RequestState, p: frozenset[str], headers: list[tuple[str, str]]) -> bool:
    """gzip_proxied for a request with Via (ngx_http_gzip_ok's second half)."""
    if "off" in p:
        return False
    if "any" in p:
        return True
    if "auth" in p and r.head.get("authorization") is not None:
        return True
    expires = field(headers, "expires")
    if expires is not None:
        if "expired" not in p:
            return False
        t = static.parse_http_date(expires)
        if t is None:
            return False
        d = field(headers, "date")
        if d is not None:
            date = static.parse_http_date(d)
            if date is None:
                return False
        else:
            date = int(_time())
        return t < date
    if field(headers, "cache-control") is not None:
        return (("no-cache" in p and _cache_control_has(headers, "no-cache"))
                or ("no-store" in p and _cache_control_has(headers, "no-store"))
                or ("private" in p and _cache_control_has(headers, "private")))
    if "no_last_modified" in p and field(headers, "last-modified") is not None:
        return False
    if "no_etag" in p and field(headers, "etag") is not None:
        return False
    return True


def gzip_ok(r: RequestState, s: Settings, headers: list[tuple[str, str]]) -> bool:
    """ngx_http_gzip_ok: the request (and, for a request via a proxy, the response's
    caching fields) allows a gzip-encoded answer."""
    head = r.head
    ae = head.get("accept-encoding")
    if ae is None or not accepts_gzip(ae):
        return False
    ua = head.get("user-agent")
    if ua is not None and s.gzip_disable_msie6 and is_msie6(ua):
        return False
    if head.version < s.gzip_http_version:
        return False
    if head.get("via") is not None and not _proxied_ok(r, s.gzip_proxied, headers):
        return False
    if ua is not None and s.gzip_disable:
        for rx in s.gzip_disable:
            if rx.search(ua) is not None:
                return False
    return True


def weak_etag(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """ngx_http_weak_etag: a strong ETag becomes W/"..."; one that is not quoted goes."""
    out: list[tuple[str, str]] = []
    for k, v in headers:
        if len(k) == 4 and k.lower() == "etag":
            if v.startswith("W/") and len(v) > 2:
                out.append((k, v))
            elif v.startswith('"'):
                out.append((k, "W/" + v))
            continue
        out.append((k, v))
    return out


def memory(s: Settings, content_length: int | None) -> tuple[int, int]:
    """ngx_http_gzip_filter_memory: zlib's window bits and memory level, made smaller for a
    short body of known length (zlib's real window is 262 bytes smaller)."""
    wbits = s.gzip_window
    memlevel = s.gzip_hash
    if content_length is not None and content_length > 0:
        while content_length < (1 << (wbits - 1)) - 262:
            wbits -= 1
            memlevel -= 1
        if memlevel < 1:
            memlevel = 1
    return wbits, memlevel


def header_filter(r: RequestState, s: Settings, status: int, headers: list[tuple[str, str]],
                  content_length: int | None) -> BodyFactory | None:
    """ngx_http_gzip_header_filter, then the Vary of the header writer. Changes `headers`
    in place; returns what builds the compressing body (the caller drops the length and
    chains it), or None when the body goes out as it is."""
    make: BodyFactory | None = None
    if s.gzip and considered(s, status, headers, content_length):
        r.vary_encoding = True
        if gzip_ok(r, s, headers):
            kept = weak_etag([kv for kv in headers
                               if not (len(kv[0]) == 13 and kv[0].lower() == "accept-ranges")])
            headers[:] = kept
            headers.append(("Content-Encoding", "gzip"))
            if r.head.method == "HEAD":
                # the head only: nothing passes through zlib ($gzip_ratio stays unset)
                make = unchanged
            else:
                wbits, memlevel = memory(s, content_length)
                level = s.gzip_comp_level

                def make_body(nxt: ResponseBody) -> ResponseBody:
                    return GzipBody(nxt, r, level, wbits, memlevel)
                make = make_body
    if r.vary_encoding and s.gzip_vary:
        headers.append(("Vary", "Accept-Encoding"))
    return make


def unchanged(nxt: ResponseBody) -> ResponseBody:
    return nxt


def drop_range(r: RequestState, s: Settings, status: int, mime: str, size: int) -> bool:
    """A static file that gzip (or brotli) will compress is sent whole (nginx's range
    filter finds its length cleared): the static path then ignores Range. Asked only with
    gzip or brotli on and a Range header. The response's caching fields are not known yet:
    for a request with Via, gzip_proxied is tested without them."""
    if status not in GZIP_STATUSES:
        return False
    ctype = mime.split(";", 1)[0].strip().lower()
    if s.brotli and size >= s.brotli_min_length and type_listed(s.brotli_types, ctype):
        ae = r.head.get("accept-encoding")
        if ae is not None and accepts_br(ae):
            return True
    if not s.gzip or size < s.gzip_min_length or not type_listed(s.gzip_types, ctype):
        return False
    return gzip_ok(r, s, [])


def ratio(zin: int, zout: int) -> str:
    """$gzip_ratio (ngx_http_gzip_ratio_variable): in/out with two decimals, rounded half
    up on the third as nginx does."""
    zint = zin // zout
    zfrac = (zin * 100 // zout) % 100
    if (zin * 1000 // zout) % 10 > 4:
        zfrac += 1
        if zfrac > 99:
            zint += 1
            zfrac = 0
    return f"{zint}.{zfrac:02d}"


class GzipBody(ResponseBody):
    """The compressing body filter (ngx_http_gzip_body_filter), in front of `next`."""

    __slots__ = ("next", "r", "z", "zin", "zout", "dirty")

    def __init__(self, next: ResponseBody, r: RequestState, level: int, wbits: int,
                 memlevel: int) -> None:
        self.next = next
        self.r = r
        # 16 + wbits: zlib writes the gzip header and trailer around the deflate stream
        self.z: Any = zlib.compressobj(level, zlib.DEFLATED, 16 + wbits, memlevel)
        self.zin = 0
        self.zout = 0
        self.dirty = False   # bytes given to zlib since the last flush

    def _out(self, data: bytes) -> None:
        if data:
            self.zout += len(data)
            self.next.write(data)

    def write(self, data: bytes) -> None:
        if data:
            self.zin += len(data)
            self.dirty = True
            self._out(self.z.compress(data))

    def flush(self) -> None:
        # a flush from the producer (the upstream had nothing more ready): what was written
        # so far must reach the client whole, as nginx's Z_SYNC_FLUSH on a flush buffer
        if self.dirty:
            self.dirty = False
            self._out(self.z.flush(zlib.Z_SYNC_FLUSH))
        self.next.flush()

    async def drain(self) -> None:
        await self.next.drain()

    @property
    def write_blocked(self) -> bool:
        return self.next.write_blocked

    async def sendfile(self, f: Any, offset: int, count: int) -> None:
        # the file's bytes must pass through zlib: read them instead
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
        self._out(self.z.flush(zlib.Z_FINISH))
        # nginx counts its 10-byte header and the deflate stream, not the 8-byte trailer
        out = self.zout - _GZIP_TRAILER_LEN
        if out > 0:
            self.r.gzip_ratio = ratio(self.zin, out)
        self.next.end()

    def abort(self) -> None:
        self.next.abort()


# -- gunzip ---------------------------------------------------------------------------------


def gunzip_filter(r: RequestState, s: Settings, status: int, headers: list[tuple[str, str]],
                  content_length: int | None) -> BodyFactory | None:
    """ngx_http_gunzip_header_filter (gunzip on assumed): a response encoded with gzip
    (from the upstream, or a gzip_static .gz) is decoded for a client that gzip_ok does
    not allow it for; it is marked for Vary either way. Content-Length and Accept-Ranges
    go, the ETag is weakened. Any status: nginx does not look at it."""
    ce = field(headers, "content-encoding")
    if ce is None or ce.lower() != "gzip":
        return None
    r.vary_encoding = True
    if gzip_ok(r, s, headers):
        return None
    out: list[tuple[str, str]] = []
    dropped = False
    for kv in headers:
        lk = kv[0].lower()
        if lk == "accept-ranges" or (lk == "content-encoding" and not dropped):
            dropped = dropped or lk == "content-encoding"
            continue
        out.append(kv)
    headers[:] = weak_etag(out)
    if r.head.method == "HEAD":
        return unchanged

    def make_body(nxt: ResponseBody) -> ResponseBody:
        return GunzipBody(nxt)
    return make_body


class GunzipBody(ResponseBody):
    """The decoding body filter (ngx_http_gunzip_body_filter). Bytes after the end of the
    gzip stream are dropped; a broken stream ends the response abruptly (the client sees
    a cut body, as with nginx's "inflate() failed")."""

    __slots__ = ("next", "z", "failed")

    def __init__(self, next: ResponseBody) -> None:
        self.next = next
        self.z: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.failed = False

    def write(self, data: bytes) -> None:
        if self.failed or not data or self.z.eof:
            return
        try:
            out = self.z.decompress(data)
        except zlib.error:
            self.failed = True
            self.next.abort()
            return
        if out:
            self.next.write(out)

    def flush(self) -> None:
        if not self.failed:
            self.next.flush()

    async def drain(self) -> None:
        if not self.failed:
            await self.next.drain()

    @property
    def write_blocked(self) -> bool:
        return not self.failed and self.next.write_blocked

    async def sendfile(self, f: Any, offset: int, count: int) -> None:
        fd = f.fileno()
        while count > 0 and not self.failed:
            data = os.pread(fd, min(count, _READ_CHUNK), offset)
            if not data:
                raise OSError(f"file shrank while being sent ({count} bytes short)")
            offset += len(data)
            count -= len(data)
            self.write(data)
            if self.write_blocked:
                await self.next.drain()

    def end(self) -> None:
        if self.failed:
            return
        if not self.z.eof:
            # a gzip stream cut short: what it held is not the whole body
            self.failed = True
            self.next.abort()
            return
        self.next.end()

    def abort(self) -> None:
        if not self.failed:
            self.next.abort()


# -- gzip_static (and ngx_brotli's brotli_static) ------------------------------------------

_DECLINE_SILENTLY: Final = (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, None)


def _resolve_beside(path: str, root_dir: str,
                    log_error: Callable[[str], None]) -> static.StaticTarget | None:
    """The compressed file, if it exists: a missing one is no error, one that cannot be
    looked at is logged (and the file itself is served)."""
    target = static.resolve(path, root_dir=root_dir)
    if isinstance(target, static.StaticError):
        if target.errno not in _DECLINE_SILENTLY:
            log_error(target.reason)
        return None
    return target


def _open(target: static.StaticTarget,
          log_error: Callable[[str], None]) -> tuple[int, Any] | None:
    if target.is_dir:
        return None
    opened = static.open_file(target)
    if isinstance(opened, static.StaticError):
        if opened.errno not in _DECLINE_SILENTLY:
            log_error(opened.reason)
        return None
    return opened


def precompressed(r: RequestState, s: Settings, path: str, root_dir: str,
                  log_error: Callable[[str], None]) -> tuple[int, Any, str] | None:
    """The content handlers of brotli_static then gzip_static (ngx_brotli's runs first):
    the open `path.br` or `path.gz`, its stat and its Content-Encoding, or None (the file
    itself is served as usual). Only for GET and HEAD, not for a URI ending in "/".

    gzip_static (ngx_http_gzip_static_handler): `on` serves the .gz when gzip_ok allows,
    `always` whatever the client says; with `on` and gzip_vary, a .gz that exists marks the
    response for Vary even when it is not the one served. brotli_static: `on` marks the
    response for Vary at once, and serves the .br when Accept-Encoding names br."""
    if r.head.method not in ("GET", "HEAD") or r.uri.endswith("/"):
        return None
    if s.brotli_static != "off":
        ok = True
        if s.brotli_static == "on":
            r.vary_encoding = True
            ae = r.head.get("accept-encoding")
            ok = ae is not None and accepts_br(ae)
        if ok:
            target = _resolve_beside(path + ".br", root_dir, log_error)
            opened = _open(target, log_error) if target is not None else None
            if opened is not None:
                return opened[0], opened[1], "br"
    if s.gzip_static == "off":
        return None
    on = s.gzip_static == "on"
    ok = gzip_ok(r, s, []) if on else True
    if not ok and not s.gzip_vary:
        return None
    target = _resolve_beside(path + ".gz", root_dir, log_error)
    if target is None:
        return None
    if on:
        r.vary_encoding = True
        if not ok:
            return None
    opened = _open(target, log_error)
    if opened is None:
        return None
    return opened[0], opened[1], "gzip"
