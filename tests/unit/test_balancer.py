"""proxy.balancer against nginx's round robin, least_conn, ip_hash and hash modules.

Everything is deterministic: the clock is the `now` each call receives.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
import zlib
from collections import Counter
from pathlib import Path

import pytest

from truehop.conf.model import PeerConf, UpstreamConf
from truehop.proxy.balancer import BalancerState, Peer, UpstreamBalancer, ip_hash_bytes


def peers(*specs: str, **common: object) -> list[PeerConf]:
    """`peers("a:5", "b", "c backup")` -> PeerConf list; hosts are single letters."""
    out = []
    for spec in specs:
        words = spec.split()
        host, _, w = words[0].partition(":")
        kw: dict[str, object] = dict(common)
        kw["weight"] = int(w) if w else 1
        for flag in words[1:]:
            name, _, val = flag.partition("=")
            kw[name] = float(val) if name == "fail_timeout" else int(val) if val else True
        out.append(PeerConf(host, 80, **kw))  # type: ignore[arg-type]
    return out


def pick(b: UpstreamBalancer, now: float = 100.0, key: str | None = None,
         failed: bool = False) -> str | None:
    """One request, one try: which peer, then done()."""
    st = b.start(now, key)
    p = st.next(now)
    if p is None:
        return None
    st.done(p, now, failed)
    return p.addr


def seq(b: UpstreamBalancer, n: int, now: float = 100.0, key: str | None = None) -> str:
    return "".join(pick(b, now, key) or "-" for _ in range(n))


# -- smooth weighted round robin ---------------------------------------------------------

@pytest.mark.parametrize(("specs", "n", "expected"), [
    (("a:5", "b", "c"), 7, "aabacaa"),        # nginx's own example
    (("a:5", "b", "c"), 14, "aabacaa" * 2),
    (("a", "b", "c"), 6, "abcabc"),
    (("a:2", "b"), 6, "abaaba"),
    (("a", "b:2"), 6, "babbab"),
    (("a:3", "b:2"), 5, "abab" "a"),
    (("a",), 3, "aaa"),
])
def test_smooth_wrr_sequence(specs: tuple[str, ...], n: int, expected: str) -> None:
    b = UpstreamBalancer.build("round_robin", peers(*specs))
    assert seq(b, n) == expected


@pytest.mark.parametrize(("specs", "n", "expected"), [
    (("a", "b", "c", "d"), 1000, {"a": 250, "b": 250, "c": 250, "d": 250}),
    (("a:3", "b:2", "c"), 1200, {"a": 600, "b": 400, "c": 200}),
    (("a:7", "b:3"), 1000, {"a": 700, "b": 300}),
])
def test_wrr_evenness(specs: tuple[str, ...], n: int, expected: dict[str, int]) -> None:
    b = UpstreamBalancer.build("round_robin", peers(*specs))
    assert Counter(seq(b, n)) == expected


def test_down_is_never_chosen() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a", "b down", "c"))
    assert "b" not in seq(b, 100)
    b = UpstreamBalancer.build("round_robin", peers("a down", "b down"))
    assert pick(b) is None


@pytest.mark.parametrize("kind", ["round_robin", "least_conn", "ip_hash", "hash"])
def test_max_conns_skips_a_full_peer(kind: str) -> None:
    """max_conns=N: a peer with N requests in flight is skipped (then the backup, then
    "no live upstreams"); it is chosen again once one of them ends."""
    b = UpstreamBalancer.build(kind, peers("a max_conns=1", "b max_conns=1", "c backup"),
                               hash_key=None)
    held = []
    for _ in range(3):
        st = b.start(0.0, "10.0.0.1")
        p = st.next(0.0)
        assert p is not None
        held.append((st, p))
    assert sorted(p.addr for _, p in held) == ["a", "b", "c"]
    assert b.start(0.0, "10.0.0.1").next(0.0) is not None     # the backup has no limit
    st, p = held.pop(0)
    st.done(p, 0.0, failed=False)
    st2 = b.start(0.0, "10.0.0.1")
    assert st2.next(0.0) is p                                   # freed: chosen again


def test_max_conns_single_peer_is_no_live_upstreams() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a max_conns=2"))
    first = [b.start(0.0) for _ in range(2)]
    assert all(st.next(0.0) is not None for st in first)
    assert b.start(0.0).next(0.0) is None


def test_retries_never_repeat_a_peer_and_stop_after_every_peer() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a", "b", "c", "d down"))
    st = b.start(0.0)
    got = []
    while (p := st.next(0.0)) is not None:
        got.append(p.addr)
        st.done(p, 0.0, failed=True)
    assert sorted(got) == ["a", "b", "c"]
    assert st.tries == 0


def test_tries_limit() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a", "b", "c"))
    st = b.start(0.0, tries=2)
    got = []
    while (p := st.next(0.0)) is not None:
        got.append(p.addr)
        st.done(p, 0.0, failed=True)
    assert len(got) == 2


def test_conns_follow_get_and_free() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a", "b"))
    s1, s2 = b.start(0.0), b.start(0.0)
    p1, p2 = s1.next(0.0), s2.next(0.0)
    assert p1 is not None and p2 is not None
    assert (p1.conns, p2.conns) == (1, 1)
    s1.done(p1, 0.0, False)
    assert p1.conns == 0


# -- passive health ----------------------------------------------------------------------

def test_max_fails_window_then_one_probe() -> None:
    b = UpstreamBalancer.build("round_robin",
                               peers("a max_fails=2 fail_timeout=10", "b"))
    a = b.find("a", 80)
    assert a is not None
    # two failures within the window take `a` out
    st = b.start(0.0)
    p = st.next(0.0)
    assert p is a
    st.done(a, 0.0, failed=True)
    assert not a.failed_now(0.5)
    st = b.start(1.0)
    while (p := st.next(1.0)) is not a:
        assert p is not None
        st.done(p, 1.0, False)
    assert st.done(a, 1.0, failed=True) is True          # "temporarily disabled"
    assert a.fails == 2
    assert "a" not in seq(b, 10, now=5.0)
    assert "a" not in seq(b, 10, now=11.0)               # now - checked <= fail_timeout
    # after fail_timeout, one request is let through ...
    st = b.start(11.5)
    got = []
    while (p := st.next(11.5)) is not None and p is not a:
        got.append(p)
        st.done(p, 11.5, False)
    assert p is a
    # ... and while it is out, others don't get `a`
    assert "a" not in seq(b, 5, now=12.0)
    # its success makes `a` live again
    st.done(a, 12.0, failed=False)
    assert a.fails == 0
    assert "a" in seq(b, 4, now=12.5)


def test_probe_that_fails_keeps_peer_out_another_window() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a", "b"))
    assert pick(b, 0.0, failed=True) == "a"
    assert seq(b, 4, now=5.0) == "bbbb"
    # the probe after the window fails (effective weight was 0: it climbs back first)
    for _ in range(3):
        st = b.start(20.0)
        p = st.next(20.0)
        assert p is not None
        if p.addr == "a":
            break
        st.done(p, 20.0, failed=False)
    assert p is not None and p.addr == "a"
    st.done(p, 20.0, failed=True)
    assert seq(b, 4, now=29.0) == "bbbb"
    assert "a" in seq(b, 3, now=31.0)                   # weights settle first


def test_fails_within_window_accumulate_success_does_not_reset() -> None:
    # nginx resets fails on success only for a probe after fail_timeout (accessed < checked)
    b = UpstreamBalancer.build("round_robin",
                               peers("a max_fails=3 fail_timeout=10", "b"))
    a = b.find("a", 80)
    assert a is not None
    assert pick(b, 0.0, failed=True) == "a"
    assert pick(b, 1.0) == "b"
    assert pick(b, 2.0) == "a"
    assert a.fails == 1


def test_max_fails_zero_disables_accounting() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a max_fails=0", "b max_fails=0"))
    for _ in range(10):
        pick(b, 0.0, failed=True)
    assert Counter(seq(b, 4, now=0.0)) == {"a": 2, "b": 2}


def test_failure_lowers_effective_weight_then_recovers() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a:4 max_fails=2", "b"))
    a = b.find("a", 80)
    assert a is not None
    st = b.start(0.0)
    p = st.next(0.0)
    assert p is a
    st.done(a, 0.0, failed=True)
    assert a.effective_weight == 2                       # weight / max_fails
    seq(b, 5, now=1.0)
    assert a.effective_weight == 4


def test_no_live_upstreams_and_no_reset() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a", "b"))
    st = b.start(0.0)
    for _ in range(2):
        p = st.next(0.0)
        assert p is not None
        st.done(p, 0.0, failed=True)
    assert st.next(0.0) is None
    # a new request: every peer is out -> None (the caller answers 502, logs
    # "no live upstreams while connecting to upstream"); nginx 1.30 does not reset fails
    assert pick(b, 1.0) is None
    assert pick(b, 2.0) is None
    assert [p.fails for p in b.peers] == [1, 1]
    assert pick(b, 10.5) is not None


def test_single_peer_is_never_unavailable() -> None:
    # nginx: "If there is only a single server in a group, max_fails, fail_timeout and
    # slow_start parameters are ignored" -- this is also the implicit upstream case.
    b = UpstreamBalancer.build(UpstreamConf("127.0.0.1:3000", [PeerConf("127.0.0.1", 3000)],
                                            implicit=True))
    assert b.primary.single
    st = b.start(0.0)
    p = st.next(0.0)
    assert p is not None
    st.done(p, 0.0, failed=True)
    assert p.fails == 0
    assert st.next(0.0) is None                          # nothing else to try
    assert pick(b, 0.1) == "127.0.0.1"
    assert pick(UpstreamBalancer.build("round_robin", peers("a down"))) is None


def test_name_with_several_addresses_is_not_single() -> None:
    b = UpstreamBalancer.build("round_robin",
                               [PeerConf("127.0.0.1", 80), PeerConf("::1", 80)])
    assert not b.primary.single
    assert pick(b, 0.0, failed=True) == "127.0.0.1"
    assert [pick(b, 1.0) for _ in range(2)] == ["::1", "::1"]


# -- backup ------------------------------------------------------------------------------

def test_backup_only_when_primaries_unavailable() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a", "b", "c backup", "d backup"))
    assert b.backup is not None and not b.primary.single
    assert set(seq(b, 20)) == {"a", "b"}
    # both primaries fail within one request: the retries go to the backups
    st = b.start(0.0)
    got = []
    while (p := st.next(0.0)) is not None:
        got.append(p.addr)
        st.done(p, 0.0, failed=True)
    assert got[:2] in (["a", "b"], ["b", "a"])
    assert sorted(got[2:]) == ["c", "d"]
    assert seq(b, 2, now=1.0) == "--"                    # no live upstreams
    assert set(seq(b, 6, now=10.5)) == {"a", "b"}


def test_backup_serves_while_primaries_out_then_primaries_return() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a", "b down", "c backup"))
    assert pick(b, 0.0, failed=True) == "a"
    assert seq(b, 3, now=1.0) == "ccc"
    assert seq(b, 3, now=10.5) == "aaa"


def test_single_primary_with_backup_is_not_single() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a", "c backup"))
    assert not b.primary.single
    assert pick(b, 0.0, failed=True) == "a"
    assert pick(b, 1.0) == "c"


# -- least_conn --------------------------------------------------------------------------

def test_least_conn_prefers_fewest_active() -> None:
    b = UpstreamBalancer.build("least_conn", peers("a", "b", "c"))
    states = [b.start(0.0) for _ in range(3)]
    got = [s.next(0.0) for s in states]
    assert [p.addr for p in got if p] == ["a", "b", "c"]  # ties settled by round robin
    b_peer = got[1]
    assert b_peer is not None
    states[1].done(b_peer, 0.0, False)
    assert pick(b, 0.0) == "b"                           # the only one with 0 conns


def test_least_conn_weighs_connections() -> None:
    b = UpstreamBalancer.build("least_conn", peers("a:2", "b"))
    held = []
    for _ in range(3):
        st = b.start(0.0)
        p = st.next(0.0)
        assert p is not None
        held.append(p.addr)
    # a (weight 2) takes two for every one of b
    assert Counter(held) == {"a": 2, "b": 1}


def test_least_conn_ties_are_weighted_round_robin() -> None:
    b = UpstreamBalancer.build("least_conn", peers("a:5", "b", "c"))
    assert seq(b, 7) == "aabacaa"


def test_least_conn_backup_and_failures() -> None:
    b = UpstreamBalancer.build("least_conn", peers("a", "b", "c backup"))
    assert pick(b, 0.0, failed=True) in ("a", "b")
    assert pick(b, 0.0, failed=True) in ("a", "b")
    assert pick(b, 1.0) == "c"


# -- ip_hash -----------------------------------------------------------------------------

def test_ip_hash_bytes() -> None:
    assert ip_hash_bytes("10.1.2.3") == bytes([10, 1, 2])
    assert ip_hash_bytes("::1") == bytes(15) + b"\x01"
    assert ip_hash_bytes("[::1]") == bytes(15) + b"\x01"
    assert ip_hash_bytes("unix:") == b"\0\0\0"
    assert ip_hash_bytes(None) == b"\0\0\0"


def test_ip_hash_value_matches_nginx_formula() -> None:
    # 89 -> (h*113 + 1) % 6271 = 3787 -> (..+2) = 1505 -> (..+3) = 751; 751 % 3 = 1
    b = UpstreamBalancer.build("ip_hash", peers("a", "b", "c"))
    assert pick(b, key="1.2.3.4") == "b"


def test_ip_hash_same_slash24_same_peer() -> None:
    b = UpstreamBalancer.build("ip_hash", peers("a", "b", "c", "d"))
    for net in ("10.0.0", "192.168.7", "203.0.113", "172.16.99"):
        got = {pick(b, key=f"{net}.{i}") for i in range(1, 255, 17)}
        assert len(got) == 1, net
    spread = {pick(b, key=f"10.{i}.{j}.1") for i in range(8) for j in range(8)}
    assert spread == {"a", "b", "c", "d"}


def test_ip_hash_ipv6_uses_whole_address() -> None:
    b = UpstreamBalancer.build("ip_hash", peers("a", "b", "c", "d"))
    got = {pick(b, key=f"2001:db8::{i:x}") for i in range(64)}
    assert len(got) > 1


def test_ip_hash_skips_unavailable_deterministically() -> None:
    b = UpstreamBalancer.build("ip_hash", peers("a", "b", "c"))
    first = pick(b, 0.0, key="1.2.3.4")
    assert first == "b"
    assert pick(b, 0.0, key="1.2.3.4", failed=True) == "b"
    other = pick(b, 1.0, key="1.2.3.4")
    assert other in ("a", "c")
    assert all(pick(b, 2.0, key="1.2.3.4") == other for _ in range(5))
    assert pick(b, 11.0, key="1.2.3.4") == "b"


def test_ip_hash_falls_back_to_round_robin() -> None:
    b = UpstreamBalancer.build("ip_hash", peers("a", "b down", "c down"))
    # every hash probe lands on a down peer for some clients; 20 probes then round robin
    assert {pick(b, key=f"10.0.{i}.1") for i in range(50)} == {"a"}


# -- hash --------------------------------------------------------------------------------

def test_hash_matches_cache_memcached_formula() -> None:
    b = UpstreamBalancer.build("hash", peers("a", "b", "c"))
    for key in ("abc", "/index.html", "user42"):
        h = (zlib.crc32(key.encode()) >> 16) & 0x7FFF
        assert pick(b, key=key) == "abc"[h % 3]


def test_hash_weighted_and_stable() -> None:
    b = UpstreamBalancer.build("hash", peers("a:2", "b"))
    for key in ("k1", "k2", "k3"):
        h = (zlib.crc32(key.encode()) >> 16) & 0x7FFF
        assert pick(b, key=key) == ("a" if h % 3 < 2 else "b")
        assert seq(b, 5, key=key) == (pick(b, key=key) or "") * 5


def test_hash_rehash_when_peer_out() -> None:
    b = UpstreamBalancer.build("hash", peers("a", "b", "c"))
    key = "abc"
    home = pick(b, 0.0, key=key)
    assert pick(b, 0.0, key=key, failed=True) == home
    rehashed = pick(b, 1.0, key=key)
    assert rehashed != home
    h = (zlib.crc32(key.encode()) >> 16) & 0x7FFF
    h2 = h + ((zlib.crc32(b"1" + key.encode()) >> 16) & 0x7FFF)
    probes = [h, h2]
    n = 2
    while "abc"[probes[-1] % 3] == home:
        probes.append(probes[-1] + ((zlib.crc32(str(n).encode() + key.encode()) >> 16) & 0x7FFF))
        n += 1
    assert rehashed == "abc"[probes[-1] % 3]


def test_hash_empty_key_is_round_robin() -> None:
    b = UpstreamBalancer.build("hash", peers("a", "b"))
    assert seq(b, 4, key="") == "abab"
    assert seq(b, 4, key=None) == "abab"


# -- hash consistent ---------------------------------------------------------------------

def chash(names: list[str]) -> UpstreamBalancer:
    return UpstreamBalancer.build("hash consistent",
                                  [PeerConf(f"10.0.0.{n}", 80) for n in names])


def owners(b: UpstreamBalancer, keys: list[str]) -> dict[str, str]:
    return {k: pick(b, key=k) or "" for k in keys}


def test_chash_points_per_weight() -> None:
    b = UpstreamBalancer.build("hash", peers("a:2", "b"), consistent=True)
    assert b.kind == "hash_consistent"
    assert len(b._points) == 3 * 160                      # no collisions for these
    assert b._points == sorted(b._points)


def test_chash_removing_a_peer_moves_only_its_keys() -> None:
    keys = [f"/item/{i}" for i in range(3000)]
    before = owners(chash(["1", "2", "3", "4", "5"]), keys)
    after = owners(chash(["1", "2", "3", "5"]), keys)
    moved = [k for k in keys if before[k] != after[k]]
    assert all(before[k] == "10.0.0.4" for k in moved)
    assert {k for k in keys if before[k] == "10.0.0.4"} == set(moved)
    assert 0.10 < len(moved) / len(keys) < 0.32          # ~1/5
    assert min(Counter(before.values()).values()) > 3000 / 5 * 0.6


def test_chash_failed_peer_goes_to_next_point() -> None:
    b = chash(["1", "2", "3"])
    key = "session-17"
    home = pick(b, 0.0, key=key)
    assert pick(b, 0.0, key=key, failed=True) == home
    moved = pick(b, 1.0, key=key)
    assert moved not in (home, None)
    assert pick(b, 11.0, key=key) == home


def test_chash_key_stable_across_requests() -> None:
    b = chash(["1", "2", "3"])
    assert len({pick(b, key="same") for _ in range(20)}) == 1


def test_chash_several_addresses_of_one_server_share_points() -> None:
    b = UpstreamBalancer("u", "hash_consistent", [
        Peer("10.0.0.1", 80, server="app.example:80"),
        Peer("10.0.0.2", 80, server="app.example:80"),
        Peer("10.0.0.3", 80, server="db.example:80"),
    ])
    assert len(b._points) == 2 * 160                      # one set of points per server
    got = Counter(pick(b, key=f"k{i}") for i in range(400))
    assert set(got) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}


# -- construction and repr ---------------------------------------------------------------

def test_build_from_upstream_conf() -> None:
    conf = UpstreamConf("backend", peers("a:5", "b", "c backup"), kind="least_conn")
    b = UpstreamBalancer.build(conf)
    assert (b.name, b.kind) == ("backend", "least_conn")
    assert [p.addr for p in b.primary.peers] == ["a", "b"]
    assert b.backup is not None and [p.addr for p in b.backup.peers] == ["c"]
    conf = UpstreamConf("h", peers("a", "b"), kind="hash", hash_consistent=True)
    assert UpstreamBalancer.build(conf).kind == "hash_consistent"


@pytest.mark.parametrize("kind", ["nope", "random"])
def test_unknown_kind(kind: str) -> None:
    with pytest.raises(ValueError):
        UpstreamBalancer.build(kind, peers("a"))


def test_repr() -> None:
    b = UpstreamBalancer.build("round_robin", peers("a:2", "b down", "c backup"),
                               name="backend")
    st = b.start(0.0)
    p = st.next(0.0)
    assert p is not None
    st.done(p, 0.0, failed=True)
    assert repr(b) == (
        "<UpstreamBalancer backend round_robin ["
        "a:80 weight=2 eff=0 cur=0 fails=1/1 conns=0, "
        "b:80 weight=1 eff=1 cur=0 fails=0/1 conns=0 down, "
        "c:80 weight=1 eff=1 cur=0 fails=0/1 conns=0 backup]>")
    assert repr(st) == "<BalancerState backend primary tries=1 tried=[0]>"
    assert isinstance(st, BalancerState)
    assert repr(Peer("::1", 8080)) == "[::1]:8080 weight=1 eff=1 cur=0 fails=0/1 conns=0"


# -- differential: the same keys through a real nginx --------------------------------------

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                  else None)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.nginx
@pytest.mark.skipif(NGINX is None, reason="nginx not installed")
def test_same_choices_as_nginx(tmp_path: Path) -> None:
    front, pa, pb, pc = _free_ports(4)
    servers = (f"server 127.0.0.1:{pa}; server 127.0.0.1:{pb} weight=2;"
               f" server 127.0.0.1:{pc};")
    (tmp_path / "nginx.conf").write_text(f"""
daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;
events {{}}
http {{
  access_log off;
  upstream ch {{ hash $arg_k consistent; {servers} }}
  upstream h  {{ hash $arg_k; {servers} }}
  upstream ip {{ ip_hash; {servers} }}
  server {{ listen 127.0.0.1:{pa}; return 200 a; }}
  server {{ listen 127.0.0.1:{pb}; return 200 b; }}
  server {{ listen 127.0.0.1:{pc}; return 200 c; }}
  server {{ listen 127.0.0.1:{front};
    set_real_ip_from 127.0.0.1; real_ip_header X-Real-IP;
    location /ch {{ proxy_pass http://ch; }}
    location /h {{ proxy_pass http://h; }}
    location /ip {{ proxy_pass http://ip; }}
  }}
}}
""")
    assert NGINX is not None
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", front), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip("nginx did not start")
                time.sleep(0.05)

        def get(path: str, headers: dict[str, str] | None = None) -> str:
            req = urllib.request.Request(f"http://127.0.0.1:{front}{path}",
                                         headers=headers or {})
            with urllib.request.urlopen(req, timeout=5) as resp:
                return str(resp.read().decode())

        conf = [PeerConf("127.0.0.1", pa), PeerConf("127.0.0.1", pb, weight=2),
                PeerConf("127.0.0.1", pc)]
        letter = {pa: "a", pb: "b", pc: "c"}

        def ours(b: UpstreamBalancer, key: str) -> str:
            st = b.start(0.0, key)
            p = st.next(0.0)
            assert p is not None
            st.done(p, 0.0, False)
            return letter[p.port]

        for kind, path in (("hash consistent", "/ch"), ("hash", "/h")):
            b = UpstreamBalancer.build(kind, conf)
            for i in range(100):
                assert get(f"{path}?k=key{i}") == ours(b, f"key{i}"), (kind, i)
        b = UpstreamBalancer.build("ip_hash", conf)
        for i in range(100):
            ip = f"10.{i % 251}.{i * 7 % 253}.9"
            assert get("/ip", {"X-Real-IP": ip}) == ours(b, ip), ip
    finally:
        proc.terminate()
        proc.wait(10)
