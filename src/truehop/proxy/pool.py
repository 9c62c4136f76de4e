"""The per-worker cache of idle upstream connections for one upstream block: nginx's
`keepalive N [local]`, `keepalive_timeout` (60s), `keepalive_requests` (1000) and
`keepalive_time` (1h).

Theory of operation
-------------------

As in nginx's `ngx_http_upstream_keepalive_module.c`, the cache wraps the balancer: the
balancer chooses a peer first, then `acquire(peer_key, now)` looks for an idle connection
to that address, most recently used first. `release(conn, now, reusable)` is nginx's
`free_keepalive_peer`: a connection is stored only if the exchange ended cleanly, the
response allowed keep-alive, it served fewer than `keepalive_requests` requests and is not
older than `keepalive_time`. The cache holds at most N idle connections for the whole
upstream block (all peers together); storing one more closes the least recently used.

An idle connection dies when `keepalive_timeout` passes without reuse (`sweep(now)`, called
from the caller's timer, and `acquire` both enforce it) or when the upstream closes it
(`is_closed()`, checked before reuse: the keepalive race). A connection that the upstream
closes just as it is reused still fails; the caller retries once on a fresh connection.

With `local` (nginx 1.30's default `keepalive 32 local`), a connection is reused only by
the location that stored it: pass the same `tag` to `release` and `acquire`.

Backends that close idle connections sooner than `keepalive_timeout` (Node's HTTP server
after 5 s, uvicorn after 5 s) make the race above routine: a POST sent on a connection the
backend is closing fails and is not retried (502). Two answers, both beyond nginx:
- a connection whose response said `Keep-Alive: timeout=N` (Node sends it) carries its own
  `idle_limit` (`retire_after(N)`: N less a margin) and is retired by `expired` before the
  backend closes it, so the race does not happen;
- every idle connection found closed by the upstream is noted (`closed_idle`: how long it
  had been idle), for the live detector (`detect.upstream_idle_close`) to name the upstream,
  the idle time and the fix once.

The decisions are pure functions (`expired`, `should_keep`) over a small Protocol, as in
httpcore; the pool itself only moves references around and calls `close()`. `__repr__`
shows the state and is what the tests assert on.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Final, Generic, Protocol, TypeVar

__all__ = ["KeepalivePool", "PooledConnection", "expired", "retire_after", "should_keep"]

DEFAULT_IDLE_TIMEOUT: Final = 60.0     # keepalive_timeout
DEFAULT_MAX_REQUESTS: Final = 1000     # keepalive_requests
DEFAULT_MAX_TIME: Final = 3600.0       # keepalive_time


class PooledConnection(Protocol):
    """What the pool needs from an upstream connection (net.upstream.UpstreamConnection)."""

    requests: int               # requests sent on this connection so far
    created: float              # monotonic time the connection was opened
    idle_since: float           # set by the pool when the connection is stored
    peer_key: tuple[str, int]   # (addr, port) of the peer it is connected to
    idle_limit: float           # retire after this long idle (Keep-Alive: timeout); 0: none
    eof_at: float               # when the upstream closed it (monotonic); 0: it has not

    def is_closed(self) -> bool: ...
    def close(self) -> None: ...


def should_keep(conn: PooledConnection, now: float, response_keep_alive: bool,
                exchange_complete: bool, *, max_requests: int = DEFAULT_MAX_REQUESTS,
                max_time: float = DEFAULT_MAX_TIME) -> bool:
    """May this connection go back to the cache after its exchange? (nginx's
    free_keepalive_peer.) `response_keep_alive`: the upstream's response allows reuse
    (HTTP/1.1 without `Connection: close`, body delimited and read to its end);
    `exchange_complete`: the request body was fully sent and the response fully read."""
    if not response_keep_alive or not exchange_complete:
        return False
    if conn.is_closed():
        return False
    if conn.requests >= max_requests:
        return False
    return not now - conn.created > max_time


def expired(conn: PooledConnection, now: float, idle_timeout: float) -> bool:
    """Should this idle connection be dropped instead of reused? Closed by the upstream, or
    idle for `keepalive_timeout`, or for the upstream's own `Keep-Alive: timeout` (less a
    margin) when it said one that is shorter."""
    limit = conn.idle_limit
    if limit and limit < idle_timeout:
        idle_timeout = limit
    return conn.is_closed() or now - conn.idle_since >= idle_timeout


def retire_after(keep_alive: str) -> float:
    """How long a connection may stay idle when the upstream's response said
    `Keep-Alive: timeout=N[, max=M]` (RFC 2068 19.7.1.1, what Node sends): N less a margin
    for the request in flight and clock skew (a quarter of N, at most 1 s); 0.0 when the
    value names no usable timeout."""
    for part in keep_alive.split(","):
        k, _, v = part.strip().partition("=")
        if k.strip().lower() != "timeout":
            continue
        try:
            n = float(v.strip().strip('"'))
        except ValueError:
            return 0.0
        if not n > 0 or n != n:
            return 0.0
        return n - min(1.0, n / 4)
    return 0.0


C = TypeVar("C", bound=PooledConnection)


def _hostport(key: tuple[str, int]) -> str:
    addr, port = key
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class KeepalivePool(Generic[C]):
    """Idle connections of one upstream block in one worker, least recently used first."""

    def __init__(self, max_idle: int, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_requests: int = DEFAULT_MAX_REQUESTS,
                 max_time: float = DEFAULT_MAX_TIME, *, local: bool = False) -> None:
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.max_requests = max_requests
        self.max_time = max_time
        self.local = local
        # id(conn) -> (conn, tag); insertion order = LRU first, MRU last
        # plain dicts keep insertion order (the LRU order here; popitem() takes the newest):
        # the compiled build has native operations for dict, not for OrderedDict
        self._idle: dict[int, tuple[C, Hashable]] = {}
        # peer_key -> id(conn) -> conn, same order, for lookups by peer
        self._by_peer: dict[tuple[str, int], dict[int, C]] = {}
        # idle times of the connections the upstream closed while they were idle here (for
        # the live detector; bounded: the caller takes them with `take_closed_idle`)
        self.closed_idle: list[float] = []

    # -- decisions bound to this pool's limits -------------------------------------------

    def should_keep(self, conn: C, now: float, response_keep_alive: bool,
                    exchange_complete: bool) -> bool:
        return self.max_idle > 0 and should_keep(
            conn, now, response_keep_alive, exchange_complete,
            max_requests=self.max_requests, max_time=self.max_time)

    def is_expired(self, conn: C, now: float) -> bool:
        return expired(conn, now, self.idle_timeout)

    # -- operations ------------------------------------------------------------------------

    def acquire(self, peer_key: tuple[str, int], now: float,
                tag: Hashable = None) -> C | None:
        """An idle connection to `peer_key`, most recently used first, or None. Expired
        and closed connections met on the way are dropped and closed. With `local`, only
        a connection stored under the same `tag` is returned."""
        bucket = self._by_peer.get(peer_key)
        if not bucket:
            return None
        if not self.local:
            # the common case: the most recently used one, without copying the bucket
            while bucket:
                cid, conn = bucket.popitem()
                del self._idle[cid]
                if self.is_expired(conn, now):
                    self._dropped(conn, now)
                    continue
                if not bucket:
                    del self._by_peer[peer_key]
                return conn
            self._by_peer.pop(peer_key, None)
            return None
        for cid in reversed(list(bucket)):
            conn = bucket[cid]
            if self.is_expired(conn, now):
                self._remove(cid, conn)
                self._dropped(conn, now)
                continue
            if self.local and self._idle[cid][1] != tag:
                continue
            self._remove(cid, conn)
            return conn
        return None

    def release(self, conn: C, now: float, reusable: bool = True,
                tag: Hashable = None) -> bool:
        """Give a connection back after an exchange. It is stored if `reusable` (the caller
        found the exchange clean and the response keep-alive) and within keepalive_requests
        and keepalive_time; otherwise it is closed. Storing beyond `max_idle` closes the
        least recently used idle connection. Returns True if the connection was stored."""
        cid = id(conn)
        if cid in self._idle:
            self._remove(cid, conn)
        if not (reusable and self.should_keep(conn, now, True, True)):
            conn.close()
            return False
        conn.idle_since = now
        self._idle[cid] = (conn, tag)
        self._by_peer.setdefault(conn.peer_key, {})[cid] = conn
        while len(self._idle) > self.max_idle:
            old_id, (old, _tag) = next(iter(self._idle.items()))
            self._remove(old_id, old)
            old.close()
        return True

    def sweep(self, now: float) -> int:
        """Close idle connections past keepalive_timeout or closed by the upstream. Returns
        how many were dropped."""
        dead = [(cid, c) for cid, (c, _t) in self._idle.items() if self.is_expired(c, now)]
        for cid, c in dead:
            self._remove(cid, c)
            self._dropped(c, now)
        return len(dead)

    def next_expiry(self) -> float | None:
        """When the oldest idle connection reaches keepalive_timeout (for the caller's
        timer), or None when nothing is idle."""
        if not self._idle:
            return None
        t = self.idle_timeout
        return min(c.idle_since + (c.idle_limit if c.idle_limit and c.idle_limit < t else t)
                   for c, _t in self._idle.values())

    def noticed_close(self, conn: C, now: float) -> None:
        """The upstream closed `conn` while it was idle here (found closed, or it failed as
        it was reused: the race): note how long it had been idle."""
        at = conn.eof_at if conn.eof_at and conn.eof_at >= conn.idle_since else now
        idle = at - conn.idle_since
        limit = conn.idle_limit
        if limit and idle >= limit:
            return  # closed after it was due for retirement: nothing raced
        if len(self.closed_idle) < 16:
            self.closed_idle.append(idle)

    def take_closed_idle(self) -> list[float]:
        out = self.closed_idle
        self.closed_idle = []
        return out

    def close_all(self) -> None:
        conns = [c for c, _t in self._idle.values()]
        self._idle.clear()
        self._by_peer.clear()
        for c in conns:
            c.close()

    # -- inspection ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._idle)

    def __iter__(self) -> Iterator[C]:
        """Idle connections, least recently used first."""
        return iter([c for c, _t in self._idle.values()])

    def idle_count(self, peer_key: tuple[str, int] | None = None) -> int:
        if peer_key is None:
            return len(self._idle)
        return len(self._by_peer.get(peer_key, ()))

    def __repr__(self) -> str:
        parts = [f"idle={len(self._idle)}/{self.max_idle}"]
        for key in sorted(self._by_peer):
            parts.append(f"{_hostport(key)}={len(self._by_peer[key])}")
        return f"<KeepalivePool {' '.join(parts)}>"

    def _dropped(self, conn: C, now: float) -> None:
        if conn.is_closed():
            self.noticed_close(conn, now)
        conn.close()

    def _remove(self, cid: int, conn: C) -> None:
        self._idle.pop(cid, None)
        bucket = self._by_peer.get(conn.peer_key)
        if bucket is not None:
            bucket.pop(cid, None)
            if not bucket:
                del self._by_peer[conn.peer_key]
