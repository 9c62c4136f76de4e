"""What a listening socket's connections are given: the `Listener` (the data a connection
reads: its address, servers, limits, TLS context) and the `ConnectionOwner` (the callbacks
it calls: serve an exchange, refuse one with a status, opened/closed, the error log); the
`ConnectionTable` that counts them against `worker_connections` from accept on; and the
`Acceptor` that accepts them.

The owner is the worker's `process.runtime.Runtime`; it is handed to each connection, so the
connections (HTTP/1 `net.downstream`, HTTP/2 `net.h2conn`, the protocol choice in
`net.negotiate`) never import the runtime or the pipeline: data and calls go down the layers,
answers come back through the owner's methods.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import re
import socket
import time
from collections.abc import Callable, Coroutine, Sized
from dataclasses import dataclass, field
from functools import partial
from ssl import SSLContext
from typing import Any, Protocol

from truehop.conf.model import Listen, ServerConf
from truehop.http.events import RequestHead
from truehop.http.exchange import Exchange
from truehop.http.h1 import H1Limits
from truehop.log import ErrorLog
from truehop.net.upstream import Slots
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

    @property
    def reusable(self) -> bool: ...        # may be closed to make room (ConnectionTable)


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
    # the worker's connection slots: HTTP connections and the handshakes before them
    table: ConnectionTable

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

    def handshake_started(self, p: Any) -> bool:
        """An accepted connection whose protocol is not chosen yet (`net.tls.TlsProtocol`
        before the end of its handshake, `net.negotiate.PrefaceSniffer` before the h2c
        preface) takes its `worker_connections` slot: False when there is none."""
        return self.table.admit(p, self.table.handshakes)

    def handshake_ended(self, p: Any) -> None:
        """Its slot is given back: closed, or handed to the HTTP connection (which takes a
        slot of its own through `connection_opened` right after)."""
        self.table.handshakes.discard(p)
        self.table.released()


# -- the connection slots ---------------------------------------------------------------------

REUSE_MAX = 32          # ngx_drain_connections: at most this many closed per drain
REUSE_RETRY = 0.1       # a drain that found nothing reusable is not tried again before this


class ConnectionTable(Slots):
    """nginx's connection slots of one worker (ngx_get_connection): every accepted client
    connection holds one from accept (`Acceptor`) to close, whether it is still in its TLS
    handshake or h2c preface sniffing (`handshakes`) or serving HTTP (`connections`), so
    `worker_connections` bounds what a worker holds whatever a client does (issue 14 item 2:
    before, handshakes were not counted at all). Upstream connections count too, as nginx's
    (a proxied request holds two slots): `take_upstream` / `release_upstream`
    (net.upstream.connect and its connection's end). Listening sockets, which nginx counts
    as well, are not counted.

    When no slot is free, reusable connections are closed first (ngx_drain_connections):
    idle keep-alive connections and connections that have sent nothing yet, up to
    max(min(32, reusable / 8), 1) at a time, with nginx's `[warn] N worker_connections are
    not enough, reusing connections` at most once a second. Only when nothing is reusable is
    the new connection refused (closed at once), with `[alert] N worker_connections are not
    enough`: once per burst, i.e. again only after the worker has fallen back below the
    limit by a sixteenth (nginx logs it per refused connection, a flood of lines). The
    sets are not ordered: the connections reused are any reusable ones, not the oldest."""

    def __init__(self, owner: ConnectionOwner, limit: int) -> None:
        self.owner = owner              # its `log` is read when logging (it may be replaced)
        self.limit = limit
        self.connections: set[ClientSide] = set()
        self.handshakes: set[Any] = set()
        self.upstream = 0               # open upstream connections (pooled ones included)
        self.alerted = False
        self._warned_at = -1
        self._barren_until = 0.0

    def __len__(self) -> int:
        return len(self.connections) + len(self.handshakes) + self.upstream

    def admit(self, c: Any, into: set[Any]) -> bool:
        """Give `c` a slot in `into` (one of the two sets): False when the worker is full and
        nothing could be reused; the caller closes `c`."""
        if len(self) >= self.limit and not self._drain():
            if not self.alerted:
                self.alerted = True
                self.owner.log.alert(f"{self.limit} worker_connections are not enough")
            return False
        into.add(c)
        return True

    def released(self) -> None:
        """A slot came back: re-arm the alert once the burst is over."""
        if self.alerted and len(self) < self.limit - max(1, self.limit // 16):
            self.alerted = False

    def take_upstream(self) -> bool:
        """A slot for a new upstream connection (ngx_get_connection in
        ngx_event_connect_peer): False when none is free even after closing reusable
        client connections; the caller logs nginx's alert with its request and answers 500."""
        if len(self) >= self.limit and not self._drain():
            return False
        self.upstream += 1
        return True

    def release_upstream(self) -> None:
        self.upstream -= 1
        self.released()

    def _drain(self) -> bool:
        """ngx_drain_connections: close reusable connections; True when a slot is free."""
        now = time.monotonic()
        if now < self._barren_until:
            return False
        found = [c for c in self.handshakes if c.reusable]
        found += [c for c in self.connections if c.reusable]
        if not found:
            self._barren_until = now + REUSE_RETRY
            return False
        second = int(now)
        if second != self._warned_at:
            self._warned_at = second
            self.owner.log.warn(f"{self.limit} worker_connections are not enough, "
                                "reusing connections")
        for c in found[:max(min(REUSE_MAX, len(found) // 8), 1)]:
            # the slot is free now (as nginx's close is immediate); connection_lost follows
            self.connections.discard(c)
            self.handshakes.discard(c)
            c.close()
        return len(self) < self.limit


# -- accepting --------------------------------------------------------------------------------

ACCEPT_DELAY = 0.5      # accept_mutex_delay: how long accepting stays off after EMFILE/ENFILE


class Acceptor:
    """The worker's accept loop over the listening sockets the master opened (nginx's
    ngx_event_accept), in place of uvloop's servers: libuv answers EMFILE/ENFILE on accept by
    accepting and closing everything waiting in the backlog (uv__emfile_trick), so a client
    on any port got an empty, closed reply and nothing was logged. Here, as nginx does, the
    failure is logged at `crit` (`accept4() failed (24: Too many open files) while accepting
    new connection on ADDR`), accepting stops on every socket for `ACCEPT_DELAY`
    (ngx_disable_accept_events) and resumes; the clients wait in the backlog meanwhile and are
    served once descriptors are free again.

    One connection per readiness event, as nginx's default `multi_accept off`: the socket
    stays readable while more wait, and no EAGAIN is raised per connection. What a new
    connection costs on top of uvloop's own accept (about 27k instructions, against 65k for
    a whole connection and its request in a bare uvloop server) is kept down three ways:
    the accepted descriptor is wrapped in a bare `_socket.socket` (the `socket.socket`
    wrapper's `family`/`type` properties build enums, 6k instructions each, and uvloop reads
    both); libuv makes it non-blocking itself (uv_tcp_open); and `connect_accepted_socket`,
    a coroutine that only waits for `connection_made`, is driven by hand rather than by a
    Task per connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: ConnectionOwner) -> None:
        self.loop = loop
        self.owner = owner
        self.sockets: list[tuple[socket.socket, Callable[[], Any], str]] = []
        self.enabled = False
        self.stopped = False
        self._resume: asyncio.TimerHandle | None = None

    def add(self, sock: socket.socket, factory: Callable[[], Any], name: str) -> None:
        sock.setblocking(False)
        self.sockets.append((sock, factory, name))

    def start(self) -> None:
        if self.enabled or self.stopped:
            return
        self.enabled = True
        for sock, factory, name in self.sockets:
            self.loop.add_reader(sock.fileno(), self._accept, sock, int(sock.family), factory,
                                 name)

    def pause(self) -> None:
        if self.enabled:
            self.enabled = False
            for sock, _, _ in self.sockets:
                self.loop.remove_reader(sock.fileno())

    def stop(self) -> None:
        """Accept no more (a graceful stop): the master and the other workers keep the
        sockets, so nothing queued in the kernel is lost. The worker's copies are closed."""
        self.pause()
        self.stopped = True
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        for sock, _, _ in self.sockets:
            sock.close()

    def _resumed(self) -> None:
        self._resume = None
        self.start()

    def _accept(self, sock: socket.socket, family: int, factory: Callable[[], Any],
                name: str) -> None:
        try:
            fd, _ = sock._accept()      # type: ignore[attr-defined]  # accept4(), no wrapper
        except (BlockingIOError, InterruptedError):
            return                      # another worker took it
        except OSError as e:
            # ngx_event_accept's levels: a connection reset in the backlog is an error,
            # the descriptor limits crit, anything else alert
            err = e.errno
            level = "error" if err == errno.ECONNABORTED else \
                "crit" if err in (errno.EMFILE, errno.ENFILE) else "alert"
            self.owner.log.log(level, f"accept4() failed ({err}: {e.strerror}) "
                                      f"while accepting new connection on {name}")
            if err in (errno.EMFILE, errno.ENFILE):
                # ngx_disable_accept_events, then the accept event's timer
                self.pause()
                if self._resume is None and not self.stopped:
                    self._resume = self.loop.call_later(ACCEPT_DELAY, self._resumed)
            return
        conn = _socket.socket(family, socket.SOCK_STREAM, 0, fd)
        co = self.loop.connect_accepted_socket(factory, conn)  # type: ignore[arg-type]
        try:
            waiter = co.send(None)      # the transport and protocol exist once this returns
        except StopIteration:
            return
        except Exception:
            return                      # uvloop has closed the socket
        waiter.add_done_callback(partial(_connected, co))


def _connected(co: Any, waiter: Any) -> None:
    """connection_made has run (or the connection failed and uvloop closed its socket):
    let the coroutine finish."""
    try:
        co.send(None)
    except (StopIteration, Exception):    # the failure: nothing is left to answer
        pass
