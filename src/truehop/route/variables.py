"""nginx variables: the getters, and the scope that compiles config strings into templates.

A `route.template.Template` is the compiled form of a config string such as `"t=${msec}"`:
literal parts and getter functions. Getters here take a `RequestState` and return a str.
Names are resolved at config time by a `VariableScope`, so an unknown variable is a config
error (as in nginx: `unknown "foo" variable`), and the per-request path is a list walk.

nginx's variables can be "not found" (an absent header, `$remote_user` without credentials,
`$upstream_addr` before any upstream). Everywhere but the access log that reads as "", and
that is what getters return. A getter whose value can be not found carries a twin, recorded
with `_nf` (route.template's table), returning None then, for the access log.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
import socket
import time
from collections.abc import Callable
from typing import Final

from truehop.conf.values import parse_size
from truehop.route.state import RequestState
from truehop.route.template import Template, log_getter
from truehop.route.template import not_found_twin as _nf

Getter = Callable[[RequestState], str]
# a getter that returns None for nginx's "not found" (the access log's view of a variable)
LogGetter = Callable[[RequestState], str | None]

_VAR: Final = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z_][A-Za-z0-9_]*|[0-9]))")


# Every variable of nginx 1.30 (and the common NGINX Plus ones) by the module that defines
# it, from its documentation's variable index; names ending in "_" are prefixed families
# ($http_NAME). A name here that truehop does not provide is refused as not supported, with
# its module; any other unknown name keeps nginx's typo message, `unknown "x" variable`.
_NGINX_VARIABLES: Final[dict[str, str]] = {
    "ngx_http_core_module": (
        "arg_ args binary_remote_addr body_bytes_sent bytes_sent connection "
        "connection_requests connection_time content_length content_type cookie_ "
        "document_root document_uri host hostname http_ https is_args limit_rate msec "
        "nginx_version pid pipe proxy_protocol_addr proxy_protocol_port "
        "proxy_protocol_server_addr proxy_protocol_server_port proxy_protocol_tlv_ "
        "query_string realpath_root remote_addr remote_port remote_user request "
        "request_body request_body_file request_completion request_filename request_id "
        "request_length request_method request_time request_uri scheme sent_http_ "
        "sent_trailer_ server_addr server_name server_port server_protocol status "
        "tcpinfo_rtt tcpinfo_rttvar tcpinfo_snd_cwnd tcpinfo_rcv_space time_iso8601 "
        "time_local uri"),
    "ngx_http_auth_jwt_module (NGINX Plus)": "jwt_claim_ jwt_header_ jwt_payload",
    "ngx_http_browser_module": "ancient_browser modern_browser msie",
    "ngx_http_fastcgi_module": "fastcgi_path_info fastcgi_script_name",
    "ngx_http_geoip_module": (
        "geoip_country_code geoip_country_code3 geoip_country_name geoip_area_code "
        "geoip_city_continent_code geoip_city_country_code geoip_city_country_code3 "
        "geoip_city_country_name geoip_dma_code geoip_latitude geoip_longitude geoip_region "
        "geoip_region_name geoip_city geoip_postal_code geoip_org"),
    "ngx_http_gzip_module": "gzip_ratio",
    "ngx_http_limit_conn_module": "limit_conn_status",
    "ngx_http_limit_req_module": "limit_req_status",
    "ngx_http_memcached_module": "memcached_key",
    "ngx_http_proxy_module": "proxy_add_x_forwarded_for proxy_host proxy_port",
    "ngx_http_realip_module": "realip_remote_addr realip_remote_port",
    "ngx_http_referer_module": "invalid_referer",
    "ngx_http_secure_link_module": "secure_link secure_link_expires",
    "ngx_http_session_log_module (NGINX Plus)": "session_log_binary_id session_log_id",
    "ngx_http_slice_module": "slice_range",
    "ngx_http_ssi_module": "date_local date_gmt",
    "ngx_http_ssl_module": (
        "ssl_alpn_protocol ssl_cipher ssl_ciphers ssl_client_cert ssl_client_escaped_cert "
        "ssl_client_fingerprint ssl_client_i_dn ssl_client_i_dn_legacy ssl_client_raw_cert "
        "ssl_client_s_dn ssl_client_s_dn_legacy ssl_client_serial ssl_client_sigalg "
        "ssl_client_v_end ssl_client_v_remain ssl_client_v_start ssl_client_verify ssl_curve "
        "ssl_curves ssl_early_data ssl_ech_outer_server_name ssl_ech_status ssl_protocol "
        "ssl_server_name ssl_session_id ssl_session_reused ssl_sigalg"),
    "ngx_http_stub_status_module": (
        "connections_active connections_reading connections_writing connections_waiting"),
    "ngx_http_upstream_module": (
        "upstream_addr upstream_bytes_received upstream_bytes_sent upstream_cache_status "
        "upstream_connect_time upstream_cookie_ upstream_header_time upstream_http_ "
        "upstream_last_server_name upstream_queue_time upstream_response_length "
        "upstream_response_time upstream_status upstream_trailer_"),
    "ngx_http_userid_module": "uid_got uid_reset uid_set",
    "ngx_http_v2_module": "http2",
    "ngx_http_v3_module": "http3",
}
NGINX_VARIABLES: Final[dict[str, str]] = {
    n: m for m, names in _NGINX_VARIABLES.items() for n in names.split()}
_NGINX_PREFIXES: Final = tuple((n, m) for n, m in NGINX_VARIABLES.items() if n.endswith("_"))


def nginx_module_of(name: str) -> str | None:
    """The nginx module that defines variable `name` (None: not an nginx variable)."""
    m = NGINX_VARIABLES.get(name)
    if m is not None:
        return m
    for prefix, module in _NGINX_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return module
    return None


class UnknownVariable(ValueError):
    def __init__(self, name: str) -> None:
        module = nginx_module_of(name)
        if module is None:
            super().__init__(f'unknown "{name}" variable')
        else:
            super().__init__(f'"{name}" variable is not supported by truehop ({module})')
        self.name = name
        self.module = module


def _find_header(headers: list[tuple[str, str]], n: int, dash: str, under: str | None,
                 sep: str) -> str | None:
    """The value of the fields named `dash` (lower-case, '-' between words; `n` its length),
    repeated ones joined with `sep` as nginx >= 1.23 does; None when there is none. `under`,
    when given, is the variable's own suffix: a field whose name, lower-cased with '-' read
    as '_', equals it matches too (nginx's ngx_http_variable_unknown_header, which is what
    lets `$http_x_foo` see an `x_foo` field kept by `underscores_in_headers on`)."""
    first: str | None = None
    more: list[str] | None = None
    for k, v in headers:
        if len(k) != n:
            continue
        kl = k.lower()
        if kl != dash and (under is None or "_" not in kl or kl.replace("-", "_") != under):
            continue
        if first is None:
            first = v
        elif more is None:
            more = [first, v]
        else:
            more.append(v)
    if more is not None:
        return sep.join(more)
    return first


def _header(head_headers: list[tuple[str, str]], lname: str, joiner: str | None) -> str:
    """The fields named `lname` (lower-case) joined with `joiner`, or the first one when
    `joiner` is None; "" when there is none."""
    if joiner is None:
        for k, v in head_headers:
            if len(k) == len(lname) and k.lower() == lname:
                return v
        return ""
    vals = [v for k, v in head_headers if len(k) == len(lname) and k.lower() == lname]
    return joiner.join(vals)


def _upstream_times(r: RequestState, field: str) -> str:
    """$upstream_{connect,header,response}_time: seconds with milliseconds per attempt, "-"
    for a point the attempt never reached (or has not reached yet)."""
    out = []
    for t in r.upstream_tries:
        at = getattr(t, field)
        out.append("-" if at is None else f"{max(at - t.start, 0.0):.3f}")
    return ", ".join(out)


def _upstream_counts(r: RequestState, field: str) -> str:
    """$upstream_bytes_{sent,received}, $upstream_response_length: one number per attempt."""
    return ", ".join([str(getattr(t, field)) for t in r.upstream_tries])


def _http2(r: RequestState) -> str:
    """$http2: "h2" over TLS, "h2c" over cleartext, "" for HTTP/1.x."""
    if r.head.version != "2.0":
        return ""
    return "h2" if r.conn.scheme == "https" else "h2c"


# $http_NAME that nginx reads from its own field of headers_in (ngx_http_core_variables):
# only the field spelled with '-' counts, not one spelled with '_'
_DEDICATED_IN: Final = frozenset(("host", "user_agent", "referer", "via", "x_forwarded_for", "cookie",
                           "content_type"))


def _fields_var(which: str, name: str, sep: str = ", ", dedicated: bool = False) -> Getter:
    """A getter of the fields named by a variable suffix `name`: the request's (`which` is
    "in"), the response's ("sent") or the upstream's ("upstream"); its `nf` twin says None
    when there is none. One closure per list keeps the hot getter a single call."""
    key = name.lower()
    dash = key.replace("_", "-")
    n = len(dash)
    under = None if dedicated or "_" not in key else key

    if which == "sent":
        def nf(r: RequestState) -> str | None:
            return _find_header(r.sent_headers, n, dash, under, sep)

        def get(r: RequestState) -> str:
            v = _find_header(r.sent_headers, n, dash, under, sep)
            return "" if v is None else v
    elif which == "upstream":
        def nf(r: RequestState) -> str | None:
            return _find_header(r.upstream_headers, n, dash, under, sep)

        def get(r: RequestState) -> str:
            v = _find_header(r.upstream_headers, n, dash, under, sep)
            return "" if v is None else v
    else:
        def nf(r: RequestState) -> str | None:
            return _find_header(r.head.headers, n, dash, under, sep)

        def get(r: RequestState) -> str:
            v = _find_header(r.head.headers, n, dash, under, sep)
            return "" if v is None else v
    return _nf(get, nf)


@functools.cache
def header_var(name: str) -> Getter:
    """$http_NAME: the request's fields, repeated ones joined with ", " ("; " for Cookie)."""
    key = name.lower()
    return _fields_var("in", key, "; " if key == "cookie" else ", ",
                       dedicated=key in _DEDICATED_IN)


@functools.cache
def sent_header_var(name: str) -> Getter:
    """$sent_http_NAME: the response's fields, repeated ones joined with ", "."""
    return _fields_var("sent", name)


@functools.cache
def upstream_header_var(name: str) -> Getter:
    """$upstream_http_NAME: the upstream response's fields, repeated ones joined with ", "."""
    return _fields_var("upstream", name)


def _find_arg(args: str | None, key: str) -> str | None:
    """ngx_http_arg: the value of the first `key=` (case-insensitive) in the query; a name
    without '=' is not an argument."""
    if not args or not key:
        return None
    for pair in args.split("&"):
        k, eq, v = pair.partition("=")
        if eq and k.lower() == key:
            return v
    return None


def _found(nf: Callable[[RequestState], str | None]) -> Getter:
    """A getter from its not-found-aware twin ("" where that says None), for variables
    off the hot path; `$http_*` keeps one closure per list instead (see _fields_var)."""
    def get(r: RequestState) -> str:
        v = nf(r)
        return "" if v is None else v
    return _nf(get, nf)


@functools.cache
def arg_var(name: str) -> Getter:
    key = name.lower()
    return _found(lambda r: _find_arg(r.args, key))


def _find_cookie(headers: list[tuple[str, str]], lname: str) -> str | None:
    """ngx_http_parse_cookie_lines: in each Cookie field, a pair whose name is `lname`
    (case-insensitive), spaces allowed before '=', the value up to the next ';'."""
    for k, v in headers:
        if len(k) != 6 or k.lower() != "cookie":
            continue
        for part in v.split(";"):
            ck, eq, cv = part.partition("=")
            if eq and ck.strip(" ").lower() == lname:
                return cv.lstrip(" ")
    return None


@functools.cache
def cookie_var(name: str) -> Getter:
    lname = name.lower()
    return _found(lambda r: _find_cookie(r.head.headers, lname))


def _find_set_cookie(headers: list[tuple[str, str]], lname: str) -> str | None:
    for k, v in headers:
        if len(k) != 10 or k.lower() != "set-cookie":
            continue
        ck, eq, cv = v.partition(";")[0].partition("=")
        if eq and ck.strip().lower() == lname:
            return cv.strip()
    return None


@functools.cache
def upstream_cookie_var(name: str) -> Getter:
    """$upstream_cookie_NAME: the cookie NAME set by the upstream's Set-Cookie lines (the
    first pair of a line; names compared ignoring case, as nginx does)."""
    lname = name.lower()
    return _found(lambda r: _find_set_cookie(r.upstream_headers, lname))


def _capture(n: int) -> Getter:
    def get(r: RequestState) -> str:
        m = r.captures
        if m is None:
            return ""
        try:
            return m.group(n) or ""
        except IndexError:
            return ""
    return get


def _named_capture(name: str) -> Getter:
    def get(r: RequestState) -> str:
        m = r.captures
        if m is not None:
            try:
                return m.group(name) or ""
            except IndexError:
                pass
        return r.vars.get(name, "")  # a server_name regex's named capture, kept
    return get


_HOSTNAME: Final = socket.gethostname()
_time_cache: dict[str, tuple[int, str]] = {}


def _cached_time(fmt_key: str, fmt: Callable[[float], str]) -> str:
    now = time.time()
    sec = int(now)
    hit = _time_cache.get(fmt_key)
    if hit is not None and hit[0] == sec:
        return hit[1]
    s = fmt(now)
    _time_cache[fmt_key] = (sec, s)
    return s


def _time_local(now: float) -> str:
    lt = time.localtime(now)
    off = lt.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return time.strftime("%d/%b/%Y:%H:%M:%S", lt) + f" {sign}{off // 3600:02d}{off % 3600 // 60:02d}"


def _time_iso(now: float) -> str:
    lt = time.localtime(now)
    off = lt.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + f"{sign}{off // 3600:02d}:{off % 3600 // 60:02d}"


def _host(r: RequestState) -> str:
    return r.host


def _request_method(r: RequestState) -> str:
    """$request_method: the main request's method, in a subrequest too (r->main)."""
    p = r.parent
    return p.head.method if p is not None else r.head.method


def _request_uri(r: RequestState) -> str:
    return r.head.target


def _request(r: RequestState) -> str:
    h = r.head
    if not h.method:
        return ""  # refused before a request line could be read: not found
    return f"{h.method} {h.target} HTTP/{h.version}"


def _request_nf(r: RequestState) -> str | None:
    h = r.head
    if not h.method:
        return None
    return f"{h.method} {h.target} HTTP/{h.version}"


def _is_args(r: RequestState) -> str:
    return "?" if r.args else ""


def _args(r: RequestState) -> str:
    return r.args or ""


def _request_time(r: RequestState) -> str:
    return f"{time.time() - r.start:.3f}"


def _msec(r: RequestState) -> str:
    return f"{time.time():.3f}"


def _https(r: RequestState) -> str:
    return "on" if r.conn.scheme == "https" else ""


def _proxy_add_xff(r: RequestState) -> str:
    prev = _header(r.head.headers, "x-forwarded-for", ", ")
    return f"{prev}, {r.remote_addr}" if prev else r.remote_addr


def _status(r: RequestState) -> str:
    return str(r.status) if r.status else "000"


def _content_length(r: RequestState) -> str:
    return _header(r.head.headers, "content-length", None)


def basic_credentials(r: RequestState) -> tuple[bytes, bytes] | None:
    """(user, password) of `Authorization: Basic` (ngx_http_auth_basic_user), or None: no
    such header, not base64, an empty user, or no ':'. auth_basic (proxy.auth) checks them;
    $remote_user is the user part, with or without auth_basic."""
    auth = None
    for k, v in r.head.headers:
        if len(k) == 13 and k.lower() == "authorization":
            auth = v
            break
    if auth is None or len(auth) < 6 or auth[:6].lower() != "basic ":
        return None
    enc = auth[6:].lstrip(" ").partition("=")[0]   # ngx_decode_base64 stops at '='
    if not enc or len(enc) % 4 == 1:
        return None
    try:
        raw = base64.b64decode(enc + "=" * (-len(enc) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = raw.partition(b":")
    if not colon or not user:
        return None
    return user, password


def _basic_user(r: RequestState) -> str | None:
    """$remote_user: None (not found) when there are no valid Basic credentials."""
    cred = basic_credentials(r)
    return cred[0].decode("latin-1") if cred is not None else None


def _remote_user(r: RequestState) -> str:
    return _basic_user(r) or ""


def _request_body(r: RequestState) -> str:
    b = r.request_body
    return b.decode("latin-1") if b else ""


def _request_body_nf(r: RequestState) -> str | None:
    """$request_body: the body when it was read whole into memory; not found otherwise, and
    for an empty body (nginx then has no buffer: r->request_body->bufs is NULL)."""
    b = r.request_body
    return b.decode("latin-1") if b else None


def _ssl_session_reused(r: RequestState) -> str:
    if r.conn.scheme != "https":
        return ""   # not found without TLS (ngx_http_ssl_variable)
    return "r" if r.conn.ssl_session_reused else "."


def _ssl_client_verify(r: RequestState) -> str:
    """$ssl_client_verify: NONE, SUCCESS or FAILED:reason; NONE on a TLS connection whose
    server asked for no certificate."""
    cc = r.conn.client_cert
    if cc is not None:
        return str(cc.verify())
    return "NONE" if r.conn.scheme == "https" else ""


def _client_cert_var(method: str) -> Getter:
    """An $ssl_client_* variable: what `method` of the connection's client certificate
    (certificate.ClientCert, only on connections whose context asked for one) gives,
    formatted on first use and kept for the connection; empty without a certificate."""
    def get(r: RequestState) -> str:
        cc = r.conn.client_cert
        return str(getattr(cc, method)()) if cc is not None else ""
    return get


def _upstream_nf(get: Getter) -> LogGetter:
    """The twin of an $upstream_* getter: not found before any upstream was tried."""
    def nf(r: RequestState) -> str | None:
        return get(r) if r.upstream_tries else None
    return nf


def _tls_nf(get: Getter) -> LogGetter:
    """The twin of an $ssl_* getter: not found without TLS, or empty (ngx_http_ssl_variable
    has no empty value)."""
    def nf(r: RequestState) -> str | None:
        if r.conn.scheme != "https":
            return None
        return get(r) or None
    return nf


def _request_id(r: RequestState) -> str:
    """$request_id: 16 random bytes in hex, made once per request."""
    rid = r.request_id
    if rid is None:
        rid = r.request_id = os.urandom(16).hex()
    return rid


def _server_name(r: RequestState) -> str:
    return r.server_name


def _root_of(r: RequestState) -> tuple[str, int]:
    """The document root of the request's location (nginx's clcf->root: the root without its
    trailing slash, or the alias as written, captures substituted) and how many leading
    characters of the URI the alias replaces (nginx's clcf->alias: the prefix location's
    length; -1 for an alias in a regex location, which is the whole path). Before a
    location is chosen, the server's level."""
    loc = r.loc
    s = loc.settings if loc is not None else r.server.settings
    if s.alias is None:
        root = s.root
        return (root[:-1] if len(root) > 1 and root.endswith("/") else root), 0
    alias = s.alias.render(r)
    while loc is not None and loc.modifier == "if":     # an `if` inherits its location's
        loc = loc.parent
    if loc is None:
        return alias, 0
    if loc.modifier in ("~", "~*"):
        return alias, -1
    return alias, len(loc.pattern)


def _document_root(r: RequestState) -> str:
    """$document_root (ngx_http_variable_document_root): root or alias of the location."""
    return _root_of(r)[0]


def _realpath_root(r: RequestState) -> str:
    """$realpath_root: $document_root with symbolic links resolved (ngx_realpath); empty
    when the directory does not exist."""
    root = _root_of(r)[0]
    try:
        return os.path.realpath(root, strict=True)
    except (OSError, ValueError):
        return ""


def _request_filename(r: RequestState) -> str:
    """$request_filename (ngx_http_map_uri_to_path): the root plus the URI, or the alias
    plus what follows the location's prefix, or the alias itself in a regex location."""
    root, cut = _root_of(r)
    if cut < 0:
        return root
    return root + r.uri[cut:]


# $limit_req_status and $limit_conn_status by nginx's 1-based status (0: not found)
_LIMIT_REQ_STATUS: Final = ("", "PASSED", "DELAYED", "REJECTED", "DELAYED_DRY_RUN",
                            "REJECTED_DRY_RUN")
_LIMIT_CONN_STATUS: Final = ("", "PASSED", "REJECTED", "REJECTED_DRY_RUN")


def _limit_req_status(r: RequestState) -> str:
    st = r.limits
    return _LIMIT_REQ_STATUS[st.req_status] if st is not None else ""


def _limit_conn_status(r: RequestState) -> str:
    st = r.limits
    return _LIMIT_CONN_STATUS[st.conn_status] if st is not None else ""


def _limit_rate(r: RequestState) -> str:
    """$limit_rate: r->limit_rate in bytes/s, 0 until something set it: `set $limit_rate`
    (kept in r.vars as written, read here as nginx's setter parses it: an invalid value
    leaves 0), X-Accel-Limit-Rate, or the response's limit_rate once its body is sent."""
    st = r.limits
    if st is not None and st.rate >= 0:
        return str(st.rate)
    v = r.vars.get("limit_rate") if r.vars else None
    if v is not None:
        try:
            return str(parse_size(v))
        except ValueError:
            pass
    return "0"


# built-in variables that `set` writes through (nginx's set_handler): `set $name` keeps the
# value in r.vars, and the built-in getter reads it from there
_SETTABLE_BUILTINS: Final = frozenset({"limit_rate"})


BUILTIN: dict[str, Getter] = {
    "host": _host,
    "remote_addr": lambda r: r.remote_addr,
    "remote_port": lambda r: str(r.remote_port),
    "realip_remote_addr": lambda r: r.realip_remote_addr,
    "realip_remote_port": lambda r: str(r.conn.remote_port),
    "binary_remote_addr": lambda r: r.remote_addr,
    "server_addr": lambda r: r.conn.server_addr,
    "server_port": lambda r: str(r.conn.server_port),
    "server_name": _server_name,
    "scheme": lambda r: r.conn.scheme,
    "https": _https,
    "request_uri": _request_uri,
    "uri": lambda r: r.uri,
    "document_uri": lambda r: r.uri,
    "args": _args,
    "query_string": _args,
    "is_args": _is_args,
    "request_method": _request_method,
    "request": _request,
    "status": _status,
    "body_bytes_sent": lambda r: str(r.body_bytes_sent),
    "bytes_sent": lambda r: str(r.bytes_sent),
    "request_time": _request_time,
    "request_length": lambda r: str(r.request_length),
    "time_local": lambda r: _cached_time("local", _time_local),
    "time_iso8601": lambda r: _cached_time("iso", _time_iso),
    "msec": _msec,
    "connection": lambda r: str(r.conn.number),
    "connection_requests": lambda r: str(r.conn.requests),
    "connection_time": lambda r: f"{max(time.time() - r.conn.start, 0.0):.3f}",
    "content_length": _content_length,
    "content_type": header_var("content_type"),
    "server_protocol": lambda r: f"HTTP/{r.head.version}",
    "hostname": lambda r: _HOSTNAME,
    "pid": lambda r: str(os.getpid()),
    "proxy_host": lambda r: r.proxy_host,
    "proxy_port": lambda r: r.proxy_port,
    "proxy_add_x_forwarded_for": _proxy_add_xff,
    "upstream_addr": lambda r: ", ".join([t.addr for t in r.upstream_tries]),
    "upstream_status": lambda r: ", ".join([str(t.status) if t.status else "-"
                                            for t in r.upstream_tries]),
    "upstream_response_time": lambda r: _upstream_times(r, "end"),
    "upstream_connect_time": lambda r: _upstream_times(r, "connect"),
    "upstream_header_time": lambda r: _upstream_times(r, "header"),
    "upstream_bytes_sent": lambda r: _upstream_counts(r, "bytes_sent"),
    "upstream_bytes_received": lambda r: _upstream_counts(r, "bytes_received"),
    "upstream_response_length": lambda r: _upstream_counts(r, "response_length"),
    "upstream_cache_status": lambda r: r.cache_status,
    "pipe": lambda r: "p" if r.pipelined else ".",
    "http2": _http2,
    "ssl_session_reused": _ssl_session_reused,
    "remote_user": _remote_user,
    "request_body": _request_body,
    "request_body_file": lambda r: r.request_body_file or "",
    "request_id": _request_id,
    "ssl_protocol": lambda r: r.conn.ssl_protocol,
    "ssl_cipher": lambda r: r.conn.ssl_cipher,
    "ssl_server_name": lambda r: r.conn.ssl_server_name,
    "ssl_client_verify": _ssl_client_verify,
    "ssl_client_s_dn": _client_cert_var("subject_dn"),
    "ssl_client_i_dn": _client_cert_var("issuer_dn"),
    "ssl_client_serial": _client_cert_var("serial"),
    "ssl_client_fingerprint": _client_cert_var("fingerprint"),
    "ssl_client_raw_cert": _client_cert_var("pem"),
    "ssl_client_cert": _client_cert_var("tabbed_pem"),
    "ssl_client_escaped_cert": _client_cert_var("escaped_pem"),
    "ssl_client_v_start": _client_cert_var("v_start"),
    "ssl_client_v_end": _client_cert_var("v_end"),
    "ssl_client_v_remain": _client_cert_var("v_remain"),
    "document_root": _document_root,
    "realpath_root": _realpath_root,
    "request_filename": _request_filename,
    # no TLS 0-RTT data is ever accepted (Python's ssl has no early-data server side)
    "ssl_early_data": lambda r: "",
    "nginx_version": lambda r: "1.30.0",
    "http_host_raw": lambda r: r.head.host,
    "limit_req_status": _limit_req_status,
    "limit_conn_status": _limit_conn_status,
    "limit_rate": _limit_rate,
    # set when a gzip-compressed body ended (proxy/gzip.py); not found otherwise
    "gzip_ratio": lambda r: r.gzip_ratio or "",
    "brotli_ratio": lambda r: r.brotli_ratio or "",
}

# the not-found-aware twins of the built-ins whose value nginx can leave "not found" (read by
# the access log only, see `_nf`); checked against ngx_http_variables.c, ngx_http_upstream.c
# and ngx_http_ssl_module.c. The others are always found, if empty.
_NOT_FOUND: dict[str, LogGetter] = {
    "request": _request_nf,
    "request_method": lambda r: _request_method(r) or None,
    # a request that could not be parsed: nginx has no unparsed URI then, and its $uri is
    # empty ("client sent invalid request" leaves r->uri allocated with length 0)
    "request_uri": lambda r: r.head.target if r.head.method else None,
    "uri": lambda r: r.uri if r.head.method else "",
    "document_uri": lambda r: r.uri if r.head.method else "",
    # r->args is set only when the query is not empty
    "args": lambda r: r.args or None,
    "query_string": lambda r: r.args or None,
    "content_length": lambda r: _find_header(r.head.headers, 14, "content-length", None, ", "),
    "remote_user": _basic_user,
    "request_body": _request_body_nf,
    "request_body_file": lambda r: r.request_body_file,
    "ssl_session_reused": lambda r: _ssl_session_reused(r) or None,
    "upstream_cache_status": lambda r: r.cache_status or None,
    "ssl_early_data": lambda r: None,
    "realpath_root": lambda r: _realpath_root(r) or None,
    "limit_req_status": lambda r: _limit_req_status(r) or None,
    "limit_conn_status": lambda r: _limit_conn_status(r) or None,
    "gzip_ratio": lambda r: r.gzip_ratio,
    "brotli_ratio": lambda r: r.brotli_ratio,
}
for _name in ("upstream_addr", "upstream_status", "upstream_response_time",
              "upstream_connect_time", "upstream_header_time", "upstream_bytes_sent",
              "upstream_bytes_received", "upstream_response_length"):
    _NOT_FOUND[_name] = _upstream_nf(BUILTIN[_name])
for _name in ("ssl_protocol", "ssl_cipher", "ssl_server_name", "ssl_client_verify",
              "ssl_client_s_dn", "ssl_client_i_dn", "ssl_client_serial",
              "ssl_client_fingerprint", "ssl_client_raw_cert", "ssl_client_cert",
              "ssl_client_escaped_cert", "ssl_client_v_start", "ssl_client_v_end",
              "ssl_client_v_remain"):
    _NOT_FOUND[_name] = _tls_nf(BUILTIN[_name])
for _name, _fn in _NOT_FOUND.items():
    _nf(BUILTIN[_name], _fn)

PREFIXED: list[tuple[str, Callable[[str], Getter]]] = [
    ("http_", header_var),
    ("sent_http_", sent_header_var),
    ("upstream_http_", upstream_header_var),
    ("arg_", arg_var),
    ("cookie_", cookie_var),
    ("upstream_cookie_", upstream_cookie_var),
]


class CombinedGetters:
    """The getters of nginx's built-in `combined` access-log format, resolved once (read by
    the runtime's access log): the not-found-aware ones for the fields logged "-"."""

    __slots__ = ("remote_user", "request", "referer", "user_agent", "time_local", "status")

    def __init__(self) -> None:
        self.remote_user: LogGetter = _basic_user
        self.request: LogGetter = _request_nf
        self.referer: LogGetter = log_getter(header_var("referer"))
        self.user_agent: LogGetter = log_getter(header_var("user_agent"))
        self.time_local: Getter = BUILTIN["time_local"]
        self.status: Getter = _status


COMBINED: Final = CombinedGetters()


class VariableScope:
    """Resolves variable names at config time: built-ins, prefixed families, `map` results
    (lazy, cached per request) and `set` variables (stored per request)."""

    def __init__(self) -> None:
        self.lazy: dict[str, Callable[[RequestState], str]] = {}
        self.lazy_fns: dict[str, Callable[[RequestState], str]] = {}
        self.settable: set[str] = set()
        self.captures: set[str] = set()

    def define_lazy(self, name: str, fn: Callable[[RequestState], str],
                    cache: bool = True) -> None:
        """Declare (or, later, bind) a variable computed on first use and cached per request
        (`cache=False`: computed at every use, as a `map ... { volatile; }`). Templates
        compiled before the binding see it: the getter looks the function up."""
        fns = self.lazy_fns
        fns[name] = fn
        if name in self.lazy:
            return
        if not cache:
            def get_volatile(r: RequestState, _name: str = name) -> str:
                return fns[_name](r)
            self.lazy[name] = get_volatile
            return

        def get(r: RequestState, _name: str = name) -> str:
            v = r.vars.get(_name)
            if v is None:
                v = fns[_name](r)
                r.vars[_name] = v
            return v
        self.lazy[name] = get

    def define_settable(self, name: str) -> None:
        self.settable.add(name)

    def define_capture(self, name: str) -> None:
        """A named capture of a regex that is not around the templates that use it (a
        `server_name ~^(?<sub>[a-z]+)[.]example[.]com$`): as in nginx, a variable known
        everywhere, read from the request's last regex match."""
        self.captures.add(name)

    def known(self, name: str) -> bool:
        try:
            self.getter(name)
            return True
        except UnknownVariable:
            return False

    def getter(self, name: str) -> Getter:
        if name.isdigit():
            return _capture(int(name))
        if name in self.lazy:
            return self.lazy[name]
        if name in self.settable and name not in _SETTABLE_BUILTINS:
            def get_set(r: RequestState, _n: str = name) -> str:
                return r.vars.get(_n, "")
            return get_set
        g = BUILTIN.get(name)
        if g is not None:
            return g
        if name in self.captures:
            return _named_capture(name)
        for prefix, factory in PREFIXED:
            if name.startswith(prefix):     # `$arg_` too: a name nothing has
                return factory(name[len(prefix):])
        raise UnknownVariable(name)

    def compile(self, text: str, named_captures: set[str] | None = None) -> Template:
        """Compile `text`; names in `named_captures` refer to regex named groups."""
        parts: list[str | Getter] = []
        names: list[str] = []
        pos = 0
        for m in _VAR.finditer(text):
            if m.start() > pos:
                parts.append(text[pos:m.start()])
            name = m.group(1) or m.group(2)
            names.append(name)
            if named_captures and name in named_captures:
                parts.append(_named_capture(name))
            else:
                parts.append(self.getter(name))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        if text.endswith("$") and not text.endswith("\\$"):
            pass  # a trailing '$' is literal in nginx's regexes; kept as text
        return Template(text, parts, names)


def variable_names(text: str) -> list[str]:
    return [m.group(1) or m.group(2) for m in _VAR.finditer(text)]


__all__ = ["COMBINED", "VariableScope", "UnknownVariable", "variable_names"]
