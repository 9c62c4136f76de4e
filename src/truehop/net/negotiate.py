"""Which protocol serves a new connection on a listener: HTTP/1.x, or HTTP/2 when ALPN chose
`h2` on a TLS port (or a prior-knowledge preface arrives on a plain `http2` port)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from truehop.net.downstream import ClientConnection

if TYPE_CHECKING:
    from truehop.process.runtime import Listener, Runtime


def protocol_for(rt: Runtime, lst: Listener, scheme: str) -> asyncio.Protocol:
    return ClientConnection(rt, lst, scheme)
