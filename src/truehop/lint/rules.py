"""Lint rules: one pure function per quiet nginx misconfiguration.

Each rule reads the compiled `Config` (never the file system, never the network) and yields
`Finding`s that point at the line that causes the problem. `run(cfg)` runs them all, drops
duplicates (a header set at server level is seen from every location) and sorts by position.

Rule ids are public (tests, `check-pitfalls`, users' suppressions): never rename one.

Semantics the rules rely on (nginx 1.30):
- `proxy_set_header` at a level replaces the whole inherited list; `LocationConf.local`,
  `ServerConf.local` and `HttpConf.local` hold what each level wrote itself.
- `Host` defaults to `$proxy_host` (the upstream block's name, or host:port as written).
- An empty `proxy_set_header` value removes the header.
- Upstream blocks keep idle connections (`keepalive 32` unless written); a bare
  `proxy_pass http://host:port` has no block and keeps none.
- `proxy_http_version 1.0` sends `Connection: close` unless `Connection` is set.
- Regex locations are checked after the longest prefix and win over it, unless the prefix
  has `^~`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from truehop.conf.directives import SETTINGS_SPECS, SPECS, lookup
from truehop.conf.model import (
    Config,
    HeaderSetting,
    IfOp,
    LevelSettings,
    LocationConf,
    MapConf,
    ReturnOp,
    ServerConf,
    SetOp,
    Settings,
    Where,
)
from truehop.http.events import RequestHead
from truehop.http.headers import connection_tokens
from truehop.lint.report import Finding, sort_key
from truehop.route.state import ConnectionInfo, RequestState
from truehop.route.template import Template

Rule = Callable[[Config], Iterable[Finding]]

CLIENT_IP_HEADERS = frozenset({"x-real-ip", "x-forwarded-for", "forwarded"})
PROTO_HEADERS = frozenset({"x-forwarded-proto", "forwarded", "x-forwarded-ssl",
                           "x-forwarded-scheme", "x-scheme"})
# file names tried against a regex location to see whether it captures a prefix's requests
SAMPLE_FILES = ("app.css", "app.js", "logo.png", "photo.jpg", "photo.jpeg", "anim.gif",
                "icon.svg", "favicon.ico", "font.woff", "font.woff2", "font.ttf", "index.html",
                "page.htm", "notes.txt", "data.json", "app.js.map", "image.webp", "clip.mp4",
                "doc.pdf", "feed.xml", "script.php", "a/b/c")
SSE_PATTERN = re.compile(r"(?i)(^|[/_.-])(events?|sse|stream(ing)?|eventsource)([/_.-]|$)")
WEBSOCKET_IDLE = 60.0


# --- walking the model ----------------------------------------------------------------------

def locations(server: ServerConf) -> Iterator[LocationConf]:
    """Every location of a server: nested ones, named ones and `if` blocks, in file order."""
    stack: list[LocationConf] = list(reversed([*server.locations, *server.named.values()]))
    while stack:
        loc = stack.pop()
        yield loc
        inner: list[LocationConf] = list(loc.children)
        for op in loc.ops:
            if isinstance(op, IfOp) and op.loc is not None:
                inner.append(op.loc)
        stack.extend(reversed(inner))


def sites(cfg: Config) -> Iterator[tuple[ServerConf, LocationConf]]:
    for server in cfg.http.servers:
        for loc in locations(server):
            yield server, loc


def proxied(cfg: Config) -> Iterator[tuple[ServerConf, LocationConf]]:
    for server, loc in sites(cfg):
        if loc.proxy is not None:
            yield server, loc


def loc_label(loc: LocationConf) -> str:
    if loc.modifier == "if":
        return "if block"
    if loc.modifier == "@":
        return f'location "@{loc.pattern}"'
    return f'location "{loc.name}"'


def where_of(s: Settings, name: str, fallback: Where) -> Where:
    return s.where.get(name + "@last") or s.where.get(name) or fallback


def sent_headers(s: Settings) -> dict[str, HeaderSetting]:
    """lower-cased name -> setting, for the headers that are really sent (non-empty value)."""
    out: dict[str, HeaderSetting] = {}
    for h in s.proxy_set_header:
        if h.value.static == "":
            out.pop(h.name.lower(), None)
            continue
        out[h.name.lower()] = h
    return out


@dataclass(frozen=True, slots=True)
class HeaderLevel:
    """The block whose `proxy_set_header` lines a location uses, and what it replaced."""

    label: str
    local: LevelSettings
    inherited: tuple[HeaderSetting, ...]
    where: Where

    def lost(self) -> list[HeaderSetting]:
        mine = {h.name.lower() for h in self.local.get("proxy_set_header") or ()}
        out: list[HeaderSetting] = []
        seen: set[str] = set()
        for h in self.inherited:
            ln = h.name.lower()
            if ln not in mine and ln not in seen:
                seen.add(ln)
                out.append(h)
        return out


def header_level(cfg: Config, server: ServerConf, loc: LocationConf) -> HeaderLevel | None:
    node: LocationConf | None = loc
    while node is not None:
        local = node.local
        if local is not None and local.defined_here("proxy_set_header"):
            parent = node.parent.settings if node.parent is not None else server.settings
            return HeaderLevel(loc_label(node), local, parent.proxy_set_header,
                               local.where.get("proxy_set_header", node.where))
        node = node.parent
    if server.local.defined_here("proxy_set_header"):
        return HeaderLevel("server block", server.local,
                           cfg.http.settings.proxy_set_header,
                           server.local.where.get("proxy_set_header", server.where))
    return None


def lost_names(cfg: Config, server: ServerConf, loc: LocationConf) -> set[str]:
    lvl = header_level(cfg, server, loc)
    if lvl is None:
        return set()
    return {h.name.lower() for h in lvl.lost()}


def forwards_upgrade(s: Settings) -> HeaderSetting | None:
    h = sent_headers(s).get("upgrade")
    return h


# --- evaluating templates on a made-up request ----------------------------------------------

def sample_request(server: ServerConf, upgrade: bool = False) -> RequestState:
    host = server.primary_name or "example.test"
    headers = [("Host", host), ("User-Agent", "truehop-lint")]
    if upgrade:
        headers += [("Connection", "Upgrade"), ("Upgrade", "websocket")]
    head = RequestHead("GET", "/", "/", None, "1.1", headers, host, None, False, True,
                       upgrade="websocket" if upgrade else None)
    ls = server.listens[0] if server.listens else None
    scheme = "https" if ls is not None and ls.ssl else "http"
    conn = ConnectionInfo("192.0.2.10", 50000, "127.0.0.1", ls.port if ls else 80, scheme, 1)
    r = RequestState(conn, head, server)
    r.host = host
    r.server_name = server.primary_name
    return r


def render(tpl: Template, r: RequestState) -> str | None:
    try:
        return tpl.render(r)
    except Exception:  # a getter that needs more than a sample request has
        return None


def map_of(cfg: Config, tpl: Template) -> MapConf | None:
    """The map whose variable is the whole template (`$connection_upgrade`)."""
    if len(tpl.names) != 1:
        return None
    name = tpl.names[0]
    if tpl.source not in (f"${name}", f"${{{name}}}"):
        return None
    for m in cfg.http.maps:
        if m.variable == name:
            return m
    return None


def map_entry_for(m: MapConf, r: RequestState) -> tuple[Template, Where] | None:
    """Which entry of a map answers for this request, and where it is written."""
    key = render(m.source, r)
    if key is None:
        return None
    if m.hostnames:
        key = key.lower().rstrip(".")
    tpl: Template | None = m.exact.get(key)
    if tpl is None and not m.wildcards:
        for rx, t in m.regexes:
            if rx.search(key):
                tpl = t
                break
    elif tpl is None:
        return None  # hostname wildcards: too clever for a lint guess
    if tpl is None:
        tpl = m.default
    for _key, t, w in m.entries:
        if t is tpl:
            return tpl, w
    return tpl, m.where


def value_on(cfg: Config, server: ServerConf, h: HeaderSetting, upgrade: bool
             ) -> tuple[str, Where] | None:
    """The header's value on a sample request, and the line that decides it."""
    if h.value.static is not None:
        return h.value.static, h.where
    r = sample_request(server, upgrade)
    m = map_of(cfg, h.value)
    if m is not None:
        hit = map_entry_for(m, r)
        if hit is not None:
            v = render(hit[0], r)
            return (v, hit[1]) if v is not None else None
    v = render(h.value, r)
    return (v, h.where) if v is not None else None


# --- rules ----------------------------------------------------------------------------------

def missing_forwarded_proto(cfg: Config) -> Iterator[Finding]:
    for server, loc in proxied(cfg):
        s = loc.settings
        tls = any(ls.ssl for ls in server.listens)
        balancer = bool(s.set_real_ip_from)
        if not tls and not balancer:
            continue
        names = set(sent_headers(s))
        if names & PROTO_HEADERS:
            continue
        if lost_names(cfg, server, loc) & PROTO_HEADERS:
            continue  # reported as header-inheritance
        assert loc.proxy is not None
        f, line = loc.proxy.where
        why = ("TLS ends here but the app is never told the scheme" if tls else
               "requests come through a trusted load balancer (set_real_ip_from) but the app "
               "is never told the scheme the client used")
        yield Finding("missing-forwarded-proto", "warn", f, line,
                      f"{why}: it sees plain http in {loc_label(loc)}, so its own "
                      "http->https redirect loops and it builds http:// links",
                      "proxy_set_header X-Forwarded-Proto $scheme;")


def missing_client_ip(cfg: Config) -> Iterator[Finding]:
    for server, loc in proxied(cfg):
        names = set(sent_headers(loc.settings))
        if names & CLIENT_IP_HEADERS:
            continue
        if lost_names(cfg, server, loc) & CLIENT_IP_HEADERS:
            continue
        assert loc.proxy is not None
        f, line = loc.proxy.where
        yield Finding("missing-client-ip", "warn", f, line,
                      f"the app never learns the client's address in {loc_label(loc)}: every "
                      "request seems to come from the proxy (logs, rate limits, allow lists)",
                      "proxy_set_header X-Real-IP $remote_addr; "
                      "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")


def missing_host(cfg: Config) -> Iterator[Finding]:
    for server, loc in proxied(cfg):
        pp = loc.proxy
        assert pp is not None
        if pp.upstream is None or pp.upstream.implicit:
            continue
        if "host" in sent_headers(loc.settings):
            continue
        if "host" in lost_names(cfg, server, loc):
            continue
        f, line = pp.where
        yield Finding("missing-host", "warn", f, line,
                      f'the app receives "Host: {pp.host_header}" (the upstream block\'s name, '
                      f"nginx's default $proxy_host) instead of the name the client asked for "
                      f"in {loc_label(loc)}: virtual hosts, redirects and absolute links break",
                      "proxy_set_header Host $host;")


def http_host(cfg: Config) -> Iterator[Finding]:
    """`proxy_set_header Host $http_host`, decided by what breaks.

    What `$http_host` breaks: a client that sends no Host (HTTP/1.0) makes the value empty,
    an empty `proxy_set_header` value removes the header, and the upstream gets a request
    with no Host at all (most apps answer 400); the value is not lower-cased either.
    What `$host` breaks: it drops the port, so an app served on a non-default port builds
    links and redirects to the wrong port, and an app that checks a WebSocket `Origin`
    against Host (Socket.IO, Django Channels, Rails' Action Cable...) refuses the handshake
    when the port is part of the origin. So the fix offered keeps the port
    (`$host:$server_port`: never empty, normalised), and in a location that forwards
    `Upgrade` the raw header is what the Origin check needs: there it is only a note."""
    for server, loc in proxied(cfg):
        h = sent_headers(loc.settings).get("host")
        if h is None or "http_host" not in h.value.names:
            continue
        f, line = h.where
        default_ports = all(ls.port in (80, 443) for ls in server.listens) \
            and bool(server.listens)
        fix = ("proxy_set_header Host $host;  (this server listens on the default port, so no "
               "port is lost)" if default_ports else
               "proxy_set_header Host $host:$server_port;  (keeps the port, never empty; "
               "behind port mapping, where clients use another port than listen's, keep "
               "$http_host)")
        if forwards_upgrade(loc.settings) is not None:
            yield Finding("http-host", "note", f, line,
                          f"Host is set from $http_host in {loc_label(loc)}, which forwards "
                          "upgrades: the raw header (port included) is what an app comparing "
                          "the WebSocket Origin with Host needs, but a client that sends no Host "
                          "(HTTP/1.0) makes it empty and the upstream then gets no Host header",
                          fix)
            continue
        yield Finding("http-host", "warn", f, line,
                      "Host is set from $http_host, the raw client header: a client that sends "
                      "none (HTTP/1.0) makes it empty, an empty proxy_set_header value removes "
                      "the header, and the upstream gets a request with no Host (most apps "
                      "answer 400); it is not lower-cased. ($host would drop the port the "
                      "client used, which breaks links on a non-default port)",
                      fix)


def duplicate_header(cfg: Config) -> Iterator[Finding]:
    levels: list[LevelSettings] = [cfg.http.local]
    for server in cfg.http.servers:
        levels.append(server.local)
        levels.extend(loc.local for loc in locations(server) if loc.local is not None)
    for s in levels:
        first: dict[str, HeaderSetting] = {}
        for h in s.get("proxy_set_header") or ():
            ln = h.name.lower()
            prev = first.get(ln)
            if prev is None:
                first[ln] = h
                continue
            f, line = h.where
            yield Finding("duplicate-header", "warn", f, line,
                          f'"{h.name}" is set twice in one block (first at '
                          f"{prev.where[0]}:{prev.where[1]}): the upstream receives both "
                          f'lines ("{prev.value.source}" and "{h.value.source}"), and which one '
                          "counts depends on the application",
                          f"keep one proxy_set_header {h.name} line in this block")


def header_inheritance(cfg: Config) -> Iterator[Finding]:
    done: set[int] = set()
    for server, loc in proxied(cfg):
        lvl = header_level(cfg, server, loc)
        if lvl is None or id(lvl.local) in done:
            continue
        done.add(id(lvl.local))
        lost = lvl.lost()
        if not lost:
            continue
        f, line = lvl.where
        names = ", ".join(h.name for h in lost)
        origins = [f"{w[0]}:{w[1]}" for w in sorted({h.where for h in lost})]
        first_origin = origins[0] if len(origins) == 1 else f"{origins[0]} and others"
        fix = " ".join(f"proxy_set_header {h.name} {_quote(h.value.source)};" for h in lost)
        yield Finding("header-inheritance", "warn", f, line,
                      f"proxy_set_header in this {lvl.label} replaces every inherited one: "
                      f"{names} (set at {first_origin}) are no longer sent from here",
                      f"repeat them in this block: {fix}")
    yield from add_header_inheritance(cfg)


def add_header_inheritance(cfg: Config) -> Iterator[Finding]:
    """The same rule for `add_header`: a level that adds any response header drops every
    inherited one (security headers set at server level vanish in one location)."""
    levels: list[tuple[str, LevelSettings, Settings, Where]] = []
    for server in cfg.http.servers:
        levels.append(("server block", server.local, cfg.http.settings, server.where))
        for loc in locations(server):
            if loc.local is None:
                continue
            parent = loc.parent.settings if loc.parent is not None else server.settings
            levels.append((loc_label(loc), loc.local, parent, loc.where))
    for label, local, parent, where in levels:
        mine = local.get("add_header")
        if mine is None:
            continue
        names = {h.name.lower() for h in mine}
        lost: list[HeaderSetting] = []
        for h in parent.add_header:
            if h.name.lower() not in names and h.name.lower() not in {x.name.lower() for x in lost}:
                lost.append(h)
        if not lost:
            continue
        f, line = local.where.get("add_header", where)
        origins = [f"{w[0]}:{w[1]}" for w in sorted({h.where for h in lost})]
        first_origin = origins[0] if len(origins) == 1 else f"{origins[0]} and others"
        fix = " ".join(f"add_header {h.name} {_quote(h.value.source)}"
                       f"{' always' if h.always else ''};" for h in lost)
        yield Finding("header-inheritance", "warn", f, line,
                      f"add_header in this {label} replaces every inherited one: "
                      f"{', '.join(h.name for h in lost)} (set at {first_origin}) are no longer "
                      "added to responses from here",
                      f"repeat them in this block: {fix}")


def _quote(v: str) -> str:
    if v == "" or any(c in v for c in " ;{}'\"\t"):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return v


def keepalive_defeated(cfg: Config) -> Iterator[Finding]:
    """A location whose requests close their upstream connection. Judged per location: a
    WebSocket location that sends `Connection: close` on its plain requests costs only those
    requests their reuse while other locations keep reusing the upstream's connections; that
    is a note, a catch-all location (or the upstream's only user) closing them is a warn."""
    users: dict[int, list[LocationConf]] = {}
    for _server, loc in proxied(cfg):
        assert loc.proxy is not None
        if loc.proxy.upstream is not None:
            users.setdefault(id(loc.proxy.upstream), []).append(loc)
    for server, loc in proxied(cfg):
        pp = loc.proxy
        assert pp is not None
        up = pp.upstream
        if up is None or up.implicit or up.keepalive <= 0:
            continue
        s = loc.settings
        sev = "warn" if up.keepalive_set else "note"
        asked = (f"keepalive {up.keepalive} at {up.where[0]}:{up.where[1]}" if up.keepalive_set
                 else f"nginx 1.30 keeps idle connections to upstream \"{up.name}\" by default")
        conns = [h for h in s.proxy_set_header if h.name.lower() == "connection"]
        if s.proxy_http_version == "1.0":
            if forwards_upgrade(s) is not None:
                continue  # folded into upgrade-needs-http11
            f, line = where_of(s, "proxy_http_version", pp.where)
            said = "" if conns else ' and sends "Connection: close"'
            yield Finding("keepalive-defeated", sev, f, line,
                          f"{asked}, but proxy_http_version 1.0 cannot keep upstream "
                          f"connections{said}: none used by {loc_label(loc)} is ever reused",
                          "proxy_http_version 1.1;")
            continue
        others = [o for o in users.get(id(up), []) if o is not loc
                  and not _closes_plain(cfg, server, o)]
        dedicated = (forwards_upgrade(s) is not None and bool(others)
                     and loc.pattern not in ("", "/"))
        for h in conns:
            got = value_on(cfg, server, h, False)
            if got is None:
                continue
            value, (f, line) = got
            if "close" not in connection_tokens(value):
                continue
            via = ""
            if (f, line) != h.where:
                via = (f" (through proxy_set_header Connection {h.value.source} at "
                       f"{h.where[0]}:{h.where[1]})")
            fix = ("'' '';  (in the map: a plain request then sends no Connection header)"
                   if via else "remove this line, or use a map whose '' value is ''")
            if dedicated:
                yield Finding("keepalive-defeated", "note", f, line,
                              f"plain (non-upgrade) requests to {loc_label(loc)} are sent with "
                              f"\"Connection: close\"{via}: each closes its upstream "
                              f"connection; the other locations proxying to \"{up.name}\" "
                              "keep reusing theirs", fix)
                continue
            yield Finding("keepalive-defeated", sev, f, line,
                          f"{asked}, but every plain request to {loc_label(loc)} is sent with "
                          f"\"Connection: close\"{via}, so none of the upstream connections it "
                          "uses is ever reused",
                          fix)


def _closes_plain(cfg: Config, server: ServerConf, loc: LocationConf) -> bool:
    """Does a plain request to this location close its upstream connection?"""
    s = loc.settings
    if s.proxy_http_version == "1.0":
        return True  # HTTP/1.0 upstream connections are never reused
    for h in s.proxy_set_header:
        if h.name.lower() != "connection":
            continue
        got = value_on(cfg, server, h, False)
        if got is not None and "close" in connection_tokens(got[0]):
            return True
    return False


def upgrade_needs_http11(cfg: Config) -> Iterator[Finding]:
    for _server, loc in proxied(cfg):
        s = loc.settings
        if s.proxy_http_version != "1.0" or forwards_upgrade(s) is None:
            continue
        assert loc.proxy is not None
        f, line = where_of(s, "proxy_http_version", loc.proxy.where)
        yield Finding("upgrade-needs-http11", "warn", f, line,
                      f"Upgrade is forwarded in {loc_label(loc)}, but over HTTP/1.0 no upstream "
                      "switches protocols (WebSocket or any other upgrade fails) and every "
                      "upstream "
                      "connection is closed after one request",
                      "proxy_http_version 1.1;  (the default in nginx 1.30: removing the line "
                      "also works)")


def upgrade_without_connection(cfg: Config) -> Iterator[Finding]:
    for server, loc in proxied(cfg):
        s = loc.settings
        up = forwards_upgrade(s)
        if up is None or s.proxy_http_version == "1.0":
            continue
        ok = False
        for conn in s.proxy_set_header:
            if conn.name.lower() != "connection":
                continue
            got = value_on(cfg, server, conn, True)
            ok = ok or got is None or "upgrade" in connection_tokens(got[0])
        if ok:
            continue
        f, line = up.where
        yield Finding("upgrade-without-connection", "warn", f, line,
                      f"Upgrade is forwarded in {loc_label(loc)} but Connection does not name "
                      "\"upgrade\": Upgrade is a hop-by-hop header, so the upstream ignores "
                      "it and every protocol switch through here (WebSocket, or whatever "
                      "protocol the client asks for) is answered as a plain request",
                      "map $http_upgrade $connection_upgrade { default upgrade; '' ''; }  and  "
                      "proxy_set_header Connection $connection_upgrade;")


def connection_upgrade_hardcoded(cfg: Config) -> Iterator[Finding]:
    for _server, loc in proxied(cfg):
        h = sent_headers(loc.settings).get("connection")
        if h is None or h.value.static is None:
            continue
        if "upgrade" not in connection_tokens(h.value.static):
            continue
        f, line = h.where
        yield Finding("connection-upgrade-hardcoded", "note", f, line,
                      f'"Connection: {h.value.static}" is set for every request through '
                      f"{loc_label(loc)}, not only upgrades: nginx sends it on plain requests "
                      "too, with no Upgrade header. Most apps ignore that (the connection is "
                      "still kept alive: upgrade is not close); strict servers reject it or "
                      "log a failed upgrade. truehop itself leaves it off a request that is no "
                      "upgrade, so the config behaves differently under nginx",
                      "map $http_upgrade $connection_upgrade { default upgrade; '' ''; }  and  "
                      "proxy_set_header Connection $connection_upgrade;")


def websocket_read_timeout(cfg: Config) -> Iterator[Finding]:
    for _server, loc in proxied(cfg):
        s = loc.settings
        up = forwards_upgrade(s)
        if up is None or "http_upgrade" not in up.value.names and up.value.static is None:
            continue
        t = s.proxy_read_timeout
        if t > WEBSOCKET_IDLE:
            continue
        f, line = s.where.get("proxy_read_timeout@last") or up.where
        yield Finding("websocket-read-timeout", "note", f, line,
                      f"WebSocket connections through {loc_label(loc)} are closed after "
                      f"{t:g}s without a message (proxy_read_timeout); fine if the app pings "
                      "more often, otherwise idle sockets are cut",
                      "proxy_read_timeout 1h;  (in a location that only serves WebSockets)")


def sse_buffering(cfg: Config) -> Iterator[Finding]:
    for _server, loc in proxied(cfg):
        s = loc.settings
        if not s.proxy_buffering or loc.modifier in ("if", "@"):
            continue
        if not SSE_PATTERN.search(loc.pattern):
            continue
        assert loc.proxy is not None
        f, line = s.where.get("proxy_buffering@last") or loc.proxy.where
        yield Finding("sse-buffering", "note", f, line,
                      f"{loc_label(loc)} looks like a streaming endpoint, but proxy_buffering "
                      "is on: Server-Sent Events can be held back in buffers (unless the app "
                      "sends X-Accel-Buffering: no)",
                      "proxy_buffering off;")


def implicit_upstream_no_keepalive(cfg: Config) -> Iterator[Finding]:
    for _server, loc in proxied(cfg):
        pp = loc.proxy
        assert pp is not None
        if pp.upstream is None or not pp.upstream.implicit:
            continue
        f, line = pp.where
        target = pp.upstream.name if pp.upstream.name.startswith("unix:") else pp.host_header
        yield Finding("implicit-upstream-no-keepalive", "note", f, line,
                      f"proxy_pass to {target} without an upstream block: nginx 1.30 "
                      "keeps no idle connections for it, every request opens a new connection",
                      f"upstream backend {{ server {target}; }}  and  "
                      f"proxy_pass {pp.scheme}://backend;")


def dynamic_proxy_no_resolver(cfg: Config) -> Iterator[Finding]:
    """proxy_pass with variables resolves its host at run time: unless the host is an
    address or an upstream block's name, that needs `resolver`. Without one, nginx -t is
    content and every such request is a 502 (`no resolver defined to resolve ...`)."""
    for _server, loc in proxied(cfg):
        pp = loc.proxy
        assert pp is not None
        if pp.dynamic is None or loc.settings.resolver is not None:
            continue
        src = pp.dynamic.source
        rest = src.split("://", 1)[1] if "://" in src else src
        host_src = re.split(r"/|\$request_uri|\$uri\b|\$is_args", rest, maxsplit=1)[0]
        candidates = _host_values(cfg, host_src)
        if candidates is not None and all(_needs_no_dns(cfg, h) for h in candidates):
            continue
        f, line = pp.where
        yield Finding("dynamic-proxy-no-resolver", "warn", f, line,
                      f"proxy_pass with variables in {loc_label(loc)} looks its host "
                      f"({host_src}) up at run time, and no resolver is set: a host name that "
                      "is no upstream block gets 502 (no resolver defined to resolve ...)",
                      "resolver 127.0.0.11;  (Docker's DNS; else your DNS server's address), "
                      "or proxy_pass to an upstream block")


def _host_values(cfg: Config, host_src: str) -> list[str] | None:
    """The hosts a proxy_pass host part can take, when the config says (a literal, one map
    variable: its values, or one variable every `set` gives a value without variables);
    None when a variable can hold anything."""
    if "$" not in host_src:
        return [host_src]
    var = host_src.rsplit(":", 1)[0] if not host_src.endswith("}") else host_src
    port = host_src[len(var):]
    for m in cfg.http.maps:
        if var in (f"${m.variable}", f"${{{m.variable}}}"):
            values = [t.source for _k, t, _w in m.entries] + [m.default.source]
            if any("$" in v for v in values):
                return None
            return [v + port for v in values if v]
    name = var[2:-1] if var.startswith("${") else var[1:]
    if not re.fullmatch(r"\w+", name):
        return None
    sets = [op.value for op in _set_ops(cfg) if op.name == name]
    if not sets or any(t.static is None for t in sets):
        return None  # never set (a built-in, a header) or set from other variables
    return [(t.static or "") + port for t in sets if t.static]


def _set_ops(cfg: Config) -> Iterator[SetOp]:
    """Every `set` of the config (server level, locations, `if` blocks)."""
    def walk(ops: Iterable[Any]) -> Iterator[SetOp]:
        for op in ops:
            if isinstance(op, SetOp):
                yield op
            elif isinstance(op, IfOp):
                yield from walk(op.ops)
    for server in cfg.http.servers:
        yield from walk(server.ops)
        for loc in locations(server):
            if loc.modifier != "if":
                yield from walk(loc.ops)


def _needs_no_dns(cfg: Config, hostport: str) -> bool:
    """An address, an upstream block's name, or `localhost`: no run-time DNS."""
    if hostport in cfg.http.upstreams:
        return True
    host = hostport[1:].partition("]")[0] if hostport.startswith("[") else \
        hostport.partition(":")[0]
    if host == "localhost" or host in cfg.http.upstreams:
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def upstream_resolved_once(cfg: Config) -> Iterator[Finding]:
    """A host name in an `upstream` server is looked up once, at start; with a resolver
    configured (http level or the block), `resolve` (nginx 1.27.3+) would follow the name
    when it moves (a container restarted with a new address keeps getting the old one)."""
    for up in cfg.http.upstreams.values():
        if up.implicit:
            continue
        resolver = up.resolver or cfg.http.settings.resolver
        if resolver is None:
            continue
        seen: set[Where] = set()
        for p in up.peers:
            if not p.name or p.resolve or p.name == "localhost" or p.where in seen:
                continue
            seen.add(p.where)
            f, line = p.where
            zone = "" if up.zone is not None else f"zone {up.name} 64k;  and  "
            yield Finding("upstream-resolved-once", "warn", f, line,
                          f'"{p.name}" in upstream "{up.name}" is resolved once, when the '
                          "configuration is loaded, although a resolver is configured: when "
                          "the name moves to another address (a container restarted), requests "
                          "keep going to the old one until a reload",
                          f"{zone}server {p.name}:{p.port} resolve;  (nginx 1.27.3+)")


def host_header_empty(cfg: Config) -> Iterator[Finding]:
    """`proxy_set_header Host "";`: an empty value removes the header, so the upstream gets
    an HTTP/1.1 request without Host (nginx 1.30 sends it so; 1.31.4 falls back to
    $proxy_host)."""
    levels: list[LevelSettings] = [cfg.http.local]
    for server in cfg.http.servers:
        levels.append(server.local)
        levels.extend(loc.local for loc in locations(server) if loc.local is not None)
    for lvl in levels:
        for h in lvl.get("proxy_set_header") or ():
            if h.name.lower() != "host" or h.value.static != "":
                continue
            f, line = h.where
            yield Finding("host-header-empty", "warn", f, line,
                          'proxy_set_header Host "" removes the Host header: the upstream gets '
                          "an HTTP/1.1 request with no Host at all, which most servers answer "
                          "with 400 (nginx 1.31.4 and later send $proxy_host instead)",
                          "proxy_set_header Host $host;  (or remove the line: Host is then "
                          "$proxy_host)")


def keepalive_local_shared(cfg: Config) -> Iterator[Finding]:
    """nginx 1.30's upstream keepalive is `local` by default: an idle connection is reused
    only by the location that opened it. Several locations proxying to one upstream then
    each keep their own idle connections: one location's idle connections never serve
    another, and the backend sees more connections than `keepalive 32` suggests (nginx
    issue #1436). (truehop's own pool shares them across locations whatever `local` says.)"""
    users: dict[str, list[LocationConf]] = {}
    for _server, loc in proxied(cfg):
        pp = loc.proxy
        assert pp is not None
        up = pp.upstream
        if up is None or up.implicit or up.keepalive <= 0 or loc.modifier == "if":
            continue
        if up.keepalive_set and not up.keepalive_local:
            continue
        users.setdefault(up.name, []).append(loc)
    for name, locs in users.items():
        if len(locs) < 2:
            continue
        up = cfg.http.upstreams[name]
        label = (f"keepalive {up.keepalive} local" if up.keepalive_set
                 else "nginx 1.30's default keepalive (32 local)")
        f, line = up.where
        names = ", ".join(loc_label(x) for x in locs[:4]) + (" ..." if len(locs) > 4 else "")
        yield Finding("keepalive-local-shared", "note", f, line,
                      f'{len(locs)} locations proxy to upstream "{name}" ({names}) under '
                      f"{label}: an idle connection is reused only by the location that opened "
                      "it, so each location keeps and reuses only its own, and the backend sees "
                      "more connections, and more new ones, than keepalive suggests",
                      f"keepalive {up.keepalive};  (without local, in upstream \"{name}\": the "
                      "locations then share idle connections; fine unless they need different "
                      "connections, e.g. other proxy_ssl_* or proxy_bind settings)")


_ARGS_VARS = ("args", "is_args", "query_string", "request_uri")


def proxy_pass_uri_variables(cfg: Config) -> Iterator[Finding]:
    """proxy_pass with variables and a URI part: nginx sends that URI as it is. It does not
    replace the location's prefix as a literal proxy_pass does, a regex capture in it is the
    decoded path, and the client's query string is dropped unless the URI carries it."""
    for _server, loc in proxied(cfg):
        pp = loc.proxy
        assert pp is not None
        if pp.dynamic is None:
            continue
        src = pp.dynamic.source
        rest = src.split("://", 1)[1] if "://" in src else src
        slash = rest.find("/")
        uri = rest[slash:] if slash >= 0 else ""
        if not uri:
            continue   # no URI part: the client's URI is passed, as without variables
        if any(re.search(r"\$\{?" + v + r"\b", uri) for v in _ARGS_VARS):
            continue
        f, line = pp.where
        prefix = ""
        if loc.modifier in ("", "^~") and "$" not in uri:
            prefix = (f" (not {uri} plus what follows {loc.pattern}, as without variables: "
                      f"{loc.pattern}a/b is sent as {uri})")
        yield Finding("proxy-pass-uri-variables", "warn", f, line,
                      f"proxy_pass with variables sends the URI part {uri!r} as it is in "
                      f"{loc_label(loc)}{prefix}: the client's query string is dropped"
                      + (", and a regex capture in it is the decoded path" if "$" in uri
                         else ""),
                      f"proxy_pass {src}$is_args$args;  (keep the query string)")


def tls_implicit_default(cfg: Config) -> Iterator[Finding]:
    """On a TLS address that several servers share, the first one is the default unless a
    `listen ... default_server` says otherwise: a request for any name no server_name
    matches (a typo, a stale DNS name, a scanner asking by IP) gets that server's
    certificate, which does not name it, and that server's content."""
    by_port: dict[tuple[str, int], list[ServerConf]] = {}
    explicit: set[tuple[str, int]] = set()
    for server in cfg.http.servers:
        for ls in server.listens:
            if not ls.ssl or ls.addr.startswith("unix:"):
                continue
            group = by_port.setdefault(ls.key, [])
            if not any(x is server for x in group):
                group.append(server)
            if ls.default_server:
                explicit.add(ls.key)
    done: set[int] = set()
    for key, servers in by_port.items():
        if key in explicit or len(servers) < 2:
            continue
        first = servers[0]
        if id(first) in done:
            continue
        names = [n for n in first.names if n not in ("", "_", "localhost")]
        if not names or any(n.startswith(("~", "*", ".")) for n in first.names):
            continue
        done.add(id(first))
        ls = next(x for x in first.listens if x.key == key)
        f, line = ls.where if ls.where[0] else first.where
        addr = f"{key[0]}:{key[1]}" if key[0] != "*" else str(key[1])
        yield Finding("tls-implicit-default", "note", f, line,
                      f"server {names[0]} is the implicit default server of {addr} (the "
                      "first of its TLS servers): a request for any name no server_name "
                      "matches gets its certificate, which does not name it, and its site",
                      f"server {{ listen {addr} ssl default_server; ssl_certificate ...; "
                      "return 444; }  (an explicit default that answers nothing)")


def static_shadowed(cfg: Config) -> Iterator[Finding]:
    for server in cfg.http.servers:
        regexes = [x for x in server.locations if x.regex is not None and not x.internal]
        if not regexes:
            continue
        for loc in server.locations:
            if loc.modifier != "" or loc.pattern in ("", "/") or loc.proxy is not None:
                continue
            local = loc.local
            if local is None or not (local.defined_here("alias") or local.defined_here("root")):
                continue
            if any(isinstance(op, ReturnOp) for op in loc.ops):
                continue
            hit = _shadowing(loc, regexes)
            if hit is None:
                continue
            rx, uri = hit
            what = ("proxied" if rx.proxy is not None else
                    "answered by its return" if any(isinstance(o, ReturnOp) for o in rx.ops)
                    else "read from another directory")
            f, line = loc.where
            yield Finding("static-shadowed", "warn", f, line,
                          f"requests such as {uri} match the regex {loc_label(rx)} at "
                          f"{rx.where[0]}:{rx.where[1]}, which wins over a plain prefix: files "
                          f"under {loc.pattern} are {what} instead of served by this location",
                          f"location ^~ {loc.pattern} {{ ... }}")


def _shadowing(loc: LocationConf, regexes: list[LocationConf]
               ) -> tuple[LocationConf, str] | None:
    base = loc.pattern if loc.pattern.endswith("/") else loc.pattern + "/"
    for rx in regexes:
        assert rx.regex is not None
        for name in SAMPLE_FILES:
            uri = base + name
            if not rx.regex.search(uri):
                continue
            if rx.proxy is not None or any(isinstance(o, ReturnOp) for o in rx.ops):
                return rx, uri
            if _file_path(loc, uri) != _file_path(rx, uri):
                return rx, uri
    return None


def _file_path(loc: LocationConf, uri: str) -> str | None:
    s = loc.settings
    if s.alias is not None:
        a = s.alias.static
        if a is None:
            return None
        if loc.regex is not None:
            return a
        return a + uri[len(loc.pattern):]
    return s.root.rstrip("/") + uri


def alias_traversal(cfg: Config) -> Iterator[Finding]:
    for _server, loc in sites(cfg):
        if loc.modifier not in ("", "^~") or loc.pattern.endswith("/"):
            continue
        local = loc.local
        alias = local.get("alias") if local is not None else None
        if local is None or alias is None:
            continue
        if not alias.source.endswith("/"):
            continue
        f, line = local.where.get("alias", loc.where)
        yield Finding("alias-traversal", "warn", f, line,
                      f'location "{loc.pattern}" has no trailing slash but its alias has one: '
                      f'"{loc.pattern}../secret" reads "secret" one level above the aliased '
                      "folder",
                      f"location {loc.modifier + ' ' if loc.modifier else ''}{loc.pattern}/ "
                      "{ alias ...; }  (both with a trailing slash)")


def realip_trust_all(cfg: Config) -> Iterator[Finding]:
    levels: list[LevelSettings] = [cfg.http.local]
    for server in cfg.http.servers:
        levels.append(server.local)
        levels.extend(loc.local for loc in locations(server) if loc.local is not None)
    for s in levels:
        nets = s.get("set_real_ip_from") or ()
        broad = [n for n in nets if _too_broad(n)]
        if not broad:
            continue
        first = s.where.get("set_real_ip_from", ("", 0))
        last = s.where.get("set_real_ip_from@last", first)
        # this level's own header, else nginx's default (not the inherited one: as before)
        header = s.get("real_ip_header") or SETTINGS_SPECS["real_ip_header"].default
        for n in broad:
            f, line = _directive_line(cfg, first, last, "set_real_ip_from", n)
            yield Finding("realip-trust-all", "warn", f, line,
                          f"set_real_ip_from {n} trusts every client to say who it is: any "
                          f"{header} value a client sends becomes $remote_addr (logs, allow/"
                          "deny, rate limits, X-Real-IP to the app)",
                          "set_real_ip_from <the load balancer's address or subnet>;")


def _too_broad(n: Any) -> bool:
    if isinstance(n, ipaddress.IPv4Network):
        return n.prefixlen < 8
    if isinstance(n, ipaddress.IPv6Network):
        if n.prefixlen == 0:
            return True
        return n.prefixlen < 16 and not n.subnet_of(ipaddress.IPv6Network("fc00::/7"))
    return False


def _directive_line(cfg: Config, first: Where, last: Where, name: str, net: Any) -> Where:
    """The line of the `name` directive whose argument is `net`, between two known lines."""
    for path, text in cfg.sources:
        if path != first[0]:
            continue
        lines = text.splitlines()
        end = last[1] if last[0] == first[0] else len(lines)
        for i in range(first[1], min(end, len(lines)) + 1):
            words = lines[i - 1].split("#", 1)[0].replace(";", " ").split()
            for j, w in enumerate(words[:-1]):
                if w != name:
                    continue
                try:
                    if ipaddress.ip_network(words[j + 1], strict=False) == net:
                        return (path, i)
                except ValueError:
                    continue
    return first


# --- registry -------------------------------------------------------------------------------

def not_applied(cfg: Config) -> Iterator[Finding]:
    """Directives accepted so that a production config starts, whose effect truehop does not
    produce: the table (conf/directives.py) says so in their entry, with the finding's id
    and what does not happen; the compiler kept each line that leaves something undone
    (the entry's `active` test says which)."""
    for name, (f, line) in cfg.not_applied:
        eff = next(s.effect for s in lookup(name) if s.effect.kind == "not-applied")
        yield Finding(eff.finding, "warn", f, line,
                      f"{name} is not applied by truehop: {eff.detail}", eff.fix)


def cache_set_cookie(cfg: Config) -> Iterator[Finding]:
    """proxy_ignore_headers Set-Cookie in a caching location without proxy_hide_header
    Set-Cookie: the first visitor's cookie (a session) is stored with the page and handed
    to every later visitor."""
    for _server, loc in proxied(cfg):
        s = loc.settings
        if s.proxy_cache is None or "set-cookie" not in s.proxy_ignore_headers:
            continue
        if "set-cookie" in s.proxy_hide_header:
            continue
        f, line = where_of(s, "proxy_ignore_headers", loc.where)
        yield Finding("cache-set-cookie", "warn", f, line,
                      f"{loc_label(loc)} caches responses that set cookies (proxy_ignore_headers "
                      "Set-Cookie): one visitor's cookie, a session, is served to everyone",
                      "proxy_hide_header Set-Cookie;")


def cache_key_without_host(cfg: Config) -> Iterator[Finding]:
    """A proxy_cache_key without $host (or $http_host, $server_name) on a server with
    several names: one site's pages are served for another (the default key has
    $proxy_host, the same for every name when they share one upstream)."""
    for server, loc in proxied(cfg):
        s = loc.settings
        if s.proxy_cache is None:
            continue
        names = [n for n in server.names if n and n != "_"]
        if len(names) < 2:
            continue
        key = s.proxy_cache_key
        if any(key.uses(v) for v in ("host", "http_host", "server_name")):
            continue
        if loc.proxy is not None and loc.proxy.dynamic is not None:
            continue    # a variable upstream: $proxy_host may well follow the name
        f, line = where_of(s, "proxy_cache_key", where_of(s, "proxy_cache", loc.where))
        yield Finding("cache-key-without-host", "warn", f, line,
                      f"{loc_label(loc)} caches under a key without $host on a server named "
                      f"{', '.join(names[:3])}: a page cached for one name is served for the "
                      "others", "proxy_cache_key $scheme$host$request_uri;")


RULES: dict[str, Rule] = {
    "missing-forwarded-proto": missing_forwarded_proto,
    "keepalive-defeated": keepalive_defeated,
    "duplicate-header": duplicate_header,
    "header-inheritance": header_inheritance,
    "static-shadowed": static_shadowed,
    "alias-traversal": alias_traversal,
    "http-host": http_host,
    "missing-client-ip": missing_client_ip,
    "missing-host": missing_host,
    "upgrade-needs-http11": upgrade_needs_http11,
    "upgrade-without-connection": upgrade_without_connection,
    "realip-trust-all": realip_trust_all,
    "websocket-read-timeout": websocket_read_timeout,
    "connection-upgrade-hardcoded": connection_upgrade_hardcoded,
    "sse-buffering": sse_buffering,
    "implicit-upstream-no-keepalive": implicit_upstream_no_keepalive,
    "dynamic-proxy-no-resolver": dynamic_proxy_no_resolver,
    "cache-set-cookie": cache_set_cookie,
    "cache-key-without-host": cache_key_without_host,
    "upstream-resolved-once": upstream_resolved_once,
    "host-header-empty": host_header_empty,
    "keepalive-local-shared": keepalive_local_shared,
    "proxy-pass-uri-variables": proxy_pass_uri_variables,
    "tls-implicit-default": tls_implicit_default,
    # one id per "accepted, not applied" entry of the table
    **{s.effect.finding: not_applied for s in SPECS if s.effect.kind == "not-applied"},
}
# `map-context` (a map outside http) is a config error; the CLI reports it under that id.
CLI_RULES = ("map-context",)


def run(cfg: Config, only: Iterable[str] | None = None) -> list[Finding]:
    """All findings for a config, without duplicates, in file order."""
    chosen = RULES if only is None else {k: RULES[k] for k in only}
    seen: set[tuple[str, str, int]] = set()
    out: list[Finding] = []
    for rule in chosen.values():
        for f in rule(cfg):
            key = (f.rule, f.file, f.line)
            if key in seen:
                continue
            seen.add(key)
            out.append(f)
    out.sort(key=sort_key)
    return out


def for_location(cfg: Config, server: ServerConf, loc: LocationConf) -> list[Finding]:
    """The findings that apply to one location: those pointing at a line of that location,
    of a block it inherits from, or of an upstream/map it uses."""
    lines: set[Where] = set()
    node: LocationConf | None = loc
    while node is not None:
        lines.add(node.where)
        if node.local is not None:
            lines.update(v for k, v in node.local.where.items())
        for h in node.settings.proxy_set_header:
            lines.add(h.where)
        node = node.parent
    lines.update(server.local.where.values())
    lines.update(cfg.http.local.where.values())
    if loc.proxy is not None:
        lines.add(loc.proxy.where)
        if loc.proxy.upstream is not None:
            lines.add(loc.proxy.upstream.where)
        for h in loc.settings.proxy_set_header:
            m = map_of(cfg, h.value)
            if m is not None:
                lines.add(m.where)
                lines.update(w for _k, _t, w in m.entries)
    return [f for f in run(cfg) if (f.file, f.line) in lines]


# --- issue 15, misc: TLS settings Python's ssl cannot fully apply -----------------------------

def ssl_ecdh_curve_list(cfg: Config) -> Iterator[Finding]:
    """ssl_ecdh_curve with a list: Python's SSLContext.set_ecdh_curve() sets one group, so
    only the first this build knows is offered; a client that supports none of it, but one
    of the others, fails the handshake."""
    for server in cfg.http.servers:
        chosen, dropped = server.ssl.ecdh_curve
        if not dropped:
            continue
        f, line = server.ssl.ecdh_where
        yield Finding("ssl-ecdh-curve-list", "warn", f, line,
                      f"ssl_ecdh_curve offers only {chosen}: Python's ssl sets one key "
                      f"exchange group, so {':'.join(dropped)} are not offered",
                      "ssl_ecdh_curve auto;  # OpenSSL's default groups (X25519, P-256, ...)")


def ssl_conf_command_ignored(cfg: Config) -> Iterator[Finding]:
    """ssl_conf_command lines that have no SSLContext equivalent (Ciphersuites,
    SignatureAlgorithms, unknown Options...): accepted, not applied."""
    for server in cfg.http.servers:
        for cmd in server.ssl.conf_commands:
            if cmd.how:
                continue
            yield Finding("ssl-conf-command-ignored", "warn", cmd.where[0], cmd.where[1],
                          f'ssl_conf_command {cmd.name} "{cmd.value}" is not applied by '
                          "truehop: Python's ssl has no way to set it",
                          "remove the line (Options, CipherString, Groups, MinProtocol and "
                          "MaxProtocol are applied)")


RULES.update({
    "ssl-ecdh-curve-list": ssl_ecdh_curve_list,
    "ssl-conf-command-ignored": ssl_conf_command_ignored,
})
