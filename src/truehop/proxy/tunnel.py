"""The upgrade tunnel (nginx's ngx_http_upstream_upgrade): after a 101 to an upgrade the
client really asked for and the proxy forwarded (`upstream_request.upgrade_ok`: WebSocket,
Docker's `tcp`, `SPDY/3.1`, any protocol but h2c), both connections are joined and bytes
flow each way as they come, with back-pressure on the other side. `switch_refusal` decides
whether a 101 may open it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from typing import Final

from truehop.clock import monotonic as _monotonic
from truehop.conf.model import Settings
from truehop.http.events import RequestHead, ResponseHead
from truehop.http.exchange import Exchange
from truehop.http.h1 import response_head_bytes
from truehop.net.downstream import H1Exchange
from truehop.net.upstream import UpstreamConnection
from truehop.proxy.filters import filter_head, writer_fields
from truehop.proxy.response import ResponsePlan, response_headers
from truehop.proxy.upstreams import ProxyRuntime
from truehop.route.state import RequestState

WS_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key: str) -> str:
    """The Sec-WebSocket-Accept a key asks for (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def switch_refusal(upgrading: bool, head: RequestHead, rh: ResponseHead) -> str | None:
    """Why a 101 from the upstream must not open a tunnel (the error to log, then 502), or
    None. nginx (ngx_http_proxy_process_header) tunnels a 101 whenever the client sent
    Upgrade; here the upgrade must also have been forwarded (`upgrading`), and a WebSocket
    handshake must be answered for its own key: a Sec-WebSocket-Accept that does not match
    means the 101 answers some other request (RFC 6455 4.1)."""
    if not upgrading:
        return "upstream sent unexpected 101 response"
    key = head.get("sec-websocket-key")
    if key is not None and rh.get("sec-websocket-accept") != ws_accept(key):
        return "upstream sent invalid Sec-WebSocket-Accept"
    return None


async def tunnel(rt: ProxyRuntime, r: RequestState, ex: Exchange, s: Settings, plan: ResponsePlan,
                 conn: UpstreamConnection, rh: ResponseHead) -> None:
    """A 101 to a forwarded upgrade: the 101 goes to the client, then bytes flow both ways
    until a side closes or proxy_read_timeout passes without any (nginx's
    ngx_http_upstream_upgrade and its process_upgraded handler)."""
    assert isinstance(ex, H1Exchange)      # tunnels are HTTP/1.1 only
    client = ex.conn
    ct = client.transport
    ut = conn.transport
    assert ct is not None and ut is not None
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    idle = max(s.proxy_read_timeout, 1.0)
    last = [_monotonic()]

    def finish(_exc: BaseException | None = None) -> None:
        if not done.done():
            done.set_result(None)

    # ngx_http_upstream_process_upgraded: a write that stays blocked ends the tunnel,
    # send_timeout towards the client, proxy_send_timeout towards the upstream (without
    # this, a client that never reads held its socket until proxy_read_timeout)
    def client_stalled() -> None:
        rt.log.info("client timed out (110: Connection timed out) while proxying upgraded "
                    "connection", client.info)
        client.abort()

    def upstream_stalled() -> None:
        rt.log.error("upstream timed out (110: Connection timed out) while proxying upgraded "
                     "connection", client.info)
        conn.abort()

    # a side may close while the other's bytes are in flight (the tunnel ends when this
    # coroutine runs next): uvloop raises on a write to a closed transport, so drop them
    def to_upstream(data: bytes) -> None:
        if ut.is_closing():
            return
        last[0] = _monotonic()
        ut.write(data)
        if ut.get_write_buffer_size() > 1 << 20:
            ct.pause_reading()
            _resume_later(ut, ct, done, s.proxy_send_timeout, upstream_stalled)

    def to_client(data: bytes) -> None:
        if ct.is_closing():
            return
        last[0] = _monotonic()
        # tunnelled bytes count in $bytes_sent and $body_bytes_sent, as nginx's
        ex.bytes_sent += len(data)
        ex.body_bytes_sent += len(data)
        ct.write(data)
        if ct.get_write_buffer_size() > 1 << 20:
            ut.pause_reading()
            _resume_later(ct, ut, done, client.send_timeout(), client_stalled)

    assert r.loc is not None
    # the 101 goes through the header filters as ngx_http_upstream_upgrade sends it
    # (ngx_http_send_header: `add_header ... always` applies); its bytes are written here,
    # on the connection about to be detached, not by the exchange
    headers = filter_head(r, 101, response_headers(rt, r, plan, s, r.loc, rh,
                                                   keep_connection=True)[0]).headers
    headers[0:0] = writer_fields(s)
    data = response_head_bytes(101, headers, "1.1", rh.reason or "Switching Protocols")
    ex.started = True
    ex.status = 101
    ex.keep_alive = False
    ex.bytes_sent += len(data)
    ct.write(data)
    up_left = conn.take_unparsed()
    conn.tunnel = to_client
    conn.tunnel_lost = finish
    client_left = client.detach(to_upstream, finish)
    if up_left:
        to_client(up_left)
    if client_left:
        to_upstream(client_left)
    rt.tunnels.add(done)
    try:
        while not done.done():
            remaining = idle - (_monotonic() - last[0])
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(asyncio.shield(done), remaining)
            except TimeoutError:
                continue
    finally:
        rt.tunnels.discard(done)
        conn.abort() if not conn.closed else None
        ut.close()
        client.close()
        ex.finished = True
        client.exchange_done(ex)


def _resume_later(dst: asyncio.Transport, src: asyncio.Transport, done: asyncio.Future[None],
                  timeout: float, on_stall: Callable[[], None]) -> None:
    """Resume reading `src` once `dst` has drained; `on_stall()` and the tunnel's end when
    `dst` makes no progress for `timeout` seconds."""
    loop = asyncio.get_running_loop()
    last = [float(dst.get_write_buffer_size()), loop.time()]   # queued bytes, when they moved

    def check() -> None:
        if done.done() or dst.is_closing():
            return
        n = dst.get_write_buffer_size()
        if n < 1 << 18:
            src.resume_reading()
            return
        now = loop.time()
        if n < last[0]:
            last[0], last[1] = float(n), now
        elif now - last[1] >= timeout:
            on_stall()
            if not done.done():
                done.set_result(None)
            return
        loop.call_later(0.02, check)
    loop.call_later(0.02, check)
