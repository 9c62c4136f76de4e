"""proxy_pass: the phase driver of one upstream exchange, in nginx's order.

1. choose the upstream and the URI (`target`; a name under `resolver` is looked up);
2. read the client body when it is wanted whole (`request_body`; nginx reads it before the
   request is made, so $request_body(_file) can be in its headers), or stream it;
3. build the upstream request as one value (`upstream_request`, pure);
4. try peers until one answers (`attempts`: proxy_next_upstream);
5. relay the response (`relay`, with `response` for its head and `tunnel` for a 101).
"""

from __future__ import annotations

from truehop.clock import monotonic as _monotonic
from truehop.conf.model import LocationConf, Settings
from truehop.http.exchange import Exchange
from truehop.proxy.attempts import Attempt, account
from truehop.proxy.cache.handler import CacheRequest, Caches
from truehop.proxy.pipeline import Finish
from truehop.proxy.relay import relay
from truehop.proxy.request_body import BodyFile, BodyFileError, read_body
from truehop.proxy.response import ResponsePlan
from truehop.proxy.target import Targets, choose_target
from truehop.proxy.upstream_request import (
    BODY_KEPT,
    BODY_NONE,
    BODY_READ,
    BODY_STREAM,
    RequestPlan,
    body_mode,
    build_request,
    upgrade_ok,
)
from truehop.proxy.upstreams import ProxyRuntime, Upstreams
from truehop.route.state import RequestState


class Proxy:
    """proxy_pass for one runtime: the per-`Settings` header plans and the targets' state;
    `rt` is what it uses of the runtime (its log, detector, live upstreams...)."""

    def __init__(self, rt: ProxyRuntime) -> None:
        self.rt = rt
        self.upstreams: Upstreams = rt.upstreams
        # by id(Settings); the config keeps them alive as long as this runtime
        self.plans: dict[int, tuple[RequestPlan, ResponsePlan]] = {}
        self.targets = Targets(rt)
        self.caches = Caches(rt)

    def plan(self, s: Settings) -> tuple[RequestPlan, ResponsePlan]:
        p = self.plans.get(id(s))
        if p is None:
            p = self.plans[id(s)] = (RequestPlan(s), ResponsePlan(s))
        return p

    async def run(self, r: RequestState, ex: Exchange, loc: LocationConf) -> None:
        rt = self.rt
        s = loc.settings
        if s.resolver is not None and loc.proxy is not None and loc.proxy.dynamic is not None:
            upstream, scheme, uri = await self.targets.resolved(r, loc, s)
        else:
            upstream, scheme, uri = choose_target(rt, r, loc)
        live = self.upstreams.get(upstream)
        if live.resolving is not None:      # `server name resolve` (proxy.resolving)
            await live.refresh(rt.log)
        head = r.head
        upgrade = upgrade_ok(head)
        # a body still arriving, or already broken, is read even if declared empty
        body = ex.body
        mode = body_mode(s, head, r.body_read, not body.complete or body.error is not None)
        read: bytes | BodyFile | None = None
        if mode == BODY_READ:
            r.body_read = True
            if head.expect_continue and not (head.chunked or head.content_length):
                ex.send_continue()   # ngx_http_test_expect, before an empty body's file
            read = await self.read_body(r, ex, s)
        elif mode == BODY_STREAM:
            r.body_read = True
            # streamed as it arrives: HTTP/2 opens the stream's window by the buffer size,
            # not wide open, when this is read first
            body.whole = False
        elif mode == BODY_KEPT:
            # a pass after an internal redirect: the body kept by the first, if any
            read = r.body_file if r.body_file is not None else r.request_body or b""
        elif mode == BODY_NONE and head.expect_continue:
            ex.send_continue()  # as nginx: the expectation is answered even for no body
        tries_made = r.upstream_tries
        req_plan, resp_plan = self.plan(s)
        # proxy_cache (proxy.cache.handler): the lookup, which may answer; else the request
        # goes on with its say over the upstream request, the answer and the body's tee
        cache: CacheRequest | None = None
        if s.proxy_cache is not None:
            cache = await self.caches.start(r, ex, loc, resp_plan)
            if cache is not None and cache.served:
                cache.finish()
                return
        try:
            try:
                req = build_request(r, s, req_plan, uri, upgrade, mode == BODY_STREAM, read)
            except ValueError:
                raise Finish(400) from None
            if cache is not None:
                req = cache.upstream_request(req)
            if head.upgrade is not None and not req.upgrading and upgrade:
                rt.detect.upgrade_not_forwarded(r, loc)
            if req.body_length >= 0:
                r.request_body_length = req.body_length
            r.upstream_uri = uri
            now = _monotonic()
            att = Attempt(rt, r, ex, loc, live, upstream, scheme, req, now)
            if cache is None:
                await att.until_answer(now)
            elif await cache.answer(att, now):
                return      # answered from the cache (stale, revalidated)
            peer = att.peer
            assert peer is not None
            try:
                await relay(att, resp_plan, cache)
            finally:
                # the peer is freed when the response ends, as nginx frees it at finalize:
                # `conns` (least_conn, max_conns) counts whole responses and tunnels (the
                # relay frees it itself once the whole response is read, att.peer = None)
                peer = att.peer
                if peer is not None:
                    att.peer = None
                    att.state.done(peer, att.answered, failed=False)
        finally:
            if cache is not None:
                cache.finish()
            if tries_made and tries_made[-1].end is None:
                last = tries_made[-1]
                last.end = _monotonic()
                if r.upstream_conn is not None:
                    account(last, r.upstream_conn)

    async def read_body(self, r: RequestState, ex: Exchange, s: Settings) -> bytes | BodyFile:
        """The whole client body, kept as proxy.request_body keeps it (memory or a temp
        file); sets $request_body or $request_body_file."""
        file_only = s.client_body_in_file_only
        # client_max_body_size 0 is nginx's "no limit"
        try:
            got = await read_body(ex.body, s.client_max_body_size or (1 << 62),
                                  s.client_body_timeout, s.client_body_buffer_size,
                                  file_only, s.client_body_temp_path)
        except BodyFileError as e:
            self.rt.log.crit(e.message, r.conn, r)
            raise Finish(500) from None
        if not isinstance(got, BodyFile):
            r.request_body = got
            return got
        r.request_body_file = got.name
        r.body_file = got
        # closed when the exchange ends, however it ends (not when this pass does: an
        # error_page may proxy the request again); `on` keeps the file's name, `clean` not
        prev = ex.on_done
        if prev is None:
            ex.on_done = got.close
        else:
            def done() -> None:
                got.close()
                prev()
            ex.on_done = done
        # nginx's line, at warn (notice with client_body_in_file_only, which asks for it)
        msg = f"a client request body is buffered to a temporary file {got.name}"
        if file_only == "off":
            self.rt.log.warn(msg, r.conn, r)
        else:
            self.rt.log.notice(msg, r.conn, r)
        return got
