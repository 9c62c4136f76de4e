"""A deadline kept lazily: the timer a connection re-arms on every request, for nothing.

A keep-alive client connection moves its deadline at every request (header timeout, then
keep-alive idle), an upstream connection at every read (`proxy_read_timeout` is the gap
between reads). Cancelling and creating a loop timer each time costs more than the request's
routing. `Deadline.set` only stores the new time; the one loop timer behind it is created when
none is pending (or the new time is earlier), and when it fires before the stored time it
re-arms itself for that time. `clear` forgets the time (the timer will find nothing to do);
`drop` cancels the timer too, for a connection that is going away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    __slots__ = ("loop", "when", "callback", "handle", "armed_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.when: float | None = None          # loop time, or None: nothing is due
        self.callback: Callable[[], None] | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.armed_at = 0.0

    @property
    def active(self) -> bool:
        return self.when is not None

    def set(self, delay: float, callback: Callable[[], None]) -> None:
        """`callback()` in `delay` seconds, replacing whatever was due."""
        when = self.loop.time() + delay
        self.when = when
        self.callback = callback
        h = self.handle
        if h is None or self.armed_at > when:
            if h is not None:
                h.cancel()
            self.handle = self.loop.call_at(when, self._fire)
            self.armed_at = when

    def clear(self) -> None:
        self.when = None

    def drop(self) -> None:
        self.when = None
        self.callback = None
        h = self.handle
        if h is not None:
            h.cancel()
            self.handle = None

    def _fire(self) -> None:
        self.handle = None
        when = self.when
        if when is None:
            return
        if self.loop.time() < when:
            self.handle = self.loop.call_at(when, self._fire)
            self.armed_at = when
            return
        cb = self.callback
        self.when = None
        if cb is not None:
            cb()
