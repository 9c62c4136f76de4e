"""The attempt loop (nginx's ngx_http_upstream_connect / ngx_http_upstream_next): pick a
peer (balancer), reuse or open a connection (pool), send the upstream request, read the
response head, and decide whether the next peer is tried (`proxy_next_upstream`, its tries
and timeout). One `Attempt` carries a request's state across its tries; `until_answer`
returns with the peer whose head is to be relayed, or raises the error status.
"""

from __future__ import annotations

import asyncio
from typing import Final

from truehop.clock import monotonic as _monotonic
from truehop.conf.model import LocationConf, Settings, UpstreamConf
from truehop.http.events import InformationalResponse, ProtocolError, Response
from truehop.http.exchange import Exchange
from truehop.net.upstream import UpstreamConnection, UpstreamError, connect
from truehop.proxy.balancer import BalancerState, Peer
from truehop.proxy.pipeline import Finish
from truehop.proxy.pool import retire_after
from truehop.proxy.request_body import BodyFile, BodyFileError
from truehop.proxy.upstream_request import UpstreamRequest
from truehop.proxy.upstreams import LiveUpstream, ProxyRuntime
from truehop.route.state import RequestState, UpstreamLink, UpstreamTry

IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
# h1client's refusal of a response framed both ways (RFC 9112 6.3: a 502, never a guess)
CL_AND_TE: Final = ('upstream sent "Content-Length" and "Transfer-Encoding" headers at the '
                    "same time")
STATUS_FLAGS: Final = {500: "http_500", 502: "http_502", 503: "http_503", 504: "http_504",
                403: "http_403", 404: "http_404", 429: "http_429"}


class Attempt:
    """One request's tries across peers (nginx's u->peer.tries and friends): what it sends,
    where, under which limits, and, once a peer answered, that peer, its connection, the
    response head and the try's record."""

    __slots__ = ("rt", "r", "ex", "loc", "s", "live", "upstream", "scheme", "req", "flags",
                 "state", "tries_left", "deadline", "sent", "sender",
                 "peer", "conn", "resp", "tried", "answered")

    def __init__(self, rt: ProxyRuntime, r: RequestState, ex: Exchange, loc: LocationConf,
                 live: LiveUpstream, upstream: UpstreamConf, scheme: str,
                 req: UpstreamRequest, now: float) -> None:
        s = loc.settings
        self.rt = rt
        self.r = r
        self.ex = ex
        self.loc = loc
        self.s = s
        self.live = live
        self.upstream = upstream
        self.scheme = scheme
        self.req = req
        self.flags = s.proxy_next_upstream
        # proxy_next_upstream_tries 0 and proxy_next_upstream_timeout 0: no limit (nginx's
        # ngx_http_upstream_next tests each only when it is set)
        tries = s.proxy_next_upstream_tries
        timeout_total = s.proxy_next_upstream_timeout
        self.tries_left = tries if tries else 1 << 30
        self.deadline = now + timeout_total if timeout_total else 0.0
        self.state: BalancerState = live.balancer.start(
            now, hash_key(r, upstream) if upstream.kind in ("ip_hash", "hash") else None)
        self.sent = False           # the request went out, whole or in part
        # a body sender still running when the response head came (the upstream answered
        # early): the connection is reused only once it is done
        self.sender: asyncio.Future[None] | None = None
        self.peer: Peer | None = None
        self.conn: UpstreamConnection | None = None
        self.resp: Response | None = None
        self.tried: UpstreamTry | None = None
        self.answered = 0.0

    async def until_answer(self, now: float) -> None:
        """Try peers until one answers with a head to relay (proxy_next_upstream); sets
        `peer`, `conn`, `resp`, `tried`, `answered`. Raises Finish with the status when none
        does. The caller frees the peer (`state.done`) when the response ends."""
        r = self.r
        rt = self.rt
        s = self.s
        req = self.req
        state = self.state
        flags = self.flags
        upstream = self.upstream
        method = r.head.method
        pool = self.live.pool
        last_status = 502
        failed_before = False
        retried_stale = False
        tries_made = r.upstream_tries
        while True:
            peer = state.next(now)
            if peer is None:
                if not failed_before:
                    rt.log.error("no live upstreams while connecting to upstream", r.conn, r)
                    t = UpstreamTry(upstream.name, upstream.name, now)
                    t.status = 502
                    t.end = now
                    tries_made.append(t)
                raise Finish(last_status)
            addr = peer.name
            # nginx's error-log form: a unix socket path and the URI are joined by ':'
            t = UpstreamTry(addr, f"{self.scheme}://{addr}{':' if peer.port == 0 else ''}"
                                  f"{req.uri}", now)
            tries_made.append(t)
            conn: UpstreamConnection | None = None
            reused = False
            try:
                if pool is not None:
                    conn = pool.acquire(peer.key, now)
                    if pool.closed_idle:
                        rt.detect.upstream_idle_close(upstream, pool.take_closed_idle())
                if conn is None:
                    conn = await self.fresh(peer)
                else:
                    reused = True
                t.connect = _monotonic()
                r.upstream_conn = conn  # aborted by the pipeline if we never finish
                try:
                    resp = await self.exchange(conn)
                except UpstreamError as e:
                    if reused and not conn.received_any and e.kind == "error" and \
                            not retried_stale and (method in IDEMPOTENT or not self.sent):
                        # the keepalive race: the upstream closed an idle connection as we
                        # reused it. Try once more on a fresh connection, same peer.
                        retried_stale = True
                        if pool is not None:
                            pool.noticed_close(conn, _monotonic())
                        conn.abort()
                        conn = await self.fresh(peer)
                        r.upstream_conn = conn
                        resp = await self.exchange(conn)
                    else:
                        raise
            except UpstreamError as e:
                now = t.end = _monotonic()
                if conn is not None:
                    account(t, conn)
                    conn.abort()
                failed_kind = e.kind
                status = 504 if failed_kind == "timeout" else 502
                if failed_kind == "timeout" and "reading" in e.message:
                    rt.detect.read_timeout(r, self.loc, s.proxy_read_timeout)
                elif failed_kind == "invalid_header" and CL_AND_TE in e.message:
                    rt.detect.cl_and_te(r, self.loc, upstream, addr)
                t.status = status
                rt.log.error(e.message, r.conn, r)
                if state.done(peer, now, failed=True):
                    rt.log.warn("upstream server temporarily disabled while "
                                + e.message.split(" while ")[-1], r.conn, r)
                failed_before = True
                last_status = status
                if self.may_retry(failed_kind, method):
                    continue
                raise Finish(status) from None
            # a response head arrived
            now = t.header = _monotonic()
            rh = resp.head
            status = t.status = rh.status
            if pool is not None and "keep-alive" in rh.conn_tokens:
                # `Keep-Alive: timeout=N` (Node): retire the connection before N (proxy.pool)
                ka = rh.get("keep-alive")
                if ka is not None:
                    conn.idle_limit = retire_after(ka)
            flag = STATUS_FLAGS.get(status) if flags else None
            # as nginx (ngx_http_upstream_test_next): only when another peer is left to try;
            # the last one's answer, error status and body, is the response
            if flag is not None and flag in flags and state.tries > 1 and \
                    self.may_retry(flag, method):
                t.end = now
                account(t, conn)
                state.done(peer, now, failed=flag not in ("http_403", "http_404"))
                conn.abort()
                last_status = status
                failed_before = True
                continue
            self.peer = peer
            self.conn = conn
            self.resp = resp
            self.tried = t
            self.answered = now
            return

    def may_retry(self, kind: str, method: str) -> bool:
        """Whether a failure of `kind` (an error kind or an http_* flag) sends the request
        to the next peer: proxy_next_upstream names it, tries and time are left, and the
        request may be sent again (not streamed; idempotent or non_idempotent allowed)."""
        flags = self.flags
        if kind not in flags:
            return False
        self.tries_left -= 1
        if self.tries_left <= 0:
            return False
        if self.deadline and _monotonic() >= self.deadline:
            return False
        if self.sent and self.req.stream_body:
            return False
        if self.sent and method not in IDEMPOTENT and "non_idempotent" not in flags:
            return False
        return True

    async def fresh(self, peer: Peer) -> UpstreamConnection:
        """A new connection to `peer` (TLS with SNI for https, as proxy_ssl_* say)."""
        s = self.s
        r = self.r
        ctx = None
        sni = None
        if self.scheme == "https":
            ctx = self.rt.upstreams.ssl_context(s)
            if s.proxy_ssl_server_name:
                name = s.proxy_ssl_name.render(r) if s.proxy_ssl_name else r.proxy_host
                sni = name.rsplit(":", 1)[0] if not name.startswith("[") else None
            elif s.proxy_ssl_verify:
                sni = r.proxy_host.rsplit(":", 1)[0]
        slots = self.rt.slots
        if slots is not None and not slots.take_upstream():
            # ngx_event_connect_peer without a free connection: nginx's alert, and 500
            # (ngx_http_upstream_connect finalizes with NGX_HTTP_INTERNAL_SERVER_ERROR)
            self.rt.log.alert(f"{slots.limit} worker_connections are not "
                              "enough while connecting to upstream", r.conn, r)
            raise Finish(500)
        return await connect(peer.addr, peer.port, s.proxy_connect_timeout, ctx, sni, slots)

    async def exchange(self, conn: UpstreamConnection) -> Response:
        """Send the request and return the response head (1xx answers are consumed).
        The body: bytes are written at once; a BodyFile (a buffered body in a temp file) and
        the client's stream (None) are sent by a task while the response is awaited, so an
        upstream that answers early is heard."""
        s = self.s
        req = self.req
        body = req.body
        req_head = req.head
        # the parser must know the method the upstream answers (a HEAD has no body)
        conn.start(req.method, s.proxy_buffer_size)
        send_timeout = s.proxy_send_timeout
        read_timeout = s.proxy_read_timeout
        if type(body) is bytes:
            conn.write(req_head + body if len(body) < 65536 else req_head)
            if len(body) >= 65536:
                conn.write(body)
            self.sent = True
            await conn.drain(send_timeout)
            return await read_head(conn, read_timeout)
        if isinstance(body, BodyFile):
            conn.write(req_head)
            sender = asyncio.ensure_future(self.send_file(body, conn, send_timeout))
        else:
            sender = asyncio.ensure_future(stream_body(conn, self.ex, s, self.r, req_head))
        self.sent = True
        head = asyncio.ensure_future(read_head(conn, read_timeout))
        try:
            # the client's body can fail (a bad chunk, a short HTTP/2 stream) before the
            # upstream answers: that is the client's 400, never the upstream's answer
            await asyncio.wait((head, sender), return_when=asyncio.FIRST_COMPLETED)
            if not head.done() and sender.done() and \
                    isinstance(sender.exception(), (ProtocolError, UpstreamError)):
                head.cancel()
                conn.abort()
                raise sender.exception()  # type: ignore[misc]
            resp = await head
        except BaseException:
            sender.cancel()
            head.cancel()
            raise
        if not sender.done():
            # the upstream answered before the body was sent: let it finish in background
            # only when the response says the body is still wanted; else stop sending
            self.sender = sender
            sender.add_done_callback(_consume_outcome)
        else:
            exc = sender.exception()
            if isinstance(exc, UpstreamError):
                raise exc
        return resp

    async def send_file(self, body: BodyFile, conn: UpstreamConnection, timeout: float
                        ) -> None:
        """A buffered body from its temp file, from the start (so each try sends it whole)."""
        try:
            await body.send(conn, timeout)
        except BodyFileError as e:
            self.rt.log.crit(e.message)
            conn.abort()
            # the client's request cannot be sent: a 500, as nginx answers a failed read
            raise ProtocolError(500, e.message) from None


def hash_key(r: RequestState, up: UpstreamConf) -> str | None:
    """The balancer key of `ip_hash` and `hash`."""
    if up.kind == "ip_hash":
        return r.remote_addr
    if up.kind == "hash" and up.hash_key is not None:
        return up.hash_key.render(r)
    return None


async def read_head(conn: UpstreamConnection, timeout: float) -> Response:
    while True:
        try:
            ev = await conn.next_event(timeout)
        except UpstreamError as e:
            if e.message.endswith("while reading upstream"):
                e.message = e.message.replace("while reading upstream",
                                              "while reading response header from upstream")
            raise
        if type(ev) is Response:
            return ev
        if type(ev) is InformationalResponse:
            continue
        raise UpstreamError("invalid_header", "upstream sent no valid HTTP/1.0 header")


async def stream_body(conn: UpstreamConnection, ex: Exchange, s: Settings, r: RequestState,
                      req_head: bytes) -> None:
    """proxy_request_buffering off: the request head, then the client's body as it
    arrives. What has arrived goes in one write (one chunk, with the last chunk when the
    body is complete; the head with the body already read), as nginx sends what it has
    read; a body that fits client_body_buffer_size stays there for $request_body, as in
    nginx's unbuffered mode."""
    chunked = ex.head.content_length is None
    timeout = s.client_body_timeout
    send_timeout = s.proxy_send_timeout
    body = ex.body
    room = s.client_body_buffer_size
    kept: list[bytes] | None = []
    ended = False
    head = req_head
    if not body.buffered:
        conn.write(head)   # no body bytes yet: the upstream gets the head at once
        head = b""
    while True:
        chunk = await body.read(timeout)
        if chunk is None:
            break
        if body.buffered:
            chunk = b"".join([chunk, *body.take_ready()])
        if kept is not None:
            room -= len(chunk)
            if room >= 0:
                kept.append(chunk)
            else:
                kept = None
        if chunked:
            ended = body.complete and body.error is None
            conn.write(b"%b%x\r\n%b\r\n%s" % (head, len(chunk), chunk,
                                               b"0\r\n\r\n" if ended else b""))
        else:
            conn.write(head + chunk if head else chunk)
        head = b""
        await conn.drain(send_timeout)
    if head:
        conn.write(head)
    if chunked and not ended:
        conn.write(b"0\r\n\r\n")
    if kept:
        r.request_body = kept[0] if len(kept) == 1 else b"".join(kept)


def account(t: UpstreamTry, conn: UpstreamLink) -> None:
    """$upstream_bytes_sent / _received of a try: what its connection carried since `start`."""
    t.bytes_sent = conn.bytes_out
    t.bytes_received = conn.bytes_in


def _consume_outcome(task: asyncio.Future[None]) -> None:
    """A body sender left running after the response: its failure (the connection closed
    under it) is expected and must not be reported as never retrieved."""
    if not task.cancelled():
        task.exception()
