"""A connection to an upstream server: an asyncio.Protocol that turns upstream bytes into
response events (via the sans-IO `H1ResponseParser`) and lets the proxy await them.

The keepalive pool holds these between requests. `is_closed()` is what the pool checks; a
connection the upstream closed while idle is noticed by `connection_lost` and never reused.
The race where the upstream closes just as we reuse the connection shows up as a connection
error before any response byte: the proxy retries an idempotent request once on a fresh
connection (see proxy.upstream).
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from collections.abc import Callable
from typing import Any, Final

from truehop.clock import monotonic as _monotonic
from truehop.http.events import Data, EndOfMessage, ProtocolError
from truehop.http.h1client import H1ResponseParser
from truehop.net.deadline import Deadline
from truehop.net.flow import Flow, current_flow, suspend


class UpstreamError(Exception):
    """A failure talking to the upstream. `kind` mirrors proxy_next_upstream: "error",
    "timeout", "invalid_header"."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(message)


class EventSink:
    """Who takes a response's events as they are parsed, instead of a caller waiting in
    `next_event` (proxy.spool: a buffered response read on while the client is slow). It
    is told from the connection's callbacks; it pops the events itself (`pop_event`) and
    reads `error` / `is_closed()` when none is left."""

    __slots__ = ()

    def upstream_ready(self) -> None:
        """Events were parsed, or the connection failed, ended or was closed."""
        raise NotImplementedError

    def upstream_timed_out(self) -> None:
        """The read deadline set by `arm_read_timeout` passed with nothing read."""
        raise NotImplementedError


class Slots:
    """What counts upstream connections against worker_connections (net.listen's
    ConnectionTable is one); this base counts nothing."""

    limit: int = 0      # worker_connections, for the alert

    def take_upstream(self) -> bool:
        return True

    def release_upstream(self) -> None:
        pass


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, peer_key: tuple[str, int]) -> None:
        self.peer_key = peer_key
        self.transport: asyncio.Transport | None = None
        self.parser: H1ResponseParser | None = None
        self.events: collections.deque[Any] = collections.deque()
        self.waiter: asyncio.Future[Any] | None = None
        self.flow: Flow | None = None   # a request flow waiting in next_event (net.flow)
        self.error: BaseException | None = None
        self.closed = False
        self.eof = False
        self.requests = 0
        self.created = _monotonic()
        self.idle_since = self.created
        self.received_any = False
        self.idle_limit = 0.0   # the upstream's Keep-Alive: timeout, less a margin (proxy.pool)
        self.eof_at = 0.0       # when the upstream closed its side (the pool's detector)
        # reading is paused (`_paused`, the transport's state) while any of these holds:
        self._paused = False
        self._full = False      # more than `high_water` parsed and not taken
        self.held = False       # the sink has no room (`hold`)
        self._yielding = False  # READ_TURN_MAX read in this turn of the loop
        self.turn_at = -1.0     # the loop's time when `turn_bytes` started counting
        self.turn_bytes = 0
        self.sink: EventSink | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.tunnel: Callable[[bytes], None] | None = None
        self.tunnel_lost: Callable[[BaseException | None], None] | None = None
        self.buffered = 0
        self.high_water = 64 * 1024
        self.bytes_in = 0     # read and written since `start`, for $upstream_bytes_*
        self.bytes_out = 0
        self.loop = asyncio.get_event_loop()
        self._deadline = Deadline(self.loop)  # the read deadline, kept lazily (net.deadline)
        self.slots: Slots | None = None       # its worker_connections slot, given back once

    # -- pool protocol ---------------------------------------------------------------------

    def is_closed(self) -> bool:
        return self.closed or self.eof

    def close(self) -> None:
        self._drop_timer()
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        self._drop_timer()
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    def _drop_timer(self) -> None:
        self._deadline.drop()

    def _timed_out(self) -> None:
        sink = self.sink
        if sink is not None:
            sink.upstream_timed_out()
            return
        f = self.flow
        if f is not None:
            f.resume(_TIMED_OUT)
            return
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(_TIMED_OUT)

    # -- asyncio callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel(data)
            return
        self.received_any = True
        n = len(data)
        self.bytes_in += n
        # fairness: libuv reads a readable socket up to 32 times in one turn of the loop
        # (256 KiB each); past READ_TURN_MAX this connection waits for the next turn, so
        # a fast upstream cannot keep the worker from everyone else (issue 14 item 7)
        now = self.loop.time()      # uvloop's clock stands still within a turn
        if now != self.turn_at:
            self.turn_at = now
            self.turn_bytes = n
        else:
            self.turn_bytes += n
        if self.turn_bytes >= READ_TURN_MAX and not self._yielding:
            self._yielding = True
            self._reading()
            self.loop.call_soon(self._next_turn)
        p = self.parser
        if p is None:
            # bytes while idle: the upstream is not speaking HTTP we can trust; drop it
            self.abort()
            return
        try:
            evs = p.feed(data)
        except ProtocolError as e:
            self.error = UpstreamError("invalid_header", e.reason)
            self.abort()
            self._wake()
            return
        if evs:
            self.events.extend(evs)
            for ev in evs:
                if type(ev) is Data:
                    self.buffered += len(ev.data)
            if self.buffered > self.high_water and not self._full:
                self._full = True
                self._reading()
            self._wake()

    def eof_received(self) -> bool | None:
        self.eof = True
        self.eof_at = _monotonic()
        if self.tunnel is not None:
            if self.tunnel_lost is not None:
                self.tunnel_lost(None)
            return True
        p = self.parser
        if p is not None:
            try:
                self.events.extend(p.feed_eof())
            except ProtocolError as e:
                self.error = UpstreamError("error", e.reason)
        self._wake()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._deadline.drop()
        slots = self.slots
        if slots is not None:
            self.slots = None
            slots.release_upstream()
        if self.tunnel_lost is not None:
            self.tunnel_lost(exc)
            return
        if self.parser is not None and not self.eof:
            try:
                self.events.extend(self.parser.feed_eof())
            except ProtocolError as e:
                self.error = UpstreamError("error", e.reason)
        if self.error is None and exc is not None:
            self.error = UpstreamError("error", f"upstream connection lost ({exc})")
        self._wake()
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_exception(UpstreamError("error", "upstream closed connection while sending"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _wake(self) -> None:
        sink = self.sink
        if sink is not None:
            sink.upstream_ready()
            return
        f = self.flow
        if f is not None:
            f.resume()   # the request goes on now, inside this callback
            return
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- the proxy's side ------------------------------------------------------------------

    def start(self, method: str, max_head: int) -> None:
        """Begin a new exchange: a fresh response parser, no stale events."""
        self.parser = H1ResponseParser(method, max_head=max_head)
        self.bytes_in = self.bytes_out = 0
        self.events.clear()
        self.error = None
        self.received_any = False
        self.requests += 1

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise UpstreamError("error", "upstream connection closed")
        self.bytes_out += len(data)
        self.transport.write(data)

    async def drain(self, timeout: float) -> None:
        if self.closed:
            raise UpstreamError("error", "upstream connection closed")
        if not self._write_paused:
            return
        self._drain_waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._drain_waiter, timeout)
        except TimeoutError:
            raise UpstreamError("timeout", "upstream timed out (110: Connection timed out) "
                                           "while sending request to upstream") from None
        finally:
            self._drain_waiter = None

    def pop_event(self) -> Any:
        """The next response event if one is already parsed, else None (never waits)."""
        if not self.events:
            return None
        ev = self.events.popleft()
        if type(ev) is Data:
            self.buffered -= len(ev.data)
            if self._full and self.buffered < self.high_water // 2:
                self._full = False
                self._reading()
        elif type(ev) is EndOfMessage:
            self.parser = None
        return ev

    async def next_event(self, timeout: float) -> Any:
        """The next response event; raises UpstreamError on failure or timeout."""
        while not self.events:
            if self.error is not None:
                raise self.error
            if self.closed or self.eof:
                raise UpstreamError("error", "upstream prematurely closed connection while "
                                             "reading response header from upstream")
            flow = current_flow()
            self._deadline.set(timeout, self._timed_out)
            if flow is not None:
                self.flow = flow
                try:
                    outcome = await suspend()
                finally:
                    self._deadline.clear()
                    self.flow = None
            else:
                w = self.waiter = self.loop.create_future()
                try:
                    await w
                finally:
                    self._deadline.clear()
                    self.waiter = None
                outcome = w.result()
            if outcome is _TIMED_OUT:
                raise UpstreamError("timeout", "upstream timed out (110: Connection timed out) "
                                               "while reading upstream")
        return self.pop_event()

    # -- a sink's controls (proxy.spool) ----------------------------------------------------

    def hold(self) -> None:
        """Stop reading until `unhold`: the sink has no room (its buffers and file are full)."""
        self.held = True
        self._deadline.clear()      # nginx's read timer runs only while it wants to read
        self._reading()

    def unhold(self) -> None:
        self.held = False
        self._reading()

    def _next_turn(self) -> None:
        self._yielding = False
        self.turn_bytes = 0
        self._reading()

    def _reading(self) -> None:
        """Pause or resume reading as the flags say."""
        tr = self.transport
        if tr is None or self.closed:
            return
        pause = self._full or self.held or self._yielding
        if pause != self._paused:
            self._paused = pause
            if pause:
                tr.pause_reading()
            else:
                tr.resume_reading()

    def arm_read_timeout(self, timeout: float) -> None:
        """The sink's read deadline: `upstream_timed_out` unless bytes come within it."""
        self._deadline.set(timeout, self._timed_out)

    def clear_read_timeout(self) -> None:
        self._deadline.clear()

    def finished_cleanly(self) -> bool:
        return self.parser is None and not self.events and not self.closed and not self.eof

    def take_unparsed(self) -> bytes:
        p = self.parser
        self.parser = None
        rest = b""
        for ev in self.events:
            if type(ev) is Data:
                rest += ev.data
        self.events.clear()
        if p is not None:
            rest += p.take_unparsed()
        self._full = self.held = False
        self._reading()
        return rest


_TIMED_OUT: Final = object()
READ_TURN_MAX: Final = 256 * 1024   # read from one upstream in one turn of the loop


async def connect(host: str, port: int, timeout: float, ssl_ctx: ssl.SSLContext | None = None,
                  server_hostname: str | None = None, slots: Slots | None = None
                  ) -> UpstreamConnection:
    """A new connection. `slots`: the worker_connections slot the caller took for it
    (`Slots.take_upstream`); given back when the connection ends, or now if it fails."""
    loop = asyncio.get_running_loop()
    try:
        return await _connect(loop, host, port, timeout, ssl_ctx, server_hostname, slots)
    except BaseException:
        if slots is not None:
            slots.release_upstream()
        raise


async def _connect(loop: asyncio.AbstractEventLoop, host: str, port: int, timeout: float,
                   ssl_ctx: ssl.SSLContext | None, server_hostname: str | None,
                   slots: Slots | None) -> UpstreamConnection:
    try:
        if host.startswith("unix:"):
            opening = loop.create_unix_connection(
                lambda: UpstreamConnection((host, port)), host[5:], ssl=ssl_ctx,
                server_hostname=(server_hostname or "localhost") if ssl_ctx else None)
        else:
            opening = loop.create_connection(
                lambda: UpstreamConnection((host, port)), host, port, ssl=ssl_ctx,
                server_hostname=server_hostname if ssl_ctx else None)
        _, proto = await asyncio.wait_for(opening, timeout)
    except TimeoutError:
        raise UpstreamError("timeout", "upstream timed out (110: Connection timed out) while "
                                       "connecting to upstream") from None
    except ssl.SSLError as e:
        raise UpstreamError("error", f"SSL_do_handshake() failed ({e.reason}) while SSL "
                                     f"handshaking to upstream") from None
    except OSError as e:
        code = e.errno or 111
        # nginx names the socket when connect() itself fails, as it does for unix sockets
        target = f" to {host}" if host.startswith("unix:") else ""
        raise UpstreamError("error", f"connect(){target} failed ({code}: {e.strerror or e}) "
                                     f"while connecting to upstream") from None
    if not proto.closed:
        proto.slots = slots      # connection_lost gives it back from now on
    elif slots is not None:
        slots.release_upstream()     # already lost: it never will
    return proto
