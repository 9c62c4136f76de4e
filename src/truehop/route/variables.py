"""nginx variables: compiled once into templates, evaluated per request.

A `Template` is the compiled form of a config string such as `"t=${msec}"`: literal parts and
getter functions. Getters take a `RequestState` and return a str (nginx's "not found" is "").
Names are resolved at config time by a `VariableScope`, so an unknown variable is a config
error (as in nginx: `unknown "foo" variable`), and the per-request path is a list walk.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable

from truehop.route.state import RequestState

Getter = Callable[[RequestState], str]

_VAR = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z_][A-Za-z0-9_]*|[0-9]))")


class UnknownVariable(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f'unknown "{name}" variable')
        self.name = name


class Template:
    """A compiled string with variables. `static` is set when it has none (the common case,
    evaluated without a call)."""

    __slots__ = ("source", "parts", "static", "names")

    def __init__(self, source: str, parts: list[str | Getter], names: list[str]) -> None:
        self.source = source
        self.parts = parts
        self.names = names
        self.static: str | None = None
        if all(isinstance(p, str) for p in parts):
            self.static = "".join(p for p in parts if isinstance(p, str))

    def render(self, r: RequestState) -> str:
        if self.static is not None:
            return self.static
        return "".join(p if isinstance(p, str) else p(r) for p in self.parts)

    def uses(self, name: str) -> bool:
        return name in self.names

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _header(head_headers: list[tuple[str, str]], lname: str, joiner: str | None) -> str:
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


def header_var(name: str) -> Getter:
    lname = name.replace("_", "-").lower()
    # nginx joins repeated Cookie with "; " and X-Forwarded-For with ", "; others: first one.
    joiner = "; " if lname == "cookie" else ", " if lname == "x-forwarded-for" else None

    def get(r: RequestState) -> str:
        return _header(r.head.headers, lname, joiner)
    return get


def sent_header_var(name: str) -> Getter:
    lname = name.replace("_", "-").lower()

    def get(r: RequestState) -> str:
        return _header(r.sent_headers, lname, None)
    return get


def upstream_header_var(name: str) -> Getter:
    lname = name.replace("_", "-").lower()

    def get(r: RequestState) -> str:
        return _header(r.upstream_headers, lname, None)
    return get


def arg_var(name: str) -> Getter:
    key = name.lower()

    def get(r: RequestState) -> str:
        if not r.args:
            return ""
        for pair in r.args.split("&"):
            k, _, v = pair.partition("=")
            if k.lower() == key:
                return v
        return ""
    return get


def cookie_var(name: str) -> Getter:
    lname = name.lower()

    def get(r: RequestState) -> str:
        for k, v in r.head.headers:
            if k.lower() != "cookie":
                continue
            for part in v.split(";"):
                ck, _, cv = part.strip().partition("=")
                if ck.lower() == lname:
                    return cv
        return ""
    return get


def upstream_cookie_var(name: str) -> Getter:
    """$upstream_cookie_NAME: the cookie NAME set by the upstream's Set-Cookie lines (the
    first pair of a line; names compared ignoring case, as nginx does)."""
    lname = name.lower()

    def get(r: RequestState) -> str:
        for k, v in r.upstream_headers:
            if len(k) != 10 or k.lower() != "set-cookie":
                continue
            ck, eq, cv = v.partition(";")[0].partition("=")
            if eq and ck.strip().lower() == lname:
                return cv.strip()
        return ""
    return get


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


_HOSTNAME = socket.gethostname()
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


def _request_uri(r: RequestState) -> str:
    return r.head.target


def _request(r: RequestState) -> str:
    h = r.head
    if not h.method:
        return "-"  # refused before a request line could be read
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


def _server_name(r: RequestState) -> str:
    return r.server_name


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
    "request_method": lambda r: r.head.method,
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
    "content_type": lambda r: _header(r.head.headers, "content-type", None),
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
    "pipe": lambda r: "p" if r.pipelined else ".",
    "http2": _http2,
    "ssl_session_reused": lambda r: "r" if r.conn.ssl_session_reused else ".",
    "remote_user": lambda r: "",
    "request_body": lambda r: "",
    "request_id": lambda r: r.extra.setdefault("request_id", os.urandom(16).hex()),
    "ssl_protocol": lambda r: r.conn.ssl_protocol,
    "ssl_cipher": lambda r: r.conn.ssl_cipher,
    "ssl_server_name": lambda r: r.conn.ssl_server_name,
    "nginx_version": lambda r: "1.30.0",
    "http_host_raw": lambda r: r.head.host,
}

PREFIXED: list[tuple[str, Callable[[str], Getter]]] = [
    ("http_", header_var),
    ("sent_http_", sent_header_var),
    ("upstream_http_", upstream_header_var),
    ("arg_", arg_var),
    ("cookie_", cookie_var),
    ("upstream_cookie_", upstream_cookie_var),
]


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
        if name in self.settable:
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


def literal(text: str) -> Template:
    return Template(text, [text], [])


__all__ = ["Template", "VariableScope", "UnknownVariable", "literal", "variable_names"]
