"""Upstream load balancers with nginx's meaning: round robin, least_conn, ip_hash, hash and
hash consistent, with backup peers and passive health (max_fails / fail_timeout).

Theory of operation
-------------------

This is a transcription of nginx's `ngx_http_upstream_round_robin.c` and the balancer
modules built on it (`ngx_http_upstream_least_conn_module.c`, `..._ip_hash_module.c`,
`..._hash_module.c`). It does no I/O and never reads a clock: every call takes `now`
(monotonic seconds) from the caller.

An `UpstreamBalancer` is built once per worker per `upstream` block. It holds two groups of
`Peer`s, the primary peers and the backup peers (nginx's `peers` and `peers->next`). Each peer
carries its configuration and its runtime state: smooth-weighted-round-robin weights
(`current_weight`, `effective_weight`), passive-health counters (`fails`, `accessed`,
`checked`) and `conns`, the number of requests currently using it.

A request asks `balancer.start(now, key)` for a `BalancerState` (nginx's per-request
`peer.data`, with its `tried` bitmap and `tries` counter) and then alternates:

    peer = state.next(now)           # nginx peer.get; None = "no live upstreams"
    ... connect, exchange ...
    state.done(peer, now, failed)    # nginx peer.free: fails/conns/effective weight

`next()` never returns a peer twice within one request, and returns None once `tries` is
spent (the number of peers that are not `down`, primary and backup together, optionally
capped by `proxy_next_upstream_tries`).

Peer selection (`ngx_http_upstream_get_peer`): every peer not tried, not `down` and not
failed gets `current_weight += effective_weight`; the peer with the greatest
`current_weight` wins and gives back the sum of the effective weights. With weights 5, 1, 1
that yields `a a b a c a a`. `effective_weight` drops by `weight / max_fails` on each
failure and climbs back by one per selection round.

`max_conns=N` (nginx's): a peer already serving N requests of this worker is skipped like a
failed one (without `zone`, nginx too counts per worker).

Passive health: a peer is skipped while `max_fails and fails >= max_fails and
now - checked <= fail_timeout`. A failure sets `accessed = checked = now`. When a peer is
chosen more than `fail_timeout` after its last check, `checked = now`: once the window has
passed one request is let through, and the peer is skipped again for another `fail_timeout`
unless that request succeeds (`accessed < checked` on success resets `fails` to 0).
`max_fails=0` turns the accounting off.

Backups: when no primary peer can be chosen, the request switches to the backup group (its
`tried` set starts empty) and stays there. When no peer of either group can be chosen, nginx
returns NGX_BUSY; the caller answers 502 and logs `no live upstreams while connecting to
upstream`. Modern nginx does not reset `fails` at that point (the old "mark them as live for
quick recovery" reset is gone): the upstream stays unavailable until a `fail_timeout` passes.

A group with exactly one peer and no backups is "single" (nginx's `peers->single`): as the
nginx docs say, "if there is only a single server in a group, max_fails, fail_timeout and
slow_start parameters are ignored, and such a server will never be considered unavailable".
That includes the implicit upstream of `proxy_pass http://127.0.0.1:3000`. A failure on a
single peer ends the request's tries (there is nothing else to try). A host name that
resolved to several addresses is several peers, so it is not single.

ip_hash uses the first three octets of an IPv4 client address (the whole 16 bytes of IPv6)
with nginx's hash (89, then `(hash * 113 + byte) % 6271`), and falls back to round robin
after 20 unsuccessful probes or when there are fewer than two peers. `hash KEY` uses
`(crc32([REHASH] KEY) >> 16) & 0x7fff` summed over rehashes (Cache::Memcached compatible);
`hash KEY consistent` is ketama: 160 points per unit of weight per peer, point hashes
`crc32(HOST \\0 PORT PREV_HASH)` (Cache::Memcached::Fast compatible). Both fall back to round
robin after 20 probes or with an empty key.

State belongs to one worker and resets on reload, as in nginx without `zone`.
"""

from __future__ import annotations

import bisect
import ipaddress
import struct
import zlib
from collections.abc import Sequence
from typing import Any, Final, Protocol

__all__ = [
    "KINDS",
    "BalancerState",
    "Peer",
    "PeerGroup",
    "PeerSpec",
    "UpstreamBalancer",
    "ip_hash_bytes",
]

KINDS: Final = ("round_robin", "least_conn", "ip_hash", "hash", "hash_consistent")

# nginx gives up hashing after this many probes and falls back to round robin
_HASH_PROBES: Final = 20


class PeerSpec(Protocol):
    """What the balancer reads from a configured peer (`conf.model.PeerConf` fits)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def weight(self) -> int: ...
    @property
    def max_fails(self) -> int: ...
    @property
    def fail_timeout(self) -> float: ...
    @property
    def backup(self) -> bool: ...
    @property
    def down(self) -> bool: ...


class Peer:
    """One upstream address: configuration plus nginx's runtime state for it.

    `server` is the text of the `server` directive the address came from; `hash ...
    consistent` places its points by it, so every address of one host name shares them.
    It defaults to `addr:port`.
    """

    __slots__ = ("addr", "port", "weight", "max_fails", "fail_timeout", "backup", "down",
                 "server", "current_weight", "effective_weight", "fails", "accessed",
                 "checked", "conns", "name", "key", "max_conns")

    def __init__(self, addr: str, port: int, weight: int = 1, max_fails: int = 1,
                 fail_timeout: float = 10.0, backup: bool = False, down: bool = False,
                 server: str = "", max_conns: int = 0) -> None:
        if weight < 1:
            raise ValueError(f"invalid weight {weight}")
        self.addr = addr
        self.port = port
        self.weight = weight
        self.max_fails = max_fails
        self.fail_timeout = fail_timeout
        self.backup = backup
        self.down = down
        self.max_conns = max_conns            # requests at once through this peer; 0: any
        self.name = _hostport(addr, port)    # as in $upstream_addr: 127.0.0.1:3000, [::1]:3000
        self.key = (addr, port)               # as the keepalive pool keys it
        self.server = server or self.name
        # runtime state, as in ngx_http_upstream_rr_peer_t
        self.current_weight = 0
        self.effective_weight = weight
        self.fails = 0
        self.accessed = 0.0   # time of the last failure
        self.checked = 0.0    # time of the last failure or of the last probe after one
        self.conns = 0

    @classmethod
    def from_conf(cls, pc: PeerSpec) -> Peer:
        return cls(pc.host, pc.port, pc.weight, pc.max_fails, pc.fail_timeout, pc.backup,
                   pc.down, str(getattr(pc, "server", "") or ""), getattr(pc, "max_conns", 0))

    def failed_now(self, now: float) -> bool:
        """True while passive health keeps this peer out (nginx's skip condition)."""
        return bool(self.max_fails and self.fails >= self.max_fails
                    and now - self.checked <= self.fail_timeout)

    def full(self) -> bool:
        """True while `max_conns` requests use this peer (nginx skips it then)."""
        return bool(self.max_conns and self.conns >= self.max_conns)

    def usable(self, now: float) -> bool:
        return not self.down and not self.failed_now(now) and not self.full()

    def __repr__(self) -> str:
        s = (f"{self.name} weight={self.weight} eff={self.effective_weight}"
             f" cur={self.current_weight} fails={self.fails}/{self.max_fails}"
             f" conns={self.conns}")
        if self.backup:
            s += " backup"
        if self.down:
            s += " down"
        return s


class PeerGroup:
    """nginx's `ngx_http_upstream_rr_peers_t`: the primary or the backup peers."""

    __slots__ = ("peers", "single", "total_weight", "tries")

    def __init__(self, peers: list[Peer], single: bool) -> None:
        self.peers = peers
        self.single = single
        self.total_weight = sum(p.weight for p in peers)
        self.tries = sum(1 for p in peers if not p.down)

    def __len__(self) -> int:
        return len(self.peers)


def _hostport(addr: str, port: int) -> str:
    if addr.startswith("unix:"):
        return addr                      # a unix socket: `unix:/run/app.sock`, no port
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _split_server(server: str) -> tuple[bytes, bytes]:
    """HOST and PORT of a `server` text as ngx_http_upstream_update_chash splits it."""
    if server[:5].lower() == "unix:":
        return server[5:].encode(), b""
    j = len(server)
    while j > 0 and server[j - 1].isdigit():
        j -= 1
    if j > 0 and server[j - 1] == ":":
        return server[:j - 1].encode(), server[j:].encode()
    return server.encode(), b""


def _chash_points(peers: Sequence[Peer]) -> tuple[list[int], list[str]]:
    """The ketama continuum: sorted point hashes and the server text owning each."""
    raw: list[tuple[int, str]] = []
    for peer in peers:
        host, port = _split_server(peer.server)
        base = host + b"\0" + port
        prev = 0
        for _ in range(peer.weight * 160):
            h = zlib.crc32(base + struct.pack("<I", prev))
            raw.append((h, peer.server))
            prev = h
    raw.sort(key=lambda t: t[0])   # stable: of equal hashes the first peer's point stays
    hashes: list[int] = []
    servers: list[str] = []
    for h, s in raw:
        if hashes and hashes[-1] == h:
            continue
        hashes.append(h)
        servers.append(s)
    return hashes, servers


def ip_hash_bytes(remote_addr: str | None) -> bytes:
    """The bytes ip_hash feeds its hash: 3 octets of IPv4, 16 bytes of IPv6, and three zero
    bytes (nginx's pseudo address) for anything else, such as a unix socket client."""
    if remote_addr:
        try:
            ip = ipaddress.ip_address(remote_addr.strip("[]"))
        except ValueError:
            pass
        else:
            return ip.packed[:3] if ip.version == 4 else ip.packed
    return b"\0\0\0"


def _normalize_kind(kind: str, consistent: bool) -> str:
    k = kind.strip().lower().replace("-", "_")
    if k in ("", "rr", "round_robin", "roundrobin"):
        return "round_robin"
    if k in ("hash consistent", "hash_consistent", "consistent_hash", "chash"):
        return "hash_consistent"
    if k == "hash" and consistent:
        return "hash_consistent"
    if k in KINDS:
        return k
    raise ValueError(f"unknown balancer kind {kind!r}")


class UpstreamBalancer:
    """The peers of one upstream block in one worker, and the per-request selection."""

    def __init__(self, name: str, kind: str, peers: Sequence[Peer],
                 hash_key: Any = None) -> None:
        self.name = name
        self.kind = _normalize_kind(kind, False)
        self.hash_key = hash_key     # kept for the caller; start() receives the rendered key
        primary = [p for p in peers if not p.backup]
        backup = [p for p in peers if p.backup]
        if not primary:
            raise ValueError(f'no servers in upstream "{name}"')
        # nginx: single = (n == 1), cleared when the block has backup servers
        self.primary = PeerGroup(primary, single=len(primary) == 1 and not backup)
        self.backup: PeerGroup | None = PeerGroup(backup, single=False) if backup else None
        self._points: list[int] = []
        self._point_servers: list[str] = []
        if self.kind == "hash_consistent":
            self._points, self._point_servers = _chash_points(primary)

    @classmethod
    def build(cls, kind: Any, peers: Sequence[PeerSpec] | None = None,
              hash_key: Any = None, *, consistent: bool = False,
              name: str = "") -> UpstreamBalancer:
        """Build from a kind and configured peers, or from an `UpstreamConf` alone.

        `kind` is one of "round_robin", "least_conn", "ip_hash", "hash",
        "hash consistent" (or "hash" with `consistent=True`). Peers are already resolved:
        one `PeerSpec` per address.
        """
        if not isinstance(kind, str):
            conf = kind
            peers = conf.peers
            hash_key = conf.hash_key if hash_key is None else hash_key
            consistent = consistent or bool(getattr(conf, "hash_consistent", False))
            name = name or str(getattr(conf, "name", ""))
            kind = str(getattr(conf, "kind", "round_robin"))
        if peers is None:
            raise TypeError("peers are required with a kind string")
        if not name and peers:
            name = _hostport(peers[0].host, peers[0].port) if len(peers) == 1 else "upstream"
        return cls(name, _normalize_kind(kind, consistent),
                   [Peer.from_conf(p) for p in peers], hash_key)

    @property
    def peers(self) -> list[Peer]:
        """All peers, primary then backup."""
        return self.primary.peers + (self.backup.peers if self.backup else [])

    def find(self, addr: str, port: int) -> Peer | None:
        for p in self.peers:
            if p.addr == addr and p.port == port:
                return p
        return None

    def start(self, now: float, key: str | None = None, tries: int = 0) -> BalancerState:
        """Per-request state (nginx's init_peer). `key` is the client address for ip_hash
        and the rendered hash key for hash; `tries` is `proxy_next_upstream_tries`
        (0: unlimited, i.e. every peer that is not down)."""
        st = BalancerState(self, key, tries)
        if self.kind == "hash_consistent" and st.key and self._points:
            st.hash = bisect.bisect_left(self._points, zlib.crc32(st.key.encode()))
        elif self.kind == "ip_hash":
            st.hash = 89
        return st

    def __repr__(self) -> str:
        peers = ", ".join(repr(p) for p in self.peers)
        return f"<UpstreamBalancer {self.name} {self.kind} [{peers}]>"


class BalancerState:
    """One request's view of the balancer: nginx's `tried` bitmap, `tries` and `current`."""

    __slots__ = ("balancer", "group", "tried", "tries", "current", "key", "hash",
                 "hash_tries", "rehash", "first")

    def __init__(self, balancer: UpstreamBalancer, key: str | None, tries: int) -> None:
        self.balancer = balancer
        self.group = balancer.primary
        self.tried: set[int] = set()     # indices into self.group.peers
        n = balancer.primary.tries + (balancer.backup.tries if balancer.backup else 0)
        if tries and n > tries:
            n = tries
        self.tries = n
        self.current: Peer | None = None
        self.key = key or ""
        self.hash = 0
        self.hash_tries = 0
        self.rehash = 0
        self.first = True

    # -- nginx peer.get ------------------------------------------------------------------

    def next(self, now: float) -> Peer | None:
        """The next peer to try, or None: no live upstreams, or the tries are spent."""
        if not self.first and self.tries <= 0:
            return None
        self.first = False
        kind = self.balancer.kind
        if kind == "round_robin":
            peer = self._get_rr(now)
        elif kind == "least_conn":
            peer = self._get_least_conn(now)
        elif kind == "ip_hash":
            peer = self._get_ip_hash(now)
        elif kind == "hash":
            peer = self._get_hash(now)
        else:
            peer = self._get_chash(now)
        self.current = peer
        return peer

    # -- nginx peer.free -----------------------------------------------------------------

    def done(self, peer: Peer, now: float, failed: bool) -> bool:
        """Record the outcome of one try (nginx's free_round_robin_peer). Returns True when
        this failure just took the peer out: log `upstream server temporarily disabled`
        at warn level."""
        if self.current is peer:
            self.current = None
        group = self.balancer.backup if peer.backup and self.balancer.backup else \
            self.balancer.primary
        peer.conns = max(0, peer.conns - 1)
        if group.single:
            peer.fails = 0
            self.tries = 0
            return False
        disabled = False
        if failed:
            peer.fails += 1
            peer.accessed = now
            peer.checked = now
            if peer.max_fails:
                peer.effective_weight -= peer.weight // peer.max_fails
                disabled = peer.fails >= peer.max_fails
            if peer.effective_weight < 0:
                peer.effective_weight = 0
        elif peer.accessed < peer.checked:
            # mark peer live if check passed
            peer.fails = 0
        if self.tries:
            self.tries -= 1
        return disabled

    # -- selection -----------------------------------------------------------------------

    def _chosen(self, peer: Peer, index: int, now: float) -> Peer:
        peer.conns += 1
        self.tried.add(index)
        if now - peer.checked > peer.fail_timeout:
            peer.checked = now
        return peer

    def _to_backup(self) -> bool:
        backup = self.balancer.backup
        if backup is None or self.group is backup:
            return False
        self.group = backup
        self.tried = set()
        return True

    def _get_rr(self, now: float) -> Peer | None:
        group = self.group
        if group.single:
            peer = group.peers[0]
            if not peer.down and not peer.full():
                peer.conns += 1
                return peer
        else:
            peer_or_none = self._smooth_wrr(now)
            if peer_or_none is not None:
                return peer_or_none
        if self._to_backup():
            return self._get_rr(now)
        return None

    def _smooth_wrr(self, now: float) -> Peer | None:
        """ngx_http_upstream_get_peer."""
        best: Peer | None = None
        best_i = 0
        total = 0
        tried = self.tried
        for i, peer in enumerate(self.group.peers):
            if i in tried or peer.down or peer.failed_now(now) or peer.full():
                continue
            peer.current_weight += peer.effective_weight
            total += peer.effective_weight
            if peer.effective_weight < peer.weight:
                peer.effective_weight += 1
            if best is None or peer.current_weight > best.current_weight:
                best = peer
                best_i = i
        if best is None:
            return None
        best.current_weight -= total
        self.tried.add(best_i)
        if now - best.checked > best.fail_timeout:
            best.checked = now
        best.conns += 1
        return best

    def _get_least_conn(self, now: float) -> Peer | None:
        group = self.group
        if group.single:
            return self._get_rr(now)
        peers = group.peers
        tried = self.tried
        best: Peer | None = None
        best_i = 0
        many = False
        for i, peer in enumerate(peers):
            if i in tried or peer.down or peer.failed_now(now) or peer.full():
                continue
            # fewest connections relative to weight; ties are settled by round robin
            if best is None or peer.conns * best.weight < best.conns * peer.weight:
                best = peer
                best_i = i
                many = False
            elif peer.conns * best.weight == best.conns * peer.weight:
                many = True
        if best is None:
            if self._to_backup():
                return self._get_least_conn(now)
            return None
        total = 0
        if many:
            lead = best
            for i in range(best_i, len(peers)):
                peer = peers[i]
                if i in tried or peer.down:
                    continue
                if peer.conns * lead.weight != lead.conns * peer.weight:
                    continue
                if peer.failed_now(now) or peer.full():
                    continue
                peer.current_weight += peer.effective_weight
                total += peer.effective_weight
                if peer.effective_weight < peer.weight:
                    peer.effective_weight += 1
                if peer.current_weight > best.current_weight:
                    best = peer
                    best_i = i
        best.current_weight -= total
        return self._chosen(best, best_i, now)

    def _pick_by_weight(self, value: int) -> tuple[int, Peer]:
        peers = self.group.peers
        w = value % self.group.total_weight
        p = 0
        while w >= peers[p].weight:
            w -= peers[p].weight
            p += 1
        return p, peers[p]

    def _get_ip_hash(self, now: float) -> Peer | None:
        if self.hash_tries > _HASH_PROBES or len(self.group) < 2:
            return self._get_rr(now)
        addr = ip_hash_bytes(self.key)
        h = self.hash
        while True:
            for b in addr:
                h = (h * 113 + b) % 6271
            p, peer = self._pick_by_weight(h)
            if p not in self.tried and peer.usable(now):
                break
            self.hash_tries += 1
            if self.hash_tries > _HASH_PROBES:
                return self._get_rr(now)
        self.hash = h
        return self._chosen(peer, p, now)

    def _get_hash(self, now: float) -> Peer | None:
        if self.hash_tries > _HASH_PROBES or len(self.group) < 2 or not self.key:
            return self._get_rr(now)
        key = self.key.encode()
        while True:
            # Cache::Memcached: ((crc32([REHASH] KEY) >> 16) & 0x7fff) + PREV_HASH
            prefix = str(self.rehash).encode() if self.rehash > 0 else b""
            h = (zlib.crc32(prefix + key) >> 16) & 0x7FFF
            self.hash = (self.hash + h) & 0xFFFFFFFF
            self.rehash += 1
            p, peer = self._pick_by_weight(self.hash)
            if p not in self.tried and peer.usable(now):
                break
            self.hash_tries += 1
            if self.hash_tries > _HASH_PROBES:
                return self._get_rr(now)
        return self._chosen(peer, p, now)

    def _get_chash(self, now: float) -> Peer | None:
        if self.hash_tries > _HASH_PROBES or self.group.single or not self.key:
            return self._get_rr(now)
        points = self.balancer._point_servers
        if not points:
            return None
        peers = self.group.peers
        while True:
            server = points[self.hash % len(points)]
            best: Peer | None = None
            best_i = 0
            total = 0
            for i, peer in enumerate(peers):
                if i in self.tried or peer.down or peer.failed_now(now) or peer.full():
                    continue
                if peer.server != server:
                    continue
                peer.current_weight += peer.effective_weight
                total += peer.effective_weight
                if peer.effective_weight < peer.weight:
                    peer.effective_weight += 1
                if best is None or peer.current_weight > best.current_weight:
                    best = peer
                    best_i = i
            if best is not None:
                best.current_weight -= total
                return self._chosen(best, best_i, now)
            self.hash += 1
            self.hash_tries += 1
            if self.hash_tries > _HASH_PROBES:
                return self._get_rr(now)

    def __repr__(self) -> str:
        group = "backup" if self.group is self.balancer.backup else "primary"
        tried = ",".join(str(i) for i in sorted(self.tried))
        return (f"<BalancerState {self.balancer.name} {group} tries={self.tries}"
                f" tried=[{tried}]>")
