"""`proxy_buffering on` protects the upstream from a slow client (issue 14, item 6; the
bad-input.md §5.4 "Slow reader" row, seen from the upstream's side).

nginx reads a buffered response as fast as the upstream sends it: `proxy_buffers` in
memory, the rest into a temporary file under `proxy_temp_path` (up to
`proxy_max_temp_file_size`), and frees the upstream connection (back to the keep-alive pool)
as soon as the whole response is read, while the client is still fed from memory and the
file. Before this, truehop relayed with back-pressure only: a client reading 1 MB/s of a
30 MB response held the upstream for 30 s.

The upstream here is a thread serving a 30 MiB body whose 64 KiB blocks all differ (so a
block sent twice or out of order shows in the digest), recording per request when its
`sendall` finished and on which connection it came.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from harness import free_ports

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20
SIZE = 30 * MiB
BLOCK = 64 * 1024


def block(i: int) -> bytes:
    return i.to_bytes(4, "big") * (BLOCK // 4)


def body_digest(size: int) -> str:
    h = hashlib.sha256()
    for i in range(size // BLOCK):
        h.update(block(i))
    return h.hexdigest()


@dataclass
class Served:
    conn: int               # which upstream connection (1, 2, ...) carried it
    path: str
    start: float            # monotonic, when its head was read
    done: float | None = None   # when the whole body had been handed to the kernel


@dataclass
class App:
    """A keep-alive HTTP/1.1 upstream: `GET /big` is SIZE bytes, anything else `ok`."""
    port: int
    served: list[Served] = field(default_factory=list)
    conns: int = 0
    sock: socket.socket | None = None

    def run(self) -> None:
        assert self.sock is not None
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self.serve, args=(c, self.conns), daemon=True).start()

    def serve(self, c: socket.socket, n: int) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                rec = Served(n, path, time.monotonic())
                self.served.append(rec)
                extra = b"X-Accel-Buffering: no\r\n" if "unbuffered" in path else b""
                if path.startswith("/big") and "chunked" in path:
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    for i in range(SIZE // BLOCK):
                        c.sendall(b"%x\r\n%s\r\n" % (BLOCK, block(i)))
                    c.sendall(b"0\r\n\r\n")
                elif path.startswith("/big") and "eof" in path:
                    c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                    for i in range(SIZE // BLOCK):
                        c.sendall(block(i))
                    rec.done = time.monotonic()
                    return
                elif path.startswith("/big"):
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (SIZE, extra))
                    for i in range(SIZE // BLOCK):
                        c.sendall(block(i))
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                rec.done = time.monotonic()
        except OSError:
            return
        finally:
            c.close()

    def find(self, path: str) -> Served:
        return next(s for s in self.served if s.path == path)


@pytest.fixture
def app() -> Iterator[App]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    a = App(s.getsockname()[1], sock=s)
    threading.Thread(target=a.run, daemon=True).start()
    yield a
    s.close()


CONF = """
worker_processes 1;
error_log error.log info;
events { worker_connections 64; }
http {
    log_format t "$request_uri $upstream_response_time $request_time";
    access_log access.log t;
    upstream app { server 127.0.0.1:@@APP@@; keepalive 4; }
    server {
        listen 127.0.0.1:@@PORT@@;
        location / { proxy_pass http://app; }
        location /nofile/ { proxy_pass http://app/; proxy_max_temp_file_size 0; }
        location /small/ { proxy_pass http://app/; proxy_max_temp_file_size 1m;
                           proxy_temp_file_write_size 64k; }
        @@EXTRA@@
    }
}
"""


class SlowReader:
    """A client asking `path` and reading at about `rate` bytes a second."""

    def __init__(self, port: int, path: str, rate: int = MiB) -> None:
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.s.sendall(f"GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n".encode())
        self.rate = rate
        self.t0 = time.monotonic()
        self.got = bytearray()

    def read_for(self, seconds: float, until: Any = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            allowed = int((time.monotonic() - self.t0) * self.rate) - len(self.got)
            if allowed <= 0:
                time.sleep(0.01)
                continue
            d = self.s.recv(min(allowed, 65536))
            if not d:
                break
            self.got += d
            if until is not None and until():
                return

    def read_rest(self) -> bytes:
        """Read the rest fast; the body (the head checked: 200 with Content-Length)."""
        head_end = -1
        while head_end < 0:
            head_end = self.got.find(b"\r\n\r\n")
            if head_end < 0:
                self.got += self.s.recv(65536)
        head = bytes(self.got[:head_end]).decode("latin-1")
        assert head.startswith("HTTP/1.1 200"), head
        assert f"content-length: {SIZE}" in head.lower(), head
        want = head_end + 4 + SIZE
        self.s.settimeout(20)
        while len(self.got) < want:
            d = self.s.recv(1 << 20)
            if not d:
                break
            self.got += d
        return bytes(self.got[head_end + 4:])

    def close(self) -> None:
        self.s.close()


def small_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n".encode())
        out = b""
        while d := s.recv(65536):
            out += d
        return out


def test_slow_client_frees_the_upstream(truehop: Any, app: App, tmp_path: Path) -> None:
    port, = free_ports(1)
    tp = truehop(CONF, PORT=port, APP=app.port, EXTRA="")
    # nginx's compiled-in default: a proxy_temp directory under the prefix, made at start
    assert (tmp_path / "proxy_temp").is_dir()
    c = SlowReader(port, "/big?a")
    try:
        rec_start = time.monotonic()
        c.read_for(3.0, until=lambda: app.served and app.served[0].done is not None)
        rec = app.find("/big?a")
        assert rec.done is not None, \
            f"the upstream is still sending {time.monotonic() - rec_start:.1f}s later to a " \
            f"client that has read {len(c.got) / MiB:.1f} MiB"
        assert rec.done - rec.start < 1.0
        # the connection went back to the pool: the next request reuses it while the first
        # client is still being fed (a moment after the upstream's last write: its tail is
        # still on the way through the socket)
        c.read_for(0.3)
        assert small_get(port, "/x").endswith(b"ok\n")
        assert app.find("/x").conn == rec.conn
        assert len(c.got) < SIZE // 2
        line = tp.wait_for_log("an upstream response is buffered to a temporary file")
        assert "[warn]" in line and "while reading upstream" in line
        assert "/proxy_temp/" in line
        # the file was unlinked once open: nothing is left in the directory
        assert not [p for p in (tmp_path / "proxy_temp").rglob("*") if p.is_file()]
        c.read_for(2.0 - (time.monotonic() - c.t0))     # the client stays slow a while
        body = c.read_rest()
    finally:
        c.close()
    assert len(body) == SIZE
    assert hashlib.sha256(body).hexdigest() == body_digest(SIZE)
    # $upstream_response_time ends when the upstream finished, not the client
    logged = tp.wait_for_log("/big?a ", log="access")
    _, urt, rt = logged.split()
    assert float(urt) < 1.0 and float(rt) > 1.8, logged


@pytest.mark.parametrize("path", ["/nofile/big?b", "/big?unbuffered"])
def test_no_temp_file_reads_as_the_client_takes(truehop: Any, app: App, tmp_path: Path,
                                                 path: str) -> None:
    """proxy_max_temp_file_size 0 (and X-Accel-Buffering: no): the upstream is read only as
    fast as the client takes it, as nginx."""
    port, = free_ports(1)
    tp = truehop(CONF, PORT=port, APP=app.port, EXTRA="")
    c = SlowReader(port, path)
    try:
        c.read_for(2.5)
        upath = path.removeprefix("/nofile")
        rec = app.find(upath)
        assert rec.done is None, "the upstream finished though the client reads slowly"
        assert "buffered to a temporary file" not in tp.error_log()
        body = c.read_rest()
    finally:
        c.close()
    assert hashlib.sha256(body).hexdigest() == body_digest(SIZE)


def test_temp_file_limit_then_waits(truehop: Any, app: App, tmp_path: Path) -> None:
    """proxy_max_temp_file_size 1m: at most about that much goes to the file, then the
    upstream waits for the client; the body still arrives whole and in order; a
    proxy_temp_path with levels is made at start and used."""
    port, = free_ports(1)
    tp = truehop(CONF, PORT=port, APP=app.port,
                 EXTRA=f"location /lv/ {{ proxy_pass http://app/; "
                       f"proxy_temp_path {tmp_path}/lvtemp 1 2; }}")
    assert (tmp_path / "lvtemp").is_dir()
    c = SlowReader(port, "/small/big?c")
    try:
        c.read_for(2.0)
        assert app.find("/big?c").done is None
        body = c.read_rest()
    finally:
        c.close()
    assert hashlib.sha256(body).hexdigest() == body_digest(SIZE)
    c = SlowReader(port, "/lv/big?d")
    try:
        c.read_for(1.0)
        line = tp.wait_for_log("/lvtemp/")
        # levels 1 2: the last character of the ten-digit name, then the two before it
        name = line.split("temporary file ")[1].split()[0]
        parts = name.split("/lvtemp/")[1].split("/")
        assert len(parts) == 3 and parts[0] == parts[2][-1] and parts[1] == parts[2][-3:-1]
        body = c.read_rest()
    finally:
        c.close()
    assert hashlib.sha256(body).hexdigest() == body_digest(SIZE)


H2_CONF = """
worker_processes 1;
error_log error.log info;
events { worker_connections 64; }
http {
    access_log off;
    upstream app { server 127.0.0.1:@@APP@@; keepalive 4; }
    server {
        listen 127.0.0.1:@@PORT@@ http2;
        location / { proxy_pass http://app; }
    }
}
"""


def test_slow_http2_client_frees_the_upstream(truehop: Any, app: App) -> None:
    """The same over HTTP/2 (h2c), where the client's pace is its flow-control window: the
    upstream is read whole into memory and the temp file, and the stream still gets every
    byte in order."""
    port, = free_ports(1)
    truehop(H2_CONF, PORT=port, APP=app.port)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":path", "/big?h2"), (":scheme", "http"),
                       (":authority", "a.test")], end_stream=True)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(c.data_to_send())
    digest = hashlib.sha256()
    got = 0
    ended = False
    t0 = time.monotonic()
    freed_after: float | None = None
    while not ended:
        slow = freed_after is None and time.monotonic() - t0 < 3.0
        if slow and got > (time.monotonic() - t0) * MiB:
            time.sleep(0.01)
            continue
        data = s.recv(16384 if slow else 1 << 20)
        assert data, "connection closed"
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                got += len(ev.data)
                digest.update(ev.data)
                c.acknowledge_received_data(ev.flow_controlled_length, 1)
            elif isinstance(ev, h2.events.StreamEnded):
                ended = True
            elif isinstance(ev, h2.events.StreamReset):
                raise AssertionError("stream reset")
        s.sendall(c.data_to_send())
        if freed_after is None and app.served and app.served[0].done is not None:
            freed_after = app.served[0].done - app.served[0].start
            assert got < SIZE // 2
    s.close()
    assert freed_after is not None and freed_after < 1.0, freed_after
    assert got == SIZE and digest.hexdigest() == body_digest(SIZE)


@pytest.mark.parametrize("path", ["/big?chunked", "/big?eof"])
def test_slow_client_other_framings(truehop: Any, app: App, path: str) -> None:
    """A chunked upstream body and one that ends with the connection: spooled the same,
    the upstream done early (the closed one not reused), the body whole (sent to an
    HTTP/1.0 client, which reads to the close)."""
    port, = free_ports(1)
    truehop(CONF, PORT=port, APP=app.port, EXTRA="")
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: a.test\r\n\r\n".encode())
    got = bytearray()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        if len(got) > (time.monotonic() - t0) * MiB:
            time.sleep(0.01)
            continue
        got += s.recv(16384)
    rec = app.find(path)
    assert rec.done is not None and rec.done - rec.start < 1.0
    while d := s.recv(1 << 20):
        got += d
    s.close()
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert len(body) == SIZE and hashlib.sha256(body).hexdigest() == body_digest(SIZE)
