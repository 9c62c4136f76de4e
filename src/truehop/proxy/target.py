"""proxy_pass: which upstream, and the URI of the request line (nginx's
ngx_http_proxy_handler and ngx_http_proxy_eval for proxy_pass with variables).

A literal proxy_pass names its upstream at configuration time; one with variables is
rendered per request, and a name that is no upstream and no address is looked up by the
`resolver` (`Targets.resolved`). The URI follows nginx's replacement rules: a URI part
replaces the matched location prefix, none passes the client's URI (or the rewritten one).
"""

from __future__ import annotations

from truehop.conf.model import LocationConf, PeerConf, ProxyPass, Settings, UpstreamConf
from truehop.conf.values import split_proxy_url
from truehop.log import ErrorLog
from truehop.net.resolver import ResolveError, Resolver
from truehop.proxy.pipeline import Finish
from truehop.proxy.upstreams import ProxyRuntime
from truehop.route.state import RequestState
from truehop.route.uri import escape_uri


def default_uri(r: RequestState) -> str:
    """No URI part: nginx passes the client's URI unchanged, unless it was rewritten or the
    request was redirected internally, then the current (escaped) URI."""
    if r.uri_rewritten:
        return escape_uri(r.uri) + ("?" + r.args if r.args else "")
    h = r.head
    return h.path + ("?" + h.query if h.query is not None else "")


def choose_target(rt: ProxyRuntime, r: RequestState, loc: LocationConf
                  ) -> tuple[UpstreamConf, str, str]:
    """(upstream, scheme, URI for the request line); sets $proxy_host and $proxy_port. A
    name in proxy_pass with variables that is no upstream and no address needs the
    resolver: `Targets.resolved`."""
    pp = loc.proxy
    assert pp is not None
    if pp.dynamic is not None:
        scheme, hostport, uri = dynamic_url(rt.log, r, pp)
        up = rt.upstreams.dynamic(hostport, scheme)
        if up is None:
            rt.log.error(f"no resolver defined to resolve {host_of(hostport)}", r.conn, r)
            raise Finish(502)
        return up, scheme, uri
    assert pp.upstream is not None
    r.proxy_host = pp.host_header
    r.proxy_port = pp.port
    rewrite_break = r.rewrite_break
    if pp.uri is None or rewrite_break or loc.modifier not in ("", "^~", "="):
        if pp.uri is not None and rewrite_break:
            # `rewrite ... break` in this location: the URI part is ignored
            uri = escape_uri(r.uri) + ("?" + r.args if r.args else "")
        else:
            uri = default_uri(r)
    else:
        prefix = loc.pattern
        rest = r.uri[len(prefix):] if r.uri.startswith(prefix) else r.uri
        uri = escape_uri(pp.uri + rest) + ("?" + r.args if r.args else "")
    return pp.upstream, pp.scheme, uri


def dynamic_url(log: ErrorLog, r: RequestState, pp: ProxyPass) -> tuple[str, str, str]:
    """proxy_pass with variables, rendered: (scheme, host[:port], URI for the request line);
    sets $proxy_host and $proxy_port."""
    assert pp.dynamic is not None
    url = pp.dynamic.render(r)
    split = split_proxy_url(url)
    if split is None:
        log.error(f'invalid URL prefix in "{url}"', r.conn, r)
        raise Finish(500)
    scheme, rest = split
    hostport, slash, path = rest.partition("/")
    r.proxy_host = hostport
    r.proxy_port = hostport.rpartition(":")[2] if ":" in hostport.rpartition("]")[2] \
        else ("443" if scheme == "https" else "80")
    uri = slash + path if slash else default_uri(r)
    return scheme, hostport, uri


class Targets:
    """Per-runtime state of choosing targets: `resolver`s (one per resolver line and
    timeout) and the upstream made of a name's addresses, kept while the name resolves to
    the same ones (so its balancer goes on)."""

    __slots__ = ("rt", "resolvers", "resolved_ups")

    def __init__(self, rt: ProxyRuntime) -> None:
        self.rt = rt
        self.resolvers: dict[tuple[int, float], Resolver] = {}
        self.resolved_ups: dict[tuple[str, int], tuple[tuple[str, ...], UpstreamConf]] = {}

    async def resolved(self, r: RequestState, loc: LocationConf, s: Settings
                       ) -> tuple[UpstreamConf, str, str]:
        """`choose_target` for proxy_pass with variables under a `resolver`: a name that is
        no upstream and no address is looked up over DNS (net.resolver), all its addresses
        become the peers (round robin), as nginx's ngx_http_upstream_resolve_handler."""
        rt = self.rt
        pp = loc.proxy
        assert pp is not None and s.resolver is not None
        scheme, hostport, uri = dynamic_url(rt.log, r, pp)
        up = rt.upstreams.dynamic(hostport, scheme)
        if up is not None:
            return up, scheme, uri
        host = host_of(hostport)
        port_s = r.proxy_port
        if not port_s.isdigit() or not host:
            rt.log.error(f'invalid port in upstream "{hostport}"', r.conn, r)
            raise Finish(502)
        key = (id(s.resolver), s.resolver_timeout)
        res = self.resolvers.get(key)
        if res is None:
            rc = s.resolver
            res = self.resolvers[key] = Resolver(list(rc.servers), rc.valid, rc.ipv4, rc.ipv6,
                                                 key[1])
        try:
            addrs = await res.resolve(host)
        except ResolveError as e:
            rt.log.error(str(e), r.conn, r)
            raise Finish(502) from None
        port = int(port_s)
        known = self.resolved_ups.get((host, port))
        if known is None or known[0] != addrs:
            up = UpstreamConf(hostport, [PeerConf(a, port) for a in addrs], implicit=True,
                              keepalive=0)
            self.resolved_ups[(host, port)] = (addrs, up)
            return up, scheme, uri
        return known[1], scheme, uri


def host_of(hostport: str) -> str:
    """`host` of `host[:port]` or `[v6][:port]` (brackets dropped)."""
    if hostport.startswith("["):
        return hostport[1:].partition("]")[0]
    return hostport.partition(":")[0]
