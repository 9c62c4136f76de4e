"""The relay (nginx's ngx_http_upstream_send_response and the non-buffered body relay):
what the answering peer says goes to the client, as `response` processes its head; a 101
to a forwarded upgrade becomes a `tunnel`."""

from __future__ import annotations

import asyncio

from truehop.clock import monotonic as _monotonic
from truehop.http.events import Data, EndOfMessage, ProtocolError
from truehop.http.exchange import ClientGone, ResponseBody
from truehop.net.upstream import UpstreamConnection, UpstreamError
from truehop.proxy.attempts import Attempt, account
from truehop.proxy.cache.handler import CacheRequest
from truehop.proxy.filters import send_header
from truehop.proxy.pipeline import Finish
from truehop.proxy.response import ResponsePlan, process_accel, response_headers
from truehop.proxy.spool import SENDFILE_MAX, WRITE_MAX, Spool, spool_limits
from truehop.proxy.tunnel import switch_refusal, tunnel


async def relay(att: Attempt, plan: ResponsePlan, cache: CacheRequest | None = None) -> None:
    """The answering peer's response to the client (nginx's ngx_http_upstream_send_response
    and its non-buffered relay): error_page interception, X-Accel-*, the head through the
    response filter chain (proxy.filters), then the body with back-pressure through what
    the chain hands back; a broken upstream body aborts the client. The connection goes
    back to the pool only when the exchange ended cleanly. A 101 to a forwarded upgrade becomes a tunnel."""
    rt = att.rt
    r = att.r
    ex = att.ex
    loc = att.loc
    s = att.s
    conn = att.conn
    resp = att.resp
    t = att.tried
    assert conn is not None and resp is not None and t is not None
    rh = resp.head
    status = rh.status
    r.upstream_headers = rh.headers
    pipeline = rt.pipeline
    if status == 101:
        refusal = switch_refusal(att.req.upgrading, r.head, rh)
        if refusal is not None:
            conn.abort()
            rt.log.error(refusal, r.conn, r)
            if not att.req.upgrading:
                # nginx relays it as a response whose body never ends; no byte of it
                # reaches the client (ssl_proxy_upgrade.t "noupgrade"): no response at all
                ex.status = 101
                ex.abort()
                return
            raise Finish(502)
        await tunnel(rt, r, ex, s, plan, conn, rh)
        return
    # intercept errors into error_page
    if s.proxy_intercept_errors and status >= 300 and s.error_page and status in s.error_page:
        conn.abort()
        if status == 401:
            # ngx_http_upstream_intercept_errors: the challenge goes with the error page
            r.carried_headers = [kv for kv in rh.headers if kv[0].lower() == "www-authenticate"]
        raise Finish(status)
    headers, ctype, accel = response_headers(rt, r, plan, s, loc, rh)
    unbuffered = process_accel(rt, r, s, conn, headers, accel)
    final_status = pipeline.response_status(r, status)
    if unbuffered:
        conn.high_water = 16 * 1024
    else:
        n, size = s.proxy_buffers
        conn.high_water = max(n * size, 16384)
    rt.detect.on_response(r, loc, status, rh, ctype)
    # corked: the head goes out with the body bytes already read, in one write; whatever
    # is held is flushed before waiting on the upstream (SSE and slow bodies stream)
    length = rh.content_length
    if cache is not None:   # proxy_cache: one Range answered from the response being stored
        final_status, length = cache.client_range(final_status, headers, length)
    out = send_header(r, ex, final_status, headers, length,
                      rh.reason if final_status == status else None, cork=True)
    if cache is not None:
        out = cache.tee(out)    # proxy_cache: the body also goes to the new entry
    read_timeout = s.proxy_read_timeout
    sp: Spool | None = None
    data: bytes | None = None
    left: bytes | None = None
    ended = False
    try:
        while True:
            ev = conn.pop_event()
            if ev is None:
                out.flush()
                ev = await conn.next_event(read_timeout)
            if type(ev) is Data:
                data = ev.data
                t.response_length += len(data)
                if len(data) > WRITE_MAX:
                    # a large read goes out in pieces: what a stalled client's transport
                    # holds stays small, and no write keeps the loop long
                    left = await _write_pieces(out, data, unbuffered)
                    if left is None:
                        continue
                else:
                    out.write(data)
                    if not out.write_blocked:
                        continue
                    if unbuffered:
                        await out.drain()
                        continue
                    left = b""
                # buffered, and the client is slower than the upstream: while it catches
                # up the upstream is read on into memory and the temp file (proxy.spool),
                # and let go at its end; once the client has caught up, back to relaying
                if sp is None:
                    sp = _spool(att, conn, rh.keep_alive)
                sp.attach(left)
                # the last read (up to 256 KiB) is the spool's now: no reference to it may
                # stay in this frame while a stalled client is fed (issue 14 item 5)
                ev = data = left = None
                if await _feed(sp, out):
                    ended = True
                    break
            elif type(ev) is EndOfMessage:
                break
    except UpstreamError as e:
        out.flush()
        rt.log.error(e.message.replace("reading response header from upstream",
                                       "reading upstream"), r.conn, r)
        if sp is not None:
            sp.close()
        conn.abort()
        ex.abort()
        return
    except (ClientGone, ProtocolError):
        if sp is not None:
            sp.close()
        conn.abort()
        raise ClientGone("client closed connection") from None
    except BaseException:
        if sp is not None:
            sp.close()      # cancelled: the pipeline aborts the connection if still ours
        raise
    if sp is not None:
        t.response_length += sp.received
        sp.received = 0
        sp.close()
    out.end()
    if not ended:
        _upstream_done(att, conn, rh.keep_alive)


def _upstream_done(att: Attempt, conn: UpstreamConnection, keep_alive: bool) -> None:
    """The whole response is read: the try ends ($upstream_response_time), the connection
    goes back to the pool when the exchange ended cleanly (else it is closed), and the peer
    is freed, as nginx's ngx_http_upstream_finalize_request, which a buffered response
    reaches while the client is still being sent what was read."""
    t = att.tried
    assert t is not None
    now = t.end = _monotonic()
    account(t, conn)
    r = att.r
    pool = att.live.pool
    released = False
    if pool is not None and keep_alive and conn.finished_cleanly():
        sender = att.sender
        if sender is None or sender.done():
            r.upstream_conn = None
            pool.release(conn, now, reusable=True)
            released = True
    if not released:
        conn.close()
    peer = att.peer
    if peer is not None:
        att.peer = None
        att.state.done(peer, att.answered, failed=False)


def _spool(att: Attempt, conn: UpstreamConnection, keep_alive: bool) -> Spool:
    """The spool of a buffered response (proxy.spool), with the location's limits; it
    frees the upstream itself when it reads the response's end."""
    rt = att.rt
    r = att.r
    s = att.s
    t = att.tried
    assert t is not None
    limit, max_file, write_size = spool_limits(s.proxy_buffer_size, s.proxy_buffers,
                                               s.proxy_max_temp_file_size,
                                               s.proxy_temp_file_write_size)

    def ended(c: UpstreamConnection) -> None:
        t.response_length += sp.received
        sp.received = 0
        _upstream_done(att, c, keep_alive)

    def warn(msg: str) -> None:
        rt.log.warn(msg, r.conn, r)

    def crit(msg: str) -> None:
        rt.log.crit(msg, r.conn, r)

    sp = Spool(conn, limit, max_file, write_size, s.proxy_temp_path, s.proxy_read_timeout,
               ended, warn, crit)
    return sp


async def _write_pieces(out: ResponseBody, data: bytes, unbuffered: bool) -> bytes | None:
    """Write `data` WRITE_MAX at a time, waiting for the client between pieces. A buffered
    response stops at the first wait instead and returns what is left (maybe b""), to be
    spooled; None when all went out."""
    off = 0
    n = len(data)
    while off < n:
        end = off + WRITE_MAX
        out.write(data[off:end])
        off = end
        if out.write_blocked:
            if not unbuffered:
                return data[off:]
            await out.drain()
    return None


async def _feed(sp: Spool, out: ResponseBody) -> bool:
    """The client's side of a spooled response: the file's bytes (sendfile where the
    transport allows, SENDFILE_MAX a call, the loop given a turn after each), then
    memory's, WRITE_MAX a write. True once all is sent and the upstream's response has
    ended; False when the client has caught up with an upstream still sending (the spool
    is detached: the relay goes on relaying directly). Raises the upstream's error.

    Caught up means drained too: HTTP/2's `write_blocked` is always true (its `drain`
    decides, by the stream's window), so the spool waits on one drain before letting go,
    and meanwhile keeps reading the upstream."""
    drained = False
    while True:
        pending = sp.file_pending()
        if pending:
            k = pending if pending < SENDFILE_MAX else SENDFILE_MAX
            await out.sendfile(sp, sp.file_sent, k)
            sp.file_sent_more(k)
            drained = False
            await asyncio.sleep(0)
            continue
        data = sp.take()
        if data:
            out.write(data)
            drained = False
            if out.write_blocked:
                data = b""
                await out.drain()
                drained = True
            continue
        if sp.error is not None:
            raise sp.error
        if sp.done:
            return True
        if not drained and out.write_blocked:
            drained = True
            await out.drain()
            continue
        sp.detach()
        return False
