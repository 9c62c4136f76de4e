"""Closing a client connection with a deadline.

asyncio's `transport.close()` (uvloop's too) sends what is queued, then closes, and waits
for that without a deadline: for a client that stopped reading, for ever. The connection
stays ESTABLISHED, `connection_lost` never runs, and it keeps its `worker_connections` slot
and its buffers. nginx's close(2) hands what is unsent to the kernel and frees the
connection at once; the bytes still queued here are ours to bound. So every close has a
deadline, as nginx's `send_timeout` between two successive writes: the transport is aborted
when its write buffer has not moved for `timeout` seconds. A client still reading, however
slowly, gets the whole response; one that never reads is let go.

Before that close, `LingeringClose`: the lingering read both HTTP/1 and HTTP/2 do when the
client may still be sending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class CloseDeadline:
    """Aborts a closing transport whose write buffer makes no progress. `cancel()` it from
    `connection_lost`."""

    __slots__ = ("transport", "timeout", "left", "handle")

    def __init__(self, transport: Any, timeout: float, left: int) -> None:
        self.transport = transport
        self.timeout = timeout
        self.left = left
        self.handle: asyncio.TimerHandle | None = \
            asyncio.get_running_loop().call_later(timeout, self._check)

    def _check(self) -> None:
        self.handle = None
        tr = self.transport
        try:
            left = int(tr.get_write_buffer_size())
        except (AttributeError, RuntimeError):
            left = 0
        if not left:
            return                  # drained: the close completes on its own
        if left < self.left:
            # the client read some: another send_timeout for the rest
            self.left = left
            self.handle = asyncio.get_running_loop().call_later(self.timeout, self._check)
            return
        try:
            tr.abort()
        except RuntimeError:
            pass

    def cancel(self) -> None:
        h = self.handle
        if h is not None:
            h.cancel()
            self.handle = None
        self.transport = None


def close_within(transport: Any, timeout: float) -> CloseDeadline | None:
    """`transport.close()`, and its abort if what it still has to send does not move for
    `timeout` seconds; None when nothing was queued (the close is immediate)."""
    transport.close()
    try:
        left = int(transport.get_write_buffer_size())
    except (AttributeError, RuntimeError):
        return None
    if not left:
        return None
    return CloseDeadline(transport, timeout if timeout > 0 else 60.0, left)


class LingeringClose:
    """nginx's lingering close, for HTTP/1 (ngx_http_set_lingering_close) and HTTP/2
    (ngx_http_v2_lingering_close) alike: closing a socket while the client may still be
    sending (a body not read whole, a PING or WINDOW_UPDATE in flight) makes the kernel answer
    those bytes with a reset, which can destroy the response before the client has read it.
    So the write side is shut after what is queued, and what still arrives is read and
    dropped (`read`) until the client closes, or lingering_timeout passes without bytes, or
    lingering_time in all; then `on_end` closes the connection (with its send deadline).

    Where the two protocols differ, as nginx does, the difference stays with the caller:
    * whether to linger: HTTP/1 decides per request (ngx_http_finalize_connection:
      lingering_close `on` while the client may still send, `always`, `off`) with the
      request's location settings; HTTP/2 lingers unless `off`, with the connection's
      default server's settings (ngx_http_v2_lingering_close reads no request's);
    * what goes first: HTTP/2 queues a GOAWAY naming the last stream before `start`;
    * TLS: net.tls's transport half-closes with close_notify first (ngx_ssl_shutdown, then
      shutdown(SHUT_WR)); a transport that cannot half-close is not lingered on at all
      (`start` returns False and the caller closes at once), for both protocols.
    """

    __slots__ = ("transport", "loop", "on_end", "until", "timeout", "timer")

    def __init__(self, transport: Any, on_end: Callable[[], None]) -> None:
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.on_end = on_end
        self.until = 0.0
        self.timeout = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def start(self, lingering_time: float, lingering_timeout: float) -> bool:
        """Shut the write side (after the queued bytes; the read side stays open) and wait
        for the client. False, with nothing started, when the transport cannot half-close."""
        tr = self.transport
        try:
            half = bool(tr.can_write_eof()) and not tr.is_closing()
        except (AttributeError, NotImplementedError):
            half = False
        if not half:
            return False
        try:
            tr.write_eof()
        except (OSError, RuntimeError):
            return False
        self.timeout = lingering_timeout
        self.until = self.loop.time() + lingering_time
        self.timer = self.loop.call_later(lingering_timeout, self._expired)
        try:
            if not tr.is_reading():
                tr.resume_reading()         # a paused reader must see the client's close
        except (AttributeError, NotImplementedError, RuntimeError):
            pass
        return True

    @property
    def waiting(self) -> bool:
        """Lingering still: neither ended by its timers nor stopped."""
        return self.timer is not None

    def read(self) -> None:
        """Bytes from the client while lingering: dropped (the caller does not parse them);
        the wait starts again, within lingering_time in all
        (ngx_http_lingering_close_handler, ngx_http_v2_lingering_close_handler)."""
        t = self.timer
        if t is None:
            return                          # ended already
        t.cancel()
        left = self.until - self.loop.time()
        if left <= 0:
            self._expired()
            return
        self.timer = self.loop.call_later(min(left, self.timeout), self._expired)

    def _expired(self) -> None:
        self.timer = None
        self.on_end()

    def stop(self) -> None:
        """No more waiting: the connection closes (or is lost) some other way."""
        t = self.timer
        if t is not None:
            t.cancel()
            self.timer = None
