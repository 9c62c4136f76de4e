"""A worker: one uvloop event loop serving a Runtime on sockets the master opened.

Signals (from the master or an operator): QUIT = graceful stop, TERM/INT = fast stop,
USR1 = reopen log files. The master keeps QUIT, TERM, INT, HUP, USR1 blocked across fork; the
worker unblocks them only once its handlers are installed, so a reload that follows a spawn
closely can never kill a half-started worker.

Graceful stop (a reload retires the old workers this way, and so does `-s quit`):

- stop accepting (the listening sockets stay open in the master and the new workers, so
  nothing queued in the kernel is lost);
- in-flight requests finish; their responses carry `Connection: close`;
- an idle keep-alive connection is NOT closed at once (nginx does, and a client that reuses it
  a moment later gets a connection closed before the response head): its next request is
  answered, with `Connection: close`. Idle connections are closed at spread-out moments in
  the second half of a drain window (`IDLE_DRAIN`, bounded by `keepalive_timeout` and
  `worker_shutdown_timeout`), so reconnects do not all arrive at once;
- a connection still in its TLS handshake (or h2c preface sniffing) is waited for like an
  idle one, then served as above;
- tunnels (WebSocket) stay open until `worker_shutdown_timeout` (unset: until they end);
- the worker exits when nothing is left, or at `worker_shutdown_timeout`.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import random
import signal
import socket
from typing import Any

import uvloop

from truehop.net import negotiate
from truehop.net.downstream import ClientConnection
from truehop.net.listen import Acceptor, Listener
from truehop.process.runtime import Runtime

SWEEP_INTERVAL = 1.0
IDLE_DRAIN = 5.0          # seconds a retiring worker keeps idle keep-alive connections open
DRAIN_POLL = 0.05
WORKER_SIGNALS = (signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
                  signal.SIGHUP, signal.SIGWINCH)


def _pending(p: Any) -> bool:
    """An accepted connection not handed to a ClientConnection/H2Connection yet (TLS handshake,
    h2c preface sniffing): not in `rt.connections`, but still open. Duck-typed on net's
    front protocols: `inner` is None until the application protocol exists, and `raw` or
    `transport` is the accepted transport."""
    t = _transport(p)
    if t is None:
        return True     # accepted, connection_made has not run yet (the loop calls it soon)
    if getattr(p, "inner", True) is not None:
        return False    # a ClientConnection (tracked in rt.connections), or handed over
    return not t.is_closing()


def _transport(p: Any) -> Any:
    return getattr(p, "raw", None) or getattr(p, "transport", None)


def _idle(c: Any) -> bool:
    """No request in progress or queued, and not a tunnel."""
    return (getattr(c, "current", None) is None and not getattr(c, "queue", None)
            and getattr(c, "_tunnel", None) is None)


class Worker:
    def __init__(self, rt: Runtime, sockets: dict[tuple[str, int], socket.socket],
                 ready_fd: int | None = None) -> None:
        self.rt = rt
        self.sockets = sockets
        self.ready_fd = ready_fd
        self.acceptor: Acceptor | None = None
        self.stopping: asyncio.Future[str] | None = None
        self.fast = False
        # accepted protocols: a retiring worker waits for those not yet in rt.connections
        # (connection_made pending, TLS handshake, h2c preface sniffing). A plain set pruned
        # as it grows, not a WeakSet: weak references to mypyc-compiled protocol classes
        # crash the interpreter (mypy 2.4's mypyc, subclasses of asyncio.Protocol).
        self.accepted: set[Any] = set()
        self._prune_at = 64

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self.stopping = loop.create_future()
        # our own accept loop, not create_server: net.listen.Acceptor says why (EMFILE)
        acceptor = self.acceptor = Acceptor(loop, self.rt)
        for key, lst in self.rt.listeners.items():
            sock = self.sockets.get(key)
            if sock is None:
                continue
            host, port = key
            acceptor.add(sock, self._factory(lst), host if host.startswith("unix:") else
                         f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        acceptor.start()
        for sig, what in ((signal.SIGQUIT, "quit"), (signal.SIGTERM, "stop"),
                          (signal.SIGINT, "stop"), (signal.SIGUSR1, "reopen"),
                          (signal.SIGHUP, "ignore"), (signal.SIGWINCH, "ignore")):
            loop.add_signal_handler(sig, self._signal, what)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
        self._notify_ready()
        sweeper = loop.create_task(self._sweep())
        try:
            how = await self.stopping
            acceptor.stop()
            if how == "quit":
                self.rt.log.notice("gracefully shutting down")
                await self._drain()
        finally:
            sweeper.cancel()
            self.rt.close_all()
            self.rt.log.notice("exiting")

    def _notify_ready(self) -> None:
        fd, self.ready_fd = self.ready_fd, None
        if fd is not None:
            try:
                os.write(fd, b"1")
            except OSError:
                pass
            os.close(fd)

    def _factory(self, lst: Listener) -> Any:
        rt = self.rt
        scheme = "https" if lst.ssl else "http"
        if lst.http2 or lst.ssl:
            def make() -> Any:
                p = negotiate.protocol_for(rt, lst, scheme)
                self.track(p)
                return p
            return make

        def make_h1() -> Any:
            c = ClientConnection(rt, lst, scheme)
            self.track(c)
            return c
        return make_h1

    def track(self, p: Any) -> None:
        """Remember an accepted protocol until it is no longer pending; the set is pruned
        when it has doubled since the last pruning, so it stays within twice the pending
        ones (amortised O(1) per connection)."""
        accepted = self.accepted
        accepted.add(p)
        if len(accepted) >= self._prune_at:
            self.accepted = accepted = {q for q in accepted if _pending(q)}
            self._prune_at = max(64, 2 * len(accepted))

    def _signal(self, what: str) -> None:
        if what == "reopen":
            self.rt.reopen_logs()
            self.rt.log.notice("reopening logs")
            return
        if what == "ignore":
            return
        st = self.stopping
        if st is not None and not st.done():
            st.set_result(what)
        elif what == "stop" and st is not None:
            # a fast stop while draining: give up on in-flight work
            self.fast = True
            self.rt.close_all()

    def idle_window(self) -> float:
        """How long idle keep-alive connections stay open once draining."""
        rt = self.rt
        window = IDLE_DRAIN
        limit = rt.cfg.main.worker_shutdown_timeout
        if limit:
            window = min(window, limit)
        kat = [srv.settings.keepalive_timeout for srv in rt.cfg.http.servers
               if srv.settings.keepalive_timeout]
        if kat:
            window = min(window, max(kat))
        return max(window, 0.0)

    async def _drain(self) -> None:
        rt = self.rt
        loop = asyncio.get_running_loop()
        start = loop.time()
        limit = rt.cfg.main.worker_shutdown_timeout
        deadline = start + limit if limit else None
        window = self.idle_window()
        close_at: dict[Any, float] = {}

        def retire(c: Any) -> None:
            # the next response on `c` carries Connection: close; an idle `c` stays open
            # until its moment in the second half of the window
            c.closing = True
            close_at[c] = start + window * (0.5 + 0.5 * random.random())

        rt.shutting_down = True   # connections accepted from now on are retired too
        for c in list(rt.connections):
            retire(c)
        while True:
            # handshakes are waited for during the idle window, then closed
            pending = [p for p in self.accepted if _pending(p)] \
                if loop.time() < start + window + 2 * DRAIN_POLL else []
            if not (rt.busy() or rt.connections or pending):
                break
            if self.fast:
                break
            now = loop.time()
            if deadline is not None and now >= deadline:
                rt.log.notice("worker shutdown timeout, closing connections")
                break
            for c in list(rt.connections):
                if c not in close_at:
                    retire(c)
                if _idle(c) and now >= close_at[c]:
                    c.close()
            if pending and now >= start + window:
                for p in pending:  # a handshake that has not finished in the whole window
                    t = _transport(p)
                    if t is not None:
                        t.close()
            await asyncio.sleep(DRAIN_POLL)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.rt.sweep()


def run(rt: Runtime, sockets: dict[tuple[str, int], socket.socket],
        ready_fd: int | None = None) -> None:
    profile_to = os.environ.get("TRUEHOP_PROFILE")
    if profile_to:
        # a developer's tool (bench/README.md): cProfile this worker, dumped when it exits
        prof = cProfile.Profile()
        prof.enable()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(Worker(rt, sockets, ready_fd).serve())
    if profile_to:
        prof.disable()
        prof.dump_stats(f"{profile_to}.{os.getpid()}")
