"""The client side of an HTTP/2 connection: an asyncio.Protocol over the sans-IO `H2Server`.

Theory of operation. Bytes go to `H2Server.feed`; each valid request becomes an `H2Exchange`
(the same interface as `http.exchange.Exchange`, which is all the pipeline uses) and runs through
the owner's `serve` (net.listen) as a `net.flow.Flow`, as HTTP/1 requests do: no asyncio Task,
the pipeline runs at once until it first waits. Requests are started only after the whole
read was processed, so a stream opened and reset in the same read never reaches the pipeline;
a stream reset later cancels its flow (the client is gone: 499), and a flow that ends without
having ended its exchange (cancelled before it ran, stopped by a bug) has the stream ended for
it (`H2Exchange.flow_done`). A request the sans-IO layer refused with a status (absolute
`:path`, `:method` with a space...), or whose server allows no HTTP/2 (the owner's
`http2_refusal`: 421), is answered through the owner's `refuse` path on its stream only.
A request with `content-length: 0` whose stream stays open starts at once; DATA on it fails
its body (400 when the proxy reads the body whole, never forwarded: bad-input.md H02), as
nginx, which reads that empty body like any other.

Back-pressure. Request bodies, as nginx's flow control: a stream's window is the preread one
(64k) until the pipeline first reads the body (`H2Exchange.body_wanted`): a body read whole is
then opened to the largest window, a streamed one to its client_body_buffer_size, and what is
read is acknowledged (WINDOW_UPDATE) as the reader takes it; a body nobody reads keeps the
preread window, and the stream is reset with NO_ERROR after the response. Responses: `write` queues in the sans-IO layer, which sends within the
client's windows; `drain` waits while more than `STREAM_HIGH_WATER` bytes wait for window or
the transport is paused, bounded by `send_timeout` between progress.

Closing, as nginx's ngx_http_v2_finalize_connection: GOAWAY naming the last stream, then a
lingering close (ngx_http_v2_lingering_close, net.closing.LingeringClose, shared with HTTP/1):
the write side is shut (after what is queued has gone out) and what the client still sends is
read and dropped until it closes, for at most lingering_timeout between reads and
lingering_time in all (5 s and 30 s by default). Closing the socket at once would make the
kernel answer the client's next frame (a PING, a WINDOW_UPDATE) with a reset that destroys the
response and GOAWAY the client has not read yet.

Graceful shutdown waits for the streams as the owner waits for every connection: a connection
with a stream registered (`current`) is busy. When the connection is lost, its streams' flows,
cancelled, are handed to the owner's `tasks` until they end (each logs its 499), as their
Tasks were. Timers, as nginx's: the first
stream is awaited for `client_header_timeout`, the next ones for `keepalive_timeout`; the
connection's last stream is decided by keepalive_requests / keepalive_time / keepalive_timeout
0 when a stream opens (see `H2Server.accept_until`).

The owner (net.listen: the runtime) and the worker read what they read on every connection
(net.listen.ClientSide): `current` (an active exchange or None), `queue` (always empty),
`closing` (setting it sends GOAWAY), `close()`, `abort()`, `graceful_close()`; the worker also
`info`, `listener` and `_tunnel` (None).
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Coroutine
from typing import Any, Final

from truehop.http.events import ProtocolError, RequestHead
from truehop.http.exchange import TIMED_OUT, BodyStream, ClientGone, Exchange, expire
from truehop.http.h2 import (
    INTERNAL_ERROR,
    MAX_WINDOW,
    ConnectionEnded,
    GoAwayComplete,
    H2Limits,
    H2Server,
    StreamBodyError,
    StreamData,
    StreamEnded,
    StreamError,
    StreamRequest,
    StreamReset,
    WindowOpened,
)
from truehop.net.closing import CloseDeadline, LingeringClose, close_within
from truehop.net.connection import connection_info, lingering_limits
from truehop.net.flow import Flow
from truehop.net.listen import ConnectionOwner, Listener
from truehop.route.state import ConnectionInfo

STREAM_HIGH_WATER: Final = 64 * 1024      # queued response bytes per stream before drain() waits
GOAWAY_GRACE: Final = 5.0                 # draining: GOAWAY even to a connection never idle


def limits_for(listener: Listener) -> H2Limits:
    srv = listener.default_server
    lim = listener.limits
    st = srv.settings
    # keepalive_timeout 0: the first stream is the last (nginx sends GOAWAY with it)
    max_requests = 1 if st.keepalive_timeout <= 0 else st.keepalive_requests
    return H2Limits(max_concurrent_streams=srv.http2_max_concurrent_streams,
                    max_requests=max_requests,
                    max_lifetime=st.keepalive_time,
                    # large_client_header_buffers: one HPACK string, and the whole list
                    max_field_size=lim.max_header_line,
                    header_limit=lim.max_headers_total,
                    max_header_count=lim.max_header_count,
                    underscores_in_headers=lim.underscores_in_headers,
                    ignore_invalid_headers=lim.ignore_invalid_headers)


def H2Body(ex: H2Exchange, length: int | None, expect_continue: bool,
           end_stream: bool) -> BodyStream:
    """A request body on one stream: its first read opens the stream's flow-control window
    (`H2Exchange.body_wanted`), each read gives back the room it frees."""
    body = BodyStream(ex.consumed, ex.body_wanted, not end_stream, length)
    body.expect_continue = expect_continue
    return body


class H2Exchange(Exchange):
    """One stream: the request and the response being written for it."""

    __slots__ = ("conn", "sid", "end_sent", "task", "launched", "corked")

    def __init__(self, conn: H2Connection, sid: int, head: RequestHead,
                 end_stream: bool) -> None:
        self.conn = conn
        self.sid = sid
        self.head = head
        expect = (head.get("expect") or "").lower() == "100-continue" and not end_stream
        self.body = H2Body(self, head.content_length if not head.chunked else None, expect,
                           end_stream)
        if end_stream:
            self.body.finish()
        self.started = False
        self.finished = False
        self.status = 0
        self.bytes_sent = 0
        self.body_bytes_sent = 0
        self.keep_alive = True
        self.chunked = False
        self.head_only = head.method == "HEAD"
        self.aborted = False
        self.remaining = None
        self.on_done = None
        self.settings = None    # HTTP/2 keep-alive is per connection, not per location
        self.end_sent = False
        self.task: Flow | None = None     # what runs the stream's request (net.flow)
        self.launched = False
        self.corked = False

    def flow_done(self, flow: Flow) -> None:
        """The stream's flow has ended (net.flow's `on_done`). Normally the pipeline ended
        the exchange; a flow cancelled before it ran, or stopped by a bug, did not: the
        stream ends here, reset when its response never ended."""
        c = self.conn
        if c.streams.get(self.sid) is self:
            self.finished = True
            self.aborted = self.aborted or not self.end_sent
            c.exchange_done(self)
        if c.closed:
            c.runtime.tasks.discard(flow)   # handed over by connection_lost

    # -- request body flow control ---------------------------------------------------------

    def consumed(self, flow: int) -> None:
        c = self.conn
        if flow and not c.closed:
            c.server.ack(self.sid, flow)
            c.flush()

    def body_wanted(self) -> None:
        """The body's first read, as ngx_http_v2_read_request_body: the stream's window, the
        initial (preread) one so far, is opened for the reader. A body read whole (to memory,
        then a temp file) is not flow-controlled any more: the window goes to MAX_WINDOW. A
        body streamed to the upstream gets a window of its buffer, client_body_buffer_size
        (or the declared length + 1 when that is smaller), at least the preread window, and
        reads give it back as they drain it."""
        if self.body.expect_continue:
            self.send_continue()
        c = self.conn
        s = self.settings
        if s is None or c.closed or self.body._done:
            return
        if self.body.whole:
            size = MAX_WINDOW
        else:
            n = self.head.content_length
            size = s.client_body_buffer_size
            if n is not None and n <= size:
                size = n + 1
            size -= c.server.limits.initial_window
        if size > 0:
            c.server.open_window(self.sid, size)
            c.flush()

    def send_continue(self) -> None:
        c = self.conn
        if not self.started and not self.aborted and not c.closed:
            c.server.send_informational(self.sid, 100)
            c.flush()

    # -- writing the response --------------------------------------------------------------

    def start_response(self, status: int, headers: list[tuple[str, str]],
                       content_length: int | None, reason: str | None = None,
                       close: bool = False, cork: bool = False) -> None:
        """HEADERS with `:status`. `close` and `reason` have no meaning on a stream. `cork`:
        the frames wait in the connection's buffer until `flush` or `end`."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        h = list(headers)
        no_body = status < 200 or status in (204, 304)
        if not no_body and content_length is not None:
            h.append(("content-length", str(content_length)))
            self.remaining = content_length
        if no_body or self.head_only:
            self.head_only = True
        end_now = self.head_only or content_length == 0
        c = self.conn
        self.bytes_sent += 9 + sum(len(k) + len(v) + 2 for k, v in h) + 12
        if self.aborted or c.closed:
            return
        if c.server.send_response(self.sid, status, h, end_stream=end_now) and end_now:
            self.end_sent = True
        if cork and not self.end_sent:
            self.corked = True
        else:
            c.flush()

    def write(self, data: bytes) -> None:
        if not data or self.head_only or self.aborted or self.end_sent:
            return
        self.body_bytes_sent += len(data)
        self.bytes_sent += len(data)
        c = self.conn
        if c.closed:
            return
        c.server.send_body(self.sid, data)
        if not self.corked:
            c.flush()

    def flush(self) -> None:
        if self.corked:
            self.corked = False
            if not self.conn.closed:
                self.conn.flush()

    @property
    def write_blocked(self) -> bool:
        """Always: HTTP/2 flow control is per stream, `drain` decides."""
        return True

    async def drain(self) -> None:
        await self.conn.drain_stream(self)

    async def sendfile(self, f: Any, offset: int, count: int) -> None:
        self.flush()
        if self.head_only or count <= 0:
            return
        fd = f.fileno()
        while count > 0:
            chunk = os.pread(fd, min(count, 64 * 1024), offset)
            if not chunk:
                self.abort()
                raise ClientGone("file truncated while sending")
            self.write(chunk)
            offset += len(chunk)
            count -= len(chunk)
            await self.drain()

    def end(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.corked = False
        c = self.conn
        if not self.aborted and not c.closed and not self.end_sent:
            if self.started:
                c.server.send_end(self.sid)
            else:
                c.server.reset(self.sid, INTERNAL_ERROR)
            self.end_sent = True
            c.flush()
        c.exchange_done(self)

    def abort(self) -> None:
        """Stop mid-response: reset this stream (INTERNAL_ERROR), not the connection."""
        was = self.aborted
        self.aborted = True
        self.keep_alive = False
        self.finished = True
        c = self.conn
        if not was and not c.closed and not self.end_sent:
            c.server.reset(self.sid, INTERNAL_ERROR)
            c.flush()
        c.exchange_done(self)


class H2Connection(asyncio.Protocol):
    """See the module docstring."""

    def __init__(self, runtime: ConnectionOwner, listener: Listener, scheme: str = "http",
                 initial: bytes = b"") -> None:
        self.runtime = runtime          # the owner's callbacks (net.listen), not the Runtime
        self.listener = listener
        self.scheme = scheme
        self.transport: Any = None
        self.info: ConnectionInfo | None = None
        self.server = H2Server(limits_for(listener))
        self.streams: dict[int, H2Exchange] = {}
        self.queue: collections.deque[Any] = collections.deque()   # never used on HTTP/2
        self._tunnel: Any = None
        self.task: asyncio.Task[Any] | None = None
        self.closed = False
        self._closing = False
        self.requests = 0
        self._write_paused = False
        self._waiters: list[asyncio.Future[Any]] = []
        self._idle_timer: asyncio.TimerHandle | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._lingering: LingeringClose | None = None
        self._initial = initial
        self._close_deadline: CloseDeadline | None = None
        self.loop = asyncio.get_event_loop()
        self.last_activity = time.monotonic()

    # -- what the runtime and the worker read ---------------------------------------------

    @property
    def current(self) -> H2Exchange | None:
        for ex in self.streams.values():
            return ex
        return None

    @property
    def closing(self) -> bool:
        return self._closing

    @closing.setter
    def closing(self, value: bool) -> None:
        # No GOAWAY while streams are in flight: h2-based clients (httpx) fail every stream
        # still open when a GOAWAY arrives. Streams finish; GOAWAY(last stream) and close
        # come when the connection is idle, or after GOAWAY_GRACE in any case.
        if value and not self._closing:
            self._closing = True
            if self.closed:
                return
            if not self.streams:
                self.close()
            else:
                self.loop.call_later(GOAWAY_GRACE, self._final_goaway)

    def _final_goaway(self) -> None:
        if self.closed:
            return
        self.server.goaway_final()
        self.flush()
        if not self.streams:
            self.close()

    def graceful_close(self) -> None:
        """Reload or shutdown: GOAWAY, let the streams in flight finish, then close."""
        self.closing = True

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.info = connection_info(transport, self.listener.key, self.scheme)
        self.server.start()
        self.flush()
        self.runtime.connection_opened(self)
        if self.closed or (self.transport is not None and self.transport.is_closing()):
            return
        if self.runtime.shutting_down:
            self.closing = True
        if self.closed:
            return
        # as nginx's ngx_http_v2_init: the first stream is awaited for client_header_timeout
        self._set_idle(self.listener.default_server.client_header_timeout)
        data, self._initial = self._initial, b""
        if data:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            lg = self._lingering
            if lg is not None:
                lg.read()           # dropped
            return
        self.last_activity = time.monotonic()
        events = self.server.feed(data)
        start: list[H2Exchange] = []
        bad: list[tuple[H2Exchange, StreamError]] = []
        ended: ConnectionEnded | None = None
        wake = False
        for ev in events:
            t = type(ev)
            if t is StreamRequest:
                assert isinstance(ev, StreamRequest)
                assert self.info is not None
                refused = self.runtime.http2_refusal(self.listener, self.info, ev.head)
                if refused is not None:
                    ex1 = H2Exchange(self, ev.stream_id, ev.head, True)
                    self.streams[ev.stream_id] = ex1
                    bad.append((ex1, StreamError(ev.stream_id, refused[0], refused[1],
                                                 ev.head)))
                    continue
                ex = H2Exchange(self, ev.stream_id, ev.head, ev.end_stream)
                self.streams[ev.stream_id] = ex
                start.append(ex)
            elif t is StreamData:
                assert isinstance(ev, StreamData)
                ex2 = self.streams.get(ev.stream_id)
                if ex2 is not None and not ex2.finished:
                    ex2.body.feed(ev.data, ev.flow)
                else:
                    self.server.ack(ev.stream_id, ev.flow)
            elif t is StreamEnded:
                assert isinstance(ev, StreamEnded)
                ex3 = self.streams.get(ev.stream_id)
                if ex3 is not None:
                    ex3.body.finish()
            elif t is StreamReset:
                assert isinstance(ev, StreamReset)
                self._stream_reset(ev)
                wake = True
            elif t is StreamError:
                assert isinstance(ev, StreamError)
                ex4 = H2Exchange(self, ev.stream_id, ev.head, True)
                self.streams[ev.stream_id] = ex4
                bad.append((ex4, ev))
            elif t is StreamBodyError:
                assert isinstance(ev, StreamBodyError)
                ex5 = self.streams.get(ev.stream_id)
                if ex5 is not None and not ex5.body.complete:
                    # the pipeline answers the status when it reads the body: DATA beyond a
                    # declared length (after `content-length: 0`: bad-input.md H02) makes
                    # the request malformed, 400 and never forwarded when it is buffered,
                    # as nginx (proxy.upstream_request.body_mode reads a pending empty body)
                    if self.info is not None:
                        self.runtime.log.info(ev.reason, self.info)
                    ex5.body.fail(ProtocolError(ev.status, ev.reason))
                    wake = True
            elif t is WindowOpened:
                wake = True
            elif t is GoAwayComplete:
                if not self.streams and not start and not bad:
                    self.close()
                    return
            elif t is ConnectionEnded:
                assert isinstance(ev, ConnectionEnded)
                ended = ev
        if ended is not None:
            self._ended(ended)
            return
        for ex in start:
            if ex.aborted or ex.sid not in self.streams:
                continue    # reset before it could start
            self._launch(ex)
        for ex, err in bad:
            if ex.sid in self.streams and not ex.aborted:
                self._answer_bad(ex, err)
        if wake:
            self._wake()
        self.flush()
        self._header_deadline()
        if self.streams:
            self._cancel_idle()
        elif self.server.accept_until is not None:
            self.close()        # the last stream was refused or reset: nothing to wait for

    def eof_received(self) -> bool | None:
        # a client that half-closes an HTTP/2 connection is gone; once lingering, it has read
        # what we sent and the close is complete
        lg = self._lingering
        if lg is not None and lg.waiting:
            self._close_transport()
            return False
        self.abort()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._cancel_idle()
        self._cancel_linger()
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._close_deadline is not None:
            self._close_deadline.cancel()
            self._close_deadline = None
        gone = ClientGone("client closed connection")
        tasks = self.runtime.tasks
        for ex in list(self.streams.values()):
            ex.aborted = True
            if not ex.body.complete:
                ex.body.fail(gone)
            f = ex.task
            if f is not None and not f.done() and not ex.finished and \
                    (ex.settings is None or not ex.settings.proxy_ignore_client_abort):
                f.cancel()
                # the connection leaves the owner's list now: the worker waits for the
                # flow's end (its 499) through `tasks` (H2Exchange.flow_done takes it out)
                tasks.add(f)
        self._wake()
        self.runtime.connection_closed(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake()

    # -- streams ---------------------------------------------------------------------------

    def _launch(self, ex: H2Exchange) -> None:
        self.requests += 1
        assert self.info is not None
        self.info.requests = self.requests
        rt = self.runtime
        if self._closing or rt.shutting_down:
            ex.keep_alive = False
        self._run(ex, rt.serve(ex, self.info, self.listener))

    def _answer_bad(self, ex: H2Exchange, err: StreamError) -> None:
        rt = self.runtime
        assert self.info is not None
        why = f"{err.reason} while reading client request headers" if err.reason else ""
        self._run(ex, rt.refuse(ex, self.info, self.listener, err.status, why))

    def _run(self, ex: H2Exchange, coro: Coroutine[Any, Any, None]) -> None:
        """Run the stream's request as a flow, at once (called once the whole read has been
        processed: module docstring)."""
        f = ex.task = Flow(coro, self.loop, ex.flow_done)
        ex.launched = True
        f.start()

    def _stream_reset(self, ev: StreamReset) -> None:
        if ev.reason and self.info is not None:
            self.runtime.log.info(f"{ev.reason}, stream {ev.stream_id} reset", self.info)
        ex = self.streams.get(ev.stream_id)
        if ex is None:
            return
        ex.aborted = True
        ex.end_sent = True
        if not ex.body.complete:
            ex.body.fail(ClientGone("client reset the stream"))
        f = ex.task
        if f is not None and not f.done() and not ex.finished and \
                (ex.settings is None or not ex.settings.proxy_ignore_client_abort):
            # stopped at its wait, as a client gone (499); one not yet run (a flow starts at
            # once, so none today) would never start the pipeline
            f.cancel()
        if not ex.launched:
            ex.finished = True
            self.exchange_done(ex)

    def exchange_done(self, ex: H2Exchange) -> None:
        if self.streams.get(ex.sid) is not ex:
            return
        del self.streams[ex.sid]
        if ex.on_done is not None:
            ex.on_done()
        if self.closed:
            return
        unread = ex.body.discard()
        if unread:
            self.server.ack(ex.sid, unread)
        self.server.stream_done(ex.sid)
        self.flush()
        if not self.streams:
            if self._closing or self.server.accept_until is not None:
                self.close()
            else:
                self._set_idle()

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> None:
        tr = self.transport
        if tr is None or self.closed:
            return
        data = self.server.data_to_send()
        if data:
            tr.write(data)

    def _wake(self) -> None:
        ws, self._waiters = self._waiters, []
        for w in ws:
            if not w.done():
                w.set_result(None)

    async def drain_stream(self, ex: H2Exchange) -> None:
        timeout = self.send_timeout()
        while True:
            if self.closed or ex.aborted:
                raise ClientGone("client closed connection" if self.closed else
                                 "client reset the stream")
            if not self._write_paused and self.server.pending(ex.sid) <= STREAM_HIGH_WATER:
                return
            w = self.loop.create_future()
            self._waiters.append(w)
            timer = self.loop.call_later(timeout, expire, w)
            try:
                await w
            finally:
                timer.cancel()
            if w.result() is TIMED_OUT:
                self.runtime.log.info("client timed out (110: Connection timed out) while "
                                      "sending response to client", self.info)
                if self._write_paused:
                    # the connection itself has not moved for send_timeout: closed at once,
                    # as ngx_http_v2_write_handler's timeout (a lingering close would wait on
                    # the same stuck bytes)
                    self.abort()
                else:
                    ex.abort()          # only this stream's window stayed shut
                raise ClientGone("send timeout")

    def send_timeout(self) -> float:
        return self.listener.default_server.settings.send_timeout

    # -- closing ---------------------------------------------------------------------------

    def _ended(self, ev: ConnectionEnded) -> None:
        if self.info is not None:
            self.runtime.log.info(ev.reason, self.info)
        self.flush()
        self._cancel_all_streams()
        self._close_when_flushed()

    def _cancel_all_streams(self) -> None:
        gone = ClientGone("connection closed")
        for ex in list(self.streams.values()):
            ex.aborted = True
            ex.end_sent = True
            if not ex.body.complete:
                ex.body.fail(gone)
            f = ex.task
            if f is not None and not f.done() and not ex.finished and \
                    (ex.settings is None or not ex.settings.proxy_ignore_client_abort):
                f.cancel()
            if not ex.launched:
                ex.finished = True
                self.exchange_done(ex)
        self._wake()

    def _close_when_flushed(self) -> None:
        self.close()

    def close(self) -> None:
        """GOAWAY naming the last stream, then the lingering close (module docstring)."""
        self._cancel_idle()
        if self.transport is not None and not self.closed:
            self.server.goaway_final()
            self.flush()
            self.closed = True
            self._linger()

    def _linger(self) -> None:
        """ngx_http_v2_lingering_close (net.closing.LingeringClose), the GOAWAY queued
        before it: with the default server's lingering_* (it reads the connection's conf,
        not a request's), unless lingering_close is off."""
        s = self.listener.default_server.settings
        if s.lingering_close != "off":
            lg = LingeringClose(self.transport, self._close_transport)
            linger_time, linger_timeout = lingering_limits(s)
            if lg.start(linger_time, linger_timeout):
                self._lingering = lg
                return
        self._close_transport()

    def _close_transport(self) -> None:
        """The socket's close, with a deadline (net.closing): what is still queued goes out
        within send_timeout between progress, or the connection is aborted."""
        self._cancel_linger()
        if self._close_deadline is None:
            self._close_deadline = close_within(self.transport, self.send_timeout())

    def _cancel_linger(self) -> None:
        lg = self._lingering
        if lg is not None:
            lg.stop()

    def abort(self) -> None:
        self._cancel_idle()
        self._cancel_linger()
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    @property
    def reusable(self) -> bool:
        """No stream open, waiting for the next (nginx's idle HTTP/2 connection is
        reusable): closed first, with its GOAWAY, when the worker is full."""
        return not self.streams and self._idle_timer is not None and not self.closed

    # -- timers ----------------------------------------------------------------------------

    def _set_idle(self, t: float | None = None) -> None:
        """Wait `t` (default keepalive_timeout) for the next stream, then close."""
        self._cancel_idle()
        if t is None:
            t = self.listener.default_server.settings.keepalive_timeout
            if t is None:
                t = 75.0
        if t <= 0:
            self.close()
            return
        self._idle_timer = self.loop.call_later(t, self._idle_expired)

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_expired(self) -> None:
        # nginx's idle handler: one GOAWAY(NO_ERROR) naming the last stream, lingering close
        self._idle_timer = None
        if not self.streams and not self.closed:
            self.close()

    def _header_deadline(self) -> None:
        """A header block left open (HEADERS without END_HEADERS, then silence) is bounded
        by client_header_timeout, as nginx."""
        if self.server.header_pending():
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(
                    self.listener.default_server.client_header_timeout, self._header_expired)
        elif self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_expired(self) -> None:
        self._header_timer = None
        if self.server.header_pending() and not self.closed:
            self.runtime.log.info("client timed out (110: Connection timed out) while "
                                  "reading client request headers", self.info)
            self.server.terminate(0x1, "header timeout")
            self.flush()
            self._cancel_all_streams()
            self.close()
