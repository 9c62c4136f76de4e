"""The compiled configuration: what every later layer reads.

Built once by `conf.compile` from the directive tree and not changed afterwards. Settings that
nginx inherits (`root`, `proxy_read_timeout`, `proxy_set_header`, ...) live in `Settings`; a
location's `Settings` is already merged with its server's and the http level's (and the
defaults of conf/directives.py's table), so the request path reads one object with no unset
field. Array directives (`proxy_set_header`, `add_header`, `error_page`,
`access_log`, `proxy_hide_header`) follow nginx: a level that defines any of them replaces the
inherited list whole.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from typing import Any, Final

from truehop.route.servers import match_wildcard
from truehop.route.template import Template, VariableLookup

Where = tuple[str, int]

_HOSTNAME: Final = socket.gethostname()


@dataclass(frozen=True, slots=True)
class HeaderSetting:
    name: str
    value: Template
    where: Where
    always: bool = False  # add_header ... always


@dataclass(frozen=True, slots=True)
class AccessLog:
    path: str            # absolute path, or "off"
    format: str          # log_format name
    buffer: int = 0
    flush: float = 0.0
    condition: Template | None = None
    where: Where = ("", 0)


@dataclass(frozen=True, slots=True)
class ErrorPage:
    uri: Template        # a URI, a URL or "@named"
    code: int | None     # "=code" override, 0 for bare "=" (use the upstream's), None = keep
    where: Where


@dataclass(frozen=True, slots=True)
class Expires:
    """`expires`. kind: off, epoch, max, access (`expires 1h`), modified, daily (`@15h`);
    seconds may be negative. With variables in the value, `value` is its template, parsed per
    request (kind is then access or modified, what the directive's first word says)."""
    kind: str
    seconds: float = 0.0
    value: Template | None = None


@dataclass(frozen=True, slots=True)
class RedirectRule:
    """One `proxy_redirect` (nginx's ngx_http_proxy_rewrite_t)."""
    kind: str                              # "default", "prefix", "regex"; "domain" (cookies)
    match: Template | None = None          # prefix: the text a value must start with
    regex: re.Pattern[str] | None = None   # regex: searched anywhere in the value
    replacement: Template | None = None


@dataclass(frozen=True, slots=True)
class CookieFlags:
    """One `proxy_cookie_flags` rule (ngx_http_proxy_cookie_flags_t): the cookie it applies
    to, by name (compared ignoring case, may hold variables) or by a caseless regex, and its
    flags (secure, httponly, samesite=..., their no- forms; may hold variables)."""
    name: Template | None
    regex: re.Pattern[str] | None
    flags: tuple[Template, ...]


@dataclass(frozen=True, slots=True)
class ResolverConf:
    """`resolver address ... [valid=time] [ipv4=on|off] [ipv6=on|off]`."""
    servers: tuple[tuple[str, int], ...]
    valid: float | None = None
    ipv4: bool = True
    ipv6: bool = True


@dataclass(frozen=True, slots=True)
class ProxyRedirect:
    """`kind` "default" (no directive: the default rule), "off", or "rules" (the directives
    of one level, in order; a `default` among them is a RedirectRule of that kind)."""
    kind: str
    rules: tuple[RedirectRule, ...] = ()


@dataclass(frozen=True, slots=True)
class LimitZone:
    """`limit_req_zone` / `limit_conn_zone`: a shared memory zone of limit states. `kind`
    is "limit_req" or "limit_conn"; `rate` (limit_req) is in milli-requests per second,
    as nginx's ctx->rate (`rate=10r/s` is 10000, `rate=30r/m` is 500)."""
    kind: str
    name: str
    key: Template
    size: int
    rate: int
    where: Where


@dataclass(frozen=True, slots=True)
class LimitReq:
    """`limit_req zone=name [burst=N] [nodelay | delay=N]`: burst and delay in
    milli-requests, as nginx keeps them (`nodelay` is a delay no excess reaches)."""
    zone: str
    burst: int
    delay: int
    where: Where


@dataclass(frozen=True, slots=True)
class LimitConn:
    """`limit_conn zone number`."""
    zone: str
    conn: int
    where: Where


@dataclass(frozen=True, slots=True)
class ProxyPass:
    scheme: str                      # "http" or "https"
    upstream: UpstreamConf | None    # None when the target has variables
    uri: str | None                  # the URI part after host:port; None when absent
    dynamic: Template | None         # the whole URL when it contains variables
    host_header: str                 # $proxy_host: host[:port] as written
    port: str
    where: Where


@dataclass(frozen=True, slots=True)
class CachePath:
    """`proxy_cache_path` (ngx_http_file_cache_set_slot): where a cache zone keeps its
    entries and how its manager bounds them. Sizes in bytes, times in seconds; 0 for
    max_size/min_free means no limit."""
    path: str
    levels: tuple[int, ...]
    zone: str
    zone_size: int
    inactive: float = 600.0
    max_size: int = 0
    min_free: int = 0
    use_temp_path: bool = True
    manager_files: int = 100
    manager_sleep: float = 0.05
    manager_threshold: float = 0.2
    loader_files: int = 100
    loader_sleep: float = 0.05
    loader_threshold: float = 0.2
    where: Where = ("", 0)

    @property
    def max_keys(self) -> int:
        """The keys the zone holds: nginx's 1m zone holds about 8000 (a node each)."""
        return max(self.zone_size // 128, 1)


@dataclass(frozen=True, slots=True)
class CacheValid:
    """One `proxy_cache_valid` line: its statuses (empty for `any`) and how long."""
    codes: frozenset[int]
    seconds: float
    any: bool = False


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One `allow` or `deny` (ngx_http_access_rule): `family` 4 or 6 with the address and
    mask as integers (host bits already cleared), "unix" for `unix:`, "all" for `all`."""
    deny: bool
    family: str                      # "4", "6", "unix", "all"
    addr: int = 0
    mask: int = 0
    text: str = ""
    where: Where = ("", 0)


@dataclass(frozen=True, slots=True)
class UserFile:
    """auth_basic_user_file: the path (may hold variables); a relative one is taken from
    `base`, the configuration's directory (nginx's conf prefix), when it is rendered."""
    path: Template
    base: str


@dataclass(frozen=True, slots=True)
class AuthRequestSet:
    """`auth_request_set $name value`: evaluated in the subrequest once it is done."""
    name: str
    value: Template
    where: Where


@dataclass(frozen=True, slots=True)
class LimitExcept:
    """`limit_except METHOD ... { }`: the methods it lets through (GET implies HEAD), and
    the settings every other method is checked with: the block's own (allow/deny,
    auth_basic) merged with its location's, as nginx merges the block as a nested
    location (clcf->limit_except_loc_conf)."""
    methods: frozenset[str]
    settings: Settings
    where: Where


# The merged settings of one level (http, server, location, `if`): what the request path reads.
# Every field is filled: by the level itself, else the enclosing level, else the directive's
# default in conf/directives.py (the table says, per directive, its field, default and merge).
# `None` stays only where "not set" is itself a value nginx acts on (no alias, no try_files,
# no resolver, no proxy_method: the client's...). The slots are the table's Settings fields;
# tests/unit/test_conf_table.py checks that the two agree.
SETTING_FIELDS: Final = (
    "root", "alias", "index", "try_files", "expires", "default_type", "types", "sendfile",
    "tcp_nodelay", "keepalive_timeout", "keepalive_header", "keepalive_time",
    "keepalive_disable", "lingering_close", "lingering_time", "lingering_timeout",
    "keepalive_requests", "client_max_body_size",
    "client_body_timeout", "client_body_buffer_size", "send_timeout", "server_tokens",
    "absolute_redirect", "server_name_in_redirect", "port_in_redirect",
    "proxy_http_version", "proxy_buffering", "proxy_buffer_size", "proxy_buffers",
    "proxy_busy_buffers_size", "proxy_request_buffering", "proxy_connect_timeout",
    "proxy_read_timeout", "proxy_send_timeout", "proxy_next_upstream",
    "proxy_next_upstream_tries", "proxy_next_upstream_timeout", "proxy_redirect",
    "proxy_cookie_domain", "proxy_cookie_path", "resolver", "resolver_timeout",
    "proxy_pass_request_headers", "proxy_pass_request_body", "proxy_hide_header",
    "proxy_pass_header", "proxy_intercept_errors", "proxy_ssl_server_name",
    "proxy_ssl_verify", "proxy_ssl_trusted_certificate", "proxy_ssl_name",
    "proxy_ssl_protocols", "proxy_method", "proxy_set_body",
    "proxy_set_header", "add_header", "error_page", "access_log", "log_not_found",
    "etag", "max_ranges", "chunked_transfer_encoding", "set_real_ip_from",
    "real_ip_header", "real_ip_recursive", "autoindex", "if_modified_since",
    "disable_symlinks", "proxy_ignore_headers", "recursive_error_pages", "error_log",
    "client_body_temp_path", "client_body_in_file_only",
    # the proxy cache (proxy/cache/)
    "proxy_cache_path", "proxy_cache", "proxy_cache_key", "proxy_cache_valid",
    "proxy_cache_methods", "proxy_cache_min_uses", "proxy_cache_bypass", "proxy_no_cache",
    "proxy_cache_use_stale", "proxy_cache_background_update", "proxy_cache_lock",
    "proxy_cache_lock_timeout", "proxy_cache_lock_age", "proxy_cache_revalidate",
    "proxy_cache_convert_head", "proxy_cache_max_range_offset",
    # issue 15, misc: charset, proxy_cookie_flags, client aborts, timed-out connections
    "charset", "source_charset", "charset_types", "override_charset", "proxy_cookie_flags",
    "proxy_ignore_client_abort", "reset_timedout_connection", "sendfile_max_chunk",
    # limits (proxy.limits, proxy.pacing)
    "limit_req_zone", "limit_req", "limit_req_status", "limit_req_log_level",
    "limit_req_dry_run", "limit_conn_zone", "limit_conn", "limit_conn_status",
    "limit_conn_log_level", "limit_conn_dry_run", "limit_rate", "limit_rate_after",
    "proxy_limit_rate",
    # access and auth (proxy/access.py, proxy/auth.py)
    "access_rules", "satisfy", "auth_basic", "auth_basic_user_file", "auth_request",
    "auth_request_set", "auth_delay",
    # gzip (proxy/gzip.py)
    "gzip", "gzip_types", "gzip_comp_level", "gzip_min_length", "gzip_buffers",
    "gzip_window", "gzip_hash", "gzip_http_version", "gzip_proxied", "gzip_vary",
    "gzip_disable", "gzip_disable_msie6", "gzip_static", "gunzip", "gunzip_buffers",
    # ngx_brotli (proxy/brotli.py)
    "brotli", "brotli_types", "brotli_comp_level", "brotli_window", "brotli_min_length",
    "brotli_buffers", "brotli_static",
    "proxy_temp_path", "proxy_max_temp_file_size", "proxy_temp_file_write_size",
)


class Settings:
    """A native class in the compiled build: each field is a typed C slot, read without a
    dictionary lookup on every request. Filled once by `LevelSettings.merged_with` (or
    `from_values`) at compile time and never written afterwards: mypyc cannot make a native
    class's attributes read-only, so tests/unit/test_conf_table.py checks that no code
    outside conf/ assigns to a Settings field."""

    __slots__ = SETTING_FIELDS + ("where", "access_phase")

    root: str
    alias: Template | None              # None: no alias (root applies)
    index: tuple[Template, ...]
    try_files: tuple[Template, ...] | None  # None: no try_files
    expires: Expires | None             # None: nginx's `expires off` (no header added)
    default_type: str
    types: dict[str, str]
    sendfile: bool
    tcp_nodelay: bool
    keepalive_timeout: float
    keepalive_header: float             # keepalive_timeout's 2nd value: `Keep-Alive: timeout=N`
    keepalive_time: float               # a client connection's longest life (then closed)
    keepalive_disable: frozenset[str]   # "msie6", "safari": browsers kept from keep-alive
    lingering_close: str                # "on" (when the client may still send), "off", "always"
    lingering_time: float               # the longest a closing connection's input is drained
    lingering_timeout: float            # the longest wait for more of it
    keepalive_requests: int
    client_max_body_size: int
    client_body_timeout: float
    client_body_buffer_size: int
    send_timeout: float
    server_tokens: bool
    absolute_redirect: bool
    server_name_in_redirect: bool
    port_in_redirect: bool
    proxy_http_version: str
    proxy_buffering: bool
    proxy_buffer_size: int
    proxy_buffers: tuple[int, int]
    proxy_busy_buffers_size: int
    proxy_request_buffering: bool
    proxy_connect_timeout: float
    proxy_read_timeout: float
    proxy_send_timeout: float
    proxy_next_upstream: frozenset[str]
    proxy_next_upstream_tries: int
    proxy_next_upstream_timeout: float
    proxy_redirect: ProxyRedirect
    proxy_cookie_domain: tuple[RedirectRule, ...]   # () = off
    proxy_cookie_path: tuple[RedirectRule, ...]
    resolver: ResolverConf | None       # None: no resolver (a name in proxy_pass fails)
    resolver_timeout: float
    proxy_pass_request_headers: bool
    proxy_pass_request_body: bool
    proxy_hide_header: tuple[str, ...]
    proxy_pass_header: tuple[str, ...]
    proxy_intercept_errors: bool
    proxy_ssl_server_name: bool
    proxy_ssl_verify: bool
    proxy_ssl_trusted_certificate: str | None   # None: the system's CA store
    proxy_ssl_name: Template | None     # None: the proxy_pass host
    proxy_ssl_protocols: tuple[str, ...]
    proxy_method: Template | None       # None: the client's method
    proxy_set_body: Template | None     # None: the client's body
    proxy_set_header: tuple[HeaderSetting, ...]
    add_header: tuple[HeaderSetting, ...]
    error_page: dict[int, ErrorPage]
    access_log: tuple[AccessLog, ...]
    log_not_found: bool
    etag: bool
    max_ranges: int | None              # None: no limit
    chunked_transfer_encoding: bool
    set_real_ip_from: tuple[Any, ...]   # ipaddress networks
    real_ip_header: str
    real_ip_recursive: bool
    autoindex: bool
    if_modified_since: str
    disable_symlinks: bool
    proxy_ignore_headers: frozenset[str]
    recursive_error_pages: bool
    # error_log at http/server/location: ((path, level), ...); None = the main-level log
    error_log: tuple[tuple[str, str], ...] | None
    # client_body_temp_path: (absolute directory, levels); client_body_in_file_only:
    # "off" | "on" | "clean" (proxy.request_body)
    client_body_temp_path: tuple[str, tuple[int, ...]]
    client_body_in_file_only: str
    # the proxy cache (proxy/cache/): the zones (http level only, so every level has the
    # same tuple); the zone a location caches in (None: `proxy_cache off`, a Template when
    # it has variables); the rest as nginx's directives of the same names
    proxy_cache_path: tuple[CachePath, ...]
    proxy_cache: Template | None
    proxy_cache_key: Template
    proxy_cache_valid: tuple[CacheValid, ...]
    proxy_cache_methods: frozenset[str]
    proxy_cache_min_uses: int
    proxy_cache_bypass: tuple[tuple[Template, ...], ...]
    proxy_no_cache: tuple[tuple[Template, ...], ...]
    proxy_cache_use_stale: frozenset[str]
    proxy_cache_background_update: bool
    proxy_cache_lock: bool
    proxy_cache_lock_timeout: float
    proxy_cache_lock_age: float
    proxy_cache_revalidate: bool
    proxy_cache_convert_head: bool
    # proxy_cache_max_range_offset: None is nginx's unset (no limit)
    proxy_cache_max_range_offset: int | None
    # issue 15, misc. charset / source_charset: None is `off`; charset_types: lower-case
    # MIME types ("*": any), text/html always among them
    charset: str | None
    source_charset: str | None
    charset_types: frozenset[str]
    override_charset: bool
    proxy_cookie_flags: tuple[CookieFlags, ...]     # () = off
    proxy_ignore_client_abort: bool
    reset_timedout_connection: bool
    sendfile_max_chunk: int             # 0: no limit
    # limits: the zones (http level only, so every level holds the http level's), a level's
    # limit_req / limit_conn lines (a level with any replaces the inherited ones), and
    # the rates: a size in bytes per second (0: off), or a template rendered per request
    limit_req_zone: tuple[LimitZone, ...]
    limit_req: tuple[LimitReq, ...]
    limit_req_status: int
    limit_req_log_level: str
    limit_req_dry_run: bool
    limit_conn_zone: tuple[LimitZone, ...]
    limit_conn: tuple[LimitConn, ...]
    limit_conn_status: int
    limit_conn_log_level: str
    limit_conn_dry_run: bool
    limit_rate: int | Template
    limit_rate_after: int | Template
    proxy_limit_rate: int | Template
    # allow/deny in order (one list: a level with any replaces the inherited ones whole);
    # satisfy "all" | "any"; auth_basic's realm (None: unset; "off" is its rendered value);
    # the password file; auth_request's URI (None: off); auth_request_set in order
    access_rules: tuple[AccessRule, ...]
    satisfy: str
    auth_basic: Template | None
    auth_basic_user_file: UserFile | None
    auth_request: str | None
    auth_request_set: tuple[AuthRequestSet, ...]
    auth_delay: float                   # seconds a 401 from the access phase waits
    # gzip (proxy/gzip.py): `gzip_types` holds lower-case MIME types ("*": any, even none);
    # `gzip_window`/`gzip_hash` are zlib's wbits and memLevel (nginx stores them so);
    # `gzip_http_version` "1.0" | "1.1"; `gzip_proxied` its flags ("off", "any", ...);
    # `gzip_disable` the caseless regexes, `gzip_disable_msie6` its msie6 word (merged
    # apart, as nginx does); `gzip_static` "off" | "on" | "always"
    gzip: bool
    gzip_types: frozenset[str]
    gzip_comp_level: int
    gzip_min_length: int
    gzip_buffers: tuple[int, int]
    gzip_window: int
    gzip_hash: int
    gzip_http_version: str
    gzip_proxied: frozenset[str]
    gzip_vary: bool
    gzip_disable: tuple[re.Pattern[str], ...]
    gzip_disable_msie6: bool
    gzip_static: str
    gunzip: bool                        # decode gzip for clients that do not take it
    gunzip_buffers: tuple[int, int]
    # ngx_brotli: `brotli_window` is the encoder's lgwin; `brotli_static` as gzip_static
    brotli: bool
    brotli_types: frozenset[str]
    brotli_comp_level: int
    brotli_window: int
    brotli_min_length: int
    brotli_buffers: tuple[int, int]
    brotli_static: str
    # a buffered response past proxy_buffers (proxy.spool): the temp dir and levels, the
    # file's limit (0: no file), bytes written at a time (0: nginx's computed default)
    proxy_temp_path: tuple[str, tuple[int, ...]]
    proxy_max_temp_file_size: int
    proxy_temp_file_write_size: int
    where: dict[str, Where]             # field -> first line that set it (lint, explain)
    # derived when the settings are made, not a directive: whether the access phase has
    # anything to check here (a location with limit_except sets it too), so that a request
    # where none is configured pays one attribute test (proxy/access.py)
    access_phase: bool

    def __init__(self) -> None:
        self.where = {}
        self.access_phase = False

    def derive(self) -> None:
        """Set the fields computed from the others, once every field is filled."""
        self.access_phase = bool(self.access_rules) or self.auth_basic is not None or \
            self.auth_request is not None

    @staticmethod
    def from_values(values: dict[str, Any], where: dict[str, Where]) -> Settings:
        """A complete Settings: `values` holds every field (KeyError otherwise)."""
        out = Settings()
        for f in SETTING_FIELDS:
            setattr(out, f, values[f])
        out.where = dict(where)
        out.derive()
        return out


class LevelSettings:
    """What one level (http, server, location, `if`) wrote itself, by field: the compiler
    fills it, merging reads it, lint asks it (`defined_here`). Server-level values (ssl_*,
    http2, listen...) are kept here too, under their table field ("ssl.protocols")."""

    __slots__ = ("values", "where")

    values: dict[str, Any]
    where: dict[str, Where]   # field -> first line; field + "@last" -> last line

    def __init__(self) -> None:
        self.values = {}
        self.where = {}

    def defined_here(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> Any:
        """The value this level wrote, None when it wrote none."""
        return self.values.get(name)

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value

    def merged_with(self, parent: Settings) -> Settings:
        """nginx's merge (ngx_conf_merge_*_value): this level's value where it wrote one,
        else the enclosing level's. List directives (proxy_set_header, add_header,
        access_log, ...) hold a level's lines as one value, so the nearest level with any
        line gives the whole list, as nginx's arrays do."""
        out = Settings()
        vals = self.values
        for f in SETTING_FIELDS:
            setattr(out, f, vals[f] if f in vals else getattr(parent, f))
        out.where = {**parent.where, **self.where}
        out.derive()
        return out


# --- the rewrite module's instructions, run in order at server then location level ---------

@dataclass(frozen=True, slots=True)
class ReturnOp:
    code: int
    text: Template | None
    where: Where


@dataclass(frozen=True, slots=True)
class RewriteOp:
    regex: re.Pattern[str]
    replacement: Template
    flag: str            # "", "last", "break", "redirect", "permanent"
    where: Where


@dataclass(frozen=True, slots=True)
class SetOp:
    name: str
    value: Template
    where: Where


@dataclass(frozen=True, slots=True)
class BreakOp:
    where: Where


@dataclass(frozen=True, slots=True)
class Condition:
    kind: str                          # "var", "eq", "ne", "re", "nre", "file"
    left: Template
    right: Template | None = None
    regex: re.Pattern[str] | None = None
    file_test: str = ""                # "-f", "!-f", "-d", ...


@dataclass(frozen=True, slots=True)
class IfOp:
    cond: Condition
    ops: tuple[Any, ...]
    loc: LocationConf | None           # an `if` in a location with content directives
    where: Where


# --- upstreams, servers, locations --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PeerConf:
    host: str
    port: int
    weight: int = 1
    max_fails: int = 1
    fail_timeout: float = 10.0
    backup: bool = False
    down: bool = False
    where: Where = ("", 0)
    max_conns: int = 0          # 0: no limit
    resolve: bool = False       # `resolve` (nginx 1.27.3+): `host` is a name, looked up at run time
    name: str = ""              # the host name as written, when it was one (lint)


@dataclass(slots=True)
class UpstreamConf:
    name: str
    peers: list[PeerConf]
    kind: str = "round_robin"          # round_robin, least_conn, ip_hash, hash
    hash_key: Template | None = None
    hash_consistent: bool = False
    # A named upstream's keepalive fields are set from the table's defaults (conf/directives.py:
    # `keepalive 32`, nginx 1.30's). The values here serve the implicit upstreams
    # (`proxy_pass http://host:port`, no block), which cache no connection: keepalive 0;
    # tests/unit/test_conf_table.py checks the others equal the table's.
    keepalive: int = 0                 # 0 = no cache of idle connections
    keepalive_local: bool = False
    keepalive_timeout: float = 60.0
    keepalive_requests: int = 1000
    keepalive_time: float = 3600.0
    implicit: bool = False             # from `proxy_pass http://host:port`, no block
    keepalive_set: bool = False        # `keepalive` written explicitly
    where: Where = ("", 0)
    # `server ... resolve`: the resolver of the block, else the http level's (filled in by
    # compile), its timeout, and the `zone` nginx requires for it
    resolver: ResolverConf | None = None
    resolver_timeout: float = 30.0
    zone: str | None = None


@dataclass(slots=True)
class MapConf:
    variable: str
    source: Template
    exact: dict[str, Template]
    wildcards: list[tuple[str, Template]]
    regexes: list[tuple[re.Pattern[str], Template]]
    default: Template
    hostnames: bool
    where: Where
    entries: list[tuple[str, Template, Where]] = field(default_factory=list)
    volatile: bool = False
    # hostnames: "example.com" -> (value, also matches "example.com" itself) for `*.example.com`
    # (False) and `.example.com` (True); "www.example" -> value for `www.example.*`
    head: dict[str, tuple[Template, bool]] = field(default_factory=dict)
    tail: dict[str, Template] = field(default_factory=dict)

    def find(self, value: str) -> tuple[Template, re.Match[str] | None]:
        """The entry for a source value (ngx_http_map_find): strings ignoring case, then
        (`hostnames`) the longest leading wildcard, the longest trailing wildcard; then the
        regexes in file order against the value as it is; else `default`. With `hostnames`
        one trailing dot is dropped first."""
        if self.hostnames and value.endswith("."):
            value = value[:-1]
        low = value.lower()
        t = self.exact.get(low)
        if t is not None:
            return t, None
        if self.hostnames and low:
            hit = match_wildcard(self.head, self.tail, low)
            if hit is not None:
                return hit, None
        if value:
            for rx, rt in self.regexes:
                m = rx.search(value)
                if m is not None:
                    return rt, m
        return self.default, None


@dataclass(slots=True)
class Listen:
    addr: str                 # "*" | "0.0.0.0" | "127.0.0.1" | "::" | "::1" | "unix:/path"
    port: int
    default_server: bool = False
    ssl: bool = False
    http2: bool = False
    reuseport: bool = False
    backlog: int = 511
    ipv6only: bool = True
    where: Where = ("", 0)
    # socket options (ngx_configure_listening_sockets): 0 / None = the system's default
    rcvbuf: int = 0
    sndbuf: int = 0
    so_keepalive: tuple[bool, int, int, int] | None = None   # on, keepidle, keepintvl, keepcnt
    deferred: bool = False
    fastopen: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.addr, self.port)

    @property
    def family_host(self) -> str:
        return "0.0.0.0" if self.addr == "*" else self.addr


@dataclass(slots=True)
class LocationConf:
    modifier: str                      # "", "=", "^~", "~", "~*", "@", "if"
    pattern: str
    settings: Settings
    ops: tuple[Any, ...] = ()          # rewrite-module instructions
    proxy: ProxyPass | None = None
    children: list[LocationConf] = field(default_factory=list)
    internal: bool = False
    where: Where = ("", 0)
    regex: re.Pattern[str] | None = None
    auto_redirect: bool = False
    has_content: bool = False          # proxy_pass / return / try_files decide the content
    parent: LocationConf | None = None
    local: LevelSettings | None = None  # what this level wrote itself (for lint)
    limit_except: LimitExcept | None = None

    @property
    def name(self) -> str:
        return f"{self.modifier} {self.pattern}".strip()


@dataclass(frozen=True, slots=True)
class SslCommand:
    """One `ssl_conf_command name value;` and how it is applied to the context (Python's
    ssl has no SSL_CONF_cmd): "options" (set_bits / clear_bits of SSLContext.options),
    "ciphers" (set_ciphers(arg)), "groups" (set_ecdh_curve(arg), one group), "min" / "max"
    (minimum_version / maximum_version = arg), or "" when it cannot be (lint says so)."""
    name: str
    value: str
    how: str
    where: Where
    arg: str = ""
    set_bits: int = 0
    clear_bits: int = 0


@dataclass(slots=True)
class SslConf:
    certificates: list[tuple[str, str, Where]] = field(default_factory=list)
    protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    ciphers: str = "HIGH:!aNULL:!MD5"
    prefer_server_ciphers: bool = False
    session_cache: str = "none"
    session_timeout: float = 300.0
    session_tickets: bool = True
    dhparam: str | None = None      # ssl_dhparam: DH parameters for DHE ciphers
    dhparam_where: tuple[str, int] = ("", 0)
    password_file: str | None = None    # ssl_password_file: passphrases, one a line
    password_where: tuple[str, int] = ("", 0)
    # client certificates (mTLS): ssl_verify_client off | on | optional (optional_no_ca is
    # refused at compile time), the CA files that verify them, and where each was written
    verify_client: str = "off"
    verify_where: tuple[str, int] = ("", 0)
    client_certificate: str | None = None
    client_certificate_where: tuple[str, int] = ("", 0)
    trusted_certificate: str | None = None
    trusted_certificate_where: tuple[str, int] = ("", 0)
    verify_depth: int = 1
    crl: str | None = None
    crl_where: tuple[str, int] = ("", 0)
    # ssl_ecdh_curve: the group set on the context ("auto": OpenSSL's default list) and the
    # names of a list that could not be set with it (Python's ssl sets one group)
    ecdh_curve: tuple[str, tuple[str, ...]] = ("auto", ())
    ecdh_where: tuple[str, int] = ("", 0)
    # ssl_conf_command lines, in order, each with what truehop does with it
    conf_commands: list[SslCommand] = field(default_factory=list)


@dataclass(slots=True)
class ServerConf:
    listens: list[Listen]
    names: list[str]
    locations: list[LocationConf]
    named: dict[str, LocationConf]
    settings: Settings                 # merged server level: the "location" when none matches
    local: LevelSettings               # what the server block wrote itself (for lint)
    ops: tuple[Any, ...]
    ssl: SslConf
    http2: bool = False
    http2_max_concurrent_streams: int = 128
    merge_slashes: bool = True
    underscores_in_headers: bool = False
    ignore_invalid_headers: bool = True
    client_header_timeout: float = 60.0
    large_client_header_buffers: tuple[int, int] = (4, 8192)
    client_header_buffer_size: int = 1024
    where: Where = ("", 0)
    tree: Any = None                   # route.locations.LocationTree
    default_loc: LocationConf | None = None

    @property
    def server_name(self) -> str:
        """nginx's $server_name (cscf->server_name): the first `server_name` as written,
        lower-cased; a regex keeps its `~`, `.example.com` loses its dot; "" without one."""
        if not self.names:
            return ""
        n = self.names[0]
        if n.lower() == "$hostname":
            return _HOSTNAME
        return n[1:] if n.startswith(".") else n

    @property
    def primary_name(self) -> str:
        for n in self.names:
            if n and not n.startswith("~") and "*" not in n and n != "_":
                return n
        return ""


@dataclass(slots=True)
class LogFormat:
    name: str
    template: Template
    escape: str = "default"


@dataclass(slots=True)
class HttpConf:
    servers: list[ServerConf]
    upstreams: dict[str, UpstreamConf]
    maps: list[MapConf]
    log_formats: dict[str, LogFormat]
    settings: Settings
    local: LevelSettings
    scope: VariableLookup     # the scope its templates were compiled in (tests, tools)


@dataclass(slots=True)
class MainConf:
    # the directives' values; their defaults are the table's (conf/directives.py)
    worker_processes: int
    pid: str
    daemon: bool
    worker_shutdown_timeout: float
    worker_connections: int
    rlimit_nofile: int          # worker_rlimit_nofile; 0: inherited
    error_logs: list[tuple[str, str]] = field(default_factory=list)
    user: str | None = None
    group: str | None = None
    # the ids workers switch to: set only when the master runs as root (`user`, else nginx's
    # default nobody/nogroup); None = workers keep the master's identity
    uid: int | None = None
    gid: int | None = None
    where: dict[str, Where] = field(default_factory=dict)


@dataclass(slots=True)
class Config:
    main: MainConf
    http: HttpConf
    conf_path: str
    prefix: str
    sources: list[tuple[str, str]] = field(default_factory=list)
    top: str = "http"                  # "main" for a whole nginx.conf, "http" for conf.d style
    warnings: list[str] = field(default_factory=list)
    # directives accepted and not applied (the table's effect), with their line: for lint
    not_applied: list[tuple[str, Where]] = field(default_factory=list)
