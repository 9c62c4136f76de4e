"""A worker: one uvloop event loop serving a Runtime on sockets the master opened.

Signals (from the master or an operator): QUIT = graceful stop (stop accepting, finish
in-flight requests and tunnels, close idle keep-alive connections, exit when idle or at
`worker_shutdown_timeout`), TERM/INT = fast stop, USR1 = reopen log files.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
from typing import Any

from truehop.net.downstream import ClientConnection
from truehop.process.runtime import Listener, Runtime

SWEEP_INTERVAL = 1.0


class Worker:
    def __init__(self, rt: Runtime, sockets: dict[tuple[str, int], socket.socket]) -> None:
        self.rt = rt
        self.sockets = sockets
        self.servers: list[asyncio.AbstractServer] = []
        self.stopping: asyncio.Future[str] | None = None

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self.stopping = loop.create_future()
        for key, lst in self.rt.listeners.items():
            sock = self.sockets.get(key)
            if sock is None:
                continue
            self.servers.append(await loop.create_server(
                self._factory(lst), sock=sock, ssl=self._ssl(lst), backlog=lst.listen.backlog,
                ssl_handshake_timeout=60.0 if lst.ssl else None))
        for sig, what in ((signal.SIGQUIT, "quit"), (signal.SIGTERM, "stop"),
                          (signal.SIGINT, "stop"), (signal.SIGUSR1, "reopen"),
                          (signal.SIGHUP, "ignore"), (signal.SIGWINCH, "ignore")):
            loop.add_signal_handler(sig, self._signal, what)
        sweeper = loop.create_task(self._sweep())
        try:
            how = await self.stopping
            for srv in self.servers:
                srv.close()
            if how == "quit":
                await self._drain()
        finally:
            sweeper.cancel()
            self.rt.close_all()

    def _factory(self, lst: Listener) -> Any:
        rt = self.rt
        scheme = "https" if lst.ssl else "http"
        if lst.http2 or lst.ssl:
            from truehop.net import negotiate

            return lambda: negotiate.protocol_for(rt, lst, scheme)
        return lambda: ClientConnection(rt, lst, scheme)

    def _ssl(self, lst: Listener) -> ssl.SSLContext | None:
        return lst.ssl_context if lst.ssl else None

    def _signal(self, what: str) -> None:
        if what == "reopen":
            self.rt.log.notice("reopening logs")
            self.rt.reopen_logs()
            return
        if what == "ignore":
            return
        st = self.stopping
        if st is not None and not st.done():
            st.set_result(what)
        elif what == "stop" and st is not None:
            # a second, fast stop while draining: give up on in-flight work
            self.rt.close_all()

    async def _drain(self) -> None:
        rt = self.rt
        rt.graceful()
        limit = rt.cfg.main.worker_shutdown_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit if limit else None
        while rt.busy() or rt.connections:
            if deadline is not None and loop.time() >= deadline:
                rt.log.notice("worker shutdown timeout, closing connections")
                break
            await asyncio.sleep(0.05)
            for c in list(rt.connections):
                if c.current is None and not c.queue and c._tunnel is None:
                    c.close()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.rt.sweep()


def run(rt: Runtime, sockets: dict[tuple[str, int], socket.socket]) -> None:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(Worker(rt, sockets).serve())
