"""net.closing.LingeringClose on real loopback sockets (uvloop): the lingering read HTTP/1 and
HTTP/2 share."""

from __future__ import annotations

import asyncio
from typing import Any

import uvloop

from truehop.net.closing import LingeringClose


def run(main: Any) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


class Lingerer(asyncio.Protocol):
    """Sends a response, then lingers as a connection does; records when it closed."""

    def __init__(self, linger_time: float, linger_timeout: float) -> None:
        self.limits = (linger_time, linger_timeout)
        self.lg: LingeringClose | None = None
        self.started = False
        self.dropped = 0
        self.ended = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(b"response")
        self.lg = LingeringClose(transport, self.end)
        self.started = self.lg.start(*self.limits)

    def data_received(self, data: bytes) -> None:
        self.dropped += len(data)
        assert self.lg is not None
        self.lg.read()

    def eof_received(self) -> bool:
        self.end()
        return False

    def end(self) -> None:
        if self.lg is not None:
            self.lg.stop()
        self.transport.close()
        if not self.ended.done():
            self.ended.set_result(asyncio.get_running_loop().time())


async def _serve(linger_time: float, linger_timeout: float
                 ) -> tuple[asyncio.AbstractServer, list[Lingerer], int]:
    protos: list[Lingerer] = []

    def make() -> Lingerer:
        p = Lingerer(linger_time, linger_timeout)
        protos.append(p)
        return p

    srv = await asyncio.get_running_loop().create_server(make, "127.0.0.1", 0)
    return srv, protos, srv.sockets[0].getsockname()[1]


def test_write_side_shut_and_silent_client_let_go_after_lingering_timeout() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv, protos, port = await _serve(5.0, 0.2)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        t0 = loop.time()
        assert await r.read() == b"response"        # then EOF: the write side is shut
        w.write(b"still sending")                   # the read side is still open
        closed_at = await asyncio.wait_for(protos[0].ended, 3)
        assert protos[0].started and protos[0].dropped == len(b"still sending")
        assert 0.15 <= closed_at - t0 < 1.0
        w.close()
        srv.close()
    run(main)


def test_a_client_that_keeps_sending_is_let_go_after_lingering_time() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv, protos, port = await _serve(0.6, 0.2)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        t0 = loop.time()
        await r.read()
        p = protos[0]
        while not p.ended.done() and loop.time() - t0 < 3:
            w.write(b"x")                           # every gap is shorter than 0.2
            await asyncio.sleep(0.05)
        assert p.ended.done()
        assert 0.5 <= p.ended.result() - t0 < 1.5
        w.close()
        srv.close()
    run(main)
