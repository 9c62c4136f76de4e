"""net.deadline.Deadline: a moved deadline re-arms lazily and fires once, at the last time set."""

from __future__ import annotations

import asyncio

from truehop.net.deadline import Deadline


def test_moving_later_keeps_one_timer_and_fires_at_the_last_time() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        d = Deadline(loop)
        t0 = loop.time()
        d.set(0.05, lambda: fired.append(loop.time() - t0))
        first = d.handle
        d.set(0.15, lambda: fired.append(loop.time() - t0))
        assert d.handle is first          # later: the pending timer is kept
        await asyncio.sleep(0.3)
        return fired
    fired = asyncio.run(main())
    assert len(fired) == 1 and fired[0] >= 0.15


def test_earlier_rearms_clear_forgets_drop_cancels() -> None:
    async def main() -> tuple[list[str], bool]:
        loop = asyncio.get_running_loop()
        fired: list[str] = []
        d = Deadline(loop)
        d.set(1.0, lambda: fired.append("late"))
        d.set(0.02, lambda: fired.append("early"))
        await asyncio.sleep(0.1)
        d.set(0.02, lambda: fired.append("cleared"))
        d.clear()
        await asyncio.sleep(0.1)
        d.set(0.02, lambda: fired.append("dropped"))
        d.drop()
        await asyncio.sleep(0.1)
        return fired, d.handle is None
    fired, no_handle = asyncio.run(main())
    assert fired == ["early"] and no_handle
