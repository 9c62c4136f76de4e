"""The limit modules' pure parts and the shared table: nginx's leaky-bucket arithmetic
(proxy.leaky), the limit_req/limit_conn handlers over real shared tables (proxy.limits), the
table itself, shared with a forked child (net.shm), and limit_rate's pacing (proxy.pacing)."""

from __future__ import annotations

import asyncio
import os
import time
from types import SimpleNamespace
from typing import Any

import pytest

from truehop.conf.model import LimitZone
from truehop.net.shm import NONE, SharedTable, capacity_for, digest
from truehop.proxy import leaky, limits
from truehop.proxy.pacing import PacedBody, RatePacer
from truehop.route.state import LimitState
from truehop.route.template import literal

# the handler and pacing tests use stand-ins (a clock, a log, a sink) that a compiled build's
# type checks and native calls would not take: they run on the pure build
COMPILED = not limits.__file__.endswith(".py")
needs_pure = pytest.mark.skipif(COMPILED, reason="stand-ins for compiled types")

# -- proxy.leaky -------------------------------------------------------------------------------


def test_excess_leaks_at_the_rate_and_adds_one_request() -> None:
    # 10r/s = 10000 milli-requests per second: 100 ms leak one request
    assert leaky.excess_after(0, 10000, 0) == 1000
    assert leaky.excess_after(3000, 10000, 100) == 3000
    assert leaky.excess_after(3000, 10000, 1000) == 0       # never below zero
    assert leaky.excess_after(1000, 16, 100) == 1999        # 1r/m: C's integer division


def test_elapsed_clamps_a_clock_that_went_back() -> None:
    assert leaky.elapsed(1000, 400) == 600
    assert leaky.elapsed(1000, 1500) == 0
    assert leaky.elapsed(1000, 70000) == 1


def test_delay_and_expiry() -> None:
    assert leaky.delay_ms(3000, 0, 10000) == 300
    assert leaky.delay_ms(3000, 2000, 10000) == 100
    assert leaky.delay_ms(2000, 2000, 10000) == 0
    assert not leaky.expired(0, 10000, 59999, 0)             # used within the minute
    assert leaky.expired(0, 10000, 60000, 0)
    assert not leaky.expired(10 ** 9, 10000, 60000, 0)      # not drained yet


# -- net.shm -----------------------------------------------------------------------------------


def test_table_find_alloc_free_and_lru() -> None:
    t = SharedTable(4)
    keys = [digest(str(i).encode()) for i in range(5)]
    with t:
        recs = [t.alloc(k) for k in keys[:4]]
        assert NONE not in recs and t.alloc(keys[4]) == NONE and t.used == 4
        assert [t.find(k) for k in keys[:4]] == recs and t.find(keys[4]) == NONE
        assert t.oldest() == recs[0]
        t.touch(recs[0])
        assert t.oldest() == recs[1]
        t.free(recs[1])
        assert t.find(keys[1]) == NONE and t.oldest() == recs[2] and t.used == 3
        again = t.alloc(keys[4])
        assert again == recs[1] and t.find(keys[4]) == again
        t.set_a(again, 7)
        t.set_count(again, 2)
        assert (t.get_a(again), t.get_b(again), t.get_count(again)) == (7, 0, 2)
    t.close()


def test_table_chains_keys_of_one_bucket() -> None:
    t = SharedTable(8)
    keys = [1, 1 + 8, 1 + 16, 2]       # three in bucket 1
    with t:
        recs = [t.alloc(k) for k in keys]
        t.free(recs[1])                # from the middle of the chain
        assert [t.find(k) for k in keys] == [recs[0], NONE, recs[2], recs[3]]
        t.free(recs[2])
        t.free(recs[0])
        assert t.find(keys[0]) == NONE and t.find(keys[3]) == recs[3]


def test_a_forked_process_writes_what_the_parent_reads() -> None:
    t = SharedTable(16)
    with t:
        i = t.alloc(digest(b"k"))
    pid = os.fork()
    if pid == 0:                      # the child: as a worker would, under the lock
        try:
            for _ in range(1000):
                with t:
                    t.set_a(i, t.get_a(i) + 1)
        finally:
            os._exit(0)
    for _ in range(1000):
        with t:
            t.set_a(i, t.get_a(i) + 1)
    os.waitpid(pid, 0)
    with t:
        assert t.get_a(i) == 2000     # no update lost: the lock excludes the other process


def test_capacity_counts_64_bytes_a_state() -> None:
    assert capacity_for(1024 * 1024) == 16384


# -- proxy.limits ------------------------------------------------------------------------------

class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def log(self, level: str, msg: str, conn: Any = None, r: Any = None) -> None:
        self.lines.append((level, msg))

    def alert(self, msg: str, conn: Any = None, r: Any = None) -> None:
        self.log("alert", msg)

    def error(self, msg: str, conn: Any = None, r: Any = None) -> None:
        self.log("error", msg)

    def crit(self, msg: str, conn: Any = None, r: Any = None) -> None:
        self.log("crit", msg)


class _Clock:
    def __init__(self) -> None:
        self.ms = 10 ** 9

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(limits, "_now_ms", c)
    return c


def _zone(name: str, rate: int, size: int = 1 << 20, key: str = "k") -> limits.Zone:
    conf = LimitZone("limit_req", name, literal(key), size, rate, ("t.conf", 1))
    return limits.Zone(conf, SharedTable(capacity_for(size), name))


def _plan(req: list[tuple[limits.Zone, int, int]], dry_run: bool = False,
          level: str = "error") -> Any:
    return SimpleNamespace(req=req, req_status=503, req_level=level,
                           delay_level=limits._LOWER[level], req_dry_run=dry_run,
                           conn=[], conn_status=503, conn_level="error", conn_dry_run=False)


def _req(plan: Any, log: _Log) -> tuple[int, int, int]:
    r: Any = SimpleNamespace(conn=None)
    st = LimitState()
    status, delay = limits.limit_req(plan, r, st, log)  # type: ignore[arg-type]
    return status, delay, st.req_status


@needs_pure
def test_limit_req_rejects_beyond_burst_and_delays_within(clock: _Clock) -> None:
    z = _zone("one", 10000)                       # 10r/s
    plan = _plan([(z, 2000, 0)])                  # burst=2
    log = _Log()
    assert _req(plan, log) == (0, 0, limits.REQ_PASSED)
    assert _req(plan, log) == (0, 100, limits.REQ_DELAYED)
    assert _req(plan, log) == (0, 200, limits.REQ_DELAYED)
    assert _req(plan, log) == (503, 0, limits.REQ_REJECTED)
    assert log.lines[-1] == ("error", 'limiting requests, excess: 3.000 by zone "one"')
    assert log.lines[0] == ("warn", 'delaying request, excess: 1.000, by zone "one"')
    clock.ms += 300                               # three requests leaked
    assert _req(plan, log) == (0, 0, limits.REQ_PASSED)


@needs_pure
def test_limit_req_dry_run_and_nodelay(clock: _Clock) -> None:
    z = _zone("one", 10000)
    log = _Log()
    plan = _plan([(z, 1000, 1 << 60)], dry_run=True, level="info")
    assert [_req(plan, log)[2] for _ in range(3)] == [
        limits.REQ_PASSED, limits.REQ_PASSED, limits.REQ_REJECTED_DRY_RUN]
    assert log.lines == [("info", 'limiting requests, dry run, excess: 2.000 by zone "one"')]


@needs_pure
def test_several_limits_take_the_longest_delay_and_unlock_on_reject(clock: _Clock) -> None:
    a = _zone("a", 10000)                         # 10r/s, burst 5
    b = _zone("b", 2000)                          # 2r/s, burst 2
    plan = _plan([(a, 5000, 0), (b, 2000, 0)])
    log = _Log()
    assert _req(plan, log) == (0, 0, limits.REQ_PASSED)
    # a's first lookup is not accounted ("again"): nginx counts a new state in a limit
    # that is not the last from the moment it is accounted, which leaks its first request
    assert _req(plan, log) == (0, 500, limits.REQ_DELAYED)     # b: excess 1 at 2r/s
    assert _req(plan, log) == (0, 1000, limits.REQ_DELAYED)
    assert _req(plan, log) == (503, 0, limits.REQ_REJECTED)    # b over its burst
    t = a.table
    with t:
        i = t.find(digest(b"k"))
        assert t.get_count(i) == 0            # a's lookup was given back
    assert _req(plan, log)[0] == 503


@needs_pure
def test_empty_and_long_keys_are_not_limited(clock: _Clock) -> None:
    log = _Log()
    empty = _plan([(_zone("e", 1000, key=""), 0, 0)])
    assert [_req(empty, log) for _ in range(3)] == [(0, 0, 0)] * 3
    long = _plan([(_zone("l", 1000, key="x" * 65536), 0, 0)])
    assert _req(long, log) == (0, 0, 0)
    assert log.lines[-1][0] == "error" and "is more than 65535 bytes" in log.lines[-1][1]


@needs_pure
def test_a_full_zone_drops_the_oldest_state(clock: _Clock) -> None:
    z = _zone("small", 1000, size=8 * 4096)      # 512 states
    cap = z.table.capacity
    log = _Log()
    for n in range(cap):
        assert z.req_lookup(digest(str(n).encode()), 0, True, log)[0] == "ok"
    assert z.table.used == cap
    rc, _, _ = z.req_lookup(digest(b"new"), 0, True, log)
    assert rc == "ok" and z.table.used == cap
    with z.table:
        assert z.table.find(digest(b"0")) == NONE          # the oldest went
    # states idle for a minute and drained go two at a time before a new one is made
    clock.ms += 61000
    z.req_lookup(digest(b"newer"), 0, True, log)
    assert z.table.used == cap - 1
    assert log.lines == []


@needs_pure
def test_a_full_zone_whose_oldest_state_is_busy_rejects(clock: _Clock) -> None:
    z = _zone("small", 1000, size=8 * 4096)
    log = _Log()
    assert z.req_lookup(digest(b"held"), 0, False, log)[0] == "again"     # count 1
    for n in range(z.table.capacity - 1):
        z.req_lookup(digest(str(n).encode()), 0, True, log)
    assert z.req_lookup(digest(b"new"), 0, True, log)[0] == "error"
    assert log.lines == [("alert", 'could not allocate node in limit_req zone "small"')]


def test_limit_conn_counts_and_releases() -> None:
    conf = LimitZone("limit_conn", "c", literal("k"), 1 << 20, 0, ("t.conf", 1))
    z = limits.Zone(conf, SharedTable(capacity_for(1 << 20)))
    k = digest(b"k")
    a, b = z.conn_take(k, 2), z.conn_take(k, 2)
    assert a == b != NONE and z.conn_take(k, 2) == NONE
    z.conn_release(a)
    assert z.conn_take(k, 2) == a
    z.conn_release(a)
    z.conn_release(a)
    assert z.table.used == 0                # the last release frees the state


# -- proxy.pacing ------------------------------------------------------------------------------


def test_pacer_follows_nginx_write_filter() -> None:
    p = RatePacer(1000, 0, 0.0)
    assert p.allowance(0.0) == 1000         # a second's worth at once
    p.sent_now(1000, 0.0)
    assert p.allowance(0.5) == 0 and p.wait(0.5) == pytest.approx(0.5)   # 1000 B: 1 s
    assert p.allowance(1.0) == 1000
    after = RatePacer(1000, 5000, 0.0)
    assert after.allowance(0.0) == 6000     # limit_rate_after comes on top
    after.sent_now(5500, 0.0)
    assert after.ready_at == pytest.approx(0.5)     # only the 500 B beyond it delay


class _Sink:
    def __init__(self) -> None:
        self.got: list[tuple[float, int]] = []
        self.ended = False

    def write(self, data: bytes) -> None:
        self.got.append((time.monotonic(), len(data)))

    def flush(self) -> None:
        pass

    async def drain(self) -> None:
        pass

    @property
    def write_blocked(self) -> bool:
        return False

    def end(self) -> None:
        self.ended = True


@needs_pure
def test_paced_body_spreads_the_bytes_over_time() -> None:
    async def run() -> tuple[float, _Sink]:
        sink = _Sink()
        body = PacedBody(sink, RatePacer(1_000_000, 0, time.monotonic()))  # type: ignore[arg-type]
        t0 = time.monotonic()
        for _ in range(40):
            body.write(b"x" * 10_000)
            if body.write_blocked:
                await body.drain()
        body.end()
        return time.monotonic() - t0, sink

    took, sink = asyncio.run(run())
    assert sum(n for _, n in sink.got) == 400_000 and sink.ended
    # 400 kB at 1 MB/s, of which the first second's worth may go at once: the rest is
    # paced at 10 kB per 10 ms
    assert 0.2 <= took < 3, took
