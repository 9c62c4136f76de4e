"""The `resolver` directive: names in `proxy_pass` with variables, resolved at run time over
DNS, as nginx's own resolver does (ngx_resolver.c) — never through the system's resolver,
which would block the worker and ignore the configured servers.

* Queries: A, and AAAA unless `ipv6=off` (and no A with `ipv4=off`), over UDP to the
  configured servers in turn, each tried until `resolver_timeout` runs out; a truncated
  answer is asked again over TCP. Answers follow CNAME chains within the response.
* Cache: per name, for the answer's smallest TTL, or `valid=` when given (nginx's rule);
  errors are cached for 30 s as nginx does (NGX_RESOLVER error expiry), so a missing name
  does not send a query per request.
* Errors are nginx's: `X could not be resolved (3: Host not found)`, `(2: Server failure)`,
  `(110: Operation timed out)`.

`encode_query` / `decode_answer` are sans-IO and unit-tested; `Resolver.resolve` does I/O.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from dataclasses import dataclass

__all__ = ["ResolveError", "Resolver", "decode_answer", "encode_query"]

A, AAAA, CNAME = 1, 28, 5
ERROR_TTL = 30.0
MAX_CACHE = 4096


class ResolveError(Exception):
    """nginx's resolver error: `code` and text as ngx_resolver_strerror gives them."""

    def __init__(self, name: str, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"{name} could not be resolved ({code}: {text})")


_RCODE_TEXT = {1: "Format error", 2: "Server failure", 3: "Host not found",
               4: "Unimplemented", 5: "Operation refused"}


def encode_query(qid: int, name: str, qtype: int) -> bytes:
    """A standard query with recursion desired."""
    out = [struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)]
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
        if not raw or len(raw) > 63:
            raise ValueError(f"invalid name {name!r}")
        out.append(bytes([len(raw)]) + raw)
    out.append(b"\x00" + struct.pack("!HH", qtype, 1))
    return b"".join(out)


def _skip_name(msg: bytes, pos: int) -> int:
    while True:
        n = msg[pos]
        if n == 0:
            return pos + 1
        if n & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + n


@dataclass(frozen=True, slots=True)
class Answer:
    qid: int
    truncated: bool
    rcode: int
    addrs: tuple[str, ...]
    ttl: int


def decode_answer(msg: bytes, qtype: int) -> Answer:
    """The addresses of type `qtype` in a response (any owner name: the CNAME chain of the
    question ends there), and their smallest TTL. Raises ValueError on a malformed message."""
    try:
        qid, flags, qd, an, _ns, _ar = struct.unpack_from("!HHHHHH", msg, 0)
        if not flags & 0x8000:
            raise ValueError("not a response")
        pos = 12
        for _ in range(qd):
            pos = _skip_name(msg, pos) + 4
        addrs: list[str] = []
        ttl = 1 << 31
        for _ in range(an):
            pos = _skip_name(msg, pos)
            rtype, _rclass, rttl, rdlen = struct.unpack_from("!HHIH", msg, pos)
            pos += 10
            rdata = msg[pos:pos + rdlen]
            if len(rdata) != rdlen:
                raise ValueError("truncated record")
            pos += rdlen
            if rtype == qtype == A and rdlen == 4:
                addrs.append(socket.inet_ntop(socket.AF_INET, rdata))
            elif rtype == qtype == AAAA and rdlen == 16:
                addrs.append(socket.inet_ntop(socket.AF_INET6, rdata))
            else:
                continue
            ttl = min(ttl, rttl)
        return Answer(qid, bool(flags & 0x0200), flags & 0x000F, tuple(addrs),
                      ttl if addrs else 0)
    except (struct.error, IndexError) as e:
        raise ValueError(f"malformed DNS message: {e}") from None


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, waiter: asyncio.Future[bytes], qid: int) -> None:
        self.waiter = waiter
        self.qid = qid

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) >= 2 and struct.unpack_from("!H", data)[0] == self.qid and \
                not self.waiter.done():
            self.waiter.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.waiter.done():
            self.waiter.set_exception(exc)


class Resolver:
    """One `resolver` line's servers and options; the cache is per worker."""

    def __init__(self, servers: list[tuple[str, int]], valid: float | None = None,
                 ipv4: bool = True, ipv6: bool = True, timeout: float = 30.0) -> None:
        self.servers = servers
        self.valid = valid
        self.types = ([A] if ipv4 else []) + ([AAAA] if ipv6 else [])
        self.timeout = timeout
        self.cache: dict[str, tuple[float, tuple[str, ...] | ResolveError]] = {}
        self.pending: dict[str, asyncio.Future[tuple[str, ...]]] = {}

    async def resolve(self, name: str) -> tuple[str, ...]:
        """The addresses of `name`; raises ResolveError. Concurrent asks share one lookup."""
        now = time.monotonic()
        hit = self.cache.get(name)
        if hit is not None and hit[0] > now:
            if isinstance(hit[1], ResolveError):
                raise hit[1]
            return hit[1]
        fut = self.pending.get(name)
        if fut is None:
            fut = asyncio.ensure_future(self._lookup(name))
            self.pending[name] = fut
            fut.add_done_callback(lambda _f: self.pending.pop(name, None))
        return await asyncio.shield(fut)

    def expires(self, name: str) -> float:
        """When the cached answer (or error) for `name` expires (monotonic); 0.0 if none."""
        hit = self.cache.get(name)
        return hit[0] if hit is not None else 0.0

    async def _lookup(self, name: str) -> tuple[str, ...]:
        deadline = time.monotonic() + self.timeout
        addrs: list[str] = []
        ttl = 1 << 31
        failure: ResolveError | None = None
        for qtype in self.types:
            try:
                ans = await self._ask(name, qtype, deadline)
            except ResolveError as e:
                failure = e
                continue
            if ans.rcode and ans.rcode != 3:
                failure = ResolveError(name, ans.rcode, _RCODE_TEXT.get(ans.rcode, "Unknown"))
                continue
            addrs.extend(a for a in ans.addrs if a not in addrs)
            if ans.addrs:
                ttl = min(ttl, ans.ttl)
        if len(self.cache) >= MAX_CACHE:
            self.cache.clear()
        now = time.monotonic()
        if not addrs:
            err = failure if failure is not None and failure.code != 3 else \
                ResolveError(name, 3, "Host not found")
            self.cache[name] = (now + ERROR_TTL, err)
            raise err
        life = self.valid if self.valid is not None else float(ttl)
        self.cache[name] = (now + life, tuple(addrs))
        return tuple(addrs)

    async def _ask(self, name: str, qtype: int, deadline: float) -> Answer:
        qid = random.getrandbits(16)
        try:
            query = encode_query(qid, name, qtype)
        except (ValueError, UnicodeError):
            raise ResolveError(name, 3, "Host not found") from None
        loop = asyncio.get_running_loop()
        # each server in turn, then again, until the deadline (nginx retries every second)
        i = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ResolveError(name, 110, "Operation timed out")
            host, port = self.servers[i % len(self.servers)]
            i += 1
            waiter: asyncio.Future[bytes] = loop.create_future()
            proto = _Datagram(waiter, qid)
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda p=proto: p, remote_addr=(host, port))  # type: ignore[misc]
            except OSError:
                await asyncio.sleep(min(1.0, left))
                continue
            try:
                transport.sendto(query)
                data = await asyncio.wait_for(waiter, min(1.0, left))
            except (TimeoutError, OSError):
                continue
            finally:
                transport.close()
            try:
                ans = decode_answer(data, qtype)
            except ValueError:
                continue
            if ans.truncated:
                return await self._ask_tcp(host, port, query, qtype, deadline, name)
            return ans

    async def _ask_tcp(self, host: str, port: int, query: bytes, qtype: int,
                       deadline: float, name: str) -> Answer:
        left = deadline - time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                    max(left, 0.01))
            try:
                writer.write(struct.pack("!H", len(query)) + query)
                n = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), left))[0]
                data = await asyncio.wait_for(reader.readexactly(n), left)
            finally:
                writer.close()
            return decode_answer(data, qtype)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            raise ResolveError(name, 110, "Operation timed out") from None
