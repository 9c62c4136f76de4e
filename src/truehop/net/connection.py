"""What every client connection shares, HTTP/1 (`net.downstream`) and HTTP/2
(`net.h2conn`): its `ConnectionInfo` built from the transport ($remote_addr, $server_addr,
$scheme, the $ssl_* variables and the client certificate), its number ($connection), and
the lingering-close limits read from the settings.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from truehop.certificate import ClientCert
from truehop.conf.model import Settings
from truehop.route.state import ConnectionInfo

_conn_counter = 0


def next_conn_number() -> int:
    """$connection: numbered in the order the worker accepted them."""
    global _conn_counter
    _conn_counter += 1
    return _conn_counter


def connection_info(transport: asyncio.BaseTransport, listen_key: tuple[str, int],
                    scheme: str) -> ConnectionInfo:
    """$remote_addr, $server_addr, $scheme and the $ssl_* variables for a new connection."""
    peer = transport.get_extra_info("peername")
    sock = transport.get_extra_info("sockname")
    if isinstance(peer, tuple):
        raddr, rport = peer[0], peer[1]
        saddr, sport = sock[0], sock[1]
        if raddr.startswith("::ffff:") and "." in raddr:
            raddr = raddr[7:]
    else:
        raddr, rport, saddr, sport = "unix:", 0, "unix:", 0
    info = ConnectionInfo(raddr, rport, saddr, sport, scheme, next_conn_number(), listen_key)
    ssl_obj = transport.get_extra_info("ssl_object")
    if ssl_obj is not None:
        info.ssl_protocol = ssl_obj.version() or ""
        c = ssl_obj.cipher()
        info.ssl_cipher = c[0] if c else ""
        # the name the ClientHello sent: net.tls records it as `sni` (a server-side
        # SSLObject's server_hostname is None unless a transport set it)
        info.ssl_server_name = getattr(ssl_obj, "server_hostname", None) or \
            getattr(ssl_obj, "sni", "") or ""
        info.ssl_session_reused = bool(getattr(ssl_obj, "session_reused", False))
        # a context that asks for client certificates: $ssl_client_* read them lazily
        attach_client_cert(info, ssl_obj)
    return info


def attach_client_cert(info: ConnectionInfo, so: Any) -> None:
    """Give `info` the certificate's lazy ClientCert when the connection's context asks for
    a client certificate."""
    if isinstance(so, ssl.SSLObject) and so.context.verify_mode != ssl.CERT_NONE:
        info.client_cert = ClientCert(so)


def lingering_limits(s: Settings) -> tuple[float, float]:
    """lingering_time and lingering_timeout (HTTP/1: the request's settings; HTTP/2: the
    connection's default server's, as ngx_http_v2_lingering_close reads them)."""
    return s.lingering_time, s.lingering_timeout
