"""What a listening socket's connections are given: the `Listener` (the data a connection
reads: its address, servers, limits, TLS context) and the `ConnectionOwner` (the callbacks
it calls: serve an exchange, refuse one with a status, opened/closed, the error log).

The owner is the worker's `process.runtime.Runtime`; it is handed to each connection, so the
connections (HTTP/1 `net.downstream`, HTTP/2 `net.h2conn`, the protocol choice in
`net.negotiate`) never import the runtime or the pipeline: data and calls go down the layers,
answers come back through the owner's methods.
"""

from __future__ import annotations

import re
from collections.abc import Coroutine, Sized
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any, Protocol

from truehop.conf.model import Listen, ServerConf
from truehop.http.events import RequestHead
from truehop.http.exchange import Exchange
from truehop.http.h1 import H1Limits
from truehop.log import ErrorLog
from truehop.route.state import ConnectionInfo


@dataclass
class Listener:
    """One bound address:port and the servers that listen on it."""

    key: tuple[str, int]
    listen: Listen
    servers: list[ServerConf]
    default_server: ServerConf
    limits: H1Limits
    ssl: bool = False
    http2: bool = False
    index: Any = None                               # ServerNameIndex for the wildcard address
    by_addr: dict[str, Any] = field(default_factory=dict)  # local address -> ServerNameIndex
    ssl_context: SSLContext | None = None
    # a server here has ssl_verify_client: requests go through nginx's certificate check
    client_verify: bool = False

    def find_server(self, local_addr: str, host: str) -> ServerConf:
        idx = self.by_addr.get(local_addr, self.index) if self.by_addr else self.index
        return idx.find(host)  # an empty host first looks for a server named ""

    def find_server_match(self, local_addr: str, host: str
                          ) -> tuple[ServerConf, re.Match[str] | None]:
        """The server, and the match of its regex server_name when a regex chose it (its
        captures are $1.. and named variables for the request, as in nginx)."""
        idx = self.by_addr.get(local_addr, self.index) if self.by_addr else self.index
        return idx.find_with_captures(host)


class ClientSide(Protocol):
    """What the owner reads and calls on every client connection, HTTP/1 or HTTP/2."""

    closing: bool       # set: the next response closes (HTTP/2: GOAWAY once idle)

    @property
    def current(self) -> Any: ...          # the exchange in flight, or None

    @property
    def queue(self) -> Sized: ...          # pipelined requests waiting (HTTP/2: none)

    def graceful_close(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class ConnectionOwner:
    """The callbacks a client connection is handed (implemented by process.runtime.Runtime).
    A base class rather than a Protocol: the compiled build calls a subclass's methods
    through its vtable, as it did when connections called the runtime directly (the HTTP/1
    path calls `serve` once per request)."""

    log: ErrorLog
    shutting_down: bool
    # the refusal tasks in flight (bad-request answers), and the flows (net.flow) of HTTP/2
    # streams whose connection is gone: the worker waits for them to end before it exits
    tasks: set[Any]

    def serve(self, ex: Exchange, info: ConnectionInfo, listener: Listener
              ) -> Coroutine[Any, Any, None]:
        """The coroutine that answers the request (the pipeline, its checks first)."""
        raise NotImplementedError

    def refuse(self, ex: Exchange, info: ConnectionInfo, listener: Listener, status: int,
               why: str) -> Coroutine[Any, Any, None]:
        """The coroutine that answers `status` to a request refused before any phase ran
        (a request the parser refused, plain HTTP on a TLS port, HTTP/2 where the server
        allows none); `why` is logged at `info` now, as nginx logs it when it refuses."""
        raise NotImplementedError

    def http2_refusal(self, listener: Listener, info: ConnectionInfo, head: RequestHead
                      ) -> tuple[int, str] | None:
        """(status, why) when the server the HTTP/2 stream's Host picks allows no HTTP/2."""
        raise NotImplementedError

    def connection_opened(self, c: ClientSide) -> None:
        raise NotImplementedError

    def connection_closed(self, c: ClientSide) -> None:
        raise NotImplementedError
