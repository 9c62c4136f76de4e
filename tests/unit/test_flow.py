"""net.flow: a request's coroutine driven without an asyncio Task, on a real uvloop loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvloop

from truehop.net.flow import Flow, current_flow, suspend


def run(main: Any) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def test_runs_at_once_until_the_first_wait() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen: list[str] = []
        fut: asyncio.Future[int] = loop.create_future()

        async def body() -> None:
            seen.append("start")
            assert current_flow() is flow
            seen.append(f"got {await fut}")

        done: list[Flow] = []
        flow = Flow(body(), loop, done.append)
        flow.start()
        assert seen == ["start"]            # no loop round was needed to begin
        assert current_flow() is None       # only while the coroutine runs
        fut.set_result(7)
        await asyncio.sleep(0)               # the Future's callback runs on the next round
        await asyncio.sleep(0)
        assert seen == ["start", "got 7"]
        assert flow.done() and done == [flow]
    run(main)


def test_finishes_synchronously_without_a_wait() -> None:
    async def main() -> None:
        out: list[int] = []

        async def body() -> None:
            out.append(1)

        flow = Flow(body(), asyncio.get_running_loop())
        flow.start()
        assert out == [1] and flow.done()
    run(main)


def test_suspend_is_resumed_directly_with_a_value() -> None:
    async def main() -> None:
        got: list[Any] = []
        holder: list[Flow] = []

        async def inner() -> Any:
            f = current_flow()
            assert f is not None
            holder.append(f)
            return await suspend()

        async def body() -> None:
            got.append(await inner())
            got.append(await inner())

        flow = Flow(body(), asyncio.get_running_loop())
        flow.start()
        assert got == []
        holder[0].resume("a")               # runs the flow inside this call, no loop round
        assert got == ["a"]
        flow.resume("b")
        assert got == ["a", "b"] and flow.done()
        flow.resume("late")                  # a resume for a flow not waiting is ignored
    run(main)


def test_cancel_throws_at_the_wait_on_the_next_round() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        events: list[str] = []

        async def body() -> None:
            try:
                await fut
            except asyncio.CancelledError:
                events.append("cancelled")
                raise
            finally:
                events.append("cleanup")

        flow = Flow(body(), loop)
        flow.start()
        flow.cancel()
        assert events == []                  # never from inside the caller's callback
        await asyncio.sleep(0)
        assert events == ["cancelled", "cleanup"]
        assert fut.cancelled() and flow.done()

        events.clear()

        async def direct() -> None:
            try:
                await suspend()
            finally:
                events.append("direct cleanup")

        f2 = Flow(direct(), loop)
        f2.start()
        f2.cancel()
        await asyncio.sleep(0)
        assert events == ["direct cleanup"] and f2.done()
        f2.resume()                          # nothing left to resume
    run(main)


def test_cancel_while_running_lands_at_the_next_wait() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        events: list[str] = []

        async def body() -> None:
            current_flow().cancel()  # type: ignore[union-attr]
            events.append("still running")
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                events.append("cancelled")
                raise

        flow = Flow(body(), loop)
        flow.start()
        assert events == ["still running"]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert events == ["still running", "cancelled"] and flow.done()
    run(main)


def test_a_failing_flow_is_reported_to_the_loop() -> None:
    async def main() -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        reports: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: reports.append(ctx))

        async def body() -> None:
            await asyncio.sleep(0)
            raise ValueError("boom")

        flow = Flow(body(), loop)
        flow.start()
        await asyncio.sleep(0.01)
        assert flow.done()
        return reports

    reports = run(main)
    assert len(reports) == 1 and isinstance(reports[0]["exception"], ValueError)


def test_start_after_cancel_before_start_does_nothing() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ran: list[int] = []

        async def body() -> None:
            ran.append(1)

        flow = Flow(body(), loop)
        flow.cancel()
        await asyncio.sleep(0)
        assert flow.done() and ran == []
        flow.start()
        assert ran == []
    run(main)


@pytest.mark.parametrize("n", [1, 3])
def test_bare_yield_continues_next_round(n: int) -> None:
    async def main() -> None:
        count: list[int] = []

        async def body() -> None:
            for _ in range(n):
                await asyncio.sleep(0)
                count.append(1)

        flow = Flow(body(), asyncio.get_running_loop())
        flow.start()
        for _ in range(n + 1):
            await asyncio.sleep(0)
        assert len(count) == n and flow.done()
    run(main)


@pytest.mark.parametrize("ending", ["returns", "cancelled before start", "cancelled at a wait",
                                    "fails", "cancelled while running"])
def test_on_done_runs_once_however_the_flow_ends(ending: str) -> None:
    # net.h2conn ends a stream from `on_done` when its flow ended without ending it: the
    # callback must come once for every way a flow ends, as a Task's done callback does
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, _ctx: None)
        fut: asyncio.Future[None] = loop.create_future()
        done: list[Flow] = []
        reached: list[str] = []

        async def body() -> None:
            reached.append("start")
            if ending == "fails":
                raise ValueError("boom")
            if ending == "cancelled while running":
                flow.cancel()
            if ending != "returns":
                await fut
            reached.append("end")

        flow = Flow(body(), loop, done.append)
        if ending == "cancelled before start":
            flow.cancel()
            await asyncio.sleep(0)
            assert reached == [] and done == [flow]
            flow.start()
        else:
            flow.start()
        if ending == "cancelled at a wait":
            assert done == []
            flow.cancel()
        for _ in range(3):
            await asyncio.sleep(0)
        assert flow.done() and done == [flow]
        assert ("end" in reached) == (ending == "returns")
    run(main)
