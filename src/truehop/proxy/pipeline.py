"""What happens to one request, in nginx's phase order.

    checks before any phase (`serve`): client certificate (495/496, and 421 for a Host
    other than the SNI name) -> server chosen -> realip -> URI normalised -> server rewrite
    -> find location -> location rewrite (`last` loops back, at most 10 times)
    -> access (proxy.access: allow/deny, auth_basic, auth_request; only where configured)
    -> content: `return` | `proxy_pass` | `try_files` | static file
    -> error_page, then the response filters (proxy.filters: add_header, expires,
       Server/Date), which every response's head goes through
    -> access log

Each step reads the compiled model; nothing here touches a socket except through the
`Exchange` the connection gave us.

Refusals, one path for HTTP/1 and HTTP/2 (`refuse`): a request the parser refused (400, 408,
413, 414, 494, 501, 505), plain HTTP on a TLS port (497), an HTTP/2 stream whose server
allows no HTTP/2 (421, `http2_refusal`) and the client-certificate answers all end in
`finish_bad_request`: the special response, the server's error_page, the access log, close.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, Literal, Protocol

from truehop.certificate import CHAIN_TOO_LONG
from truehop.conf.model import (
    AccessLog,
    BreakOp,
    Condition,
    IfOp,
    LocationConf,
    ReturnOp,
    RewriteOp,
    ServerConf,
    SetOp,
    Settings,
)
from truehop.http.events import ProtocolError, RequestHead
from truehop.http.exchange import ClientGone, Exchange
from truehop.http.status import REASONS, SENT_AS, TITLES
from truehop.log import ErrorLog
from truehop.net.listen import Listener
from truehop.proxy import gzip, static
from truehop.proxy.access import check_access
from truehop.proxy.filters import SERVER_FULL, send_header
from truehop.proxy.limits import preaccess
from truehop.route.servers import match_wildcard
from truehop.route.state import ConnectionInfo, RequestState
from truehop.route.uri import (
    BadRequest,
    escape_args,
    escape_uri,
    normalize_path,
    unescape_redirect,
)

REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# nginx's special responses after which the connection is not kept alive
CLOSE_AFTER: Final = frozenset({400, 408, 413, 414, 494, 495, 496, 497, 500, 501, 505})


def error_page_body(status: int, tokens: bool) -> bytes:
    title = TITLES.get(status)
    if title is None:
        return b""       # nginx's "unknown code, zero body"
    # 494-497 are sent as 400, under their own title
    title = f"{SENT_AS.get(status, status)} {title}"
    sig = SERVER_FULL if tokens else "truehop"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>{sig}</center>\r\n"
            f"</body>\r\n</html>\r\n").encode()


class Finish(Exception):
    """Stop processing: the response (or a close) has been decided. `send`: a `return`
    answered by ngx_http_send_response, which discards the request body first and answers
    that discard's error instead (a bad chunk: 400)."""

    def __init__(self, status: int, location: str | None = None, text: str | None = None,
                 send: bool = False) -> None:
        self.status = status
        self.location = location
        self.text = text
        self.send = send


class InternalRedirect(Exception):
    def __init__(self, uri: str, query: str | None = None, named: str | None = None) -> None:
        super().__init__(uri)
        self.uri = uri
        self.query = query
        self.named = named


_HOST_PORT: Final = re.compile(r":\d*$")


def compute_host(head_host: str, server: ServerConf) -> str:
    """nginx's $host: the request's host, lower-cased, without port; else server_name."""
    if head_host:
        if head_host.startswith("["):
            end = head_host.find("]")
            return head_host[: end + 1]
        i = head_host.rfind(":")
        h = head_host[:i] if i >= 0 else head_host
        return h.rstrip(".")
    return server.primary_name


class RewritePlan:
    """How one `rewrite` builds its result (ngx_http_rewrite + ngx_http_script_compile +
    ngx_http_script_regex_end_code):

    * a replacement ending in '?' does not get the request's arguments added (the '?' is
      dropped); otherwise they are added: after '&' when the replacement holds a literal
      '?', else after '?'. Only the '?' written in the directive counts, never one a
      variable renders (`$request_uri?` is the usual idiom).
    * a redirect (`redirect`, `permanent`, or a replacement starting with http://, https://
      or $scheme) is one string; it is unescaped as NGX_UNESCAPE_REDIRECT up to its '?'.
    * otherwise the first literal '?' splits it into the new URI and the new arguments.
    * a capture ($1..$9) copied into the arguments, or into a redirect, is escaped as
      NGX_ESCAPE_ARGS when the request line's path held '%' or '+' (nginx's quoted_uri /
      plus_in_uri), so that `rewrite ^(.*) $1?c=$1` keeps a "%25" a "%25".
    """

    __slots__ = ("redirect", "code", "add_args", "has_q", "uri_parts", "args_parts",
                 "captures")

    def __init__(self, op: RewriteOp) -> None:
        tpl = op.replacement
        source = tpl.source
        self.add_args = not source.endswith("?")
        self.redirect = source.startswith(("http://", "https://", "$scheme")) or \
            op.flag in ("redirect", "permanent")
        self.code = 301 if op.flag == "permanent" else 302
        # (text, None) for literal text, ("", getter) for a variable, ("", getter) marked
        # as a capture by `captures`
        parts: list[tuple[str, Any, bool]] = []
        names = iter(tpl.names)
        for p in tpl.parts:
            if isinstance(p, str):
                parts.append((p, None, False))
            else:
                name = next(names, "")
                parts.append(("", p, len(name) == 1 and "1" <= name <= "9"))
        if not self.add_args:                   # the last '?' is literal text: drop it
            text, _, _ = parts[-1]
            parts[-1] = (text[:-1], None, False)
        self.captures = any(c for _, _, c in parts)
        self.has_q = any("?" in text for text, g, _ in parts if g is None)
        self.args_parts: list[tuple[str, Any, bool]] | None = None
        if not self.redirect:
            for i, (text, g, _) in enumerate(parts):
                if g is None and "?" in text:
                    before, _, after = text.partition("?")
                    self.args_parts = [(after, None, False)] + parts[i + 1:]
                    parts = parts[:i] + [(before, None, False)]
                    break
        self.uri_parts = parts

    @staticmethod
    def render(r: RequestState, parts: list[tuple[str, Any, bool]], escape: bool) -> str:
        if escape:
            h = r.head.path
            escape = "%" in h or "+" in h
        return "".join([text if g is None else
                         (escape_args(g(r)) if escape and cap else g(r))
                         for text, g, cap in parts])

    def location(self, r: RequestState) -> str:
        """The Location of a redirecting rewrite."""
        new = unescape_redirect(self.render(r, self.uri_parts, self.captures))
        if self.add_args and r.args:
            new += ("&" if self.has_q else "?") + r.args
        return new

    def apply(self, r: RequestState) -> bool:
        """Set $uri and $args as an internal rewrite does; False for an empty URI (nginx
        then answers 500)."""
        uri = self.render(r, self.uri_parts, False)
        if not uri:
            return False
        if self.args_parts is not None:
            args = self.render(r, self.args_parts, self.captures)
            if self.add_args and r.args:
                args += "&" + r.args
            r.args = args or None
        elif not self.add_args:
            r.args = None
        r.uri = uri
        return True


class ContentHandler(Protocol):
    """The proxy's content phase (proxy.upstream.Proxy), which imports this module."""

    async def run(self, r: RequestState, ex: Exchange, loc: LocationConf) -> None: ...


class PipelineHost(Protocol):
    """What the pipeline reads of the runtime that built it (process.runtime.Runtime, a
    layer above): its error log, the proxy, the access log sinks."""

    log: ErrorLog

    @property
    def proxy(self) -> ContentHandler: ...

    def write_access(self, r: RequestState, logs: tuple[AccessLog, ...]) -> None: ...


MISDIRECTED: Final = "client attempted to request the server name for which the negotiated " \
    "protocol is disabled"
# the listeners' servers with HTTP/2, by listener (see http2_servers)
_H2_SERVERS: dict[int, tuple[Listener, frozenset[int] | None]] = {}


def http2_servers(listener: Listener) -> frozenset[int] | None:
    """The ids of the listener's servers a stream may be routed to, or None when all of them
    may: nginx answers 421 to a stream whose Host picks a server with `http2 off`, unless a
    `listen ... http2` on this address enables HTTP/2 for every server on it."""
    hit = _H2_SERVERS.get(id(listener))
    if hit is not None and hit[0] is listener:
        return hit[1]
    port = listener.key[1]
    servers = listener.servers
    if any(ls.http2 for srv in servers for ls in srv.listens if ls.port == port) or \
            all(srv.http2 for srv in servers):
        allowed = None
    else:
        allowed = frozenset(id(srv) for srv in servers if srv.http2)
    if len(_H2_SERVERS) > 256:      # listeners of configurations reloaded away
        _H2_SERVERS.clear()
    _H2_SERVERS[id(listener)] = (listener, allowed)
    return allowed


def _sni_found(lst: Listener, local_addr: str, name: str) -> bool:
    """Whether the SNI name picks a server by its names (not by default), as
    ngx_http_find_virtual_server did when the handshake chose the server."""
    idx = lst.by_addr.get(local_addr, lst.index) if lst.by_addr else lst.index
    if name in idx.exact or match_wildcard(idx.head, idx.tail, name) is not None:
        return True
    return any(rx.search(name) is not None for rx, _ in idx.regex)


def client_cert_refusal(lst: Listener, info: ConnectionInfo, head: RequestHead
                        ) -> tuple[int, ServerConf, str] | None:
    """nginx's answer before any phase runs, for a request on a TLS listener with a verifying
    server: (status, the server whose error pages apply, what is logged), or None to go on.

    ngx_http_set_virtual_server: once the SNI name chose a server, a Host naming another
    name is 421 when the server it picks verifies certificates. ngx_http_process_request:
    a server with `ssl_verify_client` answers 495 to a failed verification and, with `on`,
    496 to a connection without a certificate."""
    if not info.ssl_protocol:        # a plain HTTP request on the ssl port: the 497 path
        return None
    host = compute_host(head.host, lst.default_server) if head.host else ""
    srv = lst.find_server(info.server_addr, host)
    mode = srv.ssl.verify_client
    if mode == "off":
        return None
    sni = info.ssl_server_name.lower()
    if sni.endswith("."):
        sni = sni[:-1]
    if sni and sni != host and _sni_found(lst, info.server_addr, sni):
        return 421, srv, ("client attempted to request the server name different from the "
                          "one that was negotiated while reading client request headers")
    cert = info.client_cert
    verify = cert.verify() if cert is not None else "NONE"
    if verify.startswith("FAILED:"):
        reason = verify[7:]
        code = 22 if reason == CHAIN_TOO_LONG else 0
        return 495, srv, (f"client SSL certificate verify error: ({code}:{reason}) while "
                          "reading client request headers")
    if mode == "on" and verify == "NONE":
        return 496, srv, ("client sent no required SSL certificate while reading client "
                          "request headers")
    return None


def start_request(info: ConnectionInfo, head: RequestHead, listener: Listener) -> RequestState:
    """A request's state as its phases start (Pipeline.handle; explain starts one the same
    way): the server the Host picks on the listener (ngx_http_set_virtual_server), its regex
    captures, $host and $server_name."""
    # without a Host the server is looked up by "" (a `server_name ""` server, else the
    # default one); $host is then that server's name
    host = compute_host(head.host, listener.default_server) if head.host else ""
    server, match = listener.find_server_match(info.server_addr, host)
    r = RequestState(info, head, server)
    if match is not None:
        r.captures = match
        if match.re.groupindex:
            # named captures outlive later regex matches (they are variables in nginx)
            r.vars.update({k: v or "" for k, v in match.groupdict().items()})
    r.host = host or server.server_name
    r.server_name = server.server_name
    return r


class Pipeline:
    def __init__(self, rt: PipelineHost) -> None:
        self.rt = rt
        # the two calls on the runtime every request makes, bound once: through the protocol
        # the compiled build would look each attribute up and bind it per request (about 1%
        # of a proxied request's instructions); the runtime's proxy exists by now
        self._content: Callable[[RequestState, Exchange, LocationConf], Awaitable[None]] = \
            rt.proxy.run
        self._write_access: Callable[[RequestState, tuple[AccessLog, ...]], None] = \
            rt.write_access
        self._rewrite_plans: dict[int, tuple[RewriteOp, RewritePlan]] = {}

    # -- entry -------------------------------------------------------------------------

    def serve(self, ex: Exchange, info: ConnectionInfo, listener: Listener
              ) -> Coroutine[Any, Any, None]:
        """The coroutine that answers one request: the phases, after nginx's client
        certificate check on a listener where a server verifies them."""
        if listener.client_verify:
            return self._verified(ex, info, listener)
        return self.handle(ex, info, listener)

    async def _verified(self, ex: Exchange, info: ConnectionInfo, listener: Listener) -> None:
        """nginx's certificate check, then the phases, or the special response the check
        chose (that server's error_page applies)."""
        verdict = client_cert_refusal(listener, info, ex.head)
        if verdict is None:
            await self.handle(ex, info, listener)
            return
        status, srv, msg = verdict
        self.rt.log.info(msg, info)
        await self.finish_bad_request(ex, info, srv, Finish(status))

    def http2_refusal(self, listener: Listener, info: ConnectionInfo, head: RequestHead
                      ) -> tuple[int, str] | None:
        """(421, why) for an HTTP/2 stream whose Host picks a server with `http2 off`."""
        allowed = http2_servers(listener)
        if allowed is None:
            return None
        srv = listener.find_server(info.server_addr,
                                   compute_host(head.host, listener.default_server))
        return None if id(srv) in allowed else (421, MISDIRECTED)

    def refuse(self, ex: Exchange, info: ConnectionInfo, listener: Listener, status: int,
               why: str) -> Coroutine[Any, Any, None]:
        """Log `why` (now, as nginx logs a refusal when it decides it) and return the
        coroutine that answers `status` to a request refused before any phase ran."""
        if why:
            self.rt.log.info(why, info)
        return self._refused(ex, info, listener, status)

    async def _refused(self, ex: Exchange, info: ConnectionInfo, listener: Listener,
                       status: int) -> None:
        srv = listener.default_server
        if status == 497 and ex.head.host:
            # nginx answers 497 once the request's headers named its server: that server's
            # error_page 497 applies (e.g. a redirect to https). The parser's refusals come
            # before any server is chosen: the default server's pages
            try:
                srv = listener.find_server(info.server_addr,
                                           compute_host(ex.head.host, listener.default_server))
            except Exception:
                srv = listener.default_server
        await self.finish_bad_request(ex, info, srv, Finish(status))

    async def handle(self, ex: Exchange, info: ConnectionInfo, listener: Listener) -> None:
        head = ex.head
        r = start_request(info, head, listener)
        server = r.server
        try:
            try:
                self.realip(r, server.settings)
                try:
                    r.uri = normalize_path(head.path, server.merge_slashes)
                except BadRequest:
                    raise Finish(400) from None
                await self.process(r, ex)
            except Finish as f:
                await self.finish(r, ex, f)
            except ProtocolError as e:
                ex.keep_alive = False
                await self.finish(r, ex, Finish(e.status))
        except (ClientGone, asyncio.CancelledError):
            # the client went away: nginx logs 499 and stops talking to the upstream
            if not ex.finished:
                ex.abort()
        except Exception as e:  # a bug must cost one request, never the worker
            self.rt.log.alert(f"unexpected error: {type(e).__name__}: {e}", info, r)
            self.rt.log.alert("stack: " + traceback.format_exc().replace("\n", " | "), info, r)
            if not ex.started:
                ex.keep_alive = False
                try:
                    await self.special(r, ex, 500)
                except Exception:
                    ex.abort()
            elif not ex.finished:
                ex.abort()
        finally:
            up = r.upstream_conn
            if up is not None and not up.is_closed():
                up.abort()  # the exchange did not end cleanly: never reuse, never leak
            if not ex.finished:
                ex.end()
            self.log_access(r, ex)

    async def finish_bad_request(self, ex: Exchange, info: ConnectionInfo, server: ServerConf,
                                 f: Finish) -> None:
        """Answer a request the parser refused (400, 413, 414, 494, 501, 505) and close;
        `server` is the listener's default server (or the one the request named, for a
        refusal that comes after the head was read: mTLS, HTTP on an HTTPS port)."""
        r = RequestState(info, ex.head, server)
        r.server_name = server.server_name
        r.host = compute_host(ex.head.host, server) or server.server_name
        try:
            await self.finish(r, ex, f)
        except ClientGone:
            pass
        finally:
            if not ex.finished:
                ex.end()
            self.log_access(r, ex)

    # -- realip ----------------------------------------------------------------------------

    def realip(self, r: RequestState, s: Any) -> None:
        """nginx's realip module. It runs after the request is read, with the server's
        settings, and again once the location is known, with the location's (its preaccess
        handler), unless the first run already replaced the address."""
        trusted = s.set_real_ip_from
        if not trusted or r.realip_done:
            return
        peer = r.conn.remote_addr
        if not _trusted(peer, trusted):
            return
        header = s.real_ip_header
        if header == "proxy_protocol":
            return
        lname = header.lower()
        values = [v for k, v in r.head.headers if k.lower() == lname]
        if not values:
            return
        if lname == "x-forwarded-for" or "," in ",".join(values):
            chain = [x.strip() for x in ",".join(values).split(",") if x.strip()]
        else:
            chain = [values[0].strip()]
        if not chain:
            return
        addr = chain[-1]
        if s.real_ip_recursive:
            for cand in reversed(chain):
                addr = cand
                if not _trusted(cand, trusted):
                    break
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            return
        r.realip_remote_addr = peer
        r.remote_addr = addr
        r.realip_done = True

    # -- phases ----------------------------------------------------------------------------

    async def process(self, r: RequestState, ex: Exchange) -> None:
        self.run_ops(r, r.server.ops, server_level=True)
        named: str | None = None
        while True:
            loc = self.route(r, named)
            try:
                await self.content(r, ex, loc)
                return
            except InternalRedirect as ir:
                named = self.follow(r, ir)
                self.server_rewrite(r, named)

    async def subrequest(self, sr: RequestState, ex: Exchange) -> None:
        """A subrequest's phases (proxy.subrequest): those of `process`, its special
        responses and error pages too, answered to the subrequest's exchange; no access
        log (nginx's log_subrequest off)."""
        try:
            await self.process(sr, ex)
        except Finish as f:
            await self.finish(sr, ex, f)

    def server_rewrite(self, r: RequestState, named: str | None) -> None:
        """After an internal redirect to a URI (error_page, X-Accel-Redirect, try_files,
        index), the server's rewrite instructions run again: ngx_http_internal_redirect
        restarts at the server rewrite phase. A named location skips them, and so does
        `rewrite ... last` (route() below: it restarts at the find-config phase)."""
        if named is None and r.server.ops:
            self.run_ops(r, r.server.ops, server_level=True)

    def route(self, r: RequestState, named: str | None = None,
              trace: list[tuple[str, Any]] | None = None) -> LocationConf:
        """Find the location and run its rewrite instructions, following the internal
        redirects they cause (`rewrite ... last`, a changed URI), as nginx's find-config and
        rewrite phases do. Synchronous: `explain` uses it too. Raises Finish."""
        while True:
            try:
                loc = self.find_location(r, named)
                # the location's configuration applies from here, its 413 included
                # (ngx_http_update_location_config runs before the body size check)
                r.loc = loc
                if named is None and not r.internal:
                    self.check_body_size(r, loc)
                named = None
                active = self.run_ops(r, loc.ops)
                if r.uri_changed:
                    r.uri_changed = False
                    if not r.rewrite_break:
                        raise InternalRedirect(r.uri, r.args)
                if active is not None:
                    if trace is not None:
                        trace.append(("if", active.where))
                    r.loc = active
                    return active
                return loc
            except InternalRedirect as ir:
                if trace is not None:
                    trace.append(("redirect", "@" + ir.named if ir.named else ir.uri))
                named = self.follow(r, ir)

    def follow(self, r: RequestState, ir: InternalRedirect) -> str | None:
        """Apply an internal redirect to the request; returns the named location, if any."""
        r.uri_changes -= 1
        if r.uri_changes <= 0:
            self.rt.log.error(f'rewrite or internal redirection cycle while internally '
                              f'redirecting to "{ir.named or ir.uri}"', r.conn, r)
            raise Finish(500)
        r.internal = True
        r.captures = None
        if ir.named:
            return ir.named
        r.uri = ir.uri
        r.uri_rewritten = True
        r.rewrite_break = False
        if ir.query is not None:
            r.args = ir.query or None
        return None

    def find_location(self, r: RequestState, named: str | None) -> LocationConf:
        server: ServerConf = r.server
        if named is not None:
            loc = server.named.get(named)
            if loc is None:
                self.rt.log.error(f'could not find named location "@{named}"', r.conn, r)
                raise Finish(500)
            return loc
        loc, caps, redirect = server.tree.lookup(r.uri)
        if loc is None:
            return server.default_loc  # type: ignore[return-value]
        if caps is not None:
            r.captures = caps
        if loc.internal and not r.internal:
            raise Finish(404)
        if redirect:
            # a proxied "location /x/" answers "/x" with a 301 to "/x/" (nginx's auto_redirect)
            raise Finish(301, location=escape_uri(r.uri + "/") + ("?" + r.args if r.args else ""))
        return loc

    def check_body_size(self, r: RequestState, loc: LocationConf) -> None:
        """ngx_http_core_find_config_handler: a declared body larger than the location's
        client_max_body_size is a 413 (which closes) before the location's rewrite
        instructions run; not checked again after an internal redirect."""
        n = r.head.content_length
        if n is not None:
            limit = loc.settings.client_max_body_size
            if limit and n > limit:
                self.rt.log.error(f"client intended to send too large body: {n} bytes",
                                  r.conn, r)
                raise Finish(413)

    async def content(self, r: RequestState, ex: Exchange, loc: LocationConf) -> None:
        r.loc = loc
        s = loc.settings
        ex.settings = s     # HTTP/1 keep-alive follows the location's settings
        if s.set_real_ip_from and not r.realip_done:
            self.realip(r, s)
        # preaccess: limit_req, limit_conn; a subrequest (auth_request's) is counted with
        # its main request, as nginx's handlers decline when r->main was seen
        if (s.limit_req or s.limit_conn) and r.parent is None:
            code = await preaccess(self.rt, r, ex, s)
            if code:
                raise Finish(code)
        if s.access_phase and (denied := await check_access(self, r, loc)):
            raise Finish(denied)
        if loc.proxy is not None:
            await self._content(r, ex, loc)
            return
        if s.try_files:
            await self.try_files(r, ex, loc)
            return
        await self.serve_static(r, ex, loc)

    # -- the rewrite module ---------------------------------------------------------------

    def run_ops(self, r: RequestState, ops: tuple[Any, ...], server_level: bool = False
                ) -> LocationConf | None:
        """Run rewrite-module instructions. Returns an `if` location that became active."""
        active: LocationConf | None = None
        for op in ops:
            t = type(op)
            if t is SetOp:
                r.vars[op.name] = op.value.render(r)
            elif t is ReturnOp:
                self.do_return(r, op)
            elif t is RewriteOp:
                m = op.regex.search(r.uri)
                if m is None:
                    continue
                r.captures = m
                plan = self.rewrite_plan(op)
                if plan.redirect:
                    raise Finish(plan.code, location=plan.location(r))
                if not plan.apply(r):
                    self.rt.log.error("the rewritten URI has a zero length", r.conn, r)
                    raise Finish(500)
                r.uri_rewritten = True
                if op.flag == "last":
                    if server_level:
                        return active
                    raise InternalRedirect(r.uri, r.args)
                if op.flag == "break":
                    # the URI stays in this location; proxy_pass then ignores its URI part
                    r.rewrite_break = True
                    return active
                if not server_level:
                    r.uri_changed = True
            elif t is BreakOp:
                return active
            elif t is IfOp:
                if self.test(r, op.cond):
                    if op.loc is not None:
                        active = op.loc
                    inner = self.run_ops(r, op.ops, server_level)
                    if inner is not None:
                        active = inner
                    if any(type(x) is BreakOp for x in op.ops):
                        return active
        return active

    def rewrite_plan(self, op: RewriteOp) -> RewritePlan:
        """The replacement of a `rewrite`, split as nginx's script compiler splits it; made
        once per directive (the model is frozen, so it is kept here by the op's identity)."""
        hit = self._rewrite_plans.get(id(op))
        if hit is not None and hit[0] is op:
            return hit[1]
        plan = RewritePlan(op)
        if len(self._rewrite_plans) > 4096:     # ops of configurations reloaded away
            self._rewrite_plans.clear()
        self._rewrite_plans[id(op)] = (op, plan)
        return plan

    def test(self, r: RequestState, c: Condition) -> bool:
        left = c.left.render(r)
        k = c.kind
        if k == "var":
            return left not in ("", "0")
        if k == "eq":
            return left == (c.right.render(r) if c.right else "")
        if k == "ne":
            return left != (c.right.render(r) if c.right else "")
        if k in ("re", "nre"):
            assert c.regex is not None
            m = c.regex.search(left)
            if m is not None and k == "re":
                r.captures = m
            return (m is not None) == (k == "re")
        if k == "file":
            neg = c.file_test.startswith("!")
            test = c.file_test.lstrip("!")
            if test == "-f":
                ok = os.path.isfile(left)
            elif test == "-d":
                ok = os.path.isdir(left)
            elif test == "-e":
                ok = os.path.exists(left)
            else:
                ok = os.access(left, os.X_OK)
            return ok != neg
        return False

    def do_return(self, r: RequestState, op: ReturnOp) -> None:
        code = op.code
        text = op.text.render(r) if op.text is not None else None
        if code == 444:
            raise Finish(444)
        if code in REDIRECTS:
            raise Finish(code, location=text or "", send=True)
        if text is None and code < 400:
            # ngx_http_script_return_code: below 400 (or with text) the response is sent
            # at once, empty, and so takes an error_page's status; 400 and above without
            # text is a special response (the built-in page, or error_page again)
            text = ""
        raise Finish(code, text=text, send=text is not None)

    # -- content: files --------------------------------------------------------------------

    def file_path(self, r: RequestState, loc: LocationConf, uri: str) -> tuple[str, str]:
        """(filesystem path, the root or alias directory it must stay inside)."""
        s = loc.settings
        if s.alias is not None:
            alias = s.alias.render(r)
            if loc.modifier in ("~", "~*"):
                path = alias
                base = os.path.dirname(alias.rstrip("/")) if not alias.endswith("/") else alias
            else:
                path = static.map_path(uri, root=s.root, alias=alias,
                                       location_prefix=loc.pattern)
                base = alias
            return path, base
        root = s.root
        return static.map_path(uri, root=root, alias=None, location_prefix=loc.pattern), root

    async def try_files(self, r: RequestState, ex: Exchange, loc: LocationConf) -> None:
        """nginx's try_files: an entry written with a trailing slash tests a directory (the
        slash is dropped from the URI), the others a file; the first that exists becomes the
        URI served here; else the last entry (=code, @named, or a URI) decides."""
        s = loc.settings
        assert s.try_files is not None
        *cands, last = s.try_files
        for cand in cands:
            u = cand.render(r)
            test_dir = cand.source.endswith("/")
            if test_dir:
                u = u[:-1]
            if not u:
                continue
            path, base = self.file_path(r, loc, u)
            target = static.resolve(path, root_dir=base)
            if isinstance(target, static.StaticError) or target.is_dir != test_dir:
                continue
            if u != r.uri:
                r.uri = u
                r.uri_rewritten = True
            await self.serve_static(r, ex, loc)
            return
        fallback = last.render(r)
        if fallback.startswith("="):
            code = fallback[1:]
            if not code.isdigit():
                raise Finish(500)
            raise Finish(int(code))
        if fallback.startswith("@"):
            raise InternalRedirect("", named=fallback[1:])
        uri, q, args = fallback.partition("?")
        raise InternalRedirect(uri, args if q else None)

    async def serve_static(self, r: RequestState, ex: Exchange, loc: LocationConf) -> None:
        s = loc.settings
        head = r.head
        err = static.method_error(head.method)
        if err is not None:
            raise Finish(err.status)
        uri = r.uri
        path, base = self.file_path(r, loc, uri)
        if uri.endswith("/"):
            idx = static.find_index(uri, path, [i.render(r) for i in s.index],
                                    root_dir=base)
            if isinstance(idx, static.IndexRedirect):
                raise InternalRedirect(idx.uri, r.args)
            if idx.status != 404 or s.log_not_found:
                self.rt.log.error(idx.reason, r.conn, r)
            raise Finish(idx.status)
        if s.gzip_static != "off" or s.brotli_static != "off":
            pre = gzip.precompressed(r, s, path, base, lambda m: self.rt.log.error(m, r.conn, r))
            if pre is not None:
                await self.send_file(r, ex, s, pre[0], pre[1], pre[2])
                return
        target = static.resolve(path, root_dir=base)
        if isinstance(target, static.StaticError):
            if target.status != 404 or s.log_not_found:
                self.rt.log.error(target.reason, r.conn, r)
            raise Finish(target.status)
        if target.is_dir:
            raise Finish(301, location=static.dir_redirect_location(
                uri, r.args, r.conn.scheme, "", None, 0, False))
        err = static.method_error(head.method, found=True)
        if err is not None:
            raise Finish(err.status)
        opened = static.open_file(target)
        if isinstance(opened, static.StaticError):
            self.rt.log.error(opened.reason, r.conn, r)
            raise Finish(opened.status)
        await self.send_file(r, ex, s, opened[0], opened[1], "")

    async def send_file(self, r: RequestState, ex: Exchange, s: Settings, fd: int,
                        st: os.stat_result, encoding: str) -> None:
        """An open file as the answer (the static handler's second half; `encoding`:
        the Content-Encoding of a gzip_static .gz or brotli_static .br, else "")."""
        head = r.head
        uri = r.uri
        f = os.fdopen(fd, "rb")
        try:
            if ex.body.error is not None:
                # ngx_http_static_handler discards the body once the file is open: a bad
                # chunk already here is the answer (400)
                bad = ex.discard_body()
                if bad:
                    raise Finish(bad)
            mime = static.mime_for(uri, s.types, s.default_type)
            hdrs = {k.lower(): v for k, v in head.headers}
            if (s.gzip or s.brotli) and not encoding and "range" in hdrs and \
                    gzip.drop_range(r, s, self.response_status(r, 200), mime, st.st_size):
                del hdrs["range"]
            plan = static.plan_response(head.method, hdrs, st, mime, etag_on=s.etag,
                                        max_ranges=s.max_ranges,
                                        if_modified_since=_ims_mode(s.if_modified_since))
            status = plan.status
            if encoding and not plan.special:
                plan.headers.append(("Content-Encoding", encoding))
            if plan.special:
                r.extra_headers = plan.headers
                raise Finish(status)
            headers = [h for h in plan.headers if h[0] != "Content-Length"]
            status = self.response_status(r, status)
            kept = r.error_location
            if kept is not None:
                headers.append(("Location", self.absolute_location(r, kept)))
            out = send_header(r, ex, status, headers,
                              None if status == 304 else plan.content_length,
                              REASONS.get(status, ""), mtime=st.st_mtime)
            if status != 304 and not ex.head_only:
                parts = static.split_parts(plan.body, s.sendfile_max_chunk)
                last = len(parts) - 1
                for i, part in enumerate(parts):
                    if isinstance(part, bytes):
                        out.write(part)
                    else:
                        await out.sendfile(f, part[0], part[1])
                        if i < last:
                            await asyncio.sleep(0)  # sendfile_max_chunk: others get a turn
                    await out.drain()
            out.end()
        finally:
            f.close()

    # -- responses -------------------------------------------------------------------------

    def absolute_location(self, r: RequestState, location: str) -> str:
        """nginx's header filter on a relative Location: scheme, host and port are added.
        The host is server_name with `server_name_in_redirect on`, else the request's
        (validated) Host, else the address the connection came in on; never the
        server_name fallback of $host."""
        if not location.startswith("/"):
            return location
        s = r.loc.settings if r.loc is not None else r.server.settings
        if not s.absolute_redirect:
            return location
        if s.server_name_in_redirect:
            host = r.server.primary_name
        elif r.head.host:
            host = r.host
        else:
            host = r.conn.server_addr
            if ":" in host:
                # nginx prints a local IPv6 address here without brackets (ngx_sock_ntop
                # with no port), which no client can parse; the brackets are added
                host = f"[{host}]"
        port = ""
        default = 443 if r.conn.scheme == "https" else 80
        if s.port_in_redirect and r.conn.server_port != default:
            port = f":{r.conn.server_port}"
        return f"{r.conn.scheme}://{host}{port}{location}"

    async def finish(self, r: RequestState, ex: Exchange, f: Finish) -> None:
        if ex.started:
            if not ex.finished:
                ex.abort()
            return
        ex.settings = r.loc.settings if r.loc is not None else r.server.settings
        status = f.status
        if status == 444:
            r.status = 444
            ex.abort()
            return
        if f.send and ex.body.error is not None:
            bad = ex.discard_body()
            if bad:
                # the body nginx discards before sending is broken: its status is the answer
                await self.special(r, ex, bad)
                return
        if f.text is not None and status not in REDIRECTS:
            # `return code text` (and `return code` below 400): ngx_http_send_response
            await self.respond_text(r, ex, status, f.text)
            return
        await self.special(r, ex, status, f.location)

    async def respond_text(self, r: RequestState, ex: Exchange, status: int, text: str) -> None:
        s = r.loc.settings if r.loc is not None else r.server.settings
        body = text.encode("latin-1", "replace")
        status = self.response_status(r, status)
        # a 204 is sent without a type (and a length), as nginx's header filter does
        headers = [] if status == 204 else [("Content-Type", s.default_type)]
        kept = r.error_location
        if kept is not None:
            headers.append(("Location", self.absolute_location(r, kept)))
        out = send_header(r, ex, status, headers, len(body), REASONS.get(status, ""))
        out.write(body)
        out.end()

    async def special(self, r: RequestState, ex: Exchange, status: int,
                      location: str | None = None) -> None:
        """nginx's special responses: error_page first, then the built-in page."""
        loc = r.loc
        s = loc.settings if loc is not None else r.server.settings
        if status >= 300 and s.error_page and status in s.error_page and not r.in_error_page:
            ep = s.error_page[status]
            if location is not None:
                # a Location set before the redirect (`return 302 text`) stays in the
                # response headers the error page is sent with
                r.error_location = location
            await self.error_page(r, ex, status, ep)
            return
        headers: list[tuple[str, str]] = []
        body = error_page_body(status, bool(s.server_tokens))
        if body:
            headers.append(("Content-Type", "text/html"))
        if location is None:
            location = r.error_location
        if location is not None:
            headers.append(("Location", self.absolute_location(r, location)))
        extra = r.extra_headers
        if extra is not None:
            r.extra_headers = None
            headers.extend(extra)
        # 494-497 are sent as 400, and nginx's $status is the 400 it sends; the filters
        # see it too (no add_header or expires status differs between them)
        wire = SENT_AS.get(status, status)
        out = send_header(r, ex, wire, headers, len(body), REASONS.get(wire, ""),
                          close=status in CLOSE_AFTER)
        out.write(body)
        out.end()

    async def error_page(self, r: RequestState, ex: Exchange, status: int, ep: Any) -> None:
        target = ep.uri.render(r)
        r.in_error_page = not (r.loc.settings if r.loc is not None
                               else r.server.settings).recursive_error_pages
        code = ep.code
        if target.startswith(("http://", "https://")):
            rc = code if code in REDIRECTS else 302
            await self.special(r, ex, rc, target)
            return
        # internal redirect; the final status is the override, or the original status
        # (nginx's r->err_status, which ngx_http_send_header puts on whatever the redirected
        # request sends, unless that ends in a special response of its own)
        r.error_status = status if code is None else code
        r.head.method = "GET" if r.head.method != "HEAD" else "HEAD"
        r.internal = True
        named: str | None = None
        if target.startswith("@"):
            named = target[1:]
        else:
            uri, _, args = target.partition("?")
            r.uri = uri
            r.args = args or None
            r.uri_rewritten = True
        try:
            self.server_rewrite(r, named)
            while True:
                loc = self.route(r, named)
                try:
                    await self.content(r, ex, loc)
                    return
                except InternalRedirect as ir:
                    named = self.follow(r, ir)
                    self.server_rewrite(r, named)
        except Finish as f:
            await self.finish(r, ex, f)

    def response_status(self, r: RequestState, status: int) -> int:
        """The status to send after an error_page redirect (`=code`, `=`, or the original)."""
        es = r.error_status
        return es if es else status

    # -- access log ------------------------------------------------------------------------

    def log_access(self, r: RequestState, ex: Exchange) -> None:
        r.body_bytes_sent = ex.body_bytes_sent
        r.bytes_sent = ex.bytes_sent
        if not r.status:
            r.status = ex.status or (499 if ex.aborted else 0)
        if ex.aborted and not ex.started and r.status != 444:
            r.status = 499
        loc = r.loc
        s = loc.settings if loc is not None else r.server.settings
        logs = s.access_log
        if not logs:
            return
        self._write_access(r, logs)


def _trusted(addr: str, nets: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return "unix:" in nets and addr == "unix:"
    for n in nets:
        if n != "unix:" and ip in n:
            return True
    return False


def _ims_mode(v: str) -> Literal["exact", "before", "off"]:
    if v == "before":
        return "before"
    if v == "off":
        return "off"
    return "exact"
