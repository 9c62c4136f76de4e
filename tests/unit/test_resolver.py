"""net.resolver: DNS messages (sans-IO), and lookups against a small DNS server on loopback."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from truehop.net.resolver import AAAA, A, ResolveError, Resolver, decode_answer, encode_query

sys.path.insert(0, str(Path(__file__).parent.parent / "e2e"))
from dns_server import DNSServer, _name, answer  # noqa: E402


def test_encode_and_decode() -> None:
    q = encode_query(0x1234, "app.example.test", A)
    assert q[:4] == b"\x12\x34\x01\x00"
    assert _name(q, 12)[0] == "app.example.test"
    r = answer(q, [(A, socket.inet_aton("10.0.0.7"), 30), (A, socket.inet_aton("10.0.0.8"), 9)],
               cname="real.example.test")
    ans = decode_answer(r, A)
    assert (ans.qid, ans.rcode, ans.truncated) == (0x1234, 0, False)
    assert ans.addrs == ("10.0.0.7", "10.0.0.8") and ans.ttl == 9
    q6 = encode_query(1, "x.test", AAAA)
    r6 = answer(q6, [(AAAA, socket.inet_pton(socket.AF_INET6, "::1"), 5)])
    assert decode_answer(r6, AAAA).addrs == ("::1",)
    assert decode_answer(answer(q, [], rcode=3), A).rcode == 3
    with pytest.raises(ValueError):
        decode_answer(r[:-3], A)
    with pytest.raises(ValueError):
        decode_answer(q, A)        # a query is not an answer
    with pytest.raises(ValueError):
        encode_query(1, "a..b", A)


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    s = DNSServer()
    yield s
    s.close()


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_lookup_both_families_and_cache(dns: DNSServer) -> None:
    dns.table["app.test"] = ["127.0.0.2", "127.0.0.3", "::1"]

    async def main() -> tuple[tuple[str, ...], tuple[str, ...], int]:
        res = Resolver([("127.0.0.1", dns.port)], timeout=2)
        first = await res.resolve("app.test")
        n = len(dns.asked)
        second = await res.resolve("app.test")       # from the cache (TTL 2 s)
        assert len(dns.asked) == n
        return first, second, n
    first, second, n = run(main())  # type: ignore[misc]
    assert first == second == ("127.0.0.2", "127.0.0.3", "::1")
    assert n == 2 and {q[1] for q in dns.asked} == {A, AAAA}


def test_ipv6_off_valid_and_errors(dns: DNSServer) -> None:
    dns.table["app.test"] = ["127.0.0.2", "::1"]
    dns.table["broken.test"] = 2

    async def main() -> None:
        res = Resolver([("127.0.0.1", dns.port)], valid=0, ipv6=False, timeout=2)
        assert await res.resolve("app.test") == ("127.0.0.2",)
        assert all(q[1] == A for q in dns.asked)
        await res.resolve("app.test")
        assert len(dns.asked) == 2                    # valid=0: asked again
        with pytest.raises(ResolveError, match=r"nope.test could not be resolved "
                                               r"\(3: Host not found\)"):
            await res.resolve("nope.test")
        n = len(dns.asked)
        with pytest.raises(ResolveError):
            await res.resolve("nope.test")            # the error is cached too
        assert len(dns.asked) == n
        with pytest.raises(ResolveError, match=r"\(2: Server failure\)"):
            await res.resolve("broken.test")
    run(main())


def test_truncated_answer_is_asked_over_tcp(dns: DNSServer) -> None:
    dns.table["big.test"] = ["127.0.0.9"]
    dns.truncate.add("big.test")

    async def main() -> tuple[str, ...]:
        return await Resolver([("127.0.0.1", dns.port)], ipv6=False, timeout=2).resolve(
            "big.test")
    assert run(main()) == ("127.0.0.9",)
    assert [q[2] for q in dns.asked] == ["udp", "tcp"]


def test_timeout_tries_every_server(dns: DNSServer) -> None:
    dns.silent = True
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quiet.bind(("127.0.0.1", 0))

    async def main() -> None:
        res = Resolver([("127.0.0.1", quiet.getsockname()[1]), ("127.0.0.1", dns.port)],
                       ipv6=False, timeout=1.5)
        with pytest.raises(ResolveError, match=r"\(110: Operation timed out\)"):
            await res.resolve("slow.test")
    try:
        run(main())
    finally:
        quiet.close()
    assert len(dns.asked) == 1      # the second server was asked after the first's second
