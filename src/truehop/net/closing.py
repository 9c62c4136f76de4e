"""Closing a client connection with a deadline.

asyncio's `transport.close()` (uvloop's too) sends what is queued, then closes, and waits
for that without a deadline: for a client that stopped reading, for ever. The connection
stays ESTABLISHED, `connection_lost` never runs, and it keeps its `worker_connections` slot
and its buffers. nginx's close(2) hands what is unsent to the kernel and frees the
connection at once; the bytes still queued here are ours to bound. So every close has a
deadline, as nginx's `send_timeout` between two successive writes: the transport is aborted
when its write buffer has not moved for `timeout` seconds. A client still reading, however
slowly, gets the whole response; one that never reads is let go.
"""

from __future__ import annotations

import asyncio
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
