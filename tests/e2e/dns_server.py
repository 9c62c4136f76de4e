"""A small DNS server on loopback (UDP and TCP) for the resolver's tests: answers from a
table, name -> addresses or an rcode, and counts the questions it got."""

from __future__ import annotations

import socket
import struct
import threading

A, AAAA = 1, 28


def _name(msg: bytes, pos: int) -> tuple[str, int]:
    labels = []
    while msg[pos]:
        n = msg[pos]
        labels.append(msg[pos + 1:pos + 1 + n].decode())
        pos += 1 + n
    return ".".join(labels), pos + 1


def answer(query: bytes, records: list[tuple[int, bytes, int]], rcode: int = 0,
           tc: bool = False, cname: str | None = None) -> bytes:
    """A response to `query`: optional CNAME for the question, then `records` (type, rdata,
    ttl) owned by the CNAME target (or the question name), names compressed."""
    qid = struct.unpack_from("!H", query)[0]
    _, qend = _name(query, 12)
    question = query[12:qend + 4]
    flags = 0x8180 | rcode | (0x0200 if tc else 0)
    body = b""
    count = 0
    owner = b"\xc0\x0c"
    if cname is not None:
        target = b"".join(bytes([len(p)]) + p.encode() for p in cname.split(".")) + b"\x00"
        body += owner + struct.pack("!HHIH", 5, 1, 60, len(target)) + target
        count += 1
        owner = struct.pack("!H", 0xC000 | (12 + len(question) + 12))
    for rtype, rdata, ttl in records:
        body += owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata
        count += 1
    return struct.pack("!HHHHHH", qid, flags, 1, count, 0, 0) + question + body


class DNSServer:
    """A UDP (and TCP) DNS server on loopback answering from a table: name -> addresses,
    or an rcode; counts the questions it got."""

    def __init__(self) -> None:
        # one port number for UDP and TCP: the TCP side of a free UDP port may be taken by
        # another test running beside this one, so try again with another port
        for _ in range(50):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket()
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        else:
            raise OSError("no port free for both UDP and TCP")
        self.tcp.listen()
        self.table: dict[str, list[str] | int] = {}
        self.truncate: set[str] = set()
        self.silent = False
        self.asked: list[tuple[str, int, str]] = []
        for target in (self._serve_udp, self._serve_tcp):
            threading.Thread(target=target, daemon=True).start()

    def reply(self, q: bytes, proto: str) -> bytes | None:
        name, end = _name(q, 12)
        qtype = struct.unpack_from("!H", q, end)[0]
        self.asked.append((name, qtype, proto))
        if self.silent:
            return None
        entry = self.table.get(name, 3)
        if isinstance(entry, int):
            return answer(q, [], rcode=entry)
        fam, want = (socket.AF_INET, A) if qtype == A else (socket.AF_INET6, AAAA)
        recs = [(want, socket.inet_pton(fam, a), 2) for a in entry if (":" in a) == (want == AAAA)]
        return answer(q, recs, tc=proto == "udp" and name in self.truncate)

    def _serve_udp(self) -> None:
        while True:
            try:
                q, addr = self.udp.recvfrom(512)
            except OSError:
                return
            out = self.reply(q, "udp")
            if out is not None:
                self.udp.sendto(out, addr)

    def _serve_tcp(self) -> None:
        while True:
            try:
                c, _ = self.tcp.accept()
            except OSError:
                return
            with c:
                n = struct.unpack("!H", c.recv(2))[0]
                out = self.reply(c.recv(n), "tcp")
                if out is not None:
                    c.sendall(struct.pack("!H", len(out)) + out)

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()
