"""proxy_pass: the upstream exchange.

For one request: choose the upstream and the URI (nginx's replacement rules), write a new
request (never the client's bytes: one framing header, `proxy_set_header` results, client
headers minus hop-by-hop ones), pick a peer (balancer), reuse or open a connection (pool),
send, read the response head, decide whether to try the next peer (`proxy_next_upstream`),
then relay the response with back-pressure, abort the client on a broken upstream body, and
return the connection to the pool only when the exchange ended cleanly. A `101` to a
WebSocket upgrade the client really asked for turns both connections into a tunnel.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import re
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from truehop.clock import monotonic as _monotonic
from truehop.conf.model import LocationConf, PeerConf, RedirectRule, Settings, UpstreamConf
from truehop.conf.values import split_proxy_url
from truehop.http.events import (
    Data,
    EndOfMessage,
    InformationalResponse,
    ProtocolError,
    Response,
    ResponseHead,
)
from truehop.http.exchange import ClientGone, Exchange
from truehop.http.h1client import request_head_bytes
from truehop.http.headers import HOP_BY_HOP
from truehop.net.downstream import H1Exchange
from truehop.net.resolver import ResolveError, Resolver
from truehop.net.upstream import UpstreamConnection, UpstreamError, connect
from truehop.proxy.balancer import BalancerState, Peer
from truehop.proxy.pipeline import Finish, InternalRedirect
from truehop.proxy.request_body import BodyFile, BodyFileError, read_body
from truehop.route.state import RequestState, UpstreamLink, UpstreamTry
from truehop.route.uri import escape_uri

if TYPE_CHECKING:
    from truehop.process.runtime import Runtime, UpstreamRuntime

# response headers nginx keeps once (ngx_http_upstream_process_header_line and friends)
_UNIQUE_RESPONSE: Final = frozenset({"content-type", "last-modified", "etag", "location", "refresh",
                              "expires", "content-encoding"})
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
# client_body_temp_path when the settings carry none (a model not made by conf.compile)
_NO_TEMP_PATH: Final = ("client_body_temp", ())
_NO_FLAGS: frozenset[str] = frozenset()
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
# headers nginx never copies from the client when it writes the upstream request
CLIENT_SKIP: Final = frozenset({"host", "connection", "keep-alive", "proxy-connection", "te", "upgrade",
                         "transfer-encoding", "content-length", "expect", "http2-settings",
                         "trailer"})
# response headers nginx hides by default (proxy_hide_header's built-in list)
HIDE_DEFAULT: Final = frozenset({"date", "server", "x-pad", "x-accel-expires", "x-accel-redirect",
                          "x-accel-limit-rate", "x-accel-buffering", "x-accel-charset"})
RESPONSE_HOP: Final = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                          "upgrade", "te", "trailer", "content-length", "http2-settings"})
WS_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
STATUS_FLAGS: Final = {500: "http_500", 502: "http_502", 503: "http_503", 504: "http_504",
                403: "http_403", 404: "http_404", 429: "http_429"}


class HeaderPlan:
    """What a location's settings say about the headers of every request and response it
    proxies, worked out once per `Settings` (nginx too compiles proxy_set_header into a script
    at configuration time): the per-request loops then only test set membership."""

    __slots__ = ("set_entries", "client_skip", "conn_close", "response_drop", "pass_client",
                 "honor_accel_buffering", "client_forward", "response_action",
                 "honor_accel_redirect",
                 "cookie_domain", "cookie_path")

    def __init__(self, s: Settings) -> None:
        entries: list[tuple[str, Callable[[RequestState], str], str | None, int]] = []
        set_names: set[str] = set()
        for h in s.proxy_set_header or ():
            lname = h.name.lower()
            set_names.add(lname)
            if lname in ("content-length", "transfer-encoding"):
                continue  # framing is ours
            kind = _SET_KIND.get(lname, 0)
            tpl = h.value
            parts = tpl.parts
            # a value that is one variable ($host, $remote_addr...) calls its getter directly
            render = parts[0] if len(parts) == 1 and callable(parts[0]) else tpl.render
            entries.append((h.name, render, tpl.static, kind))
        self.set_entries = tuple(entries)
        # client headers never copied: hop-by-hop, framing, and those proxy_set_header sets
        self.client_skip = frozenset(CLIENT_SKIP | HOP_BY_HOP | set_names)
        self.conn_close = s.proxy_http_version == "1.0" and "connection" not in set_names
        hide = HIDE_DEFAULT.union(s.proxy_hide_header or ())
        if s.proxy_pass_header:
            hide = hide.difference(s.proxy_pass_header)
        # Upgrade is relayed in a non-101 answer as nginx does (a 426 must say which protocol
        # to upgrade to); the HTTP/2 layer drops it for HTTP/2 clients
        self.response_drop = frozenset(hide | RESPONSE_HOP) - {"upgrade"}
        self.pass_client = bool(s.proxy_pass_request_headers)
        self.honor_accel_buffering = "x-accel-buffering" not in (s.proxy_ignore_headers or ())
        self.honor_accel_redirect = "x-accel-redirect" not in (s.proxy_ignore_headers or ())
        # per field name as sent (bounded caches): most clients and upstreams spell the same
        # few names the same way, so the loops over every field skip lower() and set tests
        self.client_forward: dict[str, bool] = {}
        self.response_action: dict[str, int] = {}
        self.cookie_domain: tuple[RedirectRule, ...] = s.proxy_cookie_domain or ()
        self.cookie_path: tuple[RedirectRule, ...] = s.proxy_cookie_path or ()

    def forward_client(self, name: str) -> bool:
        """Whether a client field is copied to the upstream (before Connection's own list)."""
        ok = name.lower() not in self.client_skip
        if len(self.client_forward) < _NAME_CACHE_MAX:
            self.client_forward[name] = ok
        return ok

    def action(self, name: str) -> int:
        """What the response pass does with an upstream field (the _ACT_* codes)."""
        lk = name.lower()
        if lk == "x-accel-buffering":
            act = _ACT_ACCEL
        elif lk == "x-accel-redirect" and self.honor_accel_redirect:
            act = _ACT_XAR
        elif lk == "connection":
            act = _ACT_CONNECTION
        elif lk in self.response_drop:
            act = _ACT_DROP
        elif lk == "content-type":
            act = _ACT_CTYPE
        elif lk == "location" or lk == "refresh":
            act = _ACT_REDIRECT
        elif lk in _UNIQUE_RESPONSE:
            act = _ACT_UNIQUE
        elif lk == "set-cookie" and (self.cookie_domain or self.cookie_path):
            act = _ACT_COOKIE
        else:
            act = _ACT_PASS
        if len(self.response_action) < _NAME_CACHE_MAX:
            self.response_action[name] = act
        return act


_NAME_CACHE_MAX: Final = 1024
# what the response pass does with a field
_ACT_PASS: Final = 0        # relayed as it is
_ACT_DROP: Final = 1        # hidden or hop-by-hop
_ACT_UNIQUE: Final = 2      # relayed once (nginx keeps the first)
_ACT_CTYPE: Final = 3       # relayed once; the response's Content-Type
_ACT_REDIRECT: Final = 4    # relayed once, rewritten by proxy_redirect
_ACT_ACCEL: Final = 5       # X-Accel-Buffering: read (unless ignored), hidden unless passed
_ACT_CONNECTION: Final = 6  # hop-by-hop, but kept in a 101
_ACT_COOKIE: Final = 7      # Set-Cookie under proxy_cookie_domain / proxy_cookie_path
_ACT_XAR: Final = 8         # X-Accel-Redirect: the response becomes an internal redirect
# what an X-Accel-Redirect response hands on to the final one (nginx's headers_in entries
# marked `redirect` in ngx_http_upstream.c)
XAR_KEEP: Final = frozenset({"content-type", "set-cookie", "content-disposition", "cache-control",
                      "expires", "accept-ranges"})


_SET_KIND: Final = {"host": 1, "upgrade": 2, "connection": 3}


class Attempt:
    """State of one request's attempts across peers (nginx's u->peer.tries and friends)."""

    __slots__ = ("tries_left", "deadline", "sent", "response_started", "method")

    def __init__(self, tries: int, deadline: float, method: str) -> None:
        self.tries_left = tries
        self.deadline = deadline
        self.method = method            # of the upstream request (proxy_method)
        self.sent = False
        self.response_started = False


class Proxy:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.plans: dict[int, HeaderPlan] = {}  # by id(Settings); the config keeps them alive
        # `resolver`: one per resolver line and timeout; the upstream made of a name's
        # addresses, kept while the name resolves to the same ones (its balancer goes on)
        self.resolvers: dict[tuple[int, float], Resolver] = {}
        self.resolved: dict[tuple[str, int], tuple[tuple[str, ...], UpstreamConf]] = {}

    def plan(self, s: Settings) -> HeaderPlan:
        p = self.plans.get(id(s))
        if p is None:
            p = self.plans[id(s)] = HeaderPlan(s)
        return p

    # -- target ------------------------------------------------------------------------

    def target(self, r: RequestState, loc: LocationConf) -> tuple[UpstreamConf, str, str]:
        """(upstream, scheme, URI for the request line). A name in proxy_pass with variables
        that is no upstream and no address needs the resolver: `resolved_target`."""
        pp = loc.proxy
        assert pp is not None
        if pp.dynamic is not None:
            scheme, hostport, uri = self.dynamic_url(r, pp)
            up = self.rt.dynamic_upstream(hostport, scheme)
            if up is None:
                self.rt.log.error(f"no resolver defined to resolve {_host_of(hostport)}",
                                  r.conn, r)
                raise Finish(502)
            return up, scheme, uri
        assert pp.upstream is not None
        r.proxy_host = pp.host_header
        r.proxy_port = pp.port
        if pp.uri is None or r.extra.get("rewrite_break") or loc.modifier not in ("", "^~", "="):
            if pp.uri is not None and r.extra.get("rewrite_break"):
                # `rewrite ... break` in this location: the URI part is ignored
                uri = escape_uri(r.uri) + ("?" + r.args if r.args else "")
            else:
                uri = self.default_uri(r)
        else:
            prefix = loc.pattern
            rest = r.uri[len(prefix):] if r.uri.startswith(prefix) else r.uri
            uri = escape_uri(pp.uri + rest) + ("?" + r.args if r.args else "")
        return pp.upstream, pp.scheme, uri

    def dynamic_url(self, r: RequestState, pp: Any) -> tuple[str, str, str]:
        """proxy_pass with variables, rendered: (scheme, host[:port], URI for the request
        line); sets $proxy_host and $proxy_port."""
        url = pp.dynamic.render(r)
        split = split_proxy_url(url)
        if split is None:
            self.rt.log.error(f'invalid URL prefix in "{url}"', r.conn, r)
            raise Finish(500)
        scheme, rest = split
        hostport, slash, path = rest.partition("/")
        r.proxy_host = hostport
        r.proxy_port = hostport.rpartition(":")[2] if ":" in hostport.rpartition("]")[2] \
            else ("443" if scheme == "https" else "80")
        uri = slash + path if slash else self.default_uri(r)
        return scheme, hostport, uri

    async def resolved_target(self, r: RequestState, loc: LocationConf, s: Settings
                              ) -> tuple[UpstreamConf, str, str]:
        """`target` for proxy_pass with variables under a `resolver`: a name that is no
        upstream and no address is looked up over DNS (net.resolver), all its addresses
        become the peers (round robin), as nginx's ngx_http_upstream_resolve_handler."""
        pp = loc.proxy
        assert pp is not None and s.resolver is not None
        scheme, hostport, uri = self.dynamic_url(r, pp)
        up = self.rt.dynamic_upstream(hostport, scheme)
        if up is not None:
            return up, scheme, uri
        host = _host_of(hostport)
        port_s = r.proxy_port
        if not port_s.isdigit() or not host:
            self.rt.log.error(f'invalid port in upstream "{hostport}"', r.conn, r)
            raise Finish(502)
        key = (id(s.resolver), s.resolver_timeout or 30.0)
        res = self.resolvers.get(key)
        if res is None:
            rc = s.resolver
            res = self.resolvers[key] = Resolver(list(rc.servers), rc.valid, rc.ipv4, rc.ipv6,
                                                 key[1])
        try:
            addrs = await res.resolve(host)
        except ResolveError as e:
            self.rt.log.error(str(e), r.conn, r)
            raise Finish(502) from None
        port = int(port_s)
        known = self.resolved.get((host, port))
        if known is None or known[0] != addrs:
            up = UpstreamConf(hostport, [PeerConf(a, port) for a in addrs], implicit=True,
                              keepalive=0)
            self.resolved[(host, port)] = (addrs, up)
            return up, scheme, uri
        return known[1], scheme, uri

    @staticmethod
    def default_uri(r: RequestState) -> str:
        """No URI part: nginx passes the client's URI unchanged, unless it was rewritten or
        the request was redirected internally, then the current (escaped) URI."""
        if r.extra.get("uri_rewritten"):
            return escape_uri(r.uri) + ("?" + r.args if r.args else "")
        h = r.head
        return h.path + ("?" + h.query if h.query is not None else "")

    # -- headers -----------------------------------------------------------------------

    def build_headers(self, r: RequestState, s: Settings, upgrade_ok: bool
                      ) -> tuple[list[tuple[str, str]], bool]:
        """The upstream request's headers except framing; and whether Upgrade is forwarded."""
        plan = self.plan(s)
        out: list[tuple[str, str]] = []
        host_value: str | None = None
        upgrading = False
        for name, render, static, kind in plan.set_entries:
            v = static if static is not None else render(r)
            if kind:
                if kind == 1:
                    host_value = v
                    continue
                if not v:
                    continue
                if kind == 2:
                    if not upgrade_ok:
                        continue
                    upgrading = True
                elif not upgrade_ok and "upgrade" in v.lower():
                    continue  # Connection: upgrade without an upgrade to forward
            elif not v:
                continue  # an empty value removes the header
            out.append((name, v))
        if host_value is None:
            host_value = r.proxy_host
        if host_value:
            out.insert(0, ("Host", host_value))
        if plan.conn_close:
            out.append(("Connection", "close"))
        if plan.pass_client:
            head = r.head
            forward = plan.client_forward
            named = head.conn_tokens
            for kv in head.headers:
                k = kv[0]
                ok = forward.get(k)
                if ok is None:
                    ok = plan.forward_client(k)
                if ok and not (named and k.lower() in named):
                    out.append(kv)
        return out, upgrading

    # -- run ---------------------------------------------------------------------------

    async def run(self, r: RequestState, ex: Exchange, loc: LocationConf) -> None:
        s = loc.settings
        if s.resolver is not None and loc.proxy is not None and loc.proxy.dynamic is not None:
            upstream, scheme, uri = await self.resolved_target(r, loc, s)
        else:
            upstream, scheme, uri = self.target(r, loc)
        urt = self.rt.upstream_runtime(upstream)
        head = r.head
        method = head.method
        upgrade_ok = (head.upgrade == "websocket" and method == "GET" and head.version == "1.1"
                      and _ws_key_ok(head.get("sec-websocket-key"),
                                     head.get("sec-websocket-version")))
        # the request body: read whole (proxy_request_buffering on: in memory up to
        # client_body_buffer_size, else in a temp file) or streamed. As nginx, it is read
        # before the upstream request is made, so $request_body(_file) can be in its headers
        has_body = head.chunked or bool(head.content_length)
        read: bytes | BodyFile | None = None
        stream_body = False
        if has_body or (head.content_length == 0 and s.client_body_in_file_only != "off"):
            if r.body_read:
                # a pass after an internal redirect: the body kept by the first, if any
                read = r.body_file if r.body_file is not None else r.request_body or b""
            # proxy_set_body and proxy_pass_request_body off read the body too (nginx then
            # always buffers), only never send it
            elif s.proxy_request_buffering or s.proxy_set_body is not None or \
                    not s.proxy_pass_request_body or \
                    s.proxy_http_version == "1.0" and head.chunked:
                r.body_read = True
                if not has_body and head.expect_continue:
                    ex.send_continue()   # ngx_http_test_expect, before an empty body's file
                read = await self.read_body(r, ex, s)
            else:
                r.body_read = True
                stream_body = True
        elif head.expect_continue:
            ex.send_continue()  # as nginx: the expectation is answered even for no body
        tries_made = r.upstream_tries
        try:
            headers, upgrading = self.build_headers(r, s, upgrade_ok)
            if head.upgrade is not None and not upgrading and upgrade_ok:
                self.rt.detect.upgrade_not_forwarded(r, loc)
            body: bytes | BodyFile | None = None
            if s.proxy_set_body is not None:
                # proxy_set_body: the client's body was read and is dropped, this one sent
                text = s.proxy_set_body.render(r)
                try:
                    body = text.encode("latin-1")    # values read off the wire round-trip
                except UnicodeEncodeError:
                    body = text.encode("utf-8")      # text from the config: its bytes
                headers.append(("Content-Length", str(len(body))))
            elif not has_body:
                body = b""
                if method in _BODY_METHODS:
                    headers.append(("Content-Length", "0"))
            else:
                if not s.proxy_pass_request_body:
                    body = b""
                elif not stream_body:
                    body = read
                if type(body) is bytes:
                    headers.append(("Content-Length", str(len(body))))
                    r.request_body_length = len(body)
                elif isinstance(body, BodyFile):
                    headers.append(("Content-Length", str(body.length)))
                    r.request_body_length = body.length
                elif head.content_length is not None:
                    headers.append(("Content-Length", str(head.content_length)))
                else:
                    headers.append(("Transfer-Encoding", "chunked"))
            # proxy_method: the upstream request's method; retries still judge the client's
            up_method = s.proxy_method.render(r) if s.proxy_method is not None else method
            try:
                req_head = request_head_bytes(up_method, uri, headers,
                                              s.proxy_http_version or "1.1")
            except ValueError:
                raise Finish(400) from None
            r.extra["upstream_uri"] = uri

            tries = s.proxy_next_upstream_tries or 0
            timeout_total = s.proxy_next_upstream_timeout or 0.0
            now = _monotonic()
            att = Attempt(tries if tries else 1 << 30,
                          now + timeout_total if timeout_total else 0.0, up_method)
            flags = s.proxy_next_upstream or _NO_FLAGS
            state = urt.balancer.start(now, self.hash_key(r, upstream) if upstream.kind in (
                "ip_hash", "hash") else None)
            await self._attempts(r, ex, loc, s, urt, upstream, scheme, uri, req_head, body,
                                 stream_body, upgrading, att, flags, state, now)
        finally:
            if tries_made and tries_made[-1].end is None:
                last = tries_made[-1]
                last.end = _monotonic()
                if r.upstream_conn is not None:
                    _account(last, r.upstream_conn)

    async def read_body(self, r: RequestState, ex: Exchange, s: Settings) -> bytes | BodyFile:
        """The whole client body, kept as proxy.request_body keeps it (memory or a temp
        file); sets $request_body or $request_body_file."""
        file_only = s.client_body_in_file_only or "off"
        try:
            got = await read_body(ex.body, s.client_max_body_size or (1 << 62),
                                  s.client_body_timeout, s.client_body_buffer_size or 16384,
                                  file_only, s.client_body_temp_path or _NO_TEMP_PATH)
        except BodyFileError as e:
            self.rt.log.crit(e.message, r.conn, r)
            raise Finish(500) from None
        if not isinstance(got, BodyFile):
            r.request_body = got
            return got
        r.request_body_file = got.name
        r.body_file = got
        # closed when the exchange ends, however it ends (not when this pass does: an
        # error_page may proxy the request again); `on` keeps the file's name, `clean` not
        prev = ex.on_done
        if prev is None:
            ex.on_done = got.close
        else:
            def done() -> None:
                got.close()
                prev()
            ex.on_done = done
        # nginx's line, at warn (notice with client_body_in_file_only, which asks for it)
        msg = f"a client request body is buffered to a temporary file {got.name}"
        if file_only == "off":
            self.rt.log.warn(msg, r.conn, r)
        else:
            self.rt.log.notice(msg, r.conn, r)
        return got

    async def _attempts(self, r: RequestState, ex: Exchange, loc: LocationConf, s: Settings,
                        urt: UpstreamRuntime, upstream: UpstreamConf, scheme: str, uri: str,
                        req_head: bytes, body: bytes | BodyFile | None, stream_body: bool,
                        upgrading: bool, att: Attempt, flags: frozenset[str],
                        state: BalancerState,
                        now: float) -> None:
        """Try peers until one answers (proxy_next_upstream), then relay its response."""
        head = r.head
        method = head.method
        pool = urt.pool
        last_status = 502
        failed_before = False
        retried_stale = False
        sender: list[Any] = [None]
        tries_made = r.upstream_tries
        while True:
            peer = state.next(now)
            if peer is None:
                if not failed_before:
                    self.rt.log.error("no live upstreams while connecting to upstream", r.conn, r)
                    t = UpstreamTry(upstream.name, upstream.name, now)
                    t.status = 502
                    t.end = now
                    tries_made.append(t)
                raise Finish(last_status)
            addr = peer.name
            # nginx's error-log form: a unix socket path and the URI are joined by ':'
            t = UpstreamTry(addr, f"{scheme}://{addr}{':' if peer.port == 0 else ''}{uri}", now)
            tries_made.append(t)
            conn: UpstreamConnection | None = None
            reused = False
            try:
                if pool is not None:
                    conn = pool.acquire(peer.key, now)
                if conn is None:
                    conn = await self.fresh(peer, scheme, s, r)
                else:
                    reused = True
                t.connect = _monotonic()
                r.upstream_conn = conn  # aborted by the pipeline if we never finish
                try:
                    resp = await self.exchange(conn, req_head, body, stream_body, ex, s, att,
                                               sender, r)
                except UpstreamError as e:
                    if reused and not conn.received_any and e.kind == "error" and \
                            not retried_stale and (method in IDEMPOTENT or not att.sent):
                        # the keepalive race: the upstream closed an idle connection as we
                        # reused it. Try once more on a fresh connection, same peer.
                        retried_stale = True
                        conn.abort()
                        conn = await self.fresh(peer, scheme, s, r)
                        r.upstream_conn = conn
                        resp = await self.exchange(conn, req_head, body, stream_body, ex, s,
                                                   att, sender, r)
                    else:
                        raise
            except UpstreamError as e:
                now = t.end = _monotonic()
                if conn is not None:
                    _account(t, conn)
                    conn.abort()
                failed_kind = e.kind
                status = 504 if failed_kind == "timeout" else 502
                if failed_kind == "timeout" and "reading" in e.message:
                    self.rt.detect.read_timeout(r, loc, s.proxy_read_timeout or 60.0)
                t.status = status
                self.rt.log.error(e.message, r.conn, r)
                if state.done(peer, now, failed=True):
                    self.rt.log.warn("upstream server temporarily disabled while "
                                     + e.message.split(" while ")[-1], r.conn, r)
                failed_before = True
                last_status = status
                if self.may_retry(failed_kind, flags, att, method, stream_body):
                    continue
                raise Finish(status) from None
            # a response head arrived
            now = t.header = _monotonic()
            status = t.status = resp.head.status
            flag = STATUS_FLAGS.get(status) if flags else None
            # as nginx (ngx_http_upstream_test_next): only when another peer is left to try;
            # the last one's answer, error status and body, is the response
            if flag is not None and flag in flags and state.tries > 1 and \
                    self.may_retry(flag, flags, att, method, stream_body):
                t.end = now
                _account(t, conn)
                state.done(peer, now, failed=flag not in ("http_403", "http_404"))
                conn.abort()
                last_status = status
                failed_before = True
                continue
            try:
                await self.relay(r, ex, loc, s, urt, conn, resp, t, upgrading, head, sender[0])
            finally:
                # the peer is freed when the response ends, as nginx frees it at finalize:
                # `conns` (least_conn, max_conns) counts whole responses and tunnels
                state.done(peer, now, failed=False)
            return

    def may_retry(self, kind: str, flags: frozenset[str], att: Attempt, method: str,
                  streamed: bool) -> bool:
        if kind not in flags and not (kind == "invalid_header" and "invalid_header" in flags):
            return False
        att.tries_left -= 1
        if att.tries_left <= 0:
            return False
        if att.deadline and _monotonic() >= att.deadline:
            return False
        if att.response_started:
            return False
        if att.sent and streamed:
            return False
        if att.sent and method not in IDEMPOTENT and "non_idempotent" not in flags:
            return False
        return True

    def hash_key(self, r: RequestState, up: UpstreamConf) -> str | None:
        if up.kind == "ip_hash":
            return r.remote_addr
        if up.kind == "hash" and up.hash_key is not None:
            return up.hash_key.render(r)
        return None

    async def fresh(self, peer: Peer, scheme: str, s: Settings, r: RequestState
                    ) -> UpstreamConnection:
        ctx = None
        sni = None
        if scheme == "https":
            ctx = self.rt.upstream_ssl_context(s)
            if s.proxy_ssl_server_name:
                name = s.proxy_ssl_name.render(r) if s.proxy_ssl_name else r.proxy_host
                sni = name.rsplit(":", 1)[0] if not name.startswith("[") else None
            elif s.proxy_ssl_verify:
                sni = r.proxy_host.rsplit(":", 1)[0]
        return await connect(peer.addr, peer.port, s.proxy_connect_timeout or 60.0, ctx, sni)

    async def exchange(self, conn: UpstreamConnection, req_head: bytes,
                       body: bytes | BodyFile | None, stream_body: bool, ex: Exchange,
                       s: Settings, att: Attempt, self_sender: list[Any], r: RequestState
                       ) -> Response:
        """Send the request and return the response head (1xx answers are consumed).
        `body`: bytes are written at once; a BodyFile (a buffered body in a temp file) and
        the client's stream (None) are sent by a task while the response is awaited, so an
        upstream that answers early is heard."""
        # the parser must know the method the upstream answers (a HEAD has no body)
        conn.start(att.method, s.proxy_buffer_size or 8192)
        send_timeout = s.proxy_send_timeout or 60.0
        read_timeout = s.proxy_read_timeout or 60.0
        if type(body) is bytes:
            conn.write(req_head + body if len(body) < 65536 else req_head)
            if len(body) >= 65536:
                conn.write(body)
            att.sent = True
            await conn.drain(send_timeout)
        else:
            if isinstance(body, BodyFile):
                conn.write(req_head)
                sender = asyncio.ensure_future(self.send_file(body, conn, send_timeout))
            else:
                sender = asyncio.ensure_future(self.stream_body(conn, ex, s, r, req_head))
            att.sent = True
            head = asyncio.ensure_future(self.read_head(conn, read_timeout))
            try:
                # the client's body can fail (a bad chunk, a short HTTP/2 stream) before the
                # upstream answers: that is the client's 400, never the upstream's answer
                await asyncio.wait((head, sender), return_when=asyncio.FIRST_COMPLETED)
                if not head.done() and sender.done() and \
                        isinstance(sender.exception(), (ProtocolError, UpstreamError)):
                    head.cancel()
                    conn.abort()
                    raise sender.exception()  # type: ignore[misc]
                resp = await head
            except BaseException:
                sender.cancel()
                head.cancel()
                raise
            if not sender.done():
                # the upstream answered before the body was sent: let it finish in background
                # only when the response says the body is still wanted; else stop sending
                self_sender[0] = sender
                sender.add_done_callback(_consume_outcome)
            else:
                exc = sender.exception()
                if isinstance(exc, UpstreamError):
                    raise exc
            return resp
        return await self.read_head(conn, read_timeout)

    async def read_head(self, conn: UpstreamConnection, timeout: float) -> Response:
        while True:
            try:
                ev = await conn.next_event(timeout)
            except UpstreamError as e:
                if e.message.endswith("while reading upstream"):
                    e.message = e.message.replace("while reading upstream",
                                                  "while reading response header from upstream")
                raise
            if type(ev) is Response:
                return ev
            if type(ev) is InformationalResponse:
                continue
            raise UpstreamError("invalid_header", "upstream sent no valid HTTP/1.0 header")

    async def send_file(self, body: BodyFile, conn: UpstreamConnection, timeout: float
                        ) -> None:
        """A buffered body from its temp file, from the start (so each try sends it whole)."""
        try:
            await body.send(conn, timeout)
        except BodyFileError as e:
            self.rt.log.crit(e.message)
            conn.abort()
            # the client's request cannot be sent: a 500, as nginx answers a failed read
            raise ProtocolError(500, e.message) from None

    async def stream_body(self, conn: UpstreamConnection, ex: Exchange, s: Settings,
                          r: RequestState, req_head: bytes) -> None:
        """proxy_request_buffering off: the request head, then the client's body as it
        arrives. What has arrived goes in one write (one chunk, with the last chunk when the
        body is complete; the head with the body already read), as nginx sends what it has
        read; a body that fits client_body_buffer_size stays there for $request_body, as in
        nginx's unbuffered mode."""
        chunked = ex.head.content_length is None
        timeout = s.client_body_timeout or 60.0
        send_timeout = s.proxy_send_timeout or 60.0
        body = ex.body
        room = s.client_body_buffer_size or 16384
        kept: list[bytes] | None = []
        ended = False
        head = req_head
        if not body.buffered:
            conn.write(head)   # no body bytes yet: the upstream gets the head at once
            head = b""
        while True:
            chunk = await body.read(timeout)
            if chunk is None:
                break
            if body.buffered:
                chunk = b"".join([chunk, *body.take_ready()])
            if kept is not None:
                room -= len(chunk)
                if room >= 0:
                    kept.append(chunk)
                else:
                    kept = None
            if chunked:
                ended = body.complete and body.error is None
                conn.write(b"%b%x\r\n%b\r\n%s" % (head, len(chunk), chunk,
                                                   b"0\r\n\r\n" if ended else b""))
            else:
                conn.write(head + chunk if head else chunk)
            head = b""
            await conn.drain(send_timeout)
        if head:
            conn.write(head)
        if chunked and not ended:
            conn.write(b"0\r\n\r\n")
        if kept:
            r.request_body = kept[0] if len(kept) == 1 else b"".join(kept)

    # -- response ----------------------------------------------------------------------

    def response_headers(self, r: RequestState, s: Settings, loc: LocationConf,
                         rh: ResponseHead, keep_connection: bool = False
                         ) -> tuple[list[tuple[str, str]], str, bool | None]:
        """The upstream's headers as relayed, in one pass: hidden and hop-by-hop ones dropped
        (Upgrade is kept, as nginx does; `keep_connection` keeps Connection too, for a 101),
        a repeated single-valued one ignored with nginx 1.23's warning, Location and Refresh
        rewritten. Also its Content-Type, and what its X-Accel-Buffering asks: True for
        unbuffered, False for buffered, None when it asks nothing (or is ignored)."""
        plan = self.plan(s)
        actions = plan.response_action
        named = rh.conn_tokens
        if named:
            # fields the upstream's Connection names are hop-by-hop too (Upgrade excepted)
            named = named.difference(plan.response_drop, ("upgrade",))
        out: list[tuple[str, str]] = []
        ctype = ""
        unbuffered: bool | None = None
        seen: dict[str, str] | None = None
        for kv in rh.headers:
            k = kv[0]
            act = actions.get(k)
            if act is None:
                act = plan.action(k)
            if named and k.lower() in named:
                continue
            if act == _ACT_PASS:
                out.append(kv)
                continue
            if act == _ACT_DROP:
                continue
            v = kv[1]
            if act == _ACT_ACCEL:
                if plan.honor_accel_buffering:
                    low = v.lower()
                    unbuffered = True if low == "no" else False if low == "yes" else unbuffered
                if "x-accel-buffering" not in plan.response_drop:
                    out.append(kv)    # proxy_pass_header X-Accel-Buffering
                continue
            if act == _ACT_CONNECTION:
                if keep_connection:
                    out.append(kv)
                continue
            if act == _ACT_COOKIE:
                out.append((k, rewrite_cookie(r, v, plan.cookie_domain, plan.cookie_path)))
                continue
            if act == _ACT_XAR:
                r.extra["x_accel_redirect"] = v    # relay turns the response into a redirect
                continue
            lk = k.lower()
            if seen is None:
                seen = {lk: v}
            elif lk in seen:
                self.rt.log.warn(f'upstream sent duplicate header line: "{k}: {v}", '
                                 f'previous value: "{k}: {seen[lk]}", ignoring it', r.conn, r)
                continue
            else:
                seen[lk] = v
            if act == _ACT_CTYPE:
                ctype = v
            elif act == _ACT_REDIRECT:
                v = self.rewrite_redirect(r, s, loc, v, lk == "refresh")
                if lk == "location" and v.startswith("/"):
                    # nginx's header filter makes a relative Location absolute
                    v = self.rt.pipeline.absolute_location(r, v)
                kv = (k, v)
            out.append(kv)
        return out, ctype, unbuffered

    def rewrite_redirect(self, r: RequestState, s: Settings, loc: LocationConf, value: str,
                         refresh: bool) -> str:
        """proxy_redirect on a Location or Refresh value (nginx's ngx_http_proxy_rewrite_*):
        the first rule that applies wins. A prefix rule replaces what it matched; a regex
        rule, searched anywhere, replaces the whole value (after Refresh's `url=`)."""
        pr = s.proxy_redirect
        if pr is None or pr.kind == "off":
            return value
        prefix_at = 0
        if refresh:
            i = value.lower().find("url=")
            if i < 0:
                return value
            prefix_at = i + 4
        target = value[prefix_at:]
        if pr.kind == "default":
            out = self._default_redirect(loc, target)
            return value if out is None else value[:prefix_at] + out
        for rule in pr.rules:
            if rule.kind == "default":
                out = self._default_redirect(loc, target)
                if out is not None:
                    return value[:prefix_at] + out
            elif rule.kind == "prefix":
                assert rule.match is not None and rule.replacement is not None
                m = rule.match.render(r)
                if target.startswith(m):
                    return value[:prefix_at] + rule.replacement.render(r) + target[len(m):]
            else:
                assert rule.regex is not None and rule.replacement is not None
                mm = rule.regex.search(target)
                if mm is not None:
                    saved = r.captures
                    r.captures = mm
                    try:
                        return value[:prefix_at] + rule.replacement.render(r)
                    finally:
                        r.captures = saved
        return value

    @staticmethod
    def _default_redirect(loc: LocationConf, target: str) -> str | None:
        """`proxy_redirect default`: proxy_pass's URL (with its URI part) -> the location's
        prefix; without a URI part, `http://host/` -> `/`. Not for proxy_pass with variables."""
        pp = loc.proxy
        if pp is None or pp.dynamic is not None:
            return None
        base = f"{pp.scheme}://{pp.host_header}"
        if pp.uri:
            if loc.modifier not in ("", "^~", "="):
                return None
            match, repl = base + pp.uri, loc.pattern
        else:
            match, repl = base + "/", "/"
        if target.startswith(match):
            return repl + target[len(match):]
        return None

    async def relay(self, r: RequestState, ex: Exchange, loc: LocationConf, s: Settings,
                    urt: UpstreamRuntime, conn: UpstreamConnection, resp: Response,
                    t: UpstreamTry, upgrading: bool, head: Any, sender: Any) -> None:
        rh = resp.head
        status = rh.status
        r.upstream_headers = rh.headers
        pipeline = self.rt.pipeline
        if status == 101:
            if not upgrading:
                conn.abort()
                self.rt.log.error("upstream sent unexpected 101 response", r.conn, r)
                raise Finish(502)
            accept = rh.get("sec-websocket-accept")
            key = head.get("sec-websocket-key") or ""
            if accept != _ws_accept(key):
                conn.abort()
                self.rt.log.error("upstream sent invalid Sec-WebSocket-Accept", r.conn, r)
                raise Finish(502)
            await self.tunnel(r, ex, s, conn, rh)
            return
        # intercept errors into error_page
        if s.proxy_intercept_errors and status >= 300 and s.error_page and status in s.error_page:
            conn.abort()
            if status == 401:
                # ngx_http_upstream_intercept_errors: the challenge goes with the error page
                r.extra["carried_headers"] = [kv for kv in rh.headers
                                              if kv[0].lower() == "www-authenticate"]
            raise Finish(status)
        headers, ctype, accel = self.response_headers(r, s, loc, rh)
        xar = r.extra.pop("x_accel_redirect", None)
        if xar is not None:
            # X-Accel-Redirect: the app names what to serve instead; its body is not wanted
            conn.abort()
            r.extra["carried_headers"] = [kv for kv in headers if kv[0].lower() in XAR_KEEP]
            accel_redirect(self.rt, r, xar)
        unbuffered = accel if accel is not None else not s.proxy_buffering
        headers = pipeline.filter_headers(r, status, headers)
        final_status = pipeline.response_status(r, status)
        if unbuffered:
            conn.high_water = 16 * 1024
        else:
            n, size = s.proxy_buffers or (8, 8192)
            conn.high_water = max(n * size, 16384)
        self.rt.detect.on_response(r, loc, status, rh, ctype)
        r.status = final_status
        r.sent_headers = headers
        headers[0:0] = pipeline.server_headers(r)
        # corked: the head goes out with the body bytes already read, in one write; whatever
        # is held is flushed before waiting on the upstream (SSE and slow bodies stream)
        ex.start_response(final_status, headers, rh.content_length,
                          rh.reason if final_status == status else None, cork=True)
        read_timeout = s.proxy_read_timeout or 60.0
        try:
            while True:
                ev = conn.pop_event()
                if ev is None:
                    ex.flush()
                    ev = await conn.next_event(read_timeout)
                if type(ev) is Data:
                    t.response_length += len(ev.data)
                    ex.write(ev.data)
                    if ex.write_blocked:
                        await ex.drain()
                elif type(ev) is EndOfMessage:
                    break
        except UpstreamError as e:
            ex.flush()
            self.rt.log.error(e.message.replace("reading response header from upstream",
                                                "reading upstream"), r.conn, r)
            conn.abort()
            ex.abort()
            return
        except (ClientGone, ProtocolError):
            conn.abort()
            raise ClientGone("client closed connection") from None
        ex.end()
        now = t.end = _monotonic()
        _account(t, conn)
        if urt.pool is not None and rh.keep_alive and conn.finished_cleanly():
            if sender is None or sender.done():
                r.upstream_conn = None
                urt.pool.release(conn, now, reusable=True)
                return
        conn.close()

    async def tunnel(self, r: RequestState, ex: Exchange, s: Settings, conn: UpstreamConnection,
                     rh: Any) -> None:
        assert isinstance(ex, H1Exchange)      # tunnels are HTTP/1.1 only
        client = ex.conn
        ct = client.transport
        ut = conn.transport
        assert ct is not None and ut is not None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        idle = max(s.proxy_read_timeout or 60.0, 1.0)
        last = [_monotonic()]

        def finish(_exc: BaseException | None = None) -> None:
            if not done.done():
                done.set_result(None)

        # a side may close while the other's bytes are in flight (the tunnel ends when this
        # coroutine runs next): uvloop raises on a write to a closed transport, so drop them
        def to_upstream(data: bytes) -> None:
            if ut.is_closing():
                return
            last[0] = _monotonic()
            ut.write(data)
            if ut.get_write_buffer_size() > 1 << 20:
                ct.pause_reading()
                _resume_later(ut, ct, done)

        def to_client(data: bytes) -> None:
            if ct.is_closing():
                return
            last[0] = _monotonic()
            ct.write(data)
            if ct.get_write_buffer_size() > 1 << 20:
                ut.pause_reading()
                _resume_later(ct, ut, done)

        assert r.loc is not None
        headers = self.response_headers(r, s, r.loc, rh, keep_connection=True)[0]
        r.status = 101
        r.sent_headers = headers
        from truehop.http.h1 import response_head_bytes
        data = response_head_bytes(101, self.rt.pipeline.server_headers(r) + headers, "1.1",
                                   rh.reason or "Switching Protocols")
        ex.started = True
        ex.status = 101
        ex.keep_alive = False
        ex.bytes_sent += len(data)
        ct.write(data)
        up_left = conn.take_unparsed()
        conn.tunnel = to_client
        conn.tunnel_lost = finish
        client_left = client.detach(to_upstream, finish)
        if up_left:
            to_client(up_left)
        if client_left:
            to_upstream(client_left)
        self.rt.tunnels.add(done)
        try:
            while not done.done():
                remaining = idle - (_monotonic() - last[0])
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(asyncio.shield(done), remaining)
                except TimeoutError:
                    continue
        finally:
            self.rt.tunnels.discard(done)
            conn.abort() if not conn.closed else None
            ut.close()
            client.close()
            ex.finished = True
            client.exchange_done(ex)


def accel_redirect(rt: Runtime, r: RequestState, value: str) -> None:
    """X-Accel-Redirect, as ngx_http_upstream_process_headers: `@name` goes to that named
    location; a URI (its `?args` split off, %-escapes decoded) is an internal redirect, with
    GET for anything but HEAD; an unsafe one (`..` segments, NUL) is 404. Always raises."""
    if value.startswith("@"):
        raise InternalRedirect("", None, named=value[1:])
    uri, q, args = value.partition("?")
    if "%" in uri:
        uri = urllib.parse.unquote(uri, encoding="latin-1")
    if not uri or uri[0] == "." or "\0" in uri or _UNSAFE_SEGMENT.search(uri):
        rt.log.error(f'unsafe URI "{value}" was detected', r.conn, r)
        raise Finish(404)
    if r.head.method != "HEAD":
        r.head.method = "GET"
    raise InternalRedirect(uri, args if q else "")


_UNSAFE_SEGMENT: Final = re.compile(r"(^|/)\.\.(/|$)")


def _host_of(hostport: str) -> str:
    """`host` of `host[:port]` or `[v6][:port]` (brackets dropped)."""
    if hostport.startswith("["):
        return hostport[1:].partition("]")[0]
    return hostport.partition(":")[0]


def rewrite_cookie(r: RequestState, value: str, domains: tuple[RedirectRule, ...],
                   paths: tuple[RedirectRule, ...]) -> str:
    """proxy_cookie_domain / proxy_cookie_path on one Set-Cookie value, as nginx 1.30's
    ngx_http_proxy_rewrite_cookie: the attributes after the first are split at ';' (spaces
    around names and values dropped); the first rule that applies to a Domain or Path value
    rewrites it; if any did, the cookie is written back as `name=value; attr=value; ...`,
    else it is left as it came."""
    parts = value.split(";")
    if len(parts) < 2 or "=" not in parts[0]:
        return value
    attrs: list[tuple[str, str | None]] = []
    for part in parts:
        name, eq, val = part.partition("=")
        attrs.append((name.strip(" "), val.strip(" ") if eq else None))
    changed = False
    for i in range(1, len(attrs)):
        name, aval = attrs[i]
        if aval is None:
            continue
        low = name.lower()
        rules = domains if low == "domain" else paths if low == "path" else ()
        for rule in rules:
            new = _cookie_value(r, rule, aval)
            if new is not None:
                attrs[i] = (name, new)
                changed = True
                break
    if not changed:
        return value
    return "; ".join(n if v is None else f"{n}={v}" for n, v in attrs)


def _cookie_value(r: RequestState, rule: RedirectRule, val: str) -> str | None:
    """One cookie rule on a Domain or Path value: the new value, or None if it does not
    apply (nginx's domain, complex and regex rewrite handlers)."""
    assert rule.replacement is not None
    if rule.kind == "regex":
        assert rule.regex is not None
        m = rule.regex.search(val)
        if m is None:
            return None
        saved = r.captures
        r.captures = m
        try:
            return rule.replacement.render(r)
        finally:
            r.captures = saved
    assert rule.match is not None
    pattern = rule.match.render(r)
    if rule.kind == "domain":
        dot = "." if val.startswith(".") else ""
        if val[len(dot):].lower() != pattern.lower():
            return None
        return dot + rule.replacement.render(r)
    if not val.startswith(pattern):
        return None
    return rule.replacement.render(r) + val[len(pattern):]


def _account(t: UpstreamTry, conn: UpstreamLink) -> None:
    """$upstream_bytes_sent / _received of a try: what its connection carried since `start`."""
    t.bytes_sent = conn.bytes_out
    t.bytes_received = conn.bytes_in


def _resume_later(dst: asyncio.Transport, src: asyncio.Transport, done: asyncio.Future[None]
                  ) -> None:
    loop = asyncio.get_running_loop()

    def check() -> None:
        if done.done() or dst.is_closing():
            return
        if dst.get_write_buffer_size() < 1 << 18:
            src.resume_reading()
        else:
            loop.call_later(0.02, check)
    loop.call_later(0.02, check)


def _consume_outcome(task: asyncio.Future[None]) -> None:
    """A body sender left running after the response: its failure (the connection closed
    under it) is expected and must not be reported as never retrieved."""
    if not task.cancelled():
        task.exception()


def _ws_key_ok(key: str | None, version: str | None) -> bool:
    if not key or version != "13":
        return False
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


def _ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False
