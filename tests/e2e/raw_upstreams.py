"""Small upstreams written with raw sockets, for behaviour the demo app does not have: a
server that switches to any protocol, one that closes idle keep-alive connections quickly (as
Node's and uvicorn's do), one that frames its answer with both Content-Length and
Transfer-Encoding. Each runs in a thread on a free loopback port and records what it got."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

Handler = Callable[[socket.socket, "RawUpstream"], None]


class RawUpstream:
    """A threaded accept loop calling `handler(conn, self)` per connection."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self.host = host
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.heads: list[bytes] = []
        self.connections = 0
        self.lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        try:
            socket.create_connection((self.host, self.port), timeout=1).close()
        except OSError:
            pass
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self._stop:
                conn.close()
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handler(conn, self)
        except OSError:
            pass
        finally:
            conn.close()


def read_head(conn: socket.socket, buf: bytes = b"") -> tuple[bytes, bytes] | None:
    """(head, bytes after it), or None when the peer closed first."""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def header(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name.encode():
            return v.strip().decode("latin-1")
    return None


def read_body(conn: socket.socket, head: bytes, rest: bytes) -> bytes:
    n = int(header(head, "content-length") or 0)
    while len(rest) < n:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return rest[n:]


def switching(accept: str | None = None, always: bool = False) -> Handler:
    """Answers any Upgrade with 101 and the same Upgrade value (with `accept` as
    Sec-WebSocket-Accept when given), then echoes every byte upper-cased; `always`: a 101
    even to a request that asked for no upgrade (a broken backend)."""
    def handle(conn: socket.socket, up: RawUpstream) -> None:
        got = read_head(conn)
        if got is None:
            return
        head, rest = got
        up.heads.append(head)
        proto = header(head, "upgrade") or ("foo" if always else None)
        if proto is None:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nno-tunel")
            return
        extra = f"Sec-WebSocket-Accept: {accept}\r\n" if accept else ""
        conn.sendall(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: {proto}\r\n"
                     f"Connection: Upgrade\r\n{extra}\r\n".encode())
        if rest:
            conn.sendall(rest.upper())
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data.upper())
    return handle


def idle_closer(idle: float, keep_alive_header: bool) -> Handler:
    """Node's HTTP server in miniature: keep-alive, but an idle connection is closed after
    `idle` seconds (its keepAliveTimeout), with `Keep-Alive: timeout=N` when asked."""
    def handle(conn: socket.socket, up: RawUpstream) -> None:
        buf = b""
        while True:
            conn.settimeout(idle)
            try:
                got = read_head(conn, buf)
            except TimeoutError:
                return          # idle too long: close, as Node does
            if got is None:
                return
            head, rest = got
            conn.settimeout(None)
            up.heads.append(head)
            buf = read_body(conn, head, rest)
            ka = f"Keep-Alive: timeout={idle:g}\r\n" if keep_alive_header else ""
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n"
                         f"{ka}\r\nok".encode())
    return handle


def cl_and_te(conn: socket.socket, up: RawUpstream) -> None:
    """Frames its answer with both Content-Length and Transfer-Encoding (RFC 9112 6.3: a
    proxy must not trust either)."""
    got = read_head(conn)
    if got is None:
        return
    up.heads.append(got[0])
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n")
    time.sleep(0.2)


def saying(text: str) -> Handler:
    """Answers every request (keep-alive) with `text`: which server answered."""
    def handle(conn: socket.socket, up: RawUpstream) -> None:
        buf = b""
        while True:
            got = read_head(conn, buf)
            if got is None:
                return
            head, rest = got
            up.heads.append(head)
            buf = read_body(conn, head, rest)
            body = text.encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
    return handle
