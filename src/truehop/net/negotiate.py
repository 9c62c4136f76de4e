"""Which protocol serves a new connection on a listener.

- `ssl` listener: `tls.TlsProtocol` peeks at the first byte. A TLS handshake goes on to ALPN:
  `h2` (when HTTP/2 is on) -> `H2Connection`, else HTTP/1.x (`ClientConnection`), both with
  `$scheme` https. Plain HTTP bytes -> `PlainHttpOnTls`, which reads the request and refuses
  it with 497 through the owner's `refuse` path (the pipeline answers as nginx does: "400 The
  plain HTTP request was sent to HTTPS port", `error_page 497` honoured), then closes.
- plain listener with `http2`: `PrefaceSniffer` waits for the first bytes: the HTTP/2 client
  preface (prior knowledge, h2c) -> `H2Connection`, anything else -> HTTP/1.x on the same port.
- otherwise HTTP/1.x.

TLS is done here, not by `loop.create_server(ssl=...)`; the worker must pass `ssl=None`. If it
still passes an SSL context, `TlsProtocol` sees an already-decrypted transport and simply hands
it to the protocol ALPN chose (no 497 page possible in that mode).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from truehop.http.h2 import PREFACE
from truehop.net.connection import connection_info
from truehop.net.downstream import ClientConnection
from truehop.net.h2conn import H2Connection
from truehop.net.listen import ConnectionOwner, Listener
from truehop.net.tls import TlsProtocol, record_sni

# the worker asks this to know whether to pass ssl=None to create_server
HANDLES_TLS: Final = True


def protocol_for(rt: ConnectionOwner, lst: Listener, scheme: str) -> asyncio.Protocol:
    if lst.ssl and lst.ssl_context is not None:
        return tls_protocol(rt, lst)
    if lst.http2:
        return PrefaceSniffer(rt, lst, scheme)
    return ClientConnection(rt, lst, scheme)


def tls_protocol(rt: ConnectionOwner, lst: Listener) -> TlsProtocol:
    assert lst.ssl_context is not None
    record_sni(lst.ssl_context)

    def secure(alpn: str | None) -> asyncio.Protocol:
        if alpn == "h2" and lst.http2:
            return H2Connection(rt, lst, "https")
        return ClientConnection(rt, lst, "https")

    def plain() -> asyncio.Protocol:
        return PlainHttpOnTls(rt, lst, "http")

    def failed(msg: str, raw: asyncio.BaseTransport) -> None:
        try:
            info = connection_info(raw, lst.key, "https")
        except Exception:
            info = None
        rt.log.info(msg, info)

    return TlsProtocol(lst.ssl_context, secure, plain, failed,
                       lst.default_server.client_header_timeout,
                       rt.handshake_started, rt.handshake_ended)


class PlainHttpOnTls(ClientConnection):
    """A plain HTTP request on a TLS port: read it as HTTP/1.x, refuse it with nginx's 497
    (answered from the server its Host names: its `error_page 497` applies, e.g. a redirect
    to https), close."""

    def _start_next(self, pipelined: bool = False) -> None:
        ex = self.queue.popleft()
        self.queue.clear()
        self.parser = None           # nothing after this request is read
        self.current = ex
        self.requests += 1
        assert self.info is not None
        self.info.requests = self.requests
        self._cancel_timer()
        ex.keep_alive = False
        ex.head.upgrade = None
        rt = self.runtime
        t = self.loop.create_task(rt.refuse(
            ex, self.info, self.listener, 497, "client sent plain HTTP request to HTTPS port "
            "while reading client request headers"))
        rt.tasks.add(t)
        t.add_done_callback(rt.tasks.discard)
        self.task = t


class PrefaceSniffer(asyncio.Protocol):
    """A plain `http2` port: HTTP/2 with prior knowledge when the client preface arrives,
    HTTP/1.x otherwise."""

    def __init__(self, rt: ConnectionOwner, lst: Listener, scheme: str) -> None:
        self.rt = rt
        self.lst = lst
        self.scheme = scheme
        self.buf = b""
        self.transport: Any = None
        self.inner: asyncio.Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.counted = False        # holds a worker_connections slot until the choice

    @property
    def reusable(self) -> bool:
        """Nothing received yet (net.listen.ConnectionTable may close it to make room)."""
        return self.inner is None and not self.buf

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _release(self) -> None:
        if self.counted:
            self.counted = False
            self.rt.handshake_ended(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if not self.rt.handshake_started(self):
            self.transport.abort()       # no slot: closed at once, as nginx's accept does
            return
        self.counted = True
        t = self.lst.default_server.client_header_timeout
        if t and t > 0:
            self._timer = asyncio.get_running_loop().call_later(t, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self.inner is None and self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
            return
        buf = self.buf + data
        n = min(len(buf), len(PREFACE))
        if buf[:n] == PREFACE[:n] and n < len(PREFACE):
            self.buf = buf
            return
        self.buf = b""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release()             # the HTTP connection takes its own slot
        if buf.startswith(PREFACE):
            self.inner = H2Connection(self.rt, self.lst, self.scheme, initial=buf)
            self.inner.connection_made(self.transport)
        else:
            self.inner = ClientConnection(self.rt, self.lst, self.scheme)
            self.inner.connection_made(self.transport)
            if not self.transport.is_closing():
                self.inner.data_received(buf)

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            return self.inner.eof_received()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self._release()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.inner is not None:
            self.inner.connection_lost(exc)  # type: ignore[arg-type]

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()
