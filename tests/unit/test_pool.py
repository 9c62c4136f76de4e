"""proxy.pool: the keepalive cache, with fake connections and an injected clock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from truehop.proxy.pool import KeepalivePool, expired, retire_after, should_keep

_ids = itertools.count(1)

A = ("127.0.0.1", 3000)
B = ("127.0.0.1", 3001)
V6 = ("::1", 3000)


@dataclass(eq=False)
class FakeConn:
    peer_key: tuple[str, int] = A
    created: float = 0.0
    requests: int = 1
    idle_since: float = 0.0
    closed: bool = False
    close_calls: int = 0
    idle_limit: float = 0.0
    eof_at: float = 0.0
    cid: int = field(default_factory=lambda: next(_ids))

    def is_closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.close_calls += 1
        self.closed = True

    def __repr__(self) -> str:
        return f"<conn {self.cid}>"


def pool(max_idle: int = 32, **kw: float) -> KeepalivePool[FakeConn]:
    return KeepalivePool(max_idle, kw.get("idle_timeout", 60.0),
                         int(kw.get("max_requests", 1000)), kw.get("max_time", 3600.0))


# -- pure decisions ------------------------------------------------------------------------

@pytest.mark.parametrize(("conn", "now", "ka", "complete", "keep"), [
    (FakeConn(), 10.0, True, True, True),
    (FakeConn(), 10.0, False, True, False),              # Connection: close / HTTP/1.0
    (FakeConn(), 10.0, True, False, False),              # body not fully sent or read
    (FakeConn(closed=True), 10.0, True, True, False),    # upstream closed it
    (FakeConn(requests=999), 10.0, True, True, True),
    (FakeConn(requests=1000), 10.0, True, True, False),  # keepalive_requests
    (FakeConn(created=0.0), 3600.0, True, True, True),
    (FakeConn(created=0.0), 3600.5, True, True, False),  # keepalive_time
])
def test_should_keep(conn: FakeConn, now: float, ka: bool, complete: bool,
                     keep: bool) -> None:
    assert should_keep(conn, now, ka, complete) is keep


@pytest.mark.parametrize(("conn", "now", "gone"), [
    (FakeConn(idle_since=10.0), 69.9, False),
    (FakeConn(idle_since=10.0), 70.0, True),              # keepalive_timeout 60s
    (FakeConn(idle_since=10.0, closed=True), 11.0, True),  # the keepalive race
])
def test_expired(conn: FakeConn, now: float, gone: bool) -> None:
    assert expired(conn, now, 60.0) is gone


def test_should_keep_limits_are_parameters() -> None:
    c = FakeConn(requests=5)
    assert not should_keep(c, 0.0, True, True, max_requests=5)
    assert not should_keep(c, 11.0, True, True, max_time=10.0)
    assert not pool(max_idle=0).should_keep(c, 0.0, True, True)


# -- acquire / release ---------------------------------------------------------------------

def test_release_then_acquire_most_recent_first() -> None:
    p = pool()
    c1, c2 = FakeConn(), FakeConn()
    assert p.release(c1, 1.0) and p.release(c2, 2.0)
    assert (c1.idle_since, c2.idle_since) == (1.0, 2.0)
    assert repr(p) == "<KeepalivePool idle=2/32 127.0.0.1:3000=2>"
    assert p.acquire(A, 3.0) is c2
    assert p.acquire(A, 3.0) is c1
    assert p.acquire(A, 3.0) is None
    assert repr(p) == "<KeepalivePool idle=0/32>"
    assert not c1.closed and not c2.closed


def test_acquire_is_per_peer() -> None:
    p = pool()
    ca, cb = FakeConn(A), FakeConn(B)
    p.release(ca, 0.0)
    p.release(cb, 0.0)
    assert p.acquire(("127.0.0.1", 9999), 1.0) is None
    assert p.acquire(B, 1.0) is cb
    assert p.idle_count(A) == 1 and p.idle_count(B) == 0


def test_lru_eviction_across_peers() -> None:
    # nginx caches N idle connections per upstream block, all peers together
    p = pool(max_idle=3)
    conns = [FakeConn(A), FakeConn(B), FakeConn(A), FakeConn(B)]
    for t, c in enumerate(conns):
        p.release(c, float(t))
    assert conns[0].closed and conns[0].close_calls == 1
    assert not any(c.closed for c in conns[1:])
    assert repr(p) == "<KeepalivePool idle=3/3 127.0.0.1:3000=1 127.0.0.1:3001=2>"
    assert list(p) == conns[1:]
    # a reused connection comes back as most recently used
    reused = p.acquire(B, 5.0)
    assert reused is conns[3]
    p.release(reused, 6.0)
    fresh = FakeConn(A)
    p.release(fresh, 7.0)
    assert conns[1].closed                                # now the least recently used
    assert list(p) == [conns[2], conns[3], fresh]


def test_idle_timeout_on_acquire_closes_and_skips() -> None:
    p = pool(idle_timeout=60.0)
    old, new = FakeConn(), FakeConn()
    p.release(old, 0.0)
    p.release(new, 50.0)
    assert p.acquire(A, 100.0) is new                     # 50s idle: fine
    p.release(new, 100.0)
    assert p.acquire(A, 100.0) is new
    assert p.acquire(A, 100.0) is None                    # `old`: 100s idle
    assert old.closed and len(p) == 0


def test_closed_connection_is_dropped_on_acquire() -> None:
    p = pool()
    c1, c2 = FakeConn(), FakeConn()
    p.release(c1, 0.0)
    p.release(c2, 1.0)
    c2.closed = True                                      # upstream closed it while idle
    assert p.acquire(A, 2.0) is c1
    assert c2.close_calls == 1 and len(p) == 0


def test_release_refuses_and_closes() -> None:
    p = pool(max_requests=3, max_time=100.0)
    cases = [
        (FakeConn(), False),                              # caller says not reusable
        (FakeConn(requests=3), True),                     # keepalive_requests reached
        (FakeConn(created=0.0), True),                    # keepalive_time passed (now=101)
        (FakeConn(closed=True), True),
    ]
    for c, reusable in cases:
        assert p.release(c, 101.0, reusable=reusable) is False
        assert c.closed
    assert len(p) == 0


def test_release_twice_does_not_duplicate() -> None:
    p = pool()
    c = FakeConn()
    p.release(c, 0.0)
    p.release(c, 1.0)
    assert len(p) == 1 and c.idle_since == 1.0


def test_zero_max_idle_closes_everything() -> None:
    p = pool(max_idle=0)
    c = FakeConn()
    assert p.release(c, 0.0) is False
    assert c.closed


# -- sweep / close_all / local -------------------------------------------------------------

def test_sweep() -> None:
    p = pool(idle_timeout=10.0)
    a, b, c = FakeConn(A), FakeConn(B), FakeConn(B)
    p.release(a, 0.0)
    p.release(b, 5.0)
    p.release(c, 8.0)
    assert p.next_expiry() == 10.0
    assert p.sweep(9.0) == 0
    assert p.sweep(15.0) == 2
    assert a.closed and b.closed and not c.closed
    assert repr(p) == "<KeepalivePool idle=1/32 127.0.0.1:3001=1>"
    assert p.next_expiry() == 18.0
    c.closed = True
    assert p.sweep(16.0) == 1 and p.next_expiry() is None


def test_close_all() -> None:
    p = pool()
    conns = [FakeConn(A), FakeConn(B), FakeConn(V6)]
    for c in conns:
        p.release(c, 0.0)
    assert repr(p) == "<KeepalivePool idle=3/32 127.0.0.1:3000=1 127.0.0.1:3001=1 [::1]:3000=1>"
    p.close_all()
    assert all(c.close_calls == 1 for c in conns)
    assert repr(p) == "<KeepalivePool idle=0/32>"


def test_local_reuses_only_within_the_same_tag() -> None:
    p: KeepalivePool[FakeConn] = KeepalivePool(32, local=True)
    c = FakeConn()
    p.release(c, 0.0, tag="location /api")
    assert p.acquire(A, 1.0, tag="location /") is None
    assert p.acquire(A, 1.0, tag="location /api") is c
    shared: KeepalivePool[FakeConn] = KeepalivePool(32)
    shared.release(c, 2.0, tag="location /api")
    assert shared.acquire(A, 3.0, tag="location /") is c


# -- backends with a short idle timeout ----------------------------------------------------

@pytest.mark.parametrize("value,after", [
    ("timeout=5", 4.0), ("timeout=5, max=1000", 4.0), ("max=100, timeout=1", 0.75),
    ("Timeout = 2", 1.5), ("timeout=0", 0.0), ("timeout=x", 0.0), ("max=5", 0.0), ("", 0.0),
    ("timeout=nan", 0.0),
])
def test_retire_after(value: str, after: float) -> None:
    assert retire_after(value) == after


def test_keep_alive_timeout_retires_before_keepalive_timeout() -> None:
    p = pool()
    c = FakeConn(idle_limit=0.75)
    p.release(c, 10.0)
    assert p.next_expiry() == 10.75
    assert p.acquire(A, 10.7) is c
    p.release(c, 11.0)
    assert p.acquire(A, 11.75) is None and c.closed
    # retired by the pool, not closed by the upstream: nothing to report
    assert p.take_closed_idle() == []


def test_upstream_closes_are_noted_with_their_idle_time() -> None:
    p = pool()
    a, b = FakeConn(), FakeConn()
    p.release(a, 10.0)
    p.release(b, 10.5)
    a.closed, a.eof_at = True, 11.0       # the upstream closed it after 1 s idle
    b.closed = True                        # found closed; when is unknown: at the sweep
    assert p.sweep(12.0) == 2
    assert sorted(p.take_closed_idle()) == [1.0, 1.5]
    assert p.take_closed_idle() == []
    # a connection the upstream closed after its own Keep-Alive deadline raced nothing
    c = FakeConn(idle_limit=0.75)
    p.release(c, 20.0)
    c.closed, c.eof_at = True, 21.0
    assert p.acquire(A, 21.5) is None
    assert p.closed_idle == []
