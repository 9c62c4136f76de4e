"""One proxied request through the proxy cache (nginx's ngx_http_upstream_cache,
ngx_http_upstream_cache_send and the cache parts of ngx_http_upstream_send_response).

proxy.upstream.Proxy calls in at three points, and only for a location with `proxy_cache`
(an uncached location never reaches this module):

    start      before the upstream request is made: the method test, the key, bypass, the
               lookup. A fresh entry is served here (HIT) and the request ends; an entry
               being updated by another request is served stale (UPDATING) when allowed;
               a missing one waits on proxy_cache_lock. Otherwise a `CacheRequest` goes on.
    answer     instead of Attempt.until_answer: a failure (error, timeout, an http_5xx...)
               that proxy_cache_use_stale names is answered with the stale entry (STALE), a
               304 to a revalidation with the entry (REVALIDATED); else the response head
               decides whether the body is stored (policy.freshness, proxy_no_cache,
               proxy_cache_min_uses).
    tee        what the relay writes the body through: each chunk goes to the client and to
               the entry's temp file, renamed into place when the body is complete.

A hit is sent like a static file: the stored head through the same response processing a
relayed head gets (proxy_hide_header, proxy_redirect...: nginx re-reads a cached head the
same way), then the filters, then sendfile from the body's offset; If-None-Match,
If-Modified-Since and a single Range are answered from the entry's validators.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from truehop.conf.model import LocationConf, Settings
from truehop.http.events import Data, EndOfMessage
from truehop.http.exchange import Exchange, ResponseBody
from truehop.http.status import REASONS
from truehop.net.upstream import UpstreamError
from truehop.proxy.attempts import STATUS_FLAGS, Attempt
from truehop.proxy.cache import policy
from truehop.proxy.cache.store import Entry, EntryWriter, Zone
from truehop.proxy.filters import BodyFilter, send_header
from truehop.proxy.pipeline import Finish
from truehop.proxy.response import ResponsePlan, response_headers
from truehop.proxy.static import BodyPart, multipart_body
from truehop.proxy.upstream_request import UpstreamRequest
from truehop.proxy.upstreams import ProxyRuntime
from truehop.route.state import RequestState

# the client's conditional and range fields are not sent upstream when caching (nginx's
# ngx_http_proxy_cache_headers): the cache answers them itself
_NOT_FORWARDED: Final = frozenset({"if-modified-since", "if-unmodified-since",
                                   "if-none-match", "if-match", "range", "if-range"})
_ASKS: Final = frozenset({"if-modified-since", "if-unmodified-since", "if-none-match",
                          "if-match", "range", "if-range"})


class Caches:
    """The proxy cache of one runtime (one worker): each zone as this worker sees it."""

    __slots__ = ("rt", "zones", "said")

    def __init__(self, rt: ProxyRuntime) -> None:
        self.rt = rt
        self.zones: dict[str, Zone] = {}
        # locations already told about (the "caches nothing" finding, said once each)
        self.said: set[int] = set()

    def zone(self, s: Settings, name: str) -> Zone | None:
        z = self.zones.get(name)
        if z is None:
            for conf in s.proxy_cache_path:
                if conf.zone == name:
                    z = self.zones[name] = Zone(conf)
                    break
        return z

    async def start(self, r: RequestState, ex: Exchange, loc: LocationConf,
                    plan: ResponsePlan) -> CacheRequest | None:
        """The lookup (see the module docstring). None: not cached here (the method is not
        in proxy_cache_methods); a request whose `served` is set was answered."""
        s = loc.settings
        tpl = s.proxy_cache
        if tpl is None or r.head.method not in s.proxy_cache_methods:
            return None
        name = tpl.static if tpl.static is not None else tpl.render(r)
        if not name or name == "off":
            return None     # ngx_http_upstream_cache_get: a value empty or "off" caches not
        zone = self.zone(s, name)
        if zone is None:
            self.rt.log.error(f'cache "{name}" not found', r.conn, r)
            raise Finish(500)
        key = s.proxy_cache_key.render(r)
        c = CacheRequest(self, r, ex, loc, s, zone, key, plan)
        if s.proxy_cache_bypass and any(policy.truthy([t.render(r) for t in line])
                                        for line in s.proxy_cache_bypass):
            # the lookup is skipped, the response still stored (ngx_http_upstream_cache:
            # u->cacheable is set before the bypass test; min_uses is the lookup's)
            c.set_status(policy.BYPASS)
            c.uses = s.proxy_cache_min_uses
            return c
        await c.lookup()
        return c


class CacheRequest:
    """One request's way through the cache (nginx's ngx_http_cache_t and u->cache_status)."""

    __slots__ = ("caches", "r", "ex", "loc", "s", "zone", "key", "hexkey", "file_hex",
                 "plan", "status", "entry", "locked", "store_ok", "writer", "served",
                 "revalidating", "uses", "background", "expect", "cacheable", "cut")

    def __init__(self, caches: Caches, r: RequestState, ex: Exchange, loc: LocationConf,
                 s: Settings, zone: Zone, key: str, plan: ResponsePlan) -> None:
        self.caches = caches
        self.r = r
        self.ex = ex
        self.loc = loc
        self.s = s
        self.zone = zone
        self.key = key
        self.hexkey = policy.key_hash(key)
        self.file_hex = self.hexkey     # the file a new entry goes to (a variant's, with Vary)
        self.plan = plan
        self.status = ""
        self.entry: Entry | None = None  # the expired entry (stale, revalidation)
        self.locked = False             # this request holds the key's lock
        self.store_ok = True            # False after proxy_cache_lock_timeout
        self.writer: EntryWriter | None = None
        self.served = False
        self.revalidating = False
        self.uses = 0
        self.background = False
        self.expect = -1                # the body's length when the upstream said it
        # nginx's u->cacheable: False below proxy_cache_min_uses or for a Range past
        # proxy_cache_max_range_offset; then the client's fields go upstream as they are
        # and nothing is stored
        self.cacheable = True
        self.cut: tuple[int, int] | None = None     # the range relayed of a stored body

    def set_status(self, status: str) -> None:
        self.status = status
        self.r.cache_status = status

    # -- lookup ------------------------------------------------------------------------------

    def open_entry(self, now: float) -> Entry | None:
        """The entry for this request: the key's file, or, when its response varied and
        this request's fields differ, the file of this request's variant."""
        zone = self.zone
        e = zone.open(self.hexkey, self.key, now)
        self.file_hex = self.hexkey
        if e is None or not e.vary:
            return e
        v = policy.variant(self.key, e.vary, self.r.head.headers)
        if v == e.variant:
            return e
        e.close()
        self.file_hex = v
        e2 = zone.open(v, self.key, now)
        if e2 is not None and e2.variant != v:
            e2.close()
            return None
        return e2

    async def lookup(self) -> None:
        s = self.s
        zone = self.zone
        age = s.proxy_cache_lock_age
        self.uses = zone.use(self.hexkey)
        deadline = 0.0
        while True:
            now = time.time()
            e = self.open_entry(now)
            if e is not None and e.error:
                # an intercepted error remembered (ngx_http_file_cache_exists: fcn->error):
                # answered with its status while valid, else renewed as a miss
                if policy.fresh(e.valid_until, now):
                    e.close()
                    self.set_status(policy.HIT)
                    raise Finish(e.status)
                e.close()
                e = None
            if e is not None:
                if policy.fresh(e.valid_until, now):
                    await self.serve(e, policy.HIT)
                    return
                self.entry = e
                self.set_status(policy.EXPIRED)
                stale_updating = "updating" in s.proxy_cache_use_stale or \
                    now < e.valid_until + e.updating_sec
                if zone.locked(self.hexkey, age):
                    if stale_updating:
                        await self.serve(e, policy.UPDATING)
                    return      # else: to the upstream as well, without the lock
                self.locked = zone.try_lock(self.hexkey, age)
                if self.locked and stale_updating and s.proxy_cache_background_update:
                    self.background = True      # answered stale by `answer`
                    return
                self.check_range()
                return
            self.set_status(policy.MISS)
            if self.uses < s.proxy_cache_min_uses:
                self.cacheable = False          # NGX_HTTP_CACHE_SCARCE
                return
            if not s.proxy_cache_lock or self.locked:
                self.check_range()
                return
            if zone.try_lock(self.hexkey, age):
                self.locked = True
                self.check_range()
                return
            # another request fills this entry: wait for it (then a HIT), at most
            # proxy_cache_lock_timeout, after which this one goes upstream, not stored
            mono = time.monotonic()
            if not deadline:
                deadline = mono + s.proxy_cache_lock_timeout
            if mono >= deadline:
                self.store_ok = False
                return
            await zone.wait_unlocked(self.hexkey, deadline - mono)

    def check_range(self) -> None:
        """ngx_http_upstream_cache_check_range: a Range from proxy_cache_max_range_offset on
        (or any, with 0; a suffix range always) makes the request uncacheable."""
        limit = self.s.proxy_cache_max_range_offset
        if limit is None:
            return
        rng = None
        for k, v in self.r.head.headers:
            if k.lower() == "range":
                rng = v
                break
        if rng is None:
            return
        if limit == 0:
            self.cacheable = False
            return
        if len(rng) < 7 or rng[:6].lower() != "bytes=":
            return
        spec = rng[6:].lstrip(" ")
        if spec[:1] == "-":
            self.cacheable = False
            return
        i = 0
        while i < len(spec) and "0" <= spec[i] <= "9":
            i += 1
        if int(spec[:i] or "0") >= limit:
            self.cacheable = False

    # -- the upstream request ------------------------------------------------------------------

    def upstream_request(self, req: UpstreamRequest) -> UpstreamRequest:
        """The request as nginx sends it when caching: a HEAD as a GET
        (proxy_cache_convert_head), the client's conditional and range fields dropped, and
        the entry's validators when revalidating an expired one."""
        s = self.s
        method = req.method
        if method == "HEAD" and s.proxy_cache_convert_head:
            method = "GET"
        if not self.cacheable:
            # nginx builds an uncacheable request with the plain headers, not the cache's
            headers = req.headers
        else:
            headers = [kv for kv in req.headers if kv[0].lower() not in _NOT_FORWARDED]
        same = len(headers) == len(req.headers)
        e = self.entry
        # only a 200 or 206 keeps its validators for revalidation (ngx_http_upstream
        # send_response sets cache->last_modified/etag for those; -1 / none otherwise)
        if e is not None and s.proxy_cache_revalidate and self.status == policy.EXPIRED \
                and e.status in (200, 206) and self.cacheable:
            add: list[tuple[str, str]] = []
            lm = e.header_value("last-modified")
            etag = e.header_value("etag")
            if lm is not None:
                add.append(("If-Modified-Since", lm))
            if etag is not None:
                add.append(("If-None-Match", etag))
            if add:
                self.revalidating = True
                at = len(headers)
                if headers and headers[-1][0].lower() in ("content-length",
                                                          "transfer-encoding"):
                    at -= 1
                headers[at:at] = add
                same = False
        if method == req.method and same:
            return req
        return UpstreamRequest(method, req.uri, req.version, headers, req.body,
                               req.stream_body, req.upgrading, req.keep_alive, req.close_why,
                               req.body_length, req.sources, req.dropped)

    # -- the answer ------------------------------------------------------------------------------

    async def answer(self, att: Attempt, now_mono: float) -> bool:
        """Attempt.until_answer with the cache's say: True when the request was answered
        from the cache (STALE, REVALIDATED), False to relay the upstream's response (through
        `tee`, which stores it when it may be)."""
        s = self.s
        e = self.entry
        if self.background and e is not None:
            self.start_background(att)
            await self.serve(e, policy.STALE)
            return True
        try:
            await att.until_answer(now_mono)
        except Finish as f:
            now = time.time()
            if e is not None and f.status in (502, 504):
                kind = "timeout" if f.status == 504 else "error"
                if kind in s.proxy_cache_use_stale or now < e.valid_until + e.error_sec:
                    await self.serve(e, policy.STALE)
                    return True
            raise
        resp = att.resp
        assert resp is not None
        rh = resp.head
        status = rh.status
        now = time.time()
        if e is not None:
            if status == 304 and self.revalidating:
                # ngx_http_upstream_test_next's revalidation: the 304's own freshness, else
                # proxy_cache_valid for the cached status
                fr = policy.freshness(e.status, rh.headers, s.proxy_ignore_headers,
                                      s.proxy_cache_valid, now)
                if fr.valid_until:
                    self.zone.update_validity(e, fr.valid_until, now)
                self.release(att)
                await self.serve(e, policy.REVALIDATED)
                return True
            flag = STATUS_FLAGS.get(status)
            if flag is not None and (flag in s.proxy_cache_use_stale
                                     or now < e.valid_until + e.error_sec):
                self.release(att)
                await self.serve(e, policy.STALE)
                return True
        if s.proxy_intercept_errors and status >= 300 and s.error_page \
                and status in s.error_page:
            # relay hands it to error_page; the cache remembers the status while the
            # response would have been fresh (nginx's ngx_http_upstream_intercept_errors,
            # cache->error; proxy_no_cache is not asked there)
            if self.cacheable and self.store_ok:
                fr = policy.freshness(status, rh.headers, s.proxy_ignore_headers,
                                      s.proxy_cache_valid, now)
                if fr.valid_until:
                    self.zone.store_error(self.file_hex, self.key, status, fr.valid_until)
            return False
        self.prepare_store(rh.status, rh, now)
        return False

    def prepare_store(self, status: int, rh: Any, now: float) -> None:
        """Open the entry's writer when the response may be stored."""
        s = self.s
        r = self.r
        if not self.store_ok or not self.cacheable:
            return
        if s.proxy_no_cache and any(policy.truthy([t.render(r) for t in line])
                                    for line in s.proxy_no_cache):
            return
        fr = policy.freshness(status, rh.headers, s.proxy_ignore_headers, s.proxy_cache_valid,
                              now)
        if not fr.valid_until:
            if fr.refused == policy.NO_VALIDITY and policy.says_nothing(rh.headers):
                self.say_uncached(status)
            return
        file_hex = self.file_hex
        variant = ""
        if fr.vary:
            variant = policy.variant(self.key, fr.vary, r.head.headers)
            if file_hex != self.hexkey:
                file_hex = variant
        cl = rh.content_length
        self.expect = cl if cl is not None else -1
        self.writer = self.zone.writer(file_hex, self.key, rh, fr.valid_until,
                                       fr.updating_sec, fr.error_sec, fr.vary, variant)

    def say_uncached(self, status: int) -> None:
        """The live finding: proxy_cache is on, but the app says nothing about caching and
        no proxy_cache_valid covers the status, so nothing is ever stored (said once per
        location and worker)."""
        caches = self.caches
        loc = self.loc
        if id(loc) in caches.said:
            return
        caches.said.add(id(loc))
        w = loc.where
        caches.rt.log.warn(
            f"[cache-stores-nothing] proxy_cache in location \"{loc.name}\" stores nothing: "
            f"the upstream's {status} response has no Cache-Control, Expires or "
            f"X-Accel-Expires and no proxy_cache_valid covers it in {w[0]}:{w[1]}; fix: "
            f"proxy_cache_valid {status} 10m;", self.r.conn, self.r)

    def release(self, att: Attempt) -> None:
        """The upstream's response is not relayed: its connection closed, its peer freed."""
        conn = att.conn
        if conn is not None:
            conn.abort()
        if att.peer is not None:
            att.state.done(att.peer, att.answered, failed=False)

    def tee(self, out: ResponseBody) -> ResponseBody:
        """What the relay writes the body to: the client (the range `client_range` chose
        of it), and the new entry if any."""
        cut = self.cut
        if cut is not None:
            out = RangeCut(out, cut[0], cut[1])
        if self.writer is None:
            return out
        return CacheTee(out, self)

    def stored(self) -> None:
        """The body is complete: the entry goes into place, waiters wake."""
        w = self.writer
        if w is not None:
            self.writer = None
            w.commit()
        if self.locked:
            self.locked = False
            self.zone.unlock(self.hexkey)

    def finish(self) -> None:
        """The request is over, however it ended: a half-written entry is dropped, the
        lock released, the entry closed (the first two are the background update's once it
        runs)."""
        e = self.entry
        if e is not None:
            self.entry = None
            e.close()
        if not self.background:
            self.end_update()

    def end_update(self) -> None:
        w = self.writer
        if w is not None:
            self.writer = None
            w.discard()
        if self.locked:
            self.locked = False
            self.zone.unlock(self.hexkey)

    # -- serving an entry ------------------------------------------------------------------------

    async def serve(self, e: Entry, status_name: str) -> None:
        """Answer from the entry (HIT, STALE, UPDATING, REVALIDATED), like a static file."""
        self.set_status(status_name)
        self.served = True
        r = self.r
        ex = self.ex
        s = self.s
        caches = self.caches
        rt = caches.rt
        try:
            rh = e.head
            assert rh is not None
            r.upstream_headers = rh.headers
            headers, _, _ = response_headers(rt, r, self.plan, s, self.loc, rh)
            r.x_accel_redirect = None
            status = e.status
            offset = 0
            length = e.body_len
            parts: list[BodyPart] | None = None
            if status == 200:
                req: dict[str, str] | None = None
                for k, v in r.head.headers:
                    lk = k.lower()
                    if lk in _ASKS:
                        if req is None:
                            req = {}
                        req[lk] = v
                etag = rh.get("etag")
                lm = rh.get("last-modified")
                if req is not None:
                    nm = policy.not_modified(req, etag, lm, s.if_modified_since)
                    if nm == 412:
                        raise Finish(412)
                    if nm == 304:
                        status = 304
                    else:
                        rng = policy.byte_range(req, length, etag, lm, s.max_ranges)
                        if rng is False:
                            r.extra_headers = [("Content-Range", f"bytes */{length}")]
                            raise Finish(416)
                        if rng is not None:
                            status = 206
                            if len(rng) == 1:
                                offset, end = rng[0]
                                headers.append(("Content-Range",
                                                f"bytes {offset}-{end - 1}/{e.body_len}"))
                                length = end - offset
                            else:
                                # as a static file's: multipart/byteranges
                                parts = self.multipart(headers, rng, length)
                                length = 0
                                for p in parts:
                                    length += len(p) if isinstance(p, bytes) else p[1]
                if status == 200 and rh.get("accept-ranges") is None and s.max_ranges != 0:
                    headers.append(("Accept-Ranges", "bytes"))
            final = rt.pipeline.response_status(r, status)
            reason = rh.reason if final == e.status else REASONS.get(final, "")
            out = send_header(r, ex, final, headers, None if status == 304 else length, reason)
            if status != 304 and length and not ex.head_only:
                if parts is None:
                    await out.sendfile(e, e.body_start + offset, length)
                else:
                    for p in parts:
                        if isinstance(p, bytes):
                            out.write(p)
                        else:
                            await out.sendfile(e, e.body_start + p[0], p[1])
            out.end()
        finally:
            if e is not self.entry:
                e.close()

    @staticmethod
    def multipart(headers: list[tuple[str, str]], ranges: list[tuple[int, int]],
                  size: int) -> list[BodyPart]:
        """Several ranges of a cached 200: its Content-Type becomes multipart/byteranges
        (each part says the original); the parts, as proxy.static builds them."""
        at = -1
        mime = ""
        for i, (k, v) in enumerate(headers):
            if k.lower() == "content-type":
                at = i
                mime = v
                break
        ctype, parts, _ = multipart_body(ranges, mime, size)
        if at >= 0:
            headers[at] = ("Content-Type", ctype)
        else:
            headers.insert(0, ("Content-Type", ctype))
        return parts

    # -- a Range on the response being stored ------------------------------------------------

    def client_range(self, status: int, headers: list[tuple[str, str]],
                     length: int | None) -> tuple[int, int | None]:
        """The range filter on a cacheable response as it is relayed (and stored whole):
        nginx lets it answer one range (ngx_http_upstream_copy_allow_ranges: allow_ranges,
        single_range) of a 200 whose length is known and whose upstream accepts ranges.
        Returns the status and length to send; the body is cut by `tee`."""
        r = self.r
        if status != 200 or length is None or not self.cacheable or self.s.max_ranges == 0:
            return status, length
        req: dict[str, str] | None = None
        accepts = False
        for k, v in r.head.headers:
            lk = k.lower()
            if lk == "range" or lk == "if-range":
                if req is None:
                    req = {}
                req[lk] = v
        if req is None or "range" not in req:
            return status, length
        etag = lm = None
        for k, v in headers:
            lk = k.lower()
            if lk == "accept-ranges":
                accepts = True
            elif lk == "etag":
                etag = v
            elif lk == "last-modified":
                lm = v
        if not accepts:
            return status, length
        rng = policy.byte_range(req, length, etag, lm, 1)
        if not rng:
            # 416 is not answered here: nginx's range filter would, but the response is
            # already on its way; the whole of it is sent (and stored)
            return status, length
        start, end = rng[0]
        headers.append(("Content-Range", f"bytes {start}-{end - 1}/{length}"))
        self.cut = (start, end)
        return 206, end - start

    # -- background update -------------------------------------------------------------------------

    def start_background(self, att: Attempt) -> None:
        """proxy_cache_background_update: the expired entry is refreshed by a request of
        its own (nginx's background subrequest) while this one is answered stale."""
        r = self.r
        bg_r = RequestState(r.conn, r.head, r.server)
        bg_r.loc = r.loc
        bg_r.remote_addr = r.remote_addr
        bg_r.proxy_host = r.proxy_host
        bg_r.proxy_port = r.proxy_port
        bg_r.host = r.host
        bg = Attempt(att.rt, bg_r, att.ex, att.loc, att.live, att.upstream, att.scheme, att.req,
                     time.monotonic())
        task = asyncio.ensure_future(self.background_update(bg))
        tasks = att.rt.tunnels       # the worker waits for these on a graceful stop
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def background_update(self, att: Attempt) -> None:
        try:
            try:
                await att.until_answer(time.monotonic())
            except Finish:
                return
            conn = att.conn
            resp = att.resp
            assert conn is not None and resp is not None
            try:
                rh = resp.head
                self.prepare_store(rh.status, rh, time.time())
                w = self.writer
                while True:
                    ev = conn.pop_event()
                    if ev is None:
                        ev = await conn.next_event(self.s.proxy_read_timeout)
                    if type(ev) is Data:
                        if w is not None:
                            w.write(ev.data)
                    elif type(ev) is EndOfMessage:
                        break
                self.stored()
            except UpstreamError:
                pass
            finally:
                conn.abort()
                if att.peer is not None:
                    att.state.done(att.peer, att.answered, failed=False)
        finally:
            self.background = False
            self.end_update()


class CacheTee(BodyFilter):
    """The relayed body, written to the client and to the entry being made (a body sink:
    it sits in front of the body filters, so the entry holds what the upstream sent and a
    hit goes through the filters as the first response did)."""

    __slots__ = ("cache",)

    def __init__(self, next: ResponseBody, cache: CacheRequest) -> None:
        super().__init__(next)
        self.cache = cache

    def write(self, data: bytes) -> None:
        c = self.cache
        w = c.writer
        if w is not None:
            w.write(data)
            if w.length == c.expect:
                # the whole body is here: the entry goes into place before the client has
                # its last byte (and can ask again), as nginx updates the cache in the
                # same event that relays the end of the body
                c.stored()
        self.next.write(data)

    def end(self) -> None:
        self.cache.stored()
        self.next.end()


class RangeCut(BodyFilter):
    """The bytes [lo, hi) of a relayed body go on, the rest is dropped (nginx's
    ngx_http_range_singlepart_body on a body that arrives in parts)."""

    __slots__ = ("lo", "hi", "pos")

    def __init__(self, next: ResponseBody, lo: int, hi: int) -> None:
        super().__init__(next)
        self.lo = lo
        self.hi = hi
        self.pos = 0

    def write(self, data: bytes) -> None:
        pos = self.pos
        n = len(data)
        self.pos = pos + n
        lo = self.lo
        hi = self.hi
        if pos + n <= lo or pos >= hi:
            return
        if pos >= lo and pos + n <= hi:
            self.next.write(data)
            return
        self.next.write(data[max(lo - pos, 0):hi - pos])
