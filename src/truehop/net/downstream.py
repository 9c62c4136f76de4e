"""The client side of a connection: an asyncio.Protocol that turns transport callbacks into
requests for the pipeline, and the pipeline's answers back into bytes.

Theory of operation. Bytes go to the sans-IO `H1ServerParser`; each `Request` event becomes an
`Exchange` queued on the connection (pipelined requests wait their turn, answered in order).
`Data` events feed the exchange's `BodyStream`; when more than `BODY_HIGH_WATER` bytes wait
unread, reading from the socket pauses (back-pressure). One task at a time runs the pipeline
for the head of the queue. Responses are written through `Exchange.start_response / write /
end`; `pause_writing` from the transport makes `drain()` wait (back-pressure the other way).
Timers: an absolute deadline for the request head (`client_header_timeout`, as nginx), the
gap between body reads (`client_body_timeout`), idle keep-alive (`keepalive_timeout`), and
the gap between writes that make progress (`send_timeout`).
When the pipeline turns the connection into a tunnel (WebSocket), `detach()` hands the
transport over with whatever bytes were read past the request head.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import struct
from collections.abc import Callable
from typing import Any, Final

from truehop.clock import monotonic as _monotonic
from truehop.conf.model import Settings
from truehop.http.events import Data, EndOfMessage, ProtocolError, Request, RequestHead
from truehop.http.exchange import (
    NO_BODY,
    NO_BODY_CL0,
    TIMED_OUT,
    BodyStream,
    ClientGone,
    Exchange,
    expire,
)
from truehop.http.h1 import H1ServerParser, response_head_bytes
from truehop.net.closing import CloseDeadline, LingeringClose, close_within
from truehop.net.connection import (
    connection_info,
    lingering_limits,
)
from truehop.net.deadline import Deadline
from truehop.net.flow import Flow
from truehop.net.listen import ConnectionOwner, Listener
from truehop.route.state import ConnectionInfo

BODY_HIGH_WATER: Final = 256 * 1024
PIPELINE_HIGH_WATER: Final = 32       # queued pipelined requests before reading pauses
WRITE_HIGH_WATER: Final = 16 * 1024   # the transport's buffer before `drain` waits
SENDFILE_PREAD: Final = 32 * 1024     # sendfile's fallback: read and written at a time
SENDFILE_MAX_CHUNK: Final = 2 << 20   # sendfile(2) between two turns of the loop (nginx's 2m)
# a request body nobody read is read and thrown away after the response
# (ngx_http_discarded_request_body_handler) within the lingering limits (net.connection)


def _browser_disabled(head: RequestHead, disabled: frozenset[str]) -> bool:
    """keepalive_disable (ngx_http_update_location_config): MSIE 4-6 (not 6 with SV1) for a
    POST, Safari on Mac OS X (not Chrome) for anything, as ngx_http_process_user_agent
    tells them apart."""
    ua = head.get("user-agent")      # (the caller looks only for a POST or with safari)
    if not ua:
        return False
    i = ua.find("MSIE ")
    msie = i >= 0 and i + 7 < len(ua)
    opera = "Opera" in ua
    if "msie6" in disabled and head.method == "POST" and msie and not opera and \
            ua[i + 6] == "." and (ua[i + 5] in "45" or
                                  (ua[i + 5] == "6" and "SV1" not in ua[i + 8:])):
        return True
    return "safari" in disabled and not msie and not opera and "Gecko/" not in ua and \
        "Chrome/" not in ua and "Safari/" in ua and "Mac OS X" in ua


class H1Exchange(Exchange):
    """One request on an HTTP/1.x client connection and the response being written for it."""

    __slots__ = ("conn", "pending")

    def __init__(self, conn: ClientConnection, head: RequestHead) -> None:
        self.conn = conn
        self.head = head
        if head.chunked or head.content_length:
            self.body = BodyStream(conn.body_consumed, conn.send_continue,
                                   head.expect_continue,
                                   head.content_length if not head.chunked else None)
        else:
            self.body = NO_BODY if head.content_length is None else NO_BODY_CL0
        self.started = False
        self.finished = False
        self.status = 0
        self.bytes_sent = 0
        self.body_bytes_sent = 0
        self.keep_alive = head.keep_alive
        self.chunked = False
        self.head_only = head.method == "HEAD"
        self.aborted = False
        self.remaining = None
        self.on_done = None
        self.pending: list[bytes] | None = None   # corked bytes not yet written
        self.settings = None

    # -- writing the response --------------------------------------------------------------

    def start_response(self, status: int, headers: list[tuple[str, str]],
                       content_length: int | None, reason: str | None = None,
                       close: bool = False, cork: bool = False) -> None:
        """Write the status line and headers. `headers` must not contain framing or
        Connection headers: they are decided here (and appended to the list given).
        `cork`: hold the head, and what `write` adds, until `flush` or `end`, so that a
        small response leaves in one write (one segment, one syscall)."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        c = self.conn
        h = headers
        if close or c.closing:
            self.keep_alive = False
        body = self.body
        if not body.complete and body.error is not None:
            # a body that broke off (bad chunk, timeout): where the next request would start
            # is unknown. A body still arriving, or not read, is discarded after the response
            # and the connection kept (ClientConnection.exchange_done), as nginx does
            self.keep_alive = False
        s = self.settings or c.listener.default_server.settings
        if self.keep_alive:
            # ngx_http_update_location_config, with the location's settings
            kat = s.keepalive_timeout
            if kat <= 0 or c.requests >= s.keepalive_requests or \
                    c.loop.time() - c.started_at > s.keepalive_time:
                self.keep_alive = False
            elif (kd := s.keepalive_disable) and (self.head.method == "POST" or "safari" in kd) \
                    and _browser_disabled(self.head, kd):
                self.keep_alive = False
            elif body._continue and not body.complete:
                # ngx_http_discard_request_body tests Expect first: the client is told to
                # send the body it is waiting to send, which is then read and dropped
                body._continue = False
                c.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        no_body = status < 200 or status in (204, 304)
        if no_body:
            pass
        elif content_length is not None:
            h.append(("Content-Length", str(content_length)))
            self.remaining = content_length
        elif self.head.version == "1.1" and c.chunked_ok:
            h.append(("Transfer-Encoding", "chunked"))
            self.chunked = True
        else:
            self.keep_alive = False  # the body ends when the connection closes
        if self.head.version == "1.1":
            if not self.keep_alive:
                h.append(("Connection", "close"))
            else:
                h.append(("Connection", "keep-alive"))
        elif self.keep_alive:
            h.append(("Connection", "keep-alive"))
        if self.keep_alive and s.keepalive_header:     # keepalive_timeout's second value
            h.append(("Keep-Alive", f"timeout={int(s.keepalive_header)}"))
        if no_body or self.head_only:
            self.chunked = False
            self.head_only = True
        data = response_head_bytes(status, h, "1.1", reason)
        self.bytes_sent += len(data)
        if cork:
            self.pending = [data]
        else:
            c.write(data)

    def write(self, data: bytes) -> None:
        if not data or self.head_only or self.aborted:
            return
        self.body_bytes_sent += len(data)
        self.bytes_sent += len(data)
        if self.chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        if self.pending is not None:
            self.pending.append(data)
        else:
            self.conn.write(data)

    def flush(self) -> None:
        """Write what `cork` held back."""
        p = self.pending
        if p is not None:
            self.pending = None
            self.conn.write(p[0] if len(p) == 1 else b"".join(p))

    async def drain(self) -> None:
        await self.conn.drain()

    def send_continue(self) -> None:
        """`100 Continue`, unless the response has started."""
        self.conn.send_continue()

    def discard_body(self) -> int:
        """nginx discards an unread body before such a response by reading what has arrived
        through its chunked parser: a bad chunk already here (a runaway chunk...) makes the
        answer its 400 instead (the error page, and the connection closed). Once only: after
        that, or after a reader saw the error, the body counts as handled. A bad chunk that
        arrives after the response is dropped with the connection (protocol_error)."""
        body = self.body
        err = body.error
        if err is None or body.error_seen:
            return 0
        body.error_seen = True
        return err.status if isinstance(err, ProtocolError) else 0

    @property
    def write_blocked(self) -> bool:
        """`drain()` has something to do: the transport asked us to pause, or it is gone."""
        c = self.conn
        return c._write_paused or c.closed

    async def sendfile(self, f: Any, offset: int, count: int) -> None:
        """Send `count` bytes of an open file. Uses the kernel's sendfile when the transport
        allows."""
        self.flush()
        if self.head_only or count <= 0:
            return
        self.body_bytes_sent += count
        self.bytes_sent += count
        if self.chunked:
            self.conn.write(b"%x\r\n" % count)
        await self.conn.sendfile(f, offset, count)
        if self.chunked:
            self.conn.write(b"\r\n")

    def end(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self.chunked and not self.aborted:
            if self.pending is not None:
                self.pending.append(b"0\r\n\r\n")
            else:
                self.conn.write(b"0\r\n\r\n")
        if self.pending is not None:
            self.flush()
        self.conn.exchange_done(self)

    def abort(self) -> None:
        """Stop mid-response: the client must see an incomplete message, never a complete one."""
        self.pending = None
        self.aborted = True
        self.keep_alive = False
        self.finished = True
        # closed before any response (`return 444`): reset if reset_timedout_connection
        st = self.settings
        self.conn.abort(not self.started and st is not None and st.reset_timedout_connection)
        self.conn.exchange_done(self)


Handler = Callable[[Exchange, ConnectionInfo, Any], Any]


def _resets(s: Settings | None, listener: Listener) -> bool:
    """reset_timedout_connection for a connection closed on a timeout: the request's
    location's, else the default server's (what nginx's request has then)."""
    if s is None:
        s = listener.default_server.settings
    return s.reset_timedout_connection


class ClientConnection(asyncio.Protocol):
    def __init__(self, runtime: ConnectionOwner, listener: Listener, scheme: str = "http"
                 ) -> None:
        self.runtime = runtime          # the owner's callbacks (net.listen), not the Runtime
        self.listener = listener
        self.scheme = scheme
        self.transport: asyncio.Transport | None = None
        self.parser: H1ServerParser | None = None
        self.queue: collections.deque[H1Exchange] = collections.deque()
        self.current: H1Exchange | None = None
        self.closing = False
        self.closed = False
        self.requests = 0
        self.keepalive_requests = 1000
        self.keepalive_timeout = 75.0
        self.chunked_ok = True
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self._deadline = Deadline(asyncio.get_event_loop())
        self._tunnel: Callable[[bytes], None] | None = None
        self._tunnel_lost: Callable[[BaseException | None], None] | None = None
        self.info: ConnectionInfo | None = None
        self.deferred_error: ProtocolError | None = None
        self.task: Flow | asyncio.Task[Any] | None = None   # what runs the current request
        self.loop = asyncio.get_event_loop()
        self.head_deadline = 0.0
        self.last_activity = _monotonic()
        self.started_at = self.loop.time()      # for keepalive_time
        # the body of a finished request, still arriving, read and dropped (nginx's
        # discard_body): until its end nothing else is parsed as a request
        self.discarding: BodyStream | None = None
        self.discard_until = 0.0
        # closing: input is read and dropped (net.closing)
        self.lingering: LingeringClose | None = None
        # the request's lingering_time/_timeout; the default server's until a request has
        # a location
        self.linger_time, self.linger_timeout = \
            lingering_limits(listener.default_server.settings)
        self._unsent = 0                        # response bytes still queued when it ended
        self._close_deadline: CloseDeadline | None = None

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        # what waits in our buffer for a client that does not read is bounded as nginx's
        # busy buffers are (proxy_busy_buffers_size 16k), not uvloop's 64 KiB: the kernel's
        # socket buffer is the real one (issue 14 item 5)
        transport.set_write_buffer_limits(WRITE_HIGH_WATER, 0)  # type: ignore[attr-defined]
        self.info = connection_info(transport, self.listener.key, self.scheme)
        srv = self.listener.default_server
        self.parser = H1ServerParser(self.listener.limits)
        self.keepalive_requests = srv.settings.keepalive_requests
        self.keepalive_timeout = srv.settings.keepalive_timeout
        self.runtime.connection_opened(self)
        self.head_deadline = srv.client_header_timeout
        self._set_timer(srv.client_header_timeout, self._header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel(data)
            return
        parser = self.parser
        if parser is None or self.closed:
            lg = self.lingering
            if lg is not None and not self.closed:
                lg.read()
            return
        if not self.queue and self.current is None and self._deadline.active and \
                self._timer_kind == "keepalive":
            # first bytes of a new request after keep-alive idle: the head deadline starts now
            self._set_timer(self.listener.default_server.client_header_timeout,
                            self._header_timeout)
        try:
            events = parser.feed(data)
        except ProtocolError as e:
            self.protocol_error(e)
            return
        if events:
            # not started yet: a request answered at once (a flow runs in this call) must
            # find the bad bytes read with it as its body's error, as nginx's discard finds
            # them in the buffer that held the request head
            self._dispatch(events, start=False)
        if parser.pending_error is not None:
            err = parser.pending_error
            self.parser = None
            last = self.queue[-1] if self.queue else self.current
            if last is not None and not last.body.complete:
                # the bad bytes are inside that request's body (a runaway chunk...): it is
                # that request's error (nginx's 400), answered by whoever reads the body, or
                # by the discard before a response that reads none (H1Exchange.discard_body)
                self.closing = True
                last.body.fail(err)
            else:
                # good requests came before the bad bytes: answer them, then the error,
                # then close
                self.deferred_error = err
                if self.current is None and not self.queue:
                    self._send_deferred_error()
        if self.current is None and self.queue:
            self._start_next()

    def _dispatch(self, events: list[Any], start: bool = True) -> None:
        for ev in events:
            if type(ev) is Data:
                target = self.queue[-1] if self.queue else self.current
                if target is None:
                    if self.discarding is not None:
                        self._discard_wait()
                elif target is not None:
                    target.body.feed(ev.data)
                    if target.body.buffered > BODY_HIGH_WATER and not self._read_paused:
                        self._read_paused = True
                        assert self.transport is not None
                        self.transport.pause_reading()
            elif type(ev) is Request:
                ex = H1Exchange(self, ev.head)
                self.queue.append(ex)
                if len(self.queue) >= PIPELINE_HIGH_WATER and not self._read_paused:
                    # a client pipelining faster than we answer: stop reading until it waits
                    self._read_paused = True
                    assert self.transport is not None
                    self.transport.pause_reading()
                if ev.head.upgrade is not None:
                    # bytes after an upgrade request are not HTTP: stop parsing
                    break
            elif type(ev) is EndOfMessage:
                target = self.queue[-1] if self.queue else self.current
                if target is not None:
                    target.body.finish()
                elif self.discarding is not None:
                    self._discarded()
        if start and self.current is None and self.queue:
            self._start_next()

    def _start_next(self, pipelined: bool = False) -> None:
        """Start the next queued request; `pipelined` when it arrived while the previous one
        was in flight ($pipe)."""
        ex = self.queue.popleft()
        if self._read_paused and len(self.queue) < PIPELINE_HIGH_WATER:
            self.body_consumed()
        self.current = ex
        self.requests += 1
        assert self.info is not None
        self.info.requests = self.requests
        self.info.pipelined = pipelined
        self._cancel_timer()
        self.start_flow(ex)

    def start_flow(self, ex: H1Exchange) -> None:
        """Run the request at once, without a Task (net.flow); the flow is held by the
        connection and by whatever it waits on."""
        rt = self.runtime
        if rt.shutting_down:
            ex.keep_alive = False
        info = self.info
        assert info is not None
        flow = self.task = Flow(rt.serve(ex, info, self.listener), self.loop)
        if info.pipelined:
            # started from the end of the previous request's flow: a round later, so that
            # a run of pipelined requests answered at once does not nest
            self.loop.call_soon(flow.start)
        else:
            flow.start()

    def body_consumed(self, _n: int = 0) -> None:
        if self._read_paused and self.transport is not None:
            total = sum(e.body.buffered for e in self.queue)
            if self.current is not None:
                total += self.current.body.buffered
            if total < BODY_HIGH_WATER // 2 and len(self.queue) < PIPELINE_HIGH_WATER:
                self._read_paused = False
                self.transport.resume_reading()

    def exchange_done(self, ex: H1Exchange) -> None:
        if ex is not self.current:
            return
        self.current = None
        if ex.on_done is not None:
            ex.on_done()
        if self.closed:
            return
        s = ex.settings or self.listener.default_server.settings
        if not ex.keep_alive or ex.aborted:
            # ngx_http_finalize_connection: lingering_close on drains while the client may
            # still send (e.g. a 413 mid-body), always drains, off closes at once
            how = s.lingering_close
            if not ex.aborted and how != "off" and (how == "always" or not ex.body._done):
                self._lingering_from(s)
                self.linger()
            else:
                self.close()
            return
        if self.closing:
            self.close()
            return
        if ex.settings is not None:
            self.keepalive_timeout = s.keepalive_timeout
        body = ex.body
        if not body._done:
            # nobody read the whole body: it is read and dropped before anything after it
            # is taken for a request (the parser keeps the framing); meanwhile no new request
            # can have been queued
            body.discard()
            self.discarding = body
            self._lingering_from(s)
            self.discard_until = self.loop.time() + self.linger_time
            self.body_consumed()
            self._set_timer(self.linger_timeout, self._discard_timeout, kind="discard")
            return
        if self.queue:
            self._start_next(pipelined=True)
        elif self.deferred_error is not None:
            self._send_deferred_error()
        elif self.parser is not None and self.parser.paused:
            # an upgrade request that did not become a tunnel: back to HTTP
            try:
                events = self.parser.resume()
            except ProtocolError as e:
                self.protocol_error(e)
                return
            self._set_timer(self.keepalive_timeout, self.close, kind="keepalive")
            if events:
                self._dispatch(events)
        else:
            self._idle_wait()

    def _idle_wait(self) -> None:
        """keepalive_timeout once the response has left. As nginx's ngx_http_writer, a
        response whose tail still waits in our buffer is not done: send_timeout bounds each
        wait for progress, so a client that stops reading is let go then, not at the end of
        keepalive_timeout (or never: the close would wait on the same bytes)."""
        tr = self.transport
        n = tr.get_write_buffer_size() if tr is not None else 0
        if n:
            self._unsent = n
            self._set_timer(self.send_timeout(), self._send_wait, kind="keepalive")
        else:
            self._set_timer(self.keepalive_timeout, self.close, kind="keepalive")

    def _send_wait(self) -> None:
        tr = self.transport
        if tr is None or self.closed:
            return
        n = tr.get_write_buffer_size()
        if n and n >= self._unsent:
            self.runtime.log.info("client timed out (110: Connection timed out) while "
                                  "sending response to client", self.info)
            self.abort(_resets(None, self.listener))
        elif n:
            self._unsent = n
            self._set_timer(self.send_timeout(), self._send_wait, kind="keepalive")
        else:
            self._set_timer(self.keepalive_timeout, self.close, kind="keepalive")

    def _lingering_from(self, s: Settings) -> None:
        """The request's lingering_time/_timeout, read only when the connection drains
        (not on every request)."""
        self.linger_time, self.linger_timeout = lingering_limits(s)

    def _discard_wait(self) -> None:
        """More of a discarded body arrived: wait up to lingering_timeout for the next
        bytes, never past lingering_time from the response's end."""
        left = self.discard_until - self.loop.time()
        if left <= 0:
            self.close()
            return
        self._set_timer(min(self.linger_timeout, left), self._discard_timeout, kind="discard")

    def _discard_timeout(self) -> None:
        if self.discarding is not None:
            self.close()

    def linger(self) -> None:
        """nginx's lingering close (ngx_http_set_lingering_close; net.closing.LingeringClose,
        shared with HTTP/2): the connection is closed while the client may still be sending
        (a body not read whole), so the write side is shut after the response and what still
        arrives is read and dropped, within the request's lingering_time/_timeout. A
        transport that cannot half-close is closed at once."""
        tr = self.transport
        if tr is None or self.closed:
            self.close()
            return
        lg = LingeringClose(tr, self.close)
        if not lg.start(self.linger_time, self.linger_timeout):
            self.close()
            return
        self.lingering = lg
        self._drop_timer()              # no request timer runs any more
        self.parser = None              # nothing more is a request
        self.queue.clear()
        self._read_paused = False       # reading was resumed: the client's close is seen

    def _discarded(self) -> None:
        """The discarded body has ended: the connection is idle (or a request follows)."""
        self.discarding = None
        if self.queue or self.closed:
            return                  # _dispatch starts it
        if self.deferred_error is not None:
            self._send_deferred_error()
        elif self.parser_has_partial():
            self._set_timer(self.listener.default_server.client_header_timeout,
                            self._header_timeout)
        else:
            self._set_timer(self.keepalive_timeout, self.close, kind="keepalive")

    def eof_received(self) -> bool | None:
        if self._tunnel is not None:
            if self._tunnel_lost is not None:
                self._tunnel_lost(None)
            return True
        # A client that half-closes after sending a request still gets its answer.
        if self.parser is not None:
            try:
                self._dispatch(self.parser.feed_eof())
            except ProtocolError:
                pass
        for ex in [self.current, *self.queue]:
            if ex is not None and not ex.body.complete:
                ex.body.fail(ClientGone("client prematurely closed connection"))
        # As nginx: a client that closes its side while a request is in flight has gone
        # away (499); the upstream exchange is stopped rather than finished for nobody.
        self.close()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._drop_timer()
        if self.lingering is not None:
            self.lingering.stop()
        if self._close_deadline is not None:
            self._close_deadline.cancel()
            self._close_deadline = None
        if self._tunnel_lost is not None:
            self._tunnel_lost(exc)
        gone = ClientGone("client closed connection")
        t = self.task
        cur = self.current
        if t is not None and not t.done() and cur is not None and not cur.finished and \
                (cur.settings is None or not cur.settings.proxy_ignore_client_abort):
            # nobody is left to answer: stop the request (and its upstream exchange) now,
            # unless proxy_ignore_client_abort lets the upstream exchange finish
            t.cancel()
        for ex in [self.current, *self.queue]:
            if ex is not None:
                ex.aborted = True
                if not ex.body.complete:
                    ex.body.fail(gone)
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_exception(gone)
        self.runtime.connection_closed(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- writing ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ClientGone("client closed connection")
        if not self._write_paused:
            return
        # a Future and a timer, not asyncio.wait_for (a Task per wait): a response larger
        # than the socket's buffer waits here once per write
        loop = self.loop
        w = self._drain_waiter = loop.create_future()
        timer = loop.call_later(self.send_timeout(), expire, w)
        try:
            await w
        finally:
            timer.cancel()
            self._drain_waiter = None
        if w.result() is TIMED_OUT:
            self.runtime.log.info("client timed out (110: Connection timed out) while sending "
                                  "response to client", self.info)
            cur = self.current
            self.abort(_resets(cur.settings if cur is not None else None, self.listener))
            raise ClientGone("send timeout")

    def send_timeout(self) -> float:
        return self.listener.default_server.settings.send_timeout

    async def sendfile(self, f: Any, offset: int, count: int) -> None:
        """Send part of a file. uvloop has no loop.sendfile, so: while nothing is queued in
        the transport, the kernel's sendfile(2) writes straight to the socket,
        SENDFILE_MAX_CHUNK at most before the loop is given a turn (nginx's
        sendfile_max_chunk: one fast client must not keep the worker); when the socket is
        full, a pread chunk larger than the transport's high-water mark goes through the
        transport, whose drain (it resumes only when empty) is then the wait for the socket
        to take more. Over TLS, pread chunks only."""
        tr = self.transport
        if tr is None or self.closed:
            raise ClientGone("client closed connection")
        fd = f.fileno()
        sock = tr.get_extra_info("socket") if tr.get_extra_info("ssl_object") is None \
            else None
        sock_fd = sock.fileno() if sock is not None else -1
        turn = 0
        while count > 0:
            if sock_fd >= 0 and tr.get_write_buffer_size() == 0:
                try:
                    n = os.sendfile(sock_fd, fd, offset, min(count, SENDFILE_MAX_CHUNK))
                except BlockingIOError:
                    n = -1
                except OSError as e:
                    raise ClientGone(str(e)) from None
                if n > 0:
                    offset += n
                    count -= n
                    turn += n
                    if turn >= SENDFILE_MAX_CHUNK and count > 0:
                        turn = 0
                        await asyncio.sleep(0)
                        if self.closed:
                            raise ClientGone("client closed connection")
                    continue
            chunk = os.pread(fd, min(count, SENDFILE_PREAD), offset)
            if not chunk:
                # the file shrank under us: the response cannot be completed
                self.abort()
                raise ClientGone("file truncated while sending")
            tr.write(chunk)
            offset += len(chunk)
            count -= len(chunk)
            turn = 0
            await self.drain()

    def send_continue(self) -> None:
        ex = self.current
        if ex is not None and not ex.started:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._drop_timer()
        lg = self.lingering
        if lg is not None:
            lg.stop()
        if self.transport is not None and not self.closed:
            self.closed = True
            # what is still queued goes out, within send_timeout between progress
            # (net.closing): a client that stopped reading does not keep the connection
            self._close_deadline = close_within(self.transport, self.send_timeout())

    def abort(self, reset: bool = False) -> None:
        """Close at once, dropping what is unsent; `reset` (reset_timedout_connection):
        with SO_LINGER 0, so that the kernel sends RST and frees the socket's buffers
        instead of a FIN and a FIN_WAIT state (ngx_http_free_request)."""
        self._drop_timer()
        if self.transport is not None:
            self.closed = True
            if reset:
                sock = self.transport.get_extra_info("socket")
                if sock is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                    except OSError:
                        pass
            self.transport.abort()

    def graceful_close(self) -> None:
        """A reload or shutdown: the next response on this connection carries
        `Connection: close`. An idle connection is left open: a client may be sending its
        next request right now (closing it is how nginx drops requests on reload); the
        worker closes idle ones later, spread over its drain window."""
        self.closing = True

    @property
    def idle(self) -> bool:
        """No request in flight, none queued, not a tunnel."""
        return self.current is None and not self.queue and self._tunnel is None

    @property
    def reusable(self) -> bool:
        """nginx's reusable connection (ngx_reusable_connection), closed first when the
        worker is full (net.listen.ConnectionTable): waiting for a request not begun, either
        new with nothing read or keep-alive with its response all sent."""
        if self.current is not None or self.queue or self._tunnel is not None or \
                self.closed or self.lingering or self.discarding is not None:
            return False
        if self._timer_kind == "keepalive":
            tr = self.transport
            return tr is not None and not tr.get_write_buffer_size()
        p = self.parser
        return self.requests == 0 and p is not None and not p.has_partial()

    def _send_deferred_error(self) -> None:
        e = self.deferred_error
        self.deferred_error = None
        if e is not None:
            self.protocol_error(e)

    def protocol_error(self, e: ProtocolError) -> None:
        """Bad bytes from the client: answer with nginx's status and close."""
        self.runtime.log.info(f"client sent invalid request: {e.reason}", self.info)
        self.parser = None
        if self.discarding is not None and self.current is None:
            # the body being discarded is broken: nginx closes without a word
            self.close()
            return
        if self.current is not None:
            self.closing = True
            body = self.current.body
            if not body.complete:
                # the current request's own body is bad (a runaway chunk...): whoever reads
                # it answers nginx's status for it (400), never a complete exchange
                body.fail(e)
            # else a later pipelined request was bad: finish the current one, then close
            return
        self.queue.clear()
        self.refuse(e.status)

    def refuse(self, status: int, why: str = "") -> None:
        """Answer a request that could not be read (no request line: $request is "-") with
        `status` through the owner's refusal path, then close."""
        head = RequestHead("", "", "/", None, "1.1", [], "", None, False, False)
        ex = H1Exchange(self, head)
        ex.keep_alive = False
        self.current = ex
        assert self.info is not None
        rt = self.runtime
        t = self.loop.create_task(rt.refuse(ex, self.info, self.listener, status, why))
        rt.tasks.add(t)
        t.add_done_callback(rt.tasks.discard)

    # -- timers ----------------------------------------------------------------------------
    # One deadline per connection (header, keep-alive), kept lazily (net.deadline): a busy
    # keep-alive connection makes no timer calls per request.

    _timer_kind = ""

    def _set_timer(self, delay: float, cb: Callable[[], None], kind: str = "header") -> None:
        if not delay or delay <= 0:
            self._cancel_timer()
            return
        self._timer_kind = kind
        self._deadline.set(delay, cb)

    def _cancel_timer(self) -> None:
        self._deadline.clear()
        self._timer_kind = ""

    def _drop_timer(self) -> None:
        """The connection is ending: cancel the loop timer too."""
        self._deadline.drop()
        self._timer_kind = ""

    def _header_timeout(self) -> None:
        if self.current is None and not self.queue:
            # nginx answers a request head that never completes with 408 and closes
            if self.parser is not None and self.parser_has_partial():
                self.refuse(408, "client timed out (110: Connection timed out) while "
                            "reading client request headers")
            else:
                self.close()

    def parser_has_partial(self) -> bool:
        p = self.parser
        return bool(p is not None and getattr(p, "has_partial", lambda: True)())

    # -- tunnels ---------------------------------------------------------------------------

    def detach(self, on_data: Callable[[bytes], None],
               on_lost: Callable[[BaseException | None], None]) -> bytes:
        """Turn this connection into a raw byte pipe; returns bytes already read past the
        request head."""
        self._drop_timer()
        self._tunnel = on_data
        self._tunnel_lost = on_lost
        leftover = b""
        if self.parser is not None:
            leftover = self.parser.take_unparsed()
            self.parser = None
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        return leftover


def worker_pid() -> int:
    return os.getpid()
