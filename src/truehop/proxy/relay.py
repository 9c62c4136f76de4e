"""The relay (nginx's ngx_http_upstream_send_response and the non-buffered body relay):
what the answering peer says goes to the client, as `response` processes its head; a 101
to a forwarded upgrade becomes a `tunnel`."""

from __future__ import annotations

from truehop.clock import monotonic as _monotonic
from truehop.http.events import Data, EndOfMessage, ProtocolError
from truehop.http.exchange import ClientGone
from truehop.net.upstream import UpstreamError
from truehop.proxy.attempts import Attempt, account
from truehop.proxy.cache.handler import CacheRequest
from truehop.proxy.filters import send_header
from truehop.proxy.pipeline import Finish
from truehop.proxy.response import ResponsePlan, process_accel, response_headers
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
    try:
        while True:
            ev = conn.pop_event()
            if ev is None:
                out.flush()
                ev = await conn.next_event(read_timeout)
            if type(ev) is Data:
                t.response_length += len(ev.data)
                out.write(ev.data)
                if out.write_blocked:
                    await out.drain()
            elif type(ev) is EndOfMessage:
                break
    except UpstreamError as e:
        out.flush()
        rt.log.error(e.message.replace("reading response header from upstream",
                                       "reading upstream"), r.conn, r)
        conn.abort()
        ex.abort()
        return
    except (ClientGone, ProtocolError):
        conn.abort()
        raise ClientGone("client closed connection") from None
    out.end()
    now = t.end = _monotonic()
    account(t, conn)
    pool = att.live.pool
    if pool is not None and rh.keep_alive and conn.finished_cleanly():
        sender = att.sender
        if sender is None or sender.done():
            r.upstream_conn = None
            pool.release(conn, now, reusable=True)
            return
    conn.close()
