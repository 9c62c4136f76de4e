"""One request and its response, as the layers above the connection see it, whatever the
protocol: the `Exchange` a connection hands to the pipeline, the `BodyStream` its request
body arrives through, and `ClientGone`, raised when nobody is left to answer.

These are the types the pipeline and the proxy are written against. The connections in
`net/` (HTTP/1.x in net.downstream, HTTP/2 in net.h2conn) implement them; nothing here
touches a transport, so the layers above `net/` need not import it.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from truehop.http.events import ProtocolError, RequestHead

if TYPE_CHECKING:
    from truehop.conf.model import Settings

TIMED_OUT: Final = object()


def expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(TIMED_OUT)


class ClientGone(Exception):
    """The client closed or reset the connection; nothing more can be sent."""


class BodyStream:
    """A request body as the pipeline reads it: chunks in order, then None. Shared by
    HTTP/1.x and HTTP/2: the protocol says, through `on_consumed`, when read bytes free room
    (resume reading, or open the HTTP/2 flow-control window), and through `on_continue` how
    to send `100 Continue` when the body is first wanted."""

    __slots__ = ("_chunks", "_done", "_waiter", "_on_consumed", "_on_continue", "buffered",
                 "received", "_continue", "error", "error_seen", "expect_continue", "length",
                 "whole")

    def __init__(self, on_consumed: Callable[[int], None], on_continue: Callable[[], None],
                 expect_continue: bool, length: int | None) -> None:
        self._chunks: collections.deque[tuple[bytes, int]] = collections.deque()
        self._done = False
        self._waiter: asyncio.Future[Any] | None = None
        self._on_consumed = on_consumed
        self._on_continue = on_continue
        self.buffered = 0
        self.received = 0
        self._continue = expect_continue
        self.expect_continue = expect_continue
        self.error: BaseException | None = None
        # the error has been answered: raised to a reader, or found by the discard before a
        # response (nginx's r->request_body is set then, and a later discard finds nothing)
        self.error_seen = False
        self.length = length
        # the reader takes the body whole before using it (buffered, nginx's
        # !request_body_no_buffering): set by the reader before its first read, which is
        # when HTTP/2 sizes the stream's flow-control window from it (net.h2conn)
        self.whole = True

    @property
    def complete(self) -> bool:
        return self._done and not self._chunks

    def feed(self, data: bytes, flow: int | None = None) -> None:
        """`flow`: how much room reading this chunk frees (HTTP/2 counts padding)."""
        self._chunks.append((data, len(data) if flow is None else flow))
        self.buffered += len(data)
        self.received += len(data)
        self._wake()

    def finish(self) -> None:
        self._done = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._done = True
        self._wake()

    def discard(self) -> int:
        """Drop unread chunks; returns the room they held."""
        n = sum(f for _, f in self._chunks)
        self._chunks.clear()
        self.buffered = 0
        return n

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def take_ready(self) -> list[bytes]:
        """The chunks already here, without waiting (what `read` would return next)."""
        out = []
        while self._chunks:
            data, flow = self._chunks.popleft()
            self.buffered -= len(data)
            self._on_consumed(flow)
            if data:
                out.append(data)
        return out

    async def read(self, timeout: float | None = None) -> bytes | None:
        """The next chunk, or None at the end. Raises on a client error or timeout."""
        if self._continue:
            self._continue = False
            self._on_continue()
        while True:
            while self._chunks:
                data, flow = self._chunks.popleft()
                self.buffered -= len(data)
                self._on_consumed(flow)
                if data:
                    return data
            if self.error is not None:
                self.error_seen = True
                raise self.error
            if self._done:
                return None
            loop = asyncio.get_running_loop()
            w = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, expire, w) if timeout else None
            try:
                await w
            finally:
                if timer is not None:
                    timer.cancel()
                self._waiter = None
            if w.result() is TIMED_OUT:
                raise ProtocolError(408, "client timed out (110: Connection timed out) while "
                                         "reading client request body")


def _no_room(_n: int) -> None:
    pass


def _no_continue() -> None:
    pass


class _NoBody(BodyStream):
    """The body of a request that has none: complete from the start, shared by every such
    request (one object fewer per request), so nothing may change it."""

    __slots__ = ()

    def __init__(self, length: int | None) -> None:
        super().__init__(_no_room, _no_continue, False, length)
        self._done = True

    def feed(self, data: bytes, flow: int | None = None) -> None:
        raise RuntimeError("a request without a body got body bytes")

    def finish(self) -> None:
        pass

    def fail(self, exc: BaseException) -> None:
        pass  # nothing is waiting on a body that is already complete


NO_BODY: Final = _NoBody(None)          # no Content-Length, not chunked
NO_BODY_CL0: Final = _NoBody(0)         # Content-Length: 0



class ResponseBody:
    """What a response's body is written to once its head is sent: the exchange itself, or
    a body filter in front of it (proxy.filters). The pipeline, the static path and the
    relay write through this, so a body filter plugs in without changing them."""

    __slots__ = ()

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    async def drain(self) -> None:
        raise NotImplementedError

    @property
    def write_blocked(self) -> bool:
        raise NotImplementedError

    async def sendfile(self, f: Any, offset: int, count: int) -> None:
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class Exchange(ResponseBody):
    """One request on a client connection and the response being written for it, as the
    pipeline and the proxy see it whatever the protocol: net.downstream.H1Exchange and
    net.h2conn.H2Exchange. A base class rather than a duck type, so that compiled builds
    (mypyc) read these fields directly."""

    __slots__ = ("head", "body", "started", "finished", "status", "bytes_sent",
                 "body_bytes_sent", "keep_alive", "chunked", "head_only", "aborted",
                 "remaining", "on_done", "settings")

    head: RequestHead
    body: BodyStream
    started: bool
    finished: bool
    status: int
    bytes_sent: int
    body_bytes_sent: int
    keep_alive: bool
    chunked: bool
    head_only: bool
    aborted: bool
    remaining: int | None
    on_done: Callable[[], None] | None
    # the settings of the request's location (the pipeline sets them once it knows it):
    # keepalive_timeout, keepalive_requests, keepalive_time apply per location in nginx
    settings: Settings | None

    def start_response(self, status: int, headers: list[tuple[str, str]],
                       content_length: int | None, reason: str | None = None,
                       close: bool = False, cork: bool = False) -> None:
        raise NotImplementedError

    def send_continue(self) -> None:
        raise NotImplementedError

    def discard_body(self) -> int:
        """ngx_http_discard_request_body's answer, asked before a response that does not read
        the body (`return`, a static file): the status of a body error already in hand that
        nobody has answered, else 0. HTTP/2 never has one (nginx skips the DATA then)."""
        return 0

