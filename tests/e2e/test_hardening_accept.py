"""A connection counts from accept (issue 14, item 2; bad-input.md §5 "connection exhaustion").

Before the fix, `worker_connections` counted only connections whose HTTP protocol object
existed: connections still in their TLS handshake or before the h2c preface were not counted,
so any number of them was held (300 with `worker_connections 100`); a partial ClientHello was
buffered whole (385 KiB per 120 KB hello); and at the file-descriptor limit libuv accepted and
closed whatever waited in the backlog, so a client on another port got an empty reply, with
nothing logged.

nginx 1.30: a connection takes its slot at accept (ngx_event_accept -> ngx_get_connection);
when none is free it first closes reusable ones (ngx_drain_connections: idle keep-alive
connections and connections that have sent nothing yet, with a `[warn] ... worker_connections
are not enough, reusing connections`), else logs `[alert] N worker_connections are not enough`
and closes the new one. The handshake and the first bytes have `client_header_timeout`.
EMFILE on accept is `[crit] accept4() failed (24: Too many open files)`, accept is disabled for
a while (ngx_disable_accept_events) and the clients wait in the backlog.

The worker's own sockets are counted from /proc/PID/fd (inodes) against /proc/net/tcp: a
connection still in the kernel's accept queue is ESTABLISHED too, but not held by the worker.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import time
from pathlib import Path
from typing import Any

import pytest
import trustme
from harness import close_all, free_ports, parse_responses, raw_request, worker_pid

pytestmark = pytest.mark.timeout(120)

HEADER_TIMEOUT = 2.0
SLACK = 4.0


# -- what the kernel says ---------------------------------------------------------------------

def held(pid: int, ports: set[int]) -> int:
    """ESTABLISHED TCP sockets owned by `pid` whose local port is one of `ports`."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    n = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) in ports and f[9] in inodes:
            n += 1
    return n


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def wait_held(pid: int, ports: set[int], at_most: int, deadline: float) -> int:
    while True:
        n = held(pid, ports)
        if n <= at_most or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


# -- clients ----------------------------------------------------------------------------------

def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def open_many(port: int, n: int, payload: bytes = b"") -> list[socket.socket]:
    socks = []
    for _ in range(n):
        try:
            s = connect(port)
            if payload:
                s.sendall(payload)
        except OSError:
            continue
        socks.append(s)
    return socks


def partial_hello(announced: int, sent: int) -> bytes:
    """The start of a ClientHello whose handshake message announces `announced` bytes, cut
    into TLS records of at most 16 KiB, of which `sent` bytes (record headers excluded) are
    returned."""
    msg = b"\x01" + announced.to_bytes(3, "big") + b"\x03\x03" + os.urandom(announced - 2)
    out = bytearray()
    pos = 0
    while pos < sent:
        chunk = msg[pos:pos + 16384]
        out += b"\x16\x03\x01" + struct.pack("!H", len(chunk)) + chunk[:sent - pos]
        pos += len(chunk)
    return bytes(out)


def get(port: int, path: str = "/small", timeout: float = 5.0,
        ctx: ssl.SSLContext | None = None) -> int | None:
    """One request on a new connection: the status, None for an empty or broken reply."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if ctx is not None:
            s = ctx.wrap_socket(s, server_hostname="a.test")
        with s:
            s.settimeout(timeout)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
                      .encode())
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
    except (OSError, ssl.SSLError):
        return None
    rs = parse_responses(data)
    return rs[0].status if rs else None


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    ca.issue_cert("a.test", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(d / "a.pem"))
    return str(d / "ca.pem"), str(d / "a.pem")


CONF = """
worker_processes 1;
@@NOFILE@@
error_log error.log info;
events { worker_connections @@CONNS@@; }
http {
    access_log off;
    client_header_timeout 2s;
    keepalive_timeout 3s;
    server {
        listen 127.0.0.1:@@PLAIN@@;
        listen 127.0.0.1:@@H2C@@;
        listen 127.0.0.1:@@TLS@@ ssl;
        http2 on;
        server_name a.test;
        ssl_certificate @@CERT@@;
        ssl_certificate_key @@CERT@@;
        location = /small { return 200 "small\\n"; }
    }
}
"""


def start(truehop: Any, certs: tuple[str, str], conns: int, nofile: int = 0,
          allow: tuple[str, ...] = ()) -> tuple[Any, int, int, int, int]:
    plain, h2c, tls = free_ports(3)
    tp = truehop(CONF, PLAIN=plain, H2C=h2c, TLS=tls, CERT=certs[1], CONNS=conns,
                 NOFILE=f"worker_rlimit_nofile {nofile};" if nofile else "", allow_log=allow)
    return tp, worker_pid(tp), plain, h2c, tls


# -- worker_connections holds for handshakes and prefaces -------------------------------------

def test_handshakes_and_prefaces_count(truehop: Any, certs: tuple[str, str]) -> None:
    """40 connections that started a ClientHello and 40 that started the h2c preface, with
    `worker_connections 20`: the worker holds at most 20, alerts once, closes them at
    client_header_timeout, then serves a new client."""
    tp, pid, plain, h2c, tls = start(truehop, certs, 20, allow=("[alert]",))
    ports = {plain, h2c, tls}
    hello, preface = partial_hello(16380, 3000), b"PRI * HTTP/2.0\r\n"
    assert get(plain) == 200        # the readiness probe's connection is gone by now
    time.sleep(0.2)
    socks = open_many(tls, 10, hello) + open_many(h2c, 10, preface)
    try:
        # the first 20 have sent their bytes before the next arrive: none is reusable
        # (a connection that has sent nothing yet would be closed to make room)
        time.sleep(0.5)
        socks += open_many(tls, 30, hello) + open_many(h2c, 30, preface)
        time.sleep(0.5)
        n = held(pid, ports)
        assert n <= 20, f"worker_connections 20, but the worker holds {n} connections " \
                        "in their TLS handshake or h2c preface"
        log = tp.error_log()
        assert log.count("[alert]") == 1 and "20 worker_connections are not enough" in log, log
        left = wait_held(pid, ports, 0, time.monotonic() + HEADER_TIMEOUT + SLACK)
        assert left == 0, f"{left} handshakes still held past client_header_timeout"
        assert "client timed out (110: Connection timed out) while SSL handshaking" in \
            tp.error_log()
        assert get(plain) == 200
        assert get(h2c) == 200
    finally:
        close_all(socks)


def test_silent_connections_are_reused(truehop: Any, certs: tuple[str, str]) -> None:
    """40 silent connections to the TLS port and 40 to the h2c port with
    `worker_connections 20`: at most 20 are held; connections that have sent nothing are
    reusable (nginx's ngx_drain_connections), so a new client is served at once; the rest
    go at client_header_timeout."""
    tp, pid, plain, h2c, tls = start(truehop, certs, 20)
    ports = {plain, h2c, tls}
    socks = open_many(tls, 40) + open_many(h2c, 40)
    try:
        time.sleep(0.5)
        n = held(pid, ports)
        assert n <= 20, f"worker_connections 20, but the worker holds {n} silent connections"
        ctx = ssl.create_default_context(cafile=certs[0])
        ctx.set_alpn_protocols(["http/1.1"])
        assert get(plain) == 200
        assert get(tls, ctx=ctx) == 200
        assert "worker_connections are not enough, reusing connections" in tp.error_log()
        left = wait_held(pid, ports, 0, time.monotonic() + HEADER_TIMEOUT + SLACK)
        assert left == 0, f"{left} silent connections held past client_header_timeout"
    finally:
        close_all(socks)


def test_idle_keepalive_reused_when_full(truehop: Any, certs: tuple[str, str]) -> None:
    """Idle keep-alive connections make room for new ones when the worker is full."""
    tp, pid, plain, h2c, tls = start(truehop, certs, 10)
    socks = []
    try:
        for _ in range(10):
            s = connect(plain)
            s.sendall(b"GET /small HTTP/1.1\r\nHost: a.test\r\n\r\n")
            data = b""
            while not parse_responses(data):
                data += s.recv(65536)
            socks.append(s)
        assert held(pid, {plain}) == 10
        assert get(plain) == 200
        assert get(h2c) == 200
    finally:
        close_all(socks)


# -- the handshake's buffer is bounded --------------------------------------------------------

def test_partial_hellos_bounded(truehop: Any, certs: tuple[str, str]) -> None:
    """200 connections each announcing a 120 KB ClientHello and sending 112 KB of it: the
    worker's memory grows by less than 100 KiB per connection (before: 385 KiB), and small
    partial hellos (a 16 KiB record, 3 KB sent) are closed at client_header_timeout."""
    tp, pid, plain, h2c, tls = start(truehop, certs, 1024)
    assert get(plain) == 200
    time.sleep(0.3)
    base = rss_kib(pid)
    big = partial_hello(120_000, 112 * 1024)
    socks: list[socket.socket] = []
    try:
        for _ in range(200):
            try:
                s = connect(tls)
                s.setblocking(False)
                try:
                    s.send(big)
                except OSError:
                    pass
            except OSError:
                continue
            socks.append(s)
        time.sleep(1.0)
        grown = rss_kib(pid) - base
        assert grown < 200 * 100, f"200 partial 120 KB ClientHellos grew the worker by " \
                                  f"{grown} KiB ({grown // 200} KiB each)"
        assert "excessive message size" in tp.error_log()
        close_all(socks)
        socks = open_many(tls, 50, partial_hello(16380, 3000))
        time.sleep(0.5)
        assert held(pid, {tls}) == 50
        left = wait_held(pid, {tls}, 0, time.monotonic() + HEADER_TIMEOUT + SLACK)
        assert left == 0, f"{left} partial ClientHellos held past client_header_timeout"
        assert get(plain) == 200
    finally:
        close_all(socks)


# -- the file-descriptor limit ----------------------------------------------------------------

def test_fd_limit_never_empty_reply(truehop: Any, certs: tuple[str, str]) -> None:
    """`worker_rlimit_nofile 64` and 100 idle TLS connections (handshake done, no request):
    a request on the plain port waits in the backlog and gets a real answer once the idle
    ones time out; the accept failure is logged at crit, as nginx's."""
    tp, pid, plain, h2c, tls = start(truehop, certs, 1024, nofile=64, allow=("[crit]",))
    ctx = ssl.create_default_context(cafile=certs[0])
    ctx.set_alpn_protocols(["http/1.1"])
    socks: list[Any] = []
    try:
        for _ in range(100):
            s = socket.socket()
            s.settimeout(0.3)
            try:
                s.connect(("127.0.0.1", tls))
                s = ctx.wrap_socket(s, server_hostname="a.test")
            except (OSError, ssl.SSLError):
                pass
            socks.append(s)
        t0 = time.monotonic()
        status = get(plain, timeout=20.0)
        waited = time.monotonic() - t0
        assert status == 200, f"plain-port client at the fd limit got {status!r} " \
                              f"after {waited:.1f}s (None: an empty, closed reply)"
        log = tp.error_log()
        assert "[crit]" in log and "accept4() failed (24: Too many open files)" in log, log
    finally:
        close_all(socks)


# -- upstream connections count too -----------------------------------------------------------

UPSTREAM_CONF = """
worker_processes 1;
error_log error.log info;
events { worker_connections 3; }
http {
    access_log off;
    upstream app { server 127.0.0.1:@@APP@@; keepalive 4; }
    server {
        listen 127.0.0.1:@@PORT@@;
        location / { proxy_pass http://app; }
    }
}
"""


def test_upstream_connections_count_against_worker_connections(truehop: Any,
                                                                upstream: Any) -> None:
    """A proxied request holds two slots, as in nginx: with `worker_connections 3`, one
    client waiting on a slow upstream plus a second client leave no slot for the second
    upstream connection: nginx's `[alert] 3 worker_connections are not enough while
    connecting to upstream` and a 500 (ngx_http_upstream_connect; checked against nginx
    1.22). Once the slow exchange is over its connection waits in the keep-alive pool and
    serves the next request."""
    port, = free_ports(1)
    tp = truehop(UPSTREAM_CONF, PORT=port, APP=upstream.port, allow_log=("[alert]",))
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(b"GET /__slow?ms=1500 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.4)
    second = raw_request(port, b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")[0]
    assert parse_responses(second)[0].status == 500, second[:200]
    line = tp.wait_for_log("worker_connections are not enough while connecting to upstream")
    assert "[alert]" in line and "3 worker_connections" in line and 'request: "GET /x' in line
    data = b""
    while not parse_responses(data) or not parse_responses(data)[0].complete:
        d = slow.recv(65536)
        assert d, data
        data += d
    assert parse_responses(data)[0].status == 200
    slow.close()
    time.sleep(0.3)
    # the pooled connection is reused: no new slot needed
    again = raw_request(port, b"GET /y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")[0]
    assert parse_responses(again)[0].status == 200
