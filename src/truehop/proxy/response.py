"""The upstream's response head as relayed (nginx's ngx_http_upstream_process_headers and
the proxy module's header handlers): hidden and hop-by-hop fields dropped
(proxy_hide_header / proxy_pass_header), a repeated single-valued field ignored,
Location and Refresh rewritten (proxy_redirect), Set-Cookie rewritten
(proxy_cookie_domain / proxy_cookie_path), and the X-Accel-* fields read
(X-Accel-Buffering, X-Accel-Redirect) and acted on (`process_accel`).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Final

from truehop.conf.model import CookieFlags, LocationConf, RedirectRule, Settings
from truehop.http.events import ResponseHead
from truehop.net.upstream import UpstreamConnection
from truehop.proxy.cookie_flags import cookie_mask, edit_flags
from truehop.proxy.pacing import accel_limit_rate, upstream_rates
from truehop.proxy.pipeline import Finish, InternalRedirect
from truehop.proxy.upstreams import ProxyRuntime
from truehop.route.state import RequestState

# response headers nginx keeps once (ngx_http_upstream_process_header_line and friends)
_UNIQUE_RESPONSE: Final = frozenset({"content-type", "last-modified", "etag", "location", "refresh",
                              "expires", "content-encoding"})
# response headers nginx hides by default (proxy_hide_header's built-in list)
HIDE_DEFAULT: Final = frozenset({"date", "server", "x-pad", "x-accel-expires", "x-accel-redirect",
                          "x-accel-limit-rate", "x-accel-buffering", "x-accel-charset"})
RESPONSE_HOP: Final = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                          "upgrade", "te", "trailer", "content-length", "http2-settings"})
# what an X-Accel-Redirect response hands on to the final one (nginx's headers_in entries
# marked `redirect` in ngx_http_upstream.c)
XAR_KEEP: Final = frozenset({"content-type", "set-cookie", "content-disposition", "cache-control",
                      "expires", "accept-ranges"})

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
_ACT_RATE: Final = 9        # X-Accel-Limit-Rate: the response's limit_rate (proxy.pacing)


class ResponsePlan:
    """What a location's settings say about the headers of every response it proxies,
    worked out once per `Settings`: the per-response loop then only looks a name up."""

    __slots__ = ("response_drop", "honor_accel_buffering", "honor_accel_redirect",
                 "honor_accel_rate", "response_action", "cookie_domain", "cookie_path",
                 "cookie_flags")

    def __init__(self, s: Settings) -> None:
        hide = HIDE_DEFAULT.union(s.proxy_hide_header)
        if s.proxy_pass_header:
            hide = hide.difference(s.proxy_pass_header)
        # Upgrade is relayed in a non-101 answer as nginx does (a 426 must say which protocol
        # to upgrade to); the HTTP/2 layer drops it for HTTP/2 clients
        self.response_drop = frozenset(hide | RESPONSE_HOP) - {"upgrade"}
        self.honor_accel_buffering = "x-accel-buffering" not in s.proxy_ignore_headers
        self.honor_accel_redirect = "x-accel-redirect" not in s.proxy_ignore_headers
        self.honor_accel_rate = "x-accel-limit-rate" not in s.proxy_ignore_headers
        # per field name as sent (a bounded cache): most upstreams spell the same few names
        # the same way, so the loop over every field skips lower() and set tests
        self.response_action: dict[str, int] = {}
        self.cookie_domain: tuple[RedirectRule, ...] = s.proxy_cookie_domain
        self.cookie_path: tuple[RedirectRule, ...] = s.proxy_cookie_path
        self.cookie_flags: tuple[CookieFlags, ...] = s.proxy_cookie_flags

    def action(self, name: str) -> int:
        """What the response pass does with an upstream field (the _ACT_* codes)."""
        lk = name.lower()
        if lk == "x-accel-buffering":
            act = _ACT_ACCEL
        elif lk == "x-accel-redirect" and self.honor_accel_redirect:
            act = _ACT_XAR
        elif lk == "x-accel-limit-rate" and self.honor_accel_rate:
            act = _ACT_RATE
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
        elif lk == "set-cookie" and (self.cookie_domain or self.cookie_path
                                     or self.cookie_flags):
            act = _ACT_COOKIE
        else:
            act = _ACT_PASS
        if len(self.response_action) < _NAME_CACHE_MAX:
            self.response_action[name] = act
        return act


def response_headers(rt: ProxyRuntime, r: RequestState, plan: ResponsePlan, s: Settings,
                     loc: LocationConf, rh: ResponseHead, keep_connection: bool = False
                     ) -> tuple[list[tuple[str, str]], str, bool | None]:
    """The upstream's headers as relayed, in one pass: hidden and hop-by-hop ones dropped
    (Upgrade is kept, as nginx does; `keep_connection` keeps Connection too, for a 101),
    a repeated single-valued one ignored with nginx 1.23's warning, Location and Refresh
    rewritten. Also its Content-Type, and what its X-Accel-Buffering asks: True for
    unbuffered, False for buffered, None when it asks nothing (or is ignored)."""
    actions = plan.response_action
    named = rh.conn_tokens
    if named:
        # fields the upstream's Connection names are hop-by-hop too (Upgrade excepted)
        named = named.difference(plan.response_drop, ("upgrade",))
    out: list[tuple[str, str]] = []
    ctype = ""
    unbuffered: bool | None = None
    accel_rate: str | None = None
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
            out.append((k, rewrite_cookie(r, v, plan.cookie_domain, plan.cookie_path,
                                          plan.cookie_flags)))
            continue
        if act == _ACT_XAR:
            r.x_accel_redirect = v    # process_accel turns the response into a redirect
            continue
        if act == _ACT_RATE:
            if accel_rate is None:
                accel_rate = v
                accel_limit_rate(r, v)
            else:
                rt.log.warn(f'upstream sent duplicate header line: "{k}: {v}", previous '
                            f'value: "{k}: {accel_rate}", ignored', r.conn, r)
            if "x-accel-limit-rate" not in plan.response_drop:
                out.append(kv)        # proxy_pass_header X-Accel-Limit-Rate
            continue
        lk = k.lower()
        if seen is None:
            seen = {lk: v}
        elif lk in seen:
            rt.log.warn(f'upstream sent duplicate header line: "{k}: {v}", '
                             f'previous value: "{k}: {seen[lk]}", ignoring it', r.conn, r)
            continue
        else:
            seen[lk] = v
        if act == _ACT_CTYPE:
            ctype = v
        elif act == _ACT_REDIRECT:
            nv = rewrite_redirect(r, s, loc, v, lk == "refresh")
            if lk == "location" and nv.startswith("/") and nv is not v:
                # nginx's header filter makes a relative Location absolute, but only one
                # that proxy_redirect rewrote (ngx_http_upstream_rewrite_location sets
                # r->headers_out.location then only): the upstream's own stays relative
                nv = rt.pipeline.absolute_location(r, nv)
            v = nv
            kv = (k, v)
        out.append(kv)
    return out, ctype, unbuffered


def rewrite_redirect(r: RequestState, s: Settings, loc: LocationConf, value: str,
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
        out = _default_redirect(loc, target)
        return value if out is None else value[:prefix_at] + out
    for rule in pr.rules:
        if rule.kind == "default":
            out = _default_redirect(loc, target)
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


def process_accel(rt: ProxyRuntime, r: RequestState, s: Settings, conn: UpstreamConnection,
                  headers: list[tuple[str, str]], accel_buffering: bool | None) -> bool:
    """What the upstream's X-Accel-* fields (read by `response_headers`) do, as nginx's
    ngx_http_upstream_process_headers: X-Accel-Redirect drops the upstream's body and
    redirects internally, handing on the fields of XAR_KEEP (always raises);
    X-Accel-Buffering chooses how the body is relayed. Returns True for unbuffered.

    This is the one place they act, and it sits before the response filter chain
    (proxy.filters), not in it, as in nginx, where the upstream module handles them
    before ngx_http_send_header: they decide whether this response is sent at all and
    how its body is read, which no header filter can (a filter sees a head being sent).
    X-Accel-Limit-Rate (read by `response_headers`) and the buffering mode decide the
    response's rates (proxy.pacing.upstream_rates: an unbuffered response is not
    limited, a buffered one reads at proxy_limit_rate). X-Accel-Expires only steers
    nginx's proxy cache, which truehop does not have (the field is hidden, as nginx hides
    it); X-Accel-Charset, hidden too, belongs to issue 15's charset."""
    xar = r.x_accel_redirect
    if xar is not None:
        r.x_accel_redirect = None
        conn.abort()        # the app names what to serve instead; its body is not wanted
        r.carried_headers = [kv for kv in headers if kv[0].lower() in XAR_KEEP]
        accel_redirect(rt, r, xar)
    unbuffered = accel_buffering if accel_buffering is not None else not s.proxy_buffering
    if unbuffered or r.limits is not None or s.proxy_limit_rate != 0:
        upstream_rates(r, s, unbuffered)
    return unbuffered


def accel_redirect(rt: ProxyRuntime, r: RequestState, value: str) -> None:
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


def rewrite_cookie(r: RequestState, value: str, domains: tuple[RedirectRule, ...],
                   paths: tuple[RedirectRule, ...],
                   flags: tuple[CookieFlags, ...] = ()) -> str:
    """proxy_cookie_domain / proxy_cookie_path on one Set-Cookie value, as nginx 1.30's
    ngx_http_proxy_rewrite_cookie: the attributes after the first are split at ';' (spaces
    around names and values dropped); the first rule that applies to a Domain or Path value
    rewrites it; if any did, the cookie is written back as `name=value; attr=value; ...`,
    else it is left as it came. proxy_cookie_flags (proxy.cookie_flags) then sets or clears
    Secure, HttpOnly and SameSite, and the cookie is written back if it changed anything."""
    parts = value.split(";")
    if "=" not in parts[0] or (len(parts) < 2 and not flags):
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
    if flags:
        mask = cookie_mask(r, attrs[0][0], flags)
        if mask:
            attrs = edit_flags(attrs, mask)
            changed = True
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
