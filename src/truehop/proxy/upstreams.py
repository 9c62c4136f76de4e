"""The live upstreams of one runtime (nginx's upstream module state, per worker): each
upstream's balancer and keepalive pool, the implicit upstreams proxy_pass with variables
names while serving, and the TLS contexts toward https upstreams. Also `ProxyRuntime`, what
proxy_pass uses of the runtime that runs it.

The model is frozen after compile: an implicit upstream made while serving (`proxy_pass
http://$addr` rendering `127.0.0.1:3000`, which names no `upstream` block) is kept here,
never added to `Config.http.upstreams`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Mapping

from truehop.conf.model import PeerConf, Settings, UpstreamConf
from truehop.detect import Detector
from truehop.log import ErrorLog
from truehop.net.tls import set_protocols
from truehop.net.upstream import Slots
from truehop.proxy.balancer import UpstreamBalancer
from truehop.proxy.pipeline import Pipeline
from truehop.proxy.pool import KeepalivePool
from truehop.proxy.resolving import PeerResolution


class LiveUpstream:
    """One upstream block made live: its balancer (peers' state) and its cache of idle
    connections (`keepalive`; none for an implicit upstream, as nginx caches none there)."""

    __slots__ = ("conf", "balancer", "pool", "resolving")

    def __init__(self, conf: UpstreamConf) -> None:
        self.conf = conf
        # `server name resolve`: the names are looked up at run time (proxy.resolving)
        self.resolving: PeerResolution | None = None
        if conf.resolver is not None and any(p.resolve for p in conf.peers):
            self.resolving = PeerResolution(conf)
            self.balancer = self.resolving.balancer()
        else:
            self.balancer = UpstreamBalancer.build(conf)
        self.pool: KeepalivePool | None = None
        if conf.keepalive and not conf.implicit:
            self.pool = KeepalivePool(conf.keepalive, conf.keepalive_timeout,
                                      conf.keepalive_requests, conf.keepalive_time,
                                      local=conf.keepalive_local)

    async def refresh(self, log: ErrorLog) -> None:
        """`server name resolve`: look the names up again once their answers expired."""
        assert self.resolving is not None
        b = await self.resolving.refresh(log)
        if b is not None:
            self.balancer = b


class Upstreams:
    """The upstreams of one runtime: the configured ones (`upstream` blocks and the implicit
    upstreams compile made for literal proxy_pass addresses; read, never written), the ones
    proxy_pass with variables makes while serving, and each one's `LiveUpstream`."""

    __slots__ = ("named", "made", "live", "ssl_contexts")

    def __init__(self, named: Mapping[str, UpstreamConf]) -> None:
        self.named = named
        # implicit upstreams made while serving, by "host:port" (kept for the worker's life,
        # so their balancer state goes on from one request to the next)
        self.made: dict[str, UpstreamConf] = {}
        # by id(UpstreamConf): the conf is kept alive by its LiveUpstream, so an id is never
        # reused while its entry is here
        self.live: dict[int, LiveUpstream] = {id(up): LiveUpstream(up) for up in named.values()}
        self.ssl_contexts: dict[tuple[bool, str | None, tuple[str, ...]], ssl.SSLContext] = {}

    def get(self, up: UpstreamConf) -> LiveUpstream:
        """`up` made live (made on first use for an upstream made while serving or by the
        resolver)."""
        live = self.live.get(id(up))
        if live is None:
            live = self.live[id(up)] = LiveUpstream(up)
        return live

    def dynamic(self, hostport: str, scheme: str) -> UpstreamConf | None:
        """The upstream proxy_pass with variables names (ngx_http_upstream_create_round_robin_peer
        for an address): an `upstream` block by that name, else an implicit upstream of that
        address (`localhost` is 127.0.0.1); None for a name that needs the resolver."""
        up = self.named.get(hostport)
        if up is not None:
            return up
        host, _, port_s = hostport.rpartition(":") if ":" in hostport.lstrip("[").split("]")[-1] \
            else (hostport, "", "443" if scheme == "https" else "80")
        host = host.strip("[]")
        if host == "localhost":
            host = "127.0.0.1"
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
        if not port_s.isdigit():
            return None
        key = f"{host}:{port_s}"
        up = self.named.get(key)
        if up is None:
            up = self.made.get(key)
            if up is None:
                up = self.made[key] = UpstreamConf(key, [PeerConf(host, int(port_s))],
                                                   implicit=True, keepalive=0)
        return up

    def ssl_context(self, s: Settings) -> ssl.SSLContext:
        """The client TLS context toward an https upstream, one per distinct proxy_ssl_verify,
        proxy_ssl_trusted_certificate and proxy_ssl_protocols."""
        key = (s.proxy_ssl_verify, s.proxy_ssl_trusted_certificate, s.proxy_ssl_protocols)
        ctx = self.ssl_contexts.get(key)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            set_protocols(ctx, s.proxy_ssl_protocols)
            if s.proxy_ssl_verify:
                ctx.check_hostname = True
                ctx.verify_mode = ssl.CERT_REQUIRED
                if s.proxy_ssl_trusted_certificate:
                    ctx.load_verify_locations(s.proxy_ssl_trusted_certificate)
                else:
                    ctx.load_default_certs()
            else:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self.ssl_contexts[key] = ctx
        return ctx

    def close_all(self) -> None:
        """Close every idle upstream connection (the worker is stopping)."""
        for live in self.live.values():
            if live.pool is not None:
                live.pool.close_all()

    def sweep(self, now: float) -> None:
        """Close the idle connections whose keepalive_timeout has passed."""
        for live in self.live.values():
            if live.pool is not None:
                live.pool.sweep(now)


class ProxyRuntime:
    """What proxy_pass uses of the runtime that runs it (process.runtime.Runtime, a layer
    above, fills one): the error log, the detector, the live upstreams, the open tunnels (the
    worker waits for them on a graceful stop) and the pipeline whose header filters a relayed
    response passes through.

    A concrete class, not a Protocol: the compiled build reads a native class's attributes
    as C struct fields, a Protocol-typed object's by a dictionary lookup, and the proxy reads
    these on every request. `pipeline` is set once the pipeline is built (it binds the proxy's
    content phase, so the proxy comes first)."""

    __slots__ = ("log", "detect", "upstreams", "tunnels", "pipeline", "slots")

    pipeline: Pipeline

    def __init__(self, log: ErrorLog, detect: Detector, upstreams: Upstreams,
                 tunnels: set[asyncio.Future[None]]) -> None:
        self.log = log
        self.detect = detect
        self.upstreams = upstreams
        self.tunnels = tunnels
        # the worker's connection slots: upstream connections count against
        # worker_connections (net.listen.ConnectionTable); None counts nothing
        self.slots: Slots | None = None
