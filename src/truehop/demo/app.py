"""The demo upstream: a small, strict HTTP/1.1 application server that records what it receives.

It is what ``truehop demo`` / ``make run`` put behind the proxy, and what the end-to-end tests
use as the upstream. It is deliberately careful about the wire: keep-alive, pipelined requests,
``Content-Length`` and chunked request bodies, ``Expect: 100-continue``, HTTP/1.0 clients, and a
minimal RFC 6455 WebSocket echo written here (no external library).

Every request is answered by default with ``200`` and a JSON description of exactly what arrived
(headers in order and with their original case), so a test can assert on what the proxy sent.

Special endpoints are chosen by the *last path segment*, so they also work behind a location
prefix (``/events/__sse`` behaves like ``/__sse``):

======================  ==================================================================
``__slow?ms=3000``      wait, then the default JSON answer
``__sse?n=5&interval_ms=200``  ``text/event-stream``, chunked, one event per flush
``__big?kb=64``         that many KiB of a repeating pattern (``BIG_PATTERN``)
``__truncate``          ``Content-Length: 100000``, 1000 bytes, then close
``__status?code=503``   that status (JSON body unless the status forbids one)
``__redirect?to=URL&code=301``   a redirect
``__headers?X-Foo=bar`` response headers taken from the query (repeat a key for several;
                        ``__code=401`` sets the status)
``__close``             answer with ``Connection: close`` and close
``__drop``              close the connection without answering (FIN)
``__reset``             reset the connection without answering (RST)
``__echo``              the request body back, same ``Content-Type``
``__chunked``           the default JSON answer, sent chunked in several chunks
``__https_redirect``    301 to ``https://<Host><target>`` unless ``X-Forwarded-Proto: https``
``__ws``                WebSocket echo (text, binary, fragmented, ping, close)
======================  ==================================================================

In-process use (tests)::

    with BackgroundApp(name="a") as app:
        httpx.get(app.url("/x"))
        app.records[-1].headers

CLI: ``python -m truehop.demo.app --host 127.0.0.1 --port 3000 --name a``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import hashlib
import http
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httptools

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BIG_PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/\n"
READ_SIZE = 65536


@dataclass
class Request:
    """One request as the upstream received it."""

    app: str
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    peer: str
    conn_id: int
    conn_requests: int
    keep_alive: bool
    received_at: float = field(default_factory=time.monotonic)

    @property
    def path(self) -> str:
        if self.target.startswith("/"):
            return self.target.split("?", 1)[0]
        return urlsplit(self.target).path

    @property
    def query(self) -> list[tuple[str, str]]:
        q = self.target.split("?", 1)[1] if "?" in self.target else ""
        return parse_qsl(q, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def to_json(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "headers": [[k, v] for k, v in self.headers],
            "body_len": len(self.body),
            "peer": self.peer,
            "conn_id": self.conn_id,
            "conn_requests": self.conn_requests,
        }


class DemoApp:
    """The application state shared by all connections of one listening server."""

    def __init__(self, name: str = "demo") -> None:
        self.name = name
        self.records: list[Request] = []
        self.connections_opened = 0
        self.connections_closed = 0
        self.ws_messages: list[tuple[int, bytes]] = []
        self._conns: set[_Connection] = set()
        self.server: asyncio.Server | None = None

    @property
    def connections_active(self) -> int:
        return len(self._conns)

    async def start(self, host: str, port: int) -> asyncio.Server:
        self.server = await asyncio.start_server(self._accept, host, port, reuse_address=True)
        return self.server

    async def close(self) -> None:
        """Stop listening and close every open connection."""
        if self.server is not None:
            self.server.close()
        for c in list(self._conns):
            c.abort()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
        self.server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_opened += 1
        conn = _Connection(self, self.connections_opened, reader, writer)
        self._conns.add(conn)
        try:
            await conn.run()
        except (ConnectionError, asyncio.IncompleteReadError):
            conn.abort()
        finally:
            self._conns.discard(conn)
            self.connections_closed += 1
            await conn.close()


class _Connection:
    """One client connection: httptools parsing, requests answered strictly in order."""

    def __init__(self, app: DemoApp, conn_id: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.app = app
        self.conn_id = conn_id
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.parser = httptools.HttpRequestParser(self)
        self.pending: collections.deque[Request] = collections.deque()
        self.count = 0
        self.busy = False
        self.parse_error: str | None = None
        self.upgrade_req: Request | None = None
        self.leftover = b""
        self._reset_message()

    # -- httptools callbacks ------------------------------------------------------------------

    def _reset_message(self) -> None:
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []

    def on_message_begin(self) -> None:
        self._reset_message()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        expect = [v for k, v in self._headers if k.lower() == "expect"]
        if expect and expect[0].lower() == "100-continue" and not self.pending and not self.busy:
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.count += 1
        p = self.parser
        self.pending.append(Request(
            app=self.app.name,
            method=p.get_method().decode("latin-1"),
            target=self._url.decode("latin-1"),
            version=p.get_http_version(),
            headers=self._headers,
            body=b"".join(self._body),
            peer=self.peer,
            conn_id=self.conn_id,
            conn_requests=self.count,
            keep_alive=p.should_keep_alive(),
        ))
        self._reset_message()

    # -- the loop -----------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            off = e.args[0] if e.args and isinstance(e.args[0], int) else len(data)
            self.leftover = data[off:]
            self.upgrade_req = self.pending[-1] if self.pending else None
            if self.upgrade_req is None:  # e.g. CONNECT: not a request we serve
                self.parse_error = "upgrade without a complete request"
        except httptools.HttpParserError as e:
            self.parse_error = str(e) or type(e).__name__

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.transport.abort()

    async def run(self) -> None:
        while True:
            if self.pending:
                req = self.pending.popleft()
                self.app.records.append(req)
                self.busy = True
                keep = await self.handle(req)
                self.busy = False
                if not keep:
                    break
                if req is self.upgrade_req:
                    # An Upgrade we did not take: go on parsing HTTP after it.
                    self.upgrade_req = None
                    self.parser = httptools.HttpRequestParser(self)
                    data, self.leftover = self.leftover, b""
                    if data:
                        self._feed(data)
                continue
            if self.parse_error is not None:
                body = f"bad request: {self.parse_error}\n".encode()
                await self.respond(400, [("Content-Type", "text/plain")], body, keep_alive=False)
                break
            if self.upgrade_req is not None:  # not reachable: the upgrade request is pending
                self.upgrade_req = None
                self.parser = httptools.HttpRequestParser(self)
            data = await self.reader.read(READ_SIZE)
            if not data:
                break
            self._feed(data)
        await self.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.writer.can_write_eof():
                self.writer.write_eof()
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 1)

    # -- responses ----------------------------------------------------------------------------

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def respond(self, status: int, headers: list[tuple[str, str]], body: bytes, *,
                      keep_alive: bool, head: bool = False) -> bool:
        hs = [("X-Upstream", self.app.name), *headers]
        if status >= 200 and status not in (204, 304):
            hs.append(("Content-Length", str(len(body))))
        else:
            body = b""
        if not keep_alive:
            hs.append(("Connection", "close"))
        self.writer.write(self._head(status, hs) + (b"" if head else body))
        await self.writer.drain()
        return keep_alive

    async def respond_json(self, req: Request, status: int = 200,
                           extra: list[tuple[str, str]] | None = None,
                           keep_alive: bool | None = None) -> bool:
        body = json.dumps(req.to_json()).encode() + b"\n"
        ka = req.keep_alive if keep_alive is None else keep_alive
        return await self.respond(status, [("Content-Type", "application/json"), *(extra or [])],
                                  body, keep_alive=ka, head=req.method == "HEAD")

    async def respond_chunked(self, req: Request, status: int, headers: list[tuple[str, str]],
                              chunks: Any, interval: float = 0.0) -> bool:
        """Send ``chunks`` (an iterable of bytes), flushing each; HTTP/1.0 gets a close-delimited
        body instead of chunked encoding."""
        chunked = req.version != "1.0"
        keep = req.keep_alive and chunked
        hs = [("X-Upstream", self.app.name), *headers]
        hs.append(("Transfer-Encoding", "chunked") if chunked else ("Connection", "close"))
        if chunked and not keep:
            hs.append(("Connection", "close"))
        self.writer.write(self._head(status, hs))
        await self.writer.drain()
        if req.method == "HEAD":
            return keep
        first = True
        for c in chunks:
            if not first and interval:
                await asyncio.sleep(interval)
            first = False
            if not c:
                continue
            self.writer.write(b"%x\r\n%s\r\n" % (len(c), c) if chunked else c)
            await self.writer.drain()
        if chunked:
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()
        return keep

    # -- dispatch -----------------------------------------------------------------------------

    async def handle(self, req: Request) -> bool:
        """Answer ``req``; return whether the connection stays open for the next request."""
        seg = req.path.rsplit("/", 1)[-1]
        handler = _ENDPOINTS.get(seg)
        if handler is None:
            return await self.respond_json(req)
        q: dict[str, str] = {}
        for k, v in req.query:
            q.setdefault(k, v)
        return await handler(self, req, q)


def _int(q: dict[str, str], name: str, default: int) -> int:
    try:
        return int(q.get(name, default))
    except ValueError:
        return default


async def _slow(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    await asyncio.sleep(_int(q, "ms", 3000) / 1000)
    return await c.respond_json(req)


async def _sse(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    n = _int(q, "n", 5)
    interval = _int(q, "interval_ms", 200) / 1000
    events = (f"id: {i}\ndata: {json.dumps({'n': i, 'app': c.app.name})}\n\n".encode()
              for i in range(n))
    return await c.respond_chunked(
        req, 200, [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")],
        events, interval)


def big_body(kb: int) -> bytes:
    """The body ``__big?kb=N`` sends: the pattern repeated, cut at N KiB."""
    n = kb * 1024
    return (BIG_PATTERN * (n // len(BIG_PATTERN) + 1))[:n]


async def _big(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    return await c.respond(200, [("Content-Type", "application/octet-stream")],
                           big_body(_int(q, "kb", 64)), keep_alive=req.keep_alive,
                           head=req.method == "HEAD")


async def _truncate(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    head = c._head(200, [("X-Upstream", c.app.name), ("Content-Type", "text/plain"),
                         ("Content-Length", "100000")])
    c.writer.write(head + b"x" * 1000)
    await c.writer.drain()
    await c.close()
    return False


async def _status(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    return await c.respond_json(req, status=_int(q, "code", 200))


async def _redirect(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    to = q.get("to", "/")
    return await c.respond(_int(q, "code", 302), [("Location", to), ("Content-Type", "text/plain")],
                           f"redirect to {to}\n".encode(), keep_alive=req.keep_alive,
                           head=req.method == "HEAD")


async def _headers(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    return await c.respond_json(req, status=_int(q, "__code", 200),
                                extra=[kv for kv in req.query if kv[0] != "__code"])


async def _close(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    return await c.respond_json(req, keep_alive=False)


async def _drop(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    await c.close()
    return False


async def _reset(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    sock = c.writer.get_extra_info("socket")
    if sock is not None:  # SO_LINGER 0: the close sends RST
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.abort()
    return False


async def _echo(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    ctype = req.header("Content-Type") or "application/octet-stream"
    return await c.respond(200, [("Content-Type", ctype)], req.body, keep_alive=req.keep_alive,
                           head=req.method == "HEAD")


async def _chunked(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    body = json.dumps(req.to_json()).encode() + b"\n"
    step = max(1, len(body) // 4)
    parts = [body[i:i + step] for i in range(0, len(body), step)]
    return await c.respond_chunked(req, 200, [("Content-Type", "application/json")], parts)


async def _https_redirect(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    proto = (req.header("X-Forwarded-Proto") or "").split(",")[0].strip().lower()
    if proto == "https":
        return await c.respond_json(req)
    host = req.header("Host") or "localhost"
    to = f"https://{host}{req.target}"
    return await c.respond(301, [("Location", to), ("Content-Type", "text/plain")],
                           f"redirect to {to}\n".encode(), keep_alive=req.keep_alive,
                           head=req.method == "HEAD")


# -- WebSocket ------------------------------------------------------------------------------

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_accept(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key`` (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("latin-1") + WS_GUID).digest()).decode()


def ws_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """An unmasked (server-to-client) frame."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 126, n)
    else:
        head = struct.pack("!BBQ", b0, 127, n)
    return head + payload


class _FrameReader:
    def __init__(self, reader: asyncio.StreamReader, leftover: bytes) -> None:
        self.reader = reader
        self.buf = bytearray(leftover)

    async def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = await self.reader.read(READ_SIZE)
            if not data:
                raise asyncio.IncompleteReadError(bytes(self.buf), n)
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = await self.exactly(2)
        fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.exactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.exactly(8))
        mask = await self.exactly(4) if masked else b""
        payload = await self.exactly(n)
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return fin, opcode, payload


async def _ws(c: _Connection, req: Request, q: dict[str, str]) -> bool:
    key = req.header("Sec-WebSocket-Key")
    upgrade = (req.header("Upgrade") or "").lower()
    if req is not c.upgrade_req or upgrade != "websocket" or not key:
        return await c.respond(400, [("Content-Type", "text/plain")],
                               b"expected a WebSocket upgrade\n", keep_alive=False)
    hs = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
          ("Sec-WebSocket-Accept", ws_accept(key)), ("X-Upstream", c.app.name)]
    proto = req.header("Sec-WebSocket-Protocol")
    if proto:
        hs.append(("Sec-WebSocket-Protocol", proto.split(",")[0].strip()))
    c.writer.write(c._head(101, hs))
    await c.writer.drain()
    fr = _FrameReader(c.reader, c.leftover)
    c.leftover = b""
    msg_op, parts = 0, list[bytes]()
    try:
        while True:
            fin, op, payload = await fr.frame()
            if op == OP_PING:
                c.writer.write(ws_frame(OP_PONG, payload))
            elif op == OP_PONG:
                continue
            elif op == OP_CLOSE:
                c.writer.write(ws_frame(OP_CLOSE, payload[:2] if len(payload) >= 2 else b""))
                await c.writer.drain()
                return False
            elif op in (OP_TEXT, OP_BINARY, OP_CONT):
                if op != OP_CONT:
                    msg_op, parts = op, []
                parts.append(payload)
                if fin:
                    msg = b"".join(parts)
                    c.app.ws_messages.append((msg_op, msg))
                    c.writer.write(ws_frame(msg_op, msg))
            else:
                c.writer.write(ws_frame(OP_CLOSE, struct.pack("!H", 1002)))
                await c.writer.drain()
                return False
            await c.writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        return False


Handler = Callable[[_Connection, Request, dict[str, str]], Any]
_ENDPOINTS: dict[str, Handler] = {
    "__slow": _slow,
    "__sse": _sse,
    "__big": _big,
    "__truncate": _truncate,
    "__status": _status,
    "__redirect": _redirect,
    "__headers": _headers,
    "__close": _close,
    "__drop": _drop,
    "__reset": _reset,
    "__echo": _echo,
    "__chunked": _chunked,
    "__https_redirect": _https_redirect,
    "__ws": _ws,
}


# -- entry points ---------------------------------------------------------------------------

async def start(host: str, port: int, name: str = "demo",
                app: DemoApp | None = None) -> asyncio.Server:
    """Start serving on ``host:port``; the returned server is already listening.

    Pass ``app`` to keep a handle on the recorded state (``app.records``)."""
    return await (app or DemoApp(name)).start(host, port)


class BackgroundApp:
    """The demo app in a background thread with its own event loop (for tests).

    ``with BackgroundApp(name="a") as app: app.port, app.records, app.connections_opened``.
    ``port=0`` picks a free port; ``stop()`` then ``start()`` rebinds the same port (an
    upstream going down and coming back)."""

    def __init__(self, name: str = "demo", host: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.app = DemoApp(name)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # state, read from the test thread
    @property
    def records(self) -> list[Request]:
        return self.app.records

    @property
    def connections_opened(self) -> int:
        return self.app.connections_opened

    @property
    def connections_closed(self) -> int:
        return self.app.connections_closed

    @property
    def connections_active(self) -> int:
        return self.app.connections_active

    @property
    def ws_messages(self) -> list[tuple[int, bytes]]:
        return self.app.ws_messages

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.addr}{path}"

    def last(self) -> Request:
        """The most recent request received (fails if none)."""
        assert self.app.records, f"upstream {self.name} received no request"
        return self.app.records[-1]

    def wait_for_records(self, n: int, timeout: float = 5.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.app.records) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"upstream {self.name}: {len(self.app.records)} of {n} requests")
            time.sleep(0.01)
        return self.app.records

    def clear(self) -> None:
        self.app.records.clear()
        self.app.ws_messages.clear()

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(self.app.start(self.host, self.port))
            self.port = server.sockets[0].getsockname()[1]
        except BaseException as e:  # reported to the starting thread
            errors.append(e)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.app.close())
            tasks = asyncio.all_tasks(loop)
            for t in tasks:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self) -> BackgroundApp:
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, errors),
                                        name=f"demo-app-{self.name}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread = None
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop listening and close every connection; the port is kept for ``start()``."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> BackgroundApp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"<BackgroundApp {self.name} {self.addr} requests={len(self.records)} "
                f"conns={self.connections_opened} active={self.connections_active}>")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m truehop.demo.app",
                                 description="truehop's demo upstream application")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3000)
    ap.add_argument("--name", default="demo")
    a = ap.parse_args(argv)

    async def serve() -> None:
        server = await start(a.host, a.port, a.name)
        addr = server.sockets[0].getsockname()
        print(f"demo app {a.name!r} listening on http://{addr[0]}:{addr[1]}/",
              file=sys.stderr, flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop
        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    try:
        runner(serve())
    except KeyboardInterrupt:
        pass
    except OSError as e:
        print(f"demo app {a.name!r}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
