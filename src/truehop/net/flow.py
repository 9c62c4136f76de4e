"""A request's coroutine, run without an asyncio.Task.

Every HTTP/1 request is one coroutine (the pipeline, down to the upstream exchange). Run as a
Task it costs, per request: the Task, a first step scheduled on the loop, and for each wait on
the upstream a Future, its callback, another loop round and the Task's wake-up. Measured with
callgrind (bench/instructions_per_request.py), running requests as flows saved 2.7% of a
proxied request's instructions (376,540 -> 366,346).

`Flow` drives the same coroutine itself:
* it starts at once (in the `data_received` that completed the request head) and runs until
  the coroutine first waits: a request answered from memory or disk may finish right there;
* a wait on an asyncio Future (drain, connect, sleep, a body read...) is handled as a Task
  would: the coroutine is resumed, with the Future's outcome, from the Future's callback;
* a wait through `suspend()` is the fast one: the awaiting code has registered the flow with
  a protocol (`current_flow()`), which resumes it straight from its own callback
  (`Flow.resume`), with no Future and no loop round. The upstream connection does this when it
  waits for response bytes.

`cancel()` throws CancelledError into the coroutine at its wait, on the next loop round (as
`Task.cancel`, never from inside the caller's callback). Code run in a flow sees no current
Task: nothing in truehop's request path asks for one (`asyncio.timeout` would).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Final


class _Running:
    """Which flow's coroutine runs now. An attribute of a Final instance, not a module
    global: the compiled build reads a global through the module's dict, an attribute
    directly."""

    __slots__ = ("flow",)

    def __init__(self) -> None:
        self.flow: Flow | None = None


_RUNNING: Final = _Running()
# read on every flow's end: a Final name, not a lookup of asyncio's attribute each time
_CANCELLED: Final = asyncio.CancelledError


def current_flow() -> Flow | None:
    """The flow whose coroutine is running now, if any (None inside an asyncio Task)."""
    return _RUNNING.flow


class _Direct:
    """What a coroutine yields to its flow to wait for a direct `resume`."""

    __slots__ = ()


DIRECT: Final = _Direct()


class _Suspend:
    __slots__ = ()

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield DIRECT)


_SUSPEND: Final = _Suspend()


def suspend() -> _Suspend:
    """Await this to wait until someone calls `current_flow().resume(value)`; the await
    returns `value`. Only inside a flow (check `current_flow()` first)."""
    return _SUSPEND


class _Finished:
    """What `_drive` yields once the request's coroutine has returned."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, Any, Any]:
        yield self


_FINISHED: Final = _Finished()


async def _drive(coro: Coroutine[Any, Any, Any]) -> None:
    """The coroutine a flow steps: the request's, then one more wait that never ends. Its
    end is seen as a value (`_FINISHED`), not as the StopIteration that `send` raises when
    a coroutine returns: in the compiled build that exception cost a traceback entry and
    its exception state, about 5,000 instructions a request. The suspended wrapper is then
    dropped."""
    await coro
    await _FINISHED


class Flow:
    __slots__ = ("coro", "request", "loop", "waiting", "running", "started", "must_cancel",
                 "finished", "on_done")

    def __init__(self, coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop,
                 on_done: Callable[[Flow], None] | None = None) -> None:
        self.request = coro
        self.coro = _drive(coro)
        self.loop = loop
        self.waiting: Any = None        # the Future waited on, DIRECT, or None
        self.running = False
        self.started = False
        self.must_cancel = False
        self.finished = False
        self.on_done = on_done

    def start(self) -> None:
        if not self.finished and not self.running:
            self._step(None, None)

    def done(self) -> bool:
        return self.finished

    def resume(self, value: Any = None) -> None:
        """Continue a flow waiting in `suspend()`; that await returns `value`."""
        if self.waiting is DIRECT and not self.running:
            self.waiting = None
            self._step(value, None)

    def cancel(self) -> None:
        if self.finished or self.must_cancel:
            return
        self.must_cancel = True
        if not self.running:
            self.loop.call_soon(self._cancel_now)

    def _cancel_now(self) -> None:
        if self.finished or self.running:
            return
        w = self.waiting
        self.waiting = None
        if isinstance(w, asyncio.Future):
            w.remove_done_callback(self._wakeup)
            w.cancel()
        self.must_cancel = False
        if not self.started:
            # cancelled before its first step: closed unrun, as a Task closes it
            self.coro.close()
            self.request.close()
            self._finish()
            return
        self._step(None, asyncio.CancelledError())

    def _wakeup(self, fut: asyncio.Future[Any]) -> None:
        if self.waiting is fut:
            self.waiting = None
            self._step(None, None)   # the coroutine reads the Future's outcome itself

    def _step(self, value: Any, exc: BaseException | None) -> None:
        running = _RUNNING
        prev = running.flow
        running.flow = self
        self.running = True
        self.started = True
        try:
            if exc is None:
                y = self.coro.send(value)
            else:
                y = self.coro.throw(exc)
        except (StopIteration, _CANCELLED):
            self._finish()
            return
        except BaseException as e:
            self._finish()
            if not isinstance(e, Exception):
                raise
            self.loop.call_exception_handler({"message": "request flow failed", "exception": e})
            return
        finally:
            self.running = False
            running.flow = prev
        if y is DIRECT:
            self.waiting = DIRECT
        elif y is _FINISHED:
            self._finish()
            return
        elif y is None:
            self.waiting = None              # a bare yield (sleep(0)): next loop round
            self.loop.call_soon(self._step, None, None)
        else:
            y._asyncio_future_blocking = False
            self.waiting = y
            y.add_done_callback(self._wakeup)
        if self.must_cancel:
            self.loop.call_soon(self._cancel_now)

    def _finish(self) -> None:
        self.finished = True
        self.waiting = None
        cb = self.on_done
        if cb is not None:
            self.on_done = None
            cb(self)
