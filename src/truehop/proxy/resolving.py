"""`server name resolve` in an upstream block (nginx 1.27.3+): the name is looked up at run
time by the block's `resolver` (else the http level's), and again whenever the answer expires
(its TTL, or the resolver's `valid=`), so a container that gets a new address is followed
instead of being proxied to the old one forever (a name without `resolve` is looked up once,
at start, as nginx does).

One `PeerResolution` per upstream block and worker (`upstreams.LiveUpstream.resolving`).
`LiveUpstream.refresh` is awaited before a request picks a peer: nothing happens until the answer expires; then the names are looked up again
(the request waits for at most `resolver_timeout`), and the balancer is rebuilt only when the
addresses changed, so peers' failure counts survive a refresh that changes nothing. A lookup
that fails keeps the addresses there are (nginx keeps its peers), and is logged; a name that
never resolved is a `down` peer: the request gets nginx's "no live upstreams" 502.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from truehop.clock import monotonic as _monotonic
from truehop.conf.model import PeerConf, UpstreamConf
from truehop.log import ErrorLog
from truehop.net.resolver import ResolveError, Resolver
from truehop.proxy.balancer import UpstreamBalancer

MIN_REFRESH: Final = 1.0     # a TTL of 0 must not mean a lookup per request


def expanded(conf: UpstreamConf, addrs: dict[str, tuple[str, ...]]) -> UpstreamConf:
    """`conf` with each `resolve` server replaced by one peer per address it resolved to (its
    weight, max_fails... kept), or by a `down` placeholder while it has none."""
    peers: list[PeerConf] = []
    for p in conf.peers:
        if not p.resolve:
            peers.append(p)
            continue
        got = addrs.get(p.host)
        if got:
            peers.extend(dataclasses.replace(p, host=a, resolve=False) for a in got)
        else:
            peers.append(dataclasses.replace(p, down=True))
    return dataclasses.replace(conf, peers=peers)


class PeerResolution:
    """The `resolve` servers of one upstream block in one worker."""

    __slots__ = ("conf", "names", "resolver", "addrs", "next_at")

    def __init__(self, conf: UpstreamConf) -> None:
        rc = conf.resolver
        assert rc is not None, "compile fills the resolver of an upstream with `resolve`"
        self.conf = conf
        self.names = sorted({p.host for p in conf.peers if p.resolve})
        self.resolver = Resolver(list(rc.servers), rc.valid, rc.ipv4, rc.ipv6,
                                 conf.resolver_timeout)
        self.addrs: dict[str, tuple[str, ...]] = {}
        self.next_at = 0.0          # monotonic time of the next lookup; 0: never looked up

    def balancer(self) -> UpstreamBalancer:
        return UpstreamBalancer.build(expanded(self.conf, self.addrs))

    async def refresh(self, log: ErrorLog) -> UpstreamBalancer | None:
        """Look the names up again when their answers have expired; a new balancer when the
        addresses changed, else None."""
        now = _monotonic()
        if now < self.next_at:
            return None
        self.next_at = now + MIN_REFRESH    # concurrent requests meanwhile use what there is
        changed = False
        expiry = now + 30.0
        for name in self.names:
            try:
                got = tuple(sorted(await self.resolver.resolve(name)))
            except ResolveError as e:
                log.error(f'{e} while resolving upstream "{self.conf.name}" server')
                got = self.addrs.get(name, ())
            expiry = min(expiry, self.resolver.expires(name))
            if got != self.addrs.get(name, ()):
                self.addrs[name] = got
                changed = True
        self.next_at = max(expiry, _monotonic() + MIN_REFRESH)
        return self.balancer() if changed else None
