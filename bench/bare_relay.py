#!/usr/bin/env python3
"""The floor: the least a uvloop + httptools reverse proxy can do per request.

This is the "bare relay" issue #3 compares truehop to. It parses the client's request with
httptools, writes a new request to a keep-alive upstream connection (Host, X-Real-IP,
X-Forwarded-For and X-Forwarded-Proto set, hop-by-hop headers dropped), parses the response
with httptools and relays status, headers and body. No config, no routing, no logging, no
validation beyond llhttp's, no timeouts: whatever truehop costs above this is the price of
its features (and of anything done slowly).

    python bench/bare_relay.py LISTEN_PORT UPSTREAM_PORT

Only for bench/proxy_vs_nginx.py; never a server to run.
"""

from __future__ import annotations

import asyncio
import collections
import sys
from typing import Any

import httptools
import uvloop

HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade",
       b"transfer-encoding", b"content-length", b"host"}


class Upstream(asyncio.Protocol):
    def __init__(self, pool: collections.deque[Upstream]) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.client: Client | None = None
        self.transport: asyncio.Transport | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.length: int | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self in self.pool:
            self.pool.remove(self)
        if self.client is not None:
            self.client.upstream_failed()

    def on_message_begin(self) -> None:
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        c = self.client
        assert c is not None
        status = self.parser.get_status_code()
        out = [b"HTTP/1.1 %d OK\r\nServer: bare\r\n" % status]
        length = None
        for k, v in self.headers:
            lk = k.lower()
            if lk == b"content-length":
                length = v
            if lk in HOP:
                continue
            out.append(k + b": " + v + b"\r\n")
        if length is not None:
            out.append(b"Content-Length: " + length + b"\r\n")
        out.append(b"Connection: keep-alive\r\n\r\n")
        c.write(b"".join(out))

    def on_body(self, body: bytes) -> None:
        if self.client is not None:
            self.client.write(body)

    def on_message_complete(self) -> None:
        c = self.client
        self.client = None
        self.pool.append(self)
        if c is not None:
            c.done()


class Client(asyncio.Protocol):
    def __init__(self, app: Relay) -> None:
        self.app = app
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.url = b""
        self.peer = b""
        self.queue: collections.deque[bytes] = collections.deque()
        self.busy = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername")[0].encode()

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        p = self.parser
        host = b""
        out = [p.get_method() + b" " + self.url + b" HTTP/1.1\r\n"]
        for k, v in self.headers:
            lk = k.lower()
            if lk == b"host":
                host = v
            if lk in HOP:
                continue
            out.append(k + b": " + v + b"\r\n")
        out.append(b"Host: " + host + b"\r\nX-Real-IP: " + self.peer
                   + b"\r\nX-Forwarded-For: " + self.peer
                   + b"\r\nX-Forwarded-Proto: http\r\n\r\n")
        self.queue.append(b"".join(out))
        if not self.busy:
            self.send_next()

    def send_next(self) -> None:
        if not self.queue:
            return
        self.busy = True
        req = self.queue.popleft()
        pool = self.app.pool
        if pool:
            up = pool.pop()
            up.client = self
            assert up.transport is not None
            up.transport.write(req)
        else:
            asyncio.ensure_future(self.connect_and_send(req))

    async def connect_and_send(self, req: bytes) -> None:
        loop = asyncio.get_running_loop()
        _, up = await loop.create_connection(lambda: Upstream(self.app.pool), "127.0.0.1",
                                             self.app.upstream_port)
        up.client = self
        assert up.transport is not None
        up.transport.write(req)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.transport = None  # an upstream answer still in flight is dropped

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def done(self) -> None:
        self.busy = False
        self.send_next()

    def upstream_failed(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Relay:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.pool: collections.deque[Upstream] = collections.deque()


async def main(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    app = Relay(upstream_port)
    server = await loop.create_server(lambda: Client(app), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
