"""The directive table: one record per directive, in nginx's own terms.

Each directive has a `Spec` (one per set of contexts: nginx has two `server` directives...):

* structure: its name, the contexts nginx allows it in (those truehop implements), its
  arity in nginx's notation (`TAKE12`, `1MORE`, `FLAG`, ...), whether it opens a block. The
  contexts and arities were taken from nginx 1.30's `ngx_command_t` tables, so a file that
  nginx refuses for its structure is refused here (`check_tree`) with the same words and line:
  `unknown directive "proxy_pas"`, `"map" directive is not allowed here`,
  `directive "server" has no opening "{"`, `directive "root" is not terminated by ";"`,
  `invalid number of arguments in "listen" directive`, `"events" directive is duplicate`;
* meaning: what it fills (`target`: a Settings, MainConf, UpstreamConf or ServerConf field,
  or a rewrite-module instruction), its parser (conf/parsers.py), its default (nginx 1.30's),
  how levels merge it (`VALUE`, `LIST`, `RULES`); conf/compile.py dispatches through these;
* walk: a block or structural directive (`http`, `server`, `location`, `upstream`, `map`,
  `log_format`, `proxy_pass`, ...) names the Compiler method that compiles it (`compile`)
  and when its enclosing block's walk does so (`stage`); one that defines variables names
  the method that declares them before any template is compiled (`declare`);
* effect: applied (and where), accepted with no effect (and why), accepted and not applied
  (lint reports it under the entry's finding id), or refused (with its module).

A real nginx directive that truehop does not implement is refused by name, with its module,
never ignored: `"mirror" directive is not supported by truehop (ngx_http_mirror_module)`.
`REFUSED` holds every directive of nginx 1.30 (http, core, events, stream, mail) that is not
accepted, plus well-known third-party and NGINX Plus ones, as entries of the same table.
`python -m truehop.conf.reference` renders the table (README.md's directive reference).

The bodies of `map` and `types` are key/value lists, not directives, and are not checked.

Contexts: "main", "events", "http", "server", "location", "upstream", "if_server" (an `if`
in a server), "if_location" (an `if` in a location), "map", "types", "limit_except".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from truehop.conf import parsers as P
from truehop.conf.ast import ConfigError, Directive
from truehop.conf.lexer import COMMAND_LINE
from truehop.conf.model import ProxyRedirect

MAIN = "main"
EVENTS = "events"
HTTP = "http"
SERVER = "server"
LOCATION = "location"
UPSTREAM = "upstream"
IF_SERVER = "if_server"
IF_LOCATION = "if_location"
MAP = "map"
TYPES = "types"
LIMIT_EXCEPT = "limit_except"

CONTEXTS = (MAIN, EVENTS, HTTP, SERVER, LOCATION, UPSTREAM, IF_SERVER, IF_LOCATION, MAP, TYPES,
            LIMIT_EXCEPT)

# Blocks whose bodies are data for the directive, not directives.
DATA_BLOCKS = frozenset({MAP, TYPES})

# nginx's argument-count flags: the numbers of arguments each accepts (None: no upper bound).
ARITIES: dict[str, tuple[frozenset[int], int | None]] = {
    "NOARGS": (frozenset({0}), None),
    "TAKE1": (frozenset({1}), None),
    "TAKE2": (frozenset({2}), None),
    "TAKE3": (frozenset({3}), None),
    "TAKE12": (frozenset({1, 2}), None),
    "TAKE13": (frozenset({1, 3}), None),
    "TAKE23": (frozenset({2, 3}), None),
    "TAKE123": (frozenset({1, 2, 3}), None),
    "TAKE1234": (frozenset({1, 2, 3, 4}), None),
    "FLAG": (frozenset({1}), None),
    "1MORE": (frozenset(), 1),
    "2MORE": (frozenset(), 2),
}


# What a directive fills (Spec.target): the compiler dispatches on it.
SETTINGS_T = "settings"     # a Settings field, merged http -> server -> location -> if
MAIN_T = "main"             # a MainConf field (main and events contexts)
UPSTREAM_T = "upstream"     # an UpstreamConf field (inside `upstream { }`)
SERVER_T = "server"         # a ServerConf / SslConf field ("ssl.x"), merged http -> server
REWRITE_T = "rewrite"       # a rewrite-module instruction (ReturnOp, RewriteOp, ...), run in order
STRUCTURE_T = ""            # blocks, rewrite-module instructions, proxy_pass: the compiler's walk

# How a level's value relates to the enclosing level's (Spec.merge).
VALUE = "value"   # ngx_conf_merge_*_value: this level's value if it wrote one, else the parent's
LIST = "list"     # arrays (proxy_set_header, add_header, access_log, ...): the lines of the
                  # nearest level that has any, as a whole; each line's parsed item is appended
RULES = "rules"   # the same inheritance, but the parser folds each line into the level's
                  # value itself (error_page's codes, proxy_redirect's and proxy_cookie_*'s rules)

# When a block's walk compiles a structural directive (Spec.stage), relative to the block's
# own values (LEVEL: its settings, server values and rewrite-module instructions, or, in the
# main context, its directives and `events`, in file order): lower stages first, each in file
# order. This is the order errors are found in, kept as it has always been: at the http level
# upstreams, log formats and maps (names the rest refers to) before the level's settings,
# servers after them (a server merges with them); in a location, its `proxy_pass` and
# `internal` after its settings and instructions, nested locations last.
UPSTREAMS = 1
LOG_FORMATS = 2
MAPS = 3
LEVEL = 4
CONTENT = 5
NESTED = 6


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT = _NoDefault()


@dataclass(frozen=True, slots=True)
class Computed:
    """A default that depends on the load (the prefix): `make(compiler)` builds it; `text`
    is what the directive reference shows."""

    text: str
    make: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Effect:
    """What truehop does with a directive.

    kind: "applied" (detail: the module(s) where the value takes effect), "no-effect"
    (accepted, and nothing needs doing: detail says why), "not-applied" (accepted so that a
    production config starts, but what nginx would do does not happen: detail says what;
    lint reports each occurrence under `finding`), "refused" (detail: nginx's module)."""

    kind: str
    detail: str
    finding: str = ""
    fix: str = ""
    # not-applied: whether this occurrence leaves something undone (limit_rate 0 does not)
    active: Callable[[Directive], bool] | None = None


def applied(at: str) -> Effect:
    return Effect("applied", at)


def no_effect(why: str) -> Effect:
    return Effect("no-effect", why)


def not_applied(what: str, finding: str, fix: str,
                active: Callable[[Directive], bool] | None = None) -> Effect:
    return Effect("not-applied", what, finding, fix, active)


def refused(module: str) -> Effect:
    return Effect("refused", module)


@dataclass(frozen=True, slots=True)
class Spec:
    """One directive in one set of contexts (nginx has two `server` directives, two
    `keepalive_timeout`s...: one Spec each): the one record of what it is and where it goes.

    Structure (checked by `check_tree`): name, contexts, arity, block, unique. Meaning (used
    by conf/compile.py): `target` and `field` say what it fills, `parse(compiler, directive,
    target)` reads its value (conf/parsers.py), `default` is the value when no level writes
    it, `merge` how levels inherit it, `also` further fields the parser fills, with their
    defaults. `effect` says what truehop does with it (the directive reference and lint's
    "not applied" findings come from it).

    Walk (used by conf/compile.py): a block or structural directive names the `Compiler`
    method that compiles it, `compile(directive, into)` with what its enclosing block is
    building (the MainConf, the http level, a ServerConf, a LocationConf), and its `stage`
    in that block's walk; `declare(directive)` names the method that declares the variables
    it defines (`map`, `set`, server_name captures) before any template is compiled."""

    name: str
    contexts: frozenset[str]
    arity: str  # a key of ARITIES
    module: str
    doc: str
    block: bool = False
    supported: bool = True  # False: nginx allows it here, truehop does not implement it
    unique: bool = False  # may appear once per block ("is duplicate")
    target: str = STRUCTURE_T
    parse: P.Parser | None = None
    field: str = ""
    default: Any = NO_DEFAULT
    merge: str = ""
    effect: Effect = Effect("applied", "")
    where_field: str = ""  # server level: the field that keeps the (file, line) of a file's name
    also: tuple[tuple[str, Any], ...] = ()
    compile: str = ""  # the Compiler method that compiles this block/structural directive
    stage: int = LEVEL
    declare: str = ""  # the Compiler method that declares the variables it defines

    def takes(self, n: int) -> bool:
        exact, at_least = ARITIES[self.arity]
        if at_least is not None:
            return n >= at_least
        return n in exact

    @property
    def child_context(self) -> str | None:
        """The context of this directive's block (for `if`, see `child_context_of`)."""
        return _CHILD.get(self.name) if self.block else None

    def default_for(self, c: Any) -> Any:
        """The default value, built for this load when it depends on it (Computed)."""
        return self.default.make(c) if isinstance(self.default, Computed) else self.default


_CHILD = {"events": EVENTS, "http": HTTP, "server": SERVER, "location": LOCATION,
          "upstream": UPSTREAM, "map": MAP, "types": TYPES, "limit_except": LIMIT_EXCEPT}


def child_context_of(name: str, parent: str) -> str | None:
    """Context of the block of directive `name` written in context `parent`."""
    if name == "if":
        return IF_SERVER if parent == SERVER else IF_LOCATION
    return _CHILD.get(name)


M = frozenset({MAIN})
EV = frozenset({EVENTS})
H = frozenset({HTTP})
HS = frozenset({HTTP, SERVER})
HSL = frozenset({HTTP, SERVER, LOCATION})
HSLI = frozenset({HTTP, SERVER, LOCATION, IF_LOCATION})
S = frozenset({SERVER})
SL = frozenset({SERVER, LOCATION})
L = frozenset({LOCATION})
LI = frozenset({LOCATION, IF_LOCATION})
LE = frozenset({LIMIT_EXCEPT})
HSLE = frozenset({HTTP, SERVER, LOCATION, LIMIT_EXCEPT})
U = frozenset({UPSTREAM})
REWRITE = frozenset({SERVER, IF_SERVER, LOCATION, IF_LOCATION})
ANY = frozenset({MAIN, EVENTS, HTTP, SERVER, LOCATION, UPSTREAM, IF_SERVER, IF_LOCATION,
                 LIMIT_EXCEPT, MAP, TYPES})

CORE = "ngx_core_module"
HCORE = "ngx_http_core_module"
PROXY = "ngx_http_proxy_module"
SSL = "ngx_http_ssl_module"
UPS = "ngx_http_upstream_module"
UZONE = "ngx_http_upstream_zone_module"
REWR = "ngx_http_rewrite_module"
KA = "ngx_http_upstream_keepalive_module"
ACCESS = "ngx_http_access_module"


def _d(name: str, contexts: frozenset[str], arity: str, module: str, doc: str, *,
       block: bool = False, supported: bool = True, unique: bool = False,
       target: str = STRUCTURE_T, parse: P.Parser | None = None, field: str = "",
       default: Any = NO_DEFAULT, merge: str = "", at: str = "", noop: str = "",
       effect: Effect | None = None, where_field: str = "",
       also: tuple[tuple[str, Any], ...] = (), compile: str = "", stage: int = LEVEL,
       declare: str = "") -> Spec:
    assert arity in ARITIES, arity
    if effect is None:
        if not supported:
            effect = refused(module)
        elif noop:
            effect = no_effect(noop)
        else:
            assert at, f"{name}: say where it is applied (at=) or why it has no effect (noop=)"
            effect = applied(at)
    if target and target != REWRITE_T and not field:
        field = name
    if target and not merge:
        merge = VALUE if target in (SETTINGS_T, SERVER_T) else ""
    return Spec(name, contexts, arity, module, doc, block, supported, unique, target, parse,
                field, default, merge, effect, where_field, also, compile, stage, declare)


_TUNING = "sizes nginx's own hash tables or memory pools; truehop has none to size"
_RUN = "process/runtime.py"
_PIPE = "proxy/pipeline.py"
_DOWN = "net/downstream.py, net/h2conn.py"
_CACHE = "proxy/cache/handler.py"
_CACHE_POLICY = "proxy/cache/policy.py"
GZIP = "ngx_http_gzip_module"
_GZ = "proxy/gzip.py"
BROTLI = "ngx_brotli"
_BR = "proxy/brotli.py"


LREQ = "ngx_http_limit_req_module"
LCONN = "ngx_http_limit_conn_module"
_LIMITS = "proxy/limits.py"            # the preaccess phase
_ZONES = "net/shm.py, proxy/limits.py"  # memory shared by the workers
_PACING = "proxy/pacing.py"             # a body filter, last in the chain


SPECS: tuple[Spec, ...] = (
    # --- main ------------------------------------------------------------------------------
    _d("worker_processes", M, "TAKE1", CORE, "number of worker processes, or auto (= cores)",
       target=MAIN_T, parse=P.worker_processes, default=1, at="process/master.py"),
    _d("pid", M, "TAKE1", CORE, "file the master writes its pid to (off: none)",
       target=MAIN_T, parse=P.pid, default="logs/truehop.pid", at="process/master.py"),
    _d("error_log", M, "1MORE", CORE, "error log file and minimum level",
       target=MAIN_T, parse=P.error_log, field="error_logs", merge=LIST,
       at="process/master.py, process/runtime.py"),
    _d("daemon", M, "FLAG", CORE, "detach from the terminal (truehop runs in the foreground by default)",
       target=MAIN_T, parse=P.flag, default=False, at="process/master.py"),
    _d("worker_shutdown_timeout", M, "TAKE1", CORE, "how long old workers may finish requests after reload/quit",
       target=MAIN_T, parse=P.time_, default=0.0, at="process/worker.py"),
    _d("user", M, "TAKE12", CORE, "user (and group) the workers run as",
       target=MAIN_T, parse=P.user, default=None, at="process/master.py"),
    _d("worker_rlimit_nofile", M, "TAKE1", CORE, "open-file limit of the workers",
       target=MAIN_T, parse=P.integer, field="rlimit_nofile", default=0, at="process/master.py"),
    _d("pcre_jit", M, "FLAG", CORE, "regex JIT",
       noop="regexes are Python's re, compiled once when the configuration is loaded"),
    _d("include", ANY, "TAKE1", CORE, "read another file (glob) here, at parse time",
       at="conf/parser.py"),
    _d("events", M, "NOARGS", CORE, "connection processing block", block=True, unique=True,
       compile="compile_events", at="conf/compile.py"),
    _d("http", M, "NOARGS", HCORE, "the HTTP server block", block=True, unique=True,
       compile="take_http", stage=NESTED, at="conf/compile.py"),
    # --- events ----------------------------------------------------------------------------
    _d("worker_connections", EV, "TAKE1", CORE, "maximum simultaneous connections per worker",
       target=MAIN_T, parse=P.integer, default=512, at=_RUN),
    _d("use", EV, "TAKE1", CORE, "connection processing method",
       noop="the event loop (uvloop when installed) picks epoll/kqueue itself"),
    _d("multi_accept", EV, "FLAG", CORE, "accept all pending connections at once",
       noop="the event loop accepts connections as they come"),
    # --- upstream --------------------------------------------------------------------------
    _d("upstream", H, "TAKE1", UPS, "a named group of servers", block=True,
       compile="compile_upstream", stage=UPSTREAMS, at="conf/compile.py"),
    _d("server", U, "1MORE", UPS, "a server of the group: address weight= max_fails= fail_timeout= backup down",
       target=UPSTREAM_T, parse=P.upstream_server, field="peers", merge=LIST, at="proxy/balancer.py"),
    # `server ... resolve` (nginx 1.27.3+): names looked up at run time (proxy/resolving.py)
    _d("resolver", U, "1MORE", UPS, "resolver for servers with `resolve`",
       target=UPSTREAM_T, parse=P.resolver, default=None, at="proxy/resolving.py"),
    _d("resolver_timeout", U, "TAKE1", UPS, "resolver timeout for the group",
       target=UPSTREAM_T, parse=P.time_, default=30.0, at="proxy/resolving.py"),
    _d("zone", U, "TAKE12", UZONE, "shared memory zone of the group (required by `resolve`); each worker still keeps its own state of the group's servers (failures, connection counts, round-robin position), as nginx does without a zone",
       target=UPSTREAM_T, parse=P.zone_name, default=None, at="conf/compile.py"),
    _d("keepalive", U, "TAKE12", KA, "idle keepalive connections cached per worker [local]",
       target=UPSTREAM_T, parse=P.keepalive, default=32, at="proxy/upstreams.py, proxy/pool.py"),
    _d("keepalive_timeout", U, "TAKE1", KA, "how long an idle upstream connection is kept",
       target=UPSTREAM_T, parse=P.time_, default=60.0, at="proxy/pool.py"),
    _d("keepalive_requests", U, "TAKE1", KA, "requests per upstream connection before it is closed",
       target=UPSTREAM_T, parse=P.integer, default=1000, at="proxy/pool.py"),
    _d("keepalive_time", U, "TAKE1", KA, "maximum lifetime of an upstream connection",
       target=UPSTREAM_T, parse=P.time_, default=3600.0, at="proxy/pool.py"),
    _d("least_conn", U, "NOARGS", "ngx_http_upstream_least_conn_module", "balance to the server with fewest active connections",
       target=UPSTREAM_T, parse=P.balance, field="kind", default="round_robin", at="proxy/balancer.py"),
    _d("ip_hash", U, "NOARGS", "ngx_http_upstream_ip_hash_module", "balance by client address (/24 for IPv4)",
       target=UPSTREAM_T, parse=P.balance, field="kind", default="round_robin", at="proxy/balancer.py"),
    _d("hash", U, "TAKE12", "ngx_http_upstream_hash_module", "balance by a key [consistent]",
       target=UPSTREAM_T, parse=P.hash_key, field="hash_key", default=None, at="proxy/balancer.py"),
    # --- http structure --------------------------------------------------------------------
    _d("map", H, "TAKE2", "ngx_http_map_module", "a variable whose value depends on another", block=True,
       compile="compile_map", stage=MAPS, declare="declare_map", at="route/variables.py"),
    _d("map_hash_bucket_size", H, "TAKE1", "ngx_http_map_module", "map hash tuning", noop=_TUNING),
    _d("map_hash_max_size", H, "TAKE1", "ngx_http_map_module", "map hash tuning", noop=_TUNING),
    _d("server", H, "NOARGS", HCORE, "a virtual server", block=True,
       compile="compile_server", stage=NESTED, at="route/servers.py"),
    _d("listen", S, "1MORE", HCORE, "address and port to accept connections on, with options",
       target=SERVER_T, parse=P.listen, field="listens", merge=LIST, at=_RUN),
    _d("server_name", S, "1MORE", HCORE, "names of the virtual server (exact, wildcard, ~regex)",
       target=SERVER_T, parse=P.server_names, field="names", merge=LIST,
       declare="declare_captures", at="route/servers.py"),
    _d("location", SL, "TAKE12", HCORE, "configuration for a request URI ([=|~|~*|^~] uri, or @name)", block=True,
       compile="compile_location", stage=NESTED, at="route/locations.py"),
    _d("types", HSL, "NOARGS", HCORE, "file extension -> MIME type table", block=True,
       target=SETTINGS_T, parse=P.types, default=Computed("html, gif, jpg", P.builtin_types), at=_PIPE),
    _d("log_format", H, "2MORE", "ngx_http_log_module", "a named access log format [escape=]",
       compile="compile_log_format", stage=LOG_FORMATS, at="log.py"),
    _d("access_log", HSLI, "1MORE", "ngx_http_log_module", "access log path [format [buffer= flush= if=]] or off",
       target=SETTINGS_T, parse=P.access_log, merge=LIST,
       default=Computed("logs/access.log combined", P.default_access_log), at=_RUN + ", " + _PIPE),
    _d("error_log", HSL, "1MORE", CORE, "error log of requests at this level, and minimum level",
       target=SETTINGS_T, parse=P.error_log, merge=LIST, default=None, at=_RUN + ", log.py"),
    # --- content ---------------------------------------------------------------------------
    _d("root", HSLI, "TAKE1", HCORE, "document root: file = root + URI",
       target=SETTINGS_T, parse=P.root, default=Computed("html", P.default_root), at=_PIPE),
    _d("alias", L, "TAKE1", HCORE, "replace the location's prefix with this path",
       target=SETTINGS_T, parse=P.alias, default=None, at=_PIPE),
    _d("index", HSL, "1MORE", "ngx_http_index_module", "files tried for a URI ending in /",
       target=SETTINGS_T, parse=P.templates, default=Computed("index.html", P.default_index), at=_PIPE),
    _d("try_files", SL, "2MORE", HCORE, "check files in order, else the last parameter (URI, @name or =code)",
       target=SETTINGS_T, parse=P.templates, default=None, at=_PIPE),
    _d("autoindex", HSL, "FLAG", "ngx_http_autoindex_module", "directory listings",
       target=SETTINGS_T, parse=P.flag, default=False,
       noop="no listing is generated: a directory without an index file answers 403, as with autoindex off"),
    _d("default_type", HSL, "TAKE1", HCORE, "MIME type when the extension is not in types",
       target=SETTINGS_T, parse=P.word, default="text/plain", at=_PIPE),
    _d("expires", HSLI, "TAKE12", "ngx_http_headers_module", "Expires and Cache-Control max-age of responses",
       target=SETTINGS_T, parse=P.expires, default=None, at=_PIPE),
    _d("add_header", HSLI, "TAKE23", "ngx_http_headers_module", "add a response header [always]",
       target=SETTINGS_T, parse=P.header_setting, merge=LIST, default=(), at=_PIPE),
    _d("return", REWRITE, "TAKE12", REWR, "stop and answer with a code [text|URL]",
       target=REWRITE_T, parse=P.rewrite_return, at=_PIPE),
    _d("error_page", HSLI, "2MORE", HCORE, "URI (or redirect) shown for the given status codes",
       target=SETTINGS_T, parse=P.error_page, merge=RULES, default={}, at=_PIPE),
    _d("internal", L, "NOARGS", HCORE, "location reachable only by internal redirects",
       compile="compile_internal", stage=CONTENT, at=_PIPE),
    _d("log_not_found", HSL, "FLAG", HCORE, "log file-not-found errors",
       target=SETTINGS_T, parse=P.flag, default=True, at=_PIPE),
    _d("etag", HSL, "FLAG", HCORE, "ETag on static files",
       target=SETTINGS_T, parse=P.flag, default=True, at=_PIPE),
    _d("if_modified_since", HSL, "TAKE1", HCORE, "how If-Modified-Since is compared (off|exact|before)",
       target=SETTINGS_T, parse=P.word, default="exact", at=_PIPE),
    _d("max_ranges", HSL, "TAKE1", HCORE, "maximum byte ranges per request",
       target=SETTINGS_T, parse=P.integer, default=None, at=_PIPE),
    _d("open_file_cache", HSL, "TAKE12", HCORE, "open file descriptor cache",
       noop="files are opened per request: there is no descriptor cache to size"),
    _d("disable_symlinks", HSL, "TAKE12", HCORE, "refuse symbolic links when opening files",
       target=SETTINGS_T, parse=P.not_off, default=False,
       noop="symbolic links are followed, as with nginx's default (off)"),
    _d("sendfile", HSLI, "FLAG", HCORE, "use sendfile() for static files",
       target=SETTINGS_T, parse=P.flag, default=False, at="net/downstream.py, " + _PIPE),
    _d("tcp_nopush", HSL, "FLAG", HCORE, "TCP_CORK with sendfile",
       noop="TCP_CORK is not set: a response head and its first body bytes go out in one write"),
    _d("tcp_nodelay", HSL, "FLAG", HCORE, "TCP_NODELAY on keepalive connections",
       target=SETTINGS_T, parse=P.flag, default=True,
       noop="the event loop sets TCP_NODELAY on every TCP connection"),
    # --- limits: ngx_http_limit_req_module, ngx_http_limit_conn_module, limit_rate ---------
    _d("limit_req_zone", H, "2MORE", LREQ, "a shared zone of request rates: key zone=name:size rate=Nr/s|Nr/m",
       target=SETTINGS_T, parse=P.limit_req_zone, merge=LIST, default=(), at=_ZONES),
    _d("limit_req", HSL, "1MORE", LREQ, "limit the request rate by a zone: zone=name [burst=N] [nodelay | delay=N]",
       target=SETTINGS_T, parse=P.limit_req, merge=LIST, default=(), at=_LIMITS),
    _d("limit_req_status", HSL, "TAKE1", LREQ, "status of a rejected request (400-599)",
       target=SETTINGS_T, parse=P.limit_status, default=503, at=_LIMITS),
    _d("limit_req_log_level", HSL, "TAKE1", LREQ, "level of rejections in the error log (delays: one lower)",
       target=SETTINGS_T, parse=P.limit_log_level, default="error", at=_LIMITS),
    _d("limit_req_dry_run", HSL, "FLAG", LREQ, "count and log, but neither delay nor reject",
       target=SETTINGS_T, parse=P.flag_once, default=False, at=_LIMITS),
    _d("limit_conn_zone", H, "2MORE", LCONN, "a shared zone of connection counts: key zone=name:size",
       target=SETTINGS_T, parse=P.limit_conn_zone, merge=LIST, default=(), at=_ZONES),
    _d("limit_conn", HSL, "TAKE2", LCONN, "limit the requests in progress per key of a zone",
       target=SETTINGS_T, parse=P.limit_conn, merge=LIST, default=(), at=_LIMITS),
    _d("limit_conn_status", HSL, "TAKE1", LCONN, "status of a rejected request (400-599)",
       target=SETTINGS_T, parse=P.limit_status, default=503, at=_LIMITS),
    _d("limit_conn_log_level", HSL, "TAKE1", LCONN, "level of rejections in the error log",
       target=SETTINGS_T, parse=P.limit_log_level, default="error", at=_LIMITS),
    _d("limit_conn_dry_run", HSL, "FLAG", LCONN, "count and log, but do not reject",
       target=SETTINGS_T, parse=P.flag_once, default=False, at=_LIMITS),
    _d("limit_rate", HSLI, "TAKE1", HCORE, "limit the response rate per request, bytes/s (variables allowed; 0: off)",
       target=SETTINGS_T, parse=P.size_value, default=0, at=_PACING),
    _d("limit_rate_after", HSLI, "TAKE1", HCORE, "bytes sent at full speed before limit_rate applies",
       target=SETTINGS_T, parse=P.size_value, default=0, at=_PACING),
    _d("proxy_limit_rate", HSL, "TAKE1", PROXY, "limit the rate of reading a buffered response from the upstream",
       target=SETTINGS_T, parse=P.size_value, default=0, at=_PACING + ", proxy/response.py"),
    # --- proxy -----------------------------------------------------------------------------
    _d("proxy_pass", LI, "TAKE1", PROXY, "the upstream URL or group requests are sent to",
       compile="compile_proxy_pass", stage=CONTENT, at="proxy/target.py, proxy/upstream.py"),
    _d("proxy_set_header", HSL, "TAKE2", PROXY, "set (or remove, if empty) a header sent upstream",
       target=SETTINGS_T, parse=P.header_setting, merge=LIST, default=(), at="proxy/upstream_request.py"),
    _d("proxy_http_version", HSL, "TAKE1", PROXY, "HTTP version spoken to the upstream (1.0|1.1)",
       target=SETTINGS_T, parse=P.http_version, default="1.1", at="proxy/upstream_request.py"),
    _d("proxy_buffering", HSL, "FLAG", PROXY, "buffer upstream responses",
       target=SETTINGS_T, parse=P.flag, default=True, at="proxy/relay.py"),
    _d("proxy_buffer_size", HSL, "TAKE1", PROXY, "buffer for the upstream response head",
       target=SETTINGS_T, parse=P.size, default=8192, at="proxy/attempts.py"),
    _d("proxy_buffers", HSL, "TAKE2", PROXY, "number and size of response buffers per request",
       target=SETTINGS_T, parse=P.proxy_buffers, default=(8, 8192), at="proxy/relay.py"),
    _d("proxy_busy_buffers_size", HSL, "TAKE1", PROXY, "buffers that may be busy sending to the client",
       target=SETTINGS_T, parse=P.size, default=16384,
       noop="what waits for a slow client is bounded otherwise: 64 KiB writes, 16 KiB in the client's transport"),
    _d("proxy_request_buffering", HSL, "FLAG", PROXY, "read the whole request body before proxying",
       target=SETTINGS_T, parse=P.flag, default=True, at="proxy/upstream_request.py"),
    _d("proxy_connect_timeout", HSL, "TAKE1", PROXY, "timeout for connecting to the upstream",
       target=SETTINGS_T, parse=P.time_, default=60.0, at="proxy/attempts.py"),
    _d("proxy_read_timeout", HSL, "TAKE1", PROXY, "timeout between two reads from the upstream",
       target=SETTINGS_T, parse=P.time_, default=60.0, at="proxy/attempts.py, proxy/relay.py, proxy/tunnel.py"),
    _d("proxy_send_timeout", HSL, "TAKE1", PROXY, "timeout between two writes to the upstream",
       target=SETTINGS_T, parse=P.time_, default=60.0, at="proxy/attempts.py"),
    _d("proxy_next_upstream", HSL, "1MORE", PROXY, "failures that make a request go to the next server",
       target=SETTINGS_T, parse=P.next_upstream, default=frozenset({"error", "timeout"}), at="proxy/attempts.py"),
    _d("proxy_next_upstream_tries", HSL, "TAKE1", PROXY, "limit of tries over servers (0: none)",
       target=SETTINGS_T, parse=P.integer, default=0, at="proxy/attempts.py"),
    _d("proxy_next_upstream_timeout", HSL, "TAKE1", PROXY, "time limit for trying servers (0: none)",
       target=SETTINGS_T, parse=P.time_, default=0.0, at="proxy/attempts.py"),
    _d("proxy_redirect", HSL, "TAKE12", PROXY, "rewrite Location/Refresh of upstream responses",
       target=SETTINGS_T, parse=P.proxy_redirect, merge=RULES, default=ProxyRedirect("default"), at="proxy/response.py"),
    _d("proxy_method", HSL, "TAKE1", PROXY, "the method of the upstream request",
       target=SETTINGS_T, parse=P.template, default=None, at="proxy/upstream_request.py"),
    _d("proxy_set_body", HSL, "TAKE1", PROXY, "the body of the upstream request",
       target=SETTINGS_T, parse=P.template, default=None, at="proxy/upstream_request.py"),
    _d("proxy_pass_request_headers", HSL, "FLAG", PROXY, "send the client's headers upstream",
       target=SETTINGS_T, parse=P.flag, default=True, at="proxy/upstream_request.py"),
    _d("proxy_pass_request_body", HSL, "FLAG", PROXY, "send the client's body upstream",
       target=SETTINGS_T, parse=P.flag, default=True, at="proxy/upstream_request.py"),
    _d("proxy_hide_header", HSL, "TAKE1", PROXY, "do not pass this upstream response header",
       target=SETTINGS_T, parse=P.lower_word, merge=LIST, default=(), at="proxy/response.py"),
    _d("proxy_pass_header", HSL, "TAKE1", PROXY, "pass an upstream header nginx hides by default",
       target=SETTINGS_T, parse=P.lower_word, merge=LIST, default=(), at="proxy/response.py"),
    _d("proxy_intercept_errors", HSL, "FLAG", PROXY, "answer upstream codes >= 300 with error_page",
       target=SETTINGS_T, parse=P.flag, default=False, at="proxy/relay.py"),
    _d("proxy_ignore_headers", HSL, "1MORE", PROXY, "upstream response headers whose meaning is ignored",
       target=SETTINGS_T, parse=P.ignore_headers, default=frozenset(),
       at="proxy/response.py, proxy/cache/policy.py"),
    # a buffered response beyond proxy_buffers goes to a temp file (proxy/spool.py)
    _d("proxy_max_temp_file_size", HSL, "TAKE1", PROXY, "maximum temporary file size when buffering (0: none)",
       target=SETTINGS_T, parse=P.size, default=1024 * 1024 * 1024, at="proxy/spool.py"),
    _d("proxy_temp_file_write_size", HSL, "TAKE1", PROXY, "how much is written to the temporary file at a time",
       target=SETTINGS_T, parse=P.size,
       default=Computed("2 x max(proxy_buffer_size, proxy_buffers' size)", P.default_write_size),
       at="proxy/spool.py"),
    _d("proxy_temp_path", HSL, "TAKE1234", PROXY, "temp dir for buffered upstream responses [levels]",
       target=SETTINGS_T, parse=P.temp_path, default=Computed("proxy_temp", P.default_proxy_temp_path),
       at="process/runtime.py, proxy/spool.py"),
    _d("proxy_cookie_domain", HSL, "TAKE12", PROXY, "rewrite the domain of Set-Cookie",
       target=SETTINGS_T, parse=P.cookie_rewrite("proxy_cookie_domain"), merge=RULES, default=(), at="proxy/response.py"),
    _d("proxy_cookie_path", HSL, "TAKE12", PROXY, "rewrite the path of Set-Cookie",
       target=SETTINGS_T, parse=P.cookie_rewrite("proxy_cookie_path"), merge=RULES, default=(), at="proxy/response.py"),
    _d("proxy_ssl_server_name", HSL, "FLAG", PROXY, "send SNI to an https upstream",
       target=SETTINGS_T, parse=P.flag, default=False, at="proxy/attempts.py"),
    _d("proxy_ssl_verify", HSL, "FLAG", PROXY, "verify the https upstream's certificate",
       target=SETTINGS_T, parse=P.flag, default=False, at="proxy/upstreams.py, proxy/attempts.py"),
    _d("proxy_ssl_trusted_certificate", HSL, "TAKE1", PROXY, "CA certificates for proxy_ssl_verify",
       target=SETTINGS_T, parse=P.conf_path, default=None, at="proxy/upstreams.py"),
    _d("proxy_ssl_name", HSL, "TAKE1", PROXY, "name used for SNI and verification",
       target=SETTINGS_T, parse=P.template, default=None, at="proxy/attempts.py"),
    _d("proxy_ssl_protocols", HSL, "1MORE", PROXY, "TLS versions toward the upstream",
       target=SETTINGS_T, parse=P.ssl_protocols, default=("TLSv1.2", "TLSv1.3"), at="proxy/upstreams.py"),
    # --- proxy cache (proxy/cache/) ---------------------------------------------------------
    _d("proxy_cache_path", H, "2MORE", PROXY,
       "a cache zone: path [levels=1:2] keys_zone=name:size [inactive= max_size= min_free= ...]",
       target=SETTINGS_T, parse=P.cache_path, merge=LIST, default=(),
       at="proxy/cache/store.py, process/master.py"),
    _d("proxy_cache", HSL, "TAKE1", PROXY, "the cache zone responses are kept in (off: none)",
       target=SETTINGS_T, parse=P.cache_zone, default=None, at=_CACHE),
    _d("proxy_cache_key", HSL, "TAKE1", PROXY, "the key a response is cached under",
       target=SETTINGS_T, parse=P.template,
       default=Computed("$scheme$proxy_host$request_uri", P.default_cache_key), at=_CACHE),
    _d("proxy_cache_valid", HSL, "1MORE", PROXY, "how long responses with these codes (or any) are fresh",
       target=SETTINGS_T, parse=P.cache_valid, merge=LIST, default=(), at=_CACHE_POLICY),
    _d("proxy_cache_methods", HSL, "1MORE", PROXY, "methods whose responses are cached (GET HEAD [POST])",
       target=SETTINGS_T, parse=P.cache_methods, default=frozenset({"GET", "HEAD"}), at=_CACHE),
    _d("proxy_cache_min_uses", HSL, "TAKE1", PROXY, "requests for a key before its response is cached",
       target=SETTINGS_T, parse=P.min_uses, default=1, at=_CACHE),
    _d("proxy_cache_bypass", HSL, "1MORE", PROXY, "conditions under which the cache is not read",
       target=SETTINGS_T, parse=P.cache_conditions, merge=LIST, default=(), at=_CACHE),
    _d("proxy_no_cache", HSL, "1MORE", PROXY, "conditions under which the response is not stored",
       target=SETTINGS_T, parse=P.cache_conditions, merge=LIST, default=(), at=_CACHE),
    _d("proxy_cache_use_stale", HSL, "1MORE", PROXY, "failures for which an expired entry is served",
       target=SETTINGS_T, parse=P.cache_use_stale, default=frozenset(), at=_CACHE),
    _d("proxy_cache_background_update", HSL, "FLAG", PROXY, "refresh an expired entry in the background, serving it stale",
       target=SETTINGS_T, parse=P.flag, default=False, at=_CACHE),
    _d("proxy_cache_lock", HSL, "FLAG", PROXY, "one request at a time fills a missing entry",
       target=SETTINGS_T, parse=P.flag, default=False, at=_CACHE + ", proxy/cache/store.py"),
    _d("proxy_cache_lock_timeout", HSL, "TAKE1", PROXY, "how long others wait on the lock (then go upstream, uncached)",
       target=SETTINGS_T, parse=P.time_, default=5.0, at=_CACHE),
    _d("proxy_cache_lock_age", HSL, "TAKE1", PROXY, "a lock older than this lets one more request go upstream",
       target=SETTINGS_T, parse=P.time_, default=5.0, at="proxy/cache/store.py"),
    _d("proxy_cache_revalidate", HSL, "FLAG", PROXY, "revalidate expired entries with If-Modified-Since / If-None-Match",
       target=SETTINGS_T, parse=P.flag, default=False, at=_CACHE),
    _d("proxy_cache_convert_head", HSL, "FLAG", PROXY, "a HEAD is sent upstream as a GET when caching",
       target=SETTINGS_T, parse=P.flag, default=True, at=_CACHE),
    _d("proxy_cache_max_range_offset", HSL, "TAKE1", PROXY,
       "a Range starting at or after this offset goes upstream, uncached",
       target=SETTINGS_T, parse=P.size, default=None, at=_CACHE),
    _d("postpone_output", HSL, "TAKE1", HCORE, "hold output until this much is ready",
       noop="truehop writes what it has as it has it: output is never postponed"),
    # --- client side -----------------------------------------------------------------------
    _d("client_max_body_size", HSL, "TAKE1", HCORE, "largest request body allowed (0: no limit)",
       target=SETTINGS_T, parse=P.size, default=1024 * 1024, at="proxy/pipeline.py, proxy/upstream.py"),
    _d("client_body_buffer_size", HSL, "TAKE1", HCORE, "request body buffer size",
       target=SETTINGS_T, parse=P.size, default=16384, at="proxy/upstream.py, proxy/attempts.py, net/h2conn.py"),
    _d("client_body_timeout", HSL, "TAKE1", HCORE, "timeout between two reads of the request body",
       target=SETTINGS_T, parse=P.time_, default=60.0, at="proxy/upstream.py, proxy/attempts.py"),
    _d("client_header_buffer_size", HS, "TAKE1", HCORE, "buffer for the request head",
       target=SERVER_T, parse=P.size, default=1024,
       noop="a request head is read into one growing buffer, bounded by large_client_header_buffers"),
    _d("client_header_timeout", HS, "TAKE1", HCORE, "timeout for reading the request head",
       target=SERVER_T, parse=P.time_, default=60.0, at=_DOWN),
    _d("large_client_header_buffers", HS, "TAKE2", HCORE, "number and size of buffers for long heads",
       target=SERVER_T, parse=P.header_buffers, default=(4, 8192), at="http/h1.py, http/h2.py"),
    _d("send_timeout", HSL, "TAKE1", HCORE, "timeout between two writes to the client",
       target=SETTINGS_T, parse=P.time_, default=60.0, at=_DOWN),
    _d("keepalive_timeout", HSL, "TAKE12", HCORE, "idle client keepalive timeout [header value]",
       target=SETTINGS_T, parse=P.keepalive_timeout, default=75.0,
       also=(("keepalive_header", 0.0),), at=_DOWN),
    _d("keepalive_requests", HSL, "TAKE1", HCORE, "requests per client connection",
       target=SETTINGS_T, parse=P.integer, default=1000, at=_DOWN),
    _d("keepalive_time", HSL, "TAKE1", HCORE, "maximum lifetime of a client connection",
       target=SETTINGS_T, parse=P.time_, default=3600.0, at=_DOWN),
    _d("lingering_close", HSL, "TAKE1", HCORE, "drain input before closing (on|off|always)",
       target=SETTINGS_T, parse=P.lingering_close, default="on", at=_DOWN),
    _d("lingering_time", HSL, "TAKE1", HCORE, "longest drain of a closing connection",
       target=SETTINGS_T, parse=P.time_, default=30.0, at=_DOWN),
    _d("lingering_timeout", HSL, "TAKE1", HCORE, "longest wait for more input while draining",
       target=SETTINGS_T, parse=P.time_, default=5.0, at=_DOWN),
    _d("server_tokens", HSL, "TAKE1", HCORE, "version in Server header and error pages (on|off|build)",
       target=SETTINGS_T, parse=P.not_off, default=True, at=_PIPE),
    _d("absolute_redirect", HSL, "FLAG", HCORE, "redirects issued by the server are absolute",
       target=SETTINGS_T, parse=P.flag, default=True, at=_PIPE),
    _d("server_name_in_redirect", HSL, "FLAG", HCORE, "use the primary server_name in redirects",
       target=SETTINGS_T, parse=P.flag, default=False, at=_PIPE),
    _d("port_in_redirect", HSL, "FLAG", HCORE, "put the port in absolute redirects",
       target=SETTINGS_T, parse=P.flag, default=True, at=_PIPE),
    _d("merge_slashes", HS, "FLAG", HCORE, "compress // in URIs",
       target=SERVER_T, parse=P.flag, default=True, at="route/uri.py, " + _PIPE),
    _d("underscores_in_headers", HS, "FLAG", HCORE, "accept underscores in header names",
       target=SERVER_T, parse=P.flag, default=False, at="http/h1.py, http/h2.py"),
    _d("ignore_invalid_headers", HS, "FLAG", HCORE, "drop headers with invalid names",
       target=SERVER_T, parse=P.flag, default=True, at="http/h1.py, http/h2.py"),
    _d("chunked_transfer_encoding", HSL, "FLAG", HCORE, "chunked responses to HTTP/1.1 clients",
       target=SETTINGS_T, parse=P.flag, default=True,
       noop="an HTTP/1.1 response without a length is always sent chunked"),
    _d("http2", HS, "FLAG", "ngx_http_v2_module", "HTTP/2 on this server's listeners",
       target=SERVER_T, parse=P.flag, default=False, at="net/negotiate.py, " + _RUN),
    _d("http2_max_concurrent_streams", HS, "TAKE1", "ngx_http_v2_module", "concurrent HTTP/2 streams per connection",
       target=SERVER_T, parse=P.integer, default=128, at="http/h2.py"),
    # --- TLS -------------------------------------------------------------------------------
    _d("ssl_certificate", HS, "TAKE1", SSL, "certificate (chain) file in PEM",
       target=SERVER_T, parse=P.directive, merge=LIST, at=_RUN),
    _d("ssl_certificate_key", HS, "TAKE1", SSL, "private key file in PEM",
       target=SERVER_T, parse=P.directive, merge=LIST, at=_RUN),
    _d("ssl_protocols", HS, "1MORE", SSL, "enabled TLS versions",
       target=SERVER_T, parse=P.ssl_protocols, field="ssl.protocols", default=("TLSv1.2", "TLSv1.3"), at=_RUN),
    _d("ssl_ciphers", HS, "TAKE1", SSL, "OpenSSL cipher list",
       target=SERVER_T, parse=P.word, field="ssl.ciphers", default="HIGH:!aNULL:!MD5", at=_RUN),
    _d("ssl_prefer_server_ciphers", HS, "FLAG", SSL, "server cipher order wins",
       target=SERVER_T, parse=P.flag, field="ssl.prefer_server_ciphers", default=False, at=_RUN),
    _d("ssl_session_cache", HS, "TAKE12", SSL, "TLS session cache",
       target=SERVER_T, parse=P.joined, field="ssl.session_cache", default="none", at=_RUN),
    _d("ssl_session_timeout", HS, "TAKE1", SSL, "TLS session lifetime",
       target=SERVER_T, parse=P.time_, field="ssl.session_timeout", default=300.0, at=_RUN),
    _d("ssl_session_tickets", HS, "FLAG", SSL, "TLS session tickets",
       target=SERVER_T, parse=P.flag, field="ssl.session_tickets", default=True, at=_RUN),
    _d("ssl_dhparam", HS, "TAKE1", SSL, "DH parameters file",
       target=SERVER_T, parse=P.conf_path_where, field="ssl.dhparam", where_field="ssl.dhparam_where",
       default=None, at=_RUN),
    _d("ssl_password_file", HS, "TAKE1", SSL, "passphrases for the secret keys, one a line",
       target=SERVER_T, parse=P.conf_path_where, field="ssl.password_file",
       where_field="ssl.password_where", default=None, at=_RUN),
    _d("ssl_stapling", HS, "FLAG", SSL, "OCSP stapling",
       noop="clients fetch OCSP responses themselves"),
    _d("ssl_stapling_verify", HS, "FLAG", SSL, "verify OCSP responses",
       noop="clients fetch OCSP responses themselves"),
    _d("ssl_trusted_certificate", HS, "TAKE1", SSL, "CA certificates for stapling and for client certificates (names not sent)",
       target=SERVER_T, parse=P.conf_path_where, field="ssl.trusted_certificate",
       where_field="ssl.trusted_certificate_where", default=None, at=_RUN),
    _d("ssl_verify_client", HS, "TAKE1", SSL, "ask for a client certificate (on | optional | off)",
       target=SERVER_T, parse=P.ssl_verify_client, field="ssl.verify_client",
       where_field="ssl.verify_where", default="off", at="proxy/pipeline.py, certificate.py, process/runtime.py"),
    _d("ssl_client_certificate", HS, "TAKE1", SSL, "CA certificates that verify client certificates",
       target=SERVER_T, parse=P.conf_path_where, field="ssl.client_certificate",
       where_field="ssl.client_certificate_where", default=None, at=_RUN),
    _d("ssl_verify_depth", HS, "TAKE1", SSL, "intermediate CAs allowed in a client certificate chain",
       target=SERVER_T, parse=P.ssl_verify_depth, field="ssl.verify_depth", default=1, at=_RUN),
    _d("ssl_crl", HS, "TAKE1", SSL, "revoked certificates (CRLs in PEM) for client verification",
       target=SERVER_T, parse=P.conf_path_where, field="ssl.crl", where_field="ssl.crl_where",
       default=None, at=_RUN),
    # --- real ip, resolver -----------------------------------------------------------------
    _d("set_real_ip_from", HSL, "TAKE1", "ngx_http_realip_module", "trusted address (CIDR) whose header gives the client address",
       target=SETTINGS_T, parse=P.real_ip_from, merge=LIST, default=(), at=_PIPE),
    _d("real_ip_header", HSL, "TAKE1", "ngx_http_realip_module", "header carrying the client address",
       target=SETTINGS_T, parse=P.word, default="X-Real-IP", at=_PIPE),
    _d("real_ip_recursive", HSL, "FLAG", "ngx_http_realip_module", "skip trusted addresses from the right",
       target=SETTINGS_T, parse=P.flag, default=False, at=_PIPE),
    _d("resolver", HSL, "1MORE", HCORE, "DNS servers for names in proxy_pass variables",
       target=SETTINGS_T, parse=P.resolver, default=None, at="proxy/target.py"),
    # a buffered request body beyond client_body_buffer_size goes to a file under
    # client_body_temp_path (proxied responses: proxy_temp_path, with the proxy records)
    _d("client_body_temp_path", HSL, "TAKE1234", HCORE,
       "temp dir for request bodies beyond client_body_buffer_size [levels]",
       target=SETTINGS_T, parse=P.temp_path, default=Computed("client_body_temp", P.default_temp_path),
       at="process/runtime.py, proxy/request_body.py"),
    _d("client_body_in_file_only", HSL, "TAKE1", HCORE,
       "every buffered request body to a file, kept (on) or removed after (clean)",
       target=SETTINGS_T, parse=P.body_in_file_only, default="off", at="proxy/upstream.py, proxy/request_body.py"),
    _d("resolver_timeout", HSL, "TAKE1", HCORE, "DNS resolution timeout",
       target=SETTINGS_T, parse=P.time_, default=30.0, at="proxy/target.py"),
    _d("keepalive_disable", HSL, "1MORE", HCORE, "browsers kept from keep-alive (msie6, safari)",
       target=SETTINGS_T, parse=P.keepalive_disable, default=frozenset({"msie6"}), at="net/downstream.py"),
    _d("connection_pool_size", HS, "TAKE1", HCORE, "per-connection memory pool", noop=_TUNING),
    _d("request_pool_size", HS, "TAKE1", HCORE, "per-request memory pool", noop=_TUNING),
    _d("client_body_in_single_buffer", HSL, "FLAG", HCORE, "keep the body in one buffer",
       noop="a body read into memory always is in one buffer"),
    # --- rewrite ---------------------------------------------------------------------------
    _d("set", REWRITE, "TAKE2", REWR, "set a variable",
       target=REWRITE_T, parse=P.set_variable, declare="declare_set", at=_PIPE),
    _d("if", SL, "1MORE", REWR, "conditional block (rewrite-module directives; see 'if is evil')", block=True,
       target=REWRITE_T, parse=P.if_block, at=_PIPE),
    _d("rewrite", REWRITE, "TAKE23", REWR, "regex URI rewrite [last|break|redirect|permanent]",
       target=REWRITE_T, parse=P.rewrite, at=_PIPE),
    _d("break", REWRITE, "NOARGS", REWR, "stop processing rewrite-module directives",
       target=REWRITE_T, parse=P.break_op, at=_PIPE),
    # --- access and auth: access phase (proxy/access.py, proxy/auth.py) --------------------
    _d("allow", HSLE, "TAKE1", ACCESS, "let an address (CIDR, unix:, all) through; first matching rule wins",
       target=SETTINGS_T, parse=P.access_rule, field="access_rules", merge=LIST, default=(),
       at="proxy/access.py"),
    _d("deny", HSLE, "TAKE1", ACCESS, "refuse an address (CIDR, unix:, all) with 403; first matching rule wins",
       target=SETTINGS_T, parse=P.access_rule, field="access_rules", merge=LIST, default=(),
       at="proxy/access.py"),
    _d("auth_delay", HSL, "TAKE1", HCORE, "delay of a 401 answer from the access phase",
       target=SETTINGS_T, parse=P.time_, default=0.0, at="proxy/access.py"),
    _d("satisfy", HSL, "TAKE1", HCORE, "all: every access module must allow; any: one suffices",
       target=SETTINGS_T, parse=P.satisfy, default="all", unique=True, at="proxy/access.py"),
    _d("auth_basic", HSLE, "TAKE1", "ngx_http_auth_basic_module", "HTTP Basic authentication realm (variables allowed), or off",
       target=SETTINGS_T, parse=P.template, default=None, unique=True, at="proxy/auth.py"),
    _d("auth_basic_user_file", HSLE, "TAKE1", "ngx_http_auth_basic_module",
       "password file: {PLAIN} {SHA} {SSHA} $apr1$ and what crypt(3) accepts ($1$ $5$ $6$ $2y$ ...)",
       target=SETTINGS_T, parse=P.user_file, default=None, unique=True, at="proxy/auth.py, htpasswd.py"),
    _d("auth_request", HSL, "TAKE1", "ngx_http_auth_request_module", "authorize by a subrequest to this URI (2xx allows), or off",
       target=SETTINGS_T, parse=P.auth_request, default=None, unique=True,
       at="proxy/auth.py, proxy/subrequest.py"),
    _d("auth_request_set", HSL, "TAKE2", "ngx_http_auth_request_module", "set a variable from the auth subrequest ($upstream_http_*)",
       target=SETTINGS_T, parse=P.auth_request_set, merge=LIST, default=(), declare="declare_set",
       at="proxy/auth.py"),
    _d("limit_except", L, "1MORE", HCORE, "access rules for the methods not listed (GET implies HEAD)", block=True,
       unique=True, compile="compile_limit_except", stage=CONTENT, at="proxy/access.py"),
    # in a limit_except block nginx also takes these; truehop keeps the block to access rules
    _d("access_log", LE, "1MORE", "ngx_http_log_module", "access log of the methods limit_except restricts", supported=False),
    _d("proxy_pass", LE, "TAKE1", PROXY, "proxy the methods limit_except restricts elsewhere", supported=False),
    # --- gzip (proxy/gzip.py) ----------------------------------------------------------------
    _d("gzip", HSLI, "FLAG", GZIP, "compress responses with gzip (a streaming body filter)",
       target=SETTINGS_T, parse=P.flag, default=False, at=_GZ),
    _d("gzip_types", HSL, "1MORE", GZIP, "MIME types compressed besides text/html (* = any)",
       target=SETTINGS_T, parse=P.mime_types("text/html"), merge=RULES,
       default=frozenset({"text/html"}), at=_GZ),
    _d("gzip_comp_level", HSL, "TAKE1", GZIP, "compression level 1-9",
       target=SETTINGS_T, parse=P.comp_level(1, 9), default=1, at=_GZ),
    _d("gzip_min_length", HSL, "TAKE1", GZIP, "smallest Content-Length compressed",
       target=SETTINGS_T, parse=P.size, default=20, at=_GZ),
    _d("gzip_buffers", HSL, "TAKE2", GZIP, "number and size of compression buffers",
       target=SETTINGS_T, parse=P.bufs, default=(32, 4096),
       noop="zlib's output is written on as it comes: there are no buffers to count"),
    _d("gzip_window", HSL, "TAKE1", GZIP, "zlib window size (512..32k)",
       target=SETTINGS_T, parse=P.gzip_window, default=Computed("32k", lambda c: 15), at=_GZ),
    _d("gzip_hash", HSL, "TAKE1", GZIP, "zlib hash memory (512..128k)",
       target=SETTINGS_T, parse=P.gzip_hash, default=Computed("64k", lambda c: 8), at=_GZ),
    _d("gzip_http_version", HSL, "TAKE1", HCORE, "lowest request HTTP version compressed (1.0|1.1)",
       target=SETTINGS_T, parse=P.enum("1.0", "1.1"), default="1.1", at=_GZ),
    _d("gzip_proxied", HSL, "1MORE", HCORE, "compress for requests with Via (off|any|expired|no-cache|...)",
       target=SETTINGS_T, parse=P.gzip_proxied, merge=RULES, default=frozenset({"off"}), at=_GZ),
    _d("gzip_vary", HSL, "FLAG", HCORE, "Vary: Accept-Encoding on responses gzip considered",
       target=SETTINGS_T, parse=P.flag, default=False, at=_GZ),
    _d("gzip_disable", HSL, "1MORE", HCORE, "User-Agent regexes (or msie6) never sent gzip",
       target=SETTINGS_T, parse=P.gzip_disable, merge=RULES, default=(),
       also=(("gzip_disable_msie6", False),), at=_GZ),
    _d("gzip_static", HSL, "TAKE1", "ngx_http_gzip_static_module", "serve file.gz beside file (on|off|always)",
       target=SETTINGS_T, parse=P.enum("off", "on", "always"), default="off",
       at="proxy/gzip.py, " + _PIPE),
    _d("gunzip", HSL, "FLAG", "ngx_http_gunzip_module", "decode gzip responses for clients that do not accept gzip",
       target=SETTINGS_T, parse=P.flag, default=False, at=_GZ),
    _d("gunzip_buffers", HSL, "TAKE2", "ngx_http_gunzip_module", "number and size of decoding buffers",
       target=SETTINGS_T, parse=P.bufs, default=(32, 4096),
       noop="zlib's output is written on as it comes: there are no buffers to count"),
    # --- ngx_brotli (proxy/brotli.py; third-party, google/ngx_brotli) -----------------------
    _d("brotli", HSLI, "FLAG", BROTLI, "compress responses with brotli (needs the brotli package)",
       target=SETTINGS_T, parse=P.brotli_flag, default=False, at=_BR),
    _d("brotli_types", HSL, "1MORE", BROTLI, "MIME types compressed besides text/html (* = any)",
       target=SETTINGS_T, parse=P.mime_types("text/html"), merge=RULES,
       default=frozenset({"text/html"}), at=_BR),
    _d("brotli_comp_level", HSL, "TAKE1", BROTLI, "compression quality 0-11",
       target=SETTINGS_T, parse=P.comp_level(0, 11), default=6, at=_BR),
    _d("brotli_window", HSL, "TAKE1", BROTLI, "encoder window size (1k..16m)",
       target=SETTINGS_T, parse=P.brotli_window, default=Computed("512k", lambda c: 19),
       at=_BR),
    _d("brotli_min_length", HSL, "TAKE1", BROTLI, "smallest Content-Length compressed",
       target=SETTINGS_T, parse=P.size, default=20, at=_BR),
    _d("brotli_buffers", HSL, "TAKE2", BROTLI, "deprecated and unused by ngx_brotli",
       target=SETTINGS_T, parse=P.bufs, default=(32, 4096),
       noop="ngx_brotli itself ignores it (deprecated, unused)"),
    _d("brotli_static", HSL, "TAKE1", BROTLI, "serve file.br beside file (on|off|always)",
       target=SETTINGS_T, parse=P.enum("off", "on", "always"), default="off",
       at="proxy/gzip.py, " + _PIPE),
    # --- hash tuning -----------------------------------------------------------------------
    _d("server_names_hash_bucket_size", H, "TAKE1", HCORE, "server names hash tuning", noop=_TUNING),
    _d("server_names_hash_max_size", H, "TAKE1", HCORE, "server names hash tuning", noop=_TUNING),
    _d("types_hash_max_size", HSL, "TAKE1", HCORE, "types hash tuning", noop=_TUNING),
    _d("types_hash_bucket_size", HSL, "TAKE1", HCORE, "types hash tuning", noop=_TUNING),
    _d("variables_hash_max_size", H, "TAKE1", HCORE, "variables hash tuning", noop=_TUNING),
    _d("variables_hash_bucket_size", H, "TAKE1", HCORE, "variables hash tuning", noop=_TUNING),
    # --- issue 15, misc: tuning accepted as no-ops, charset, cookies, client aborts, TLS --
    _d("accept_mutex", EV, "FLAG", CORE, "workers take turns accepting connections",
       noop="workers accept on the shared listening socket as nginx does with accept_mutex "
            "off, its default since 1.11.3; there is no mutex to take turns with"),
    _d("accept_mutex_delay", EV, "TAKE1", CORE, "wait before retrying the accept mutex",
       noop="there is no accept mutex (see accept_mutex)"),
    _d("aio", HSL, "TAKE1", HCORE, "asynchronous file I/O (on | off | threads[=pool])",
       noop="a static file goes to the socket with sendfile(), else in pread() pieces between "
            "event-loop turns; there is no asynchronous file I/O to turn on"),
    _d("aio_write", HSL, "FLAG", HCORE, "asynchronous writes of temporary files",
       noop="temporary files are written between event-loop turns; no asynchronous I/O"),
    _d("output_buffers", HSL, "TAKE2", HCORE, "number and size of buffers for reading files",
       noop="file bodies go from the file to the socket with sendfile(), or in 256 KiB pread() "
            "pieces: there are no output buffers to size"),
    _d("sendfile_max_chunk", HSL, "TAKE1", HCORE, "most bytes one sendfile() call sends before other connections get a turn (0: no limit)",
       target=SETTINGS_T, parse=P.size, default=2 * 1024 * 1024, at="proxy/static.py, " + _PIPE),
    _d("charset", HSLI, "TAKE1", "ngx_http_charset_module", "charset added to the Content-Type of charset_types responses (off: none)",
       target=SETTINGS_T, parse=P.charset_name, default=None, at="proxy/charset.py"),
    _d("source_charset", HSLI, "TAKE1", "ngx_http_charset_module", "charset of responses that name none (no conversion: it must equal charset)",
       target=SETTINGS_T, parse=P.charset_name, default=None, at="proxy/charset.py"),
    _d("charset_types", HSL, "1MORE", "ngx_http_charset_module", "MIME types charset applies to (text/html always; * any)",
       target=SETTINGS_T, parse=P.charset_types, default=P.CHARSET_TYPES, at="proxy/charset.py"),
    _d("override_charset", HSLI, "FLAG", "ngx_http_charset_module", "apply charset to proxied responses that name one",
       target=SETTINGS_T, parse=P.flag, default=False, at="proxy/charset.py"),
    _d("proxy_cookie_flags", HSL, "TAKE1234", PROXY, "set or clear Secure, HttpOnly, SameSite of upstream cookies",
       target=SETTINGS_T, parse=P.cookie_flags, merge=RULES, default=(), at="proxy/response.py"),
    _d("proxy_ignore_client_abort", HSL, "FLAG", PROXY, "finish the upstream request when the client goes away",
       target=SETTINGS_T, parse=P.flag, default=False, at="proxy/relay.py"),
    _d("reset_timedout_connection", HSL, "FLAG", HCORE, "reset (RST) connections closed on a timeout",
       target=SETTINGS_T, parse=P.flag, default=False, at=_DOWN),
    _d("ssl_early_data", HS, "FLAG", SSL, "accept TLS 1.3 early data (0-RTT)",
       effect=not_applied("no 0-RTT data is accepted (Python's ssl has no TLS 1.3 early-data "
                          "server): a client sends its request after the handshake, and "
                          "$ssl_early_data is always empty", "ssl-early-data-ignored",
                          "remove ssl_early_data on (or keep it: nothing breaks, requests wait "
                          "one round trip)", lambda d: bool(d.args) and d.args[0].value == "on")),
    _d("ssl_ecdh_curve", HS, "TAKE1", SSL, "key exchange groups (auto, or a list a:b: the first this build knows is set, lint names the rest)",
       target=SERVER_T, parse=P.ecdh_curve, field="ssl.ecdh_curve", where_field="ssl.ecdh_where",
       default=("auto", ()), at="net/tls.py"),
    _d("ssl_conf_command", HS, "TAKE2", SSL, "an OpenSSL configuration command (Options, CipherString, Groups, Min/MaxProtocol are applied; lint names the rest)",
       target=SERVER_T, parse=P.ssl_conf_command, field="ssl.conf_commands", merge=LIST,
       at="net/tls.py"),
)

BY_NAME: dict[str, tuple[Spec, ...]] = {}
for _s in SPECS:
    BY_NAME[_s.name] = (*BY_NAME.get(_s.name, ()), _s)
del _s


def _names(modules: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for module, names in modules.items():
        for n in names.split():
            out.setdefault(n, module)
    return out


# Every nginx 1.30 directive truehop does not accept, by documented module name.
_NGINX_UNSUPPORTED: dict[str, str] = {
    'ngx_core_module': (
        "accept_mutex accept_mutex_delay acceptex_read debug_connection debug_points "
        "devpoll_changes devpoll_events env epoll_events eventport_events iocp_threads "
        "kqueue_changes kqueue_events load_module lock_file master_process post_acceptex "
        "quic_bpf ssl_engine ssl_object_cache_inheritable thread_pool timer_resolution "
        "worker_aio_requests worker_cpu_affinity worker_priority worker_rlimit_core "
        "working_directory"
    ),
    'ngx_google_perftools_module': (
        "google_perftools_profiles"
    ),
    'ngx_http_addition_module': (
        "add_after_body add_before_body addition_types"
    ),
    'ngx_http_autoindex_module': (
        "autoindex_exact_size autoindex_format autoindex_localtime"
    ),
    'ngx_http_browser_module': (
        "ancient_browser ancient_browser_value modern_browser modern_browser_value"
    ),
    'ngx_http_charset_module': (
        "charset charset_map charset_types override_charset source_charset"
    ),
    'ngx_http_core_module': (
        "aio aio_write "
        "directio directio_alignment early_hints "
        "keepalive_min_timeout limit_rate_after "
        "log_subrequest max_headers msie_padding msie_refresh "
        "open_file_cache_errors open_file_cache_events open_file_cache_min_uses "
        "open_file_cache_valid output_buffers post_action postpone_output read_ahead "
        "recursive_error_pages reset_timedout_connection send_lowat "
        "sendfile_max_chunk subrequest_output_buffer_size"
    ),
    'ngx_http_dav_module': (
        "create_full_put_path dav_access dav_methods min_delete_depth"
    ),
    'ngx_http_degradation_module': (
        "degradation degrade"
    ),
    'ngx_http_empty_gif_module': (
        "empty_gif"
    ),
    'ngx_http_fastcgi_module': (
        "fastcgi_bind fastcgi_buffer_size fastcgi_buffering fastcgi_buffers "
        "fastcgi_busy_buffers_size fastcgi_cache fastcgi_cache_background_update "
        "fastcgi_cache_bypass fastcgi_cache_key fastcgi_cache_lock fastcgi_cache_lock_age "
        "fastcgi_cache_lock_timeout fastcgi_cache_max_range_offset fastcgi_cache_methods "
        "fastcgi_cache_min_uses fastcgi_cache_path fastcgi_cache_revalidate "
        "fastcgi_cache_use_stale fastcgi_cache_valid fastcgi_catch_stderr "
        "fastcgi_connect_timeout fastcgi_force_ranges fastcgi_hide_header "
        "fastcgi_ignore_client_abort fastcgi_ignore_headers fastcgi_index "
        "fastcgi_intercept_errors fastcgi_keep_conn fastcgi_limit_rate "
        "fastcgi_max_temp_file_size fastcgi_next_upstream fastcgi_next_upstream_timeout "
        "fastcgi_next_upstream_tries fastcgi_no_cache fastcgi_param fastcgi_pass "
        "fastcgi_pass_header fastcgi_pass_request_body fastcgi_pass_request_headers "
        "fastcgi_read_timeout fastcgi_request_buffering fastcgi_send_lowat "
        "fastcgi_send_timeout fastcgi_socket_keepalive fastcgi_split_path_info fastcgi_store "
        "fastcgi_store_access fastcgi_temp_file_write_size fastcgi_temp_path"
    ),
    'ngx_http_flv_module': (
        "flv"
    ),
    'ngx_http_geo_module': (
        "geo"
    ),
    'ngx_http_geoip_module': (
        "geoip_city geoip_country geoip_org geoip_proxy geoip_proxy_recursive"
    ),
    'ngx_http_grpc_module': (
        "grpc_bind grpc_buffer_size grpc_connect_timeout grpc_hide_header grpc_ignore_headers "
        "grpc_intercept_errors grpc_next_upstream grpc_next_upstream_timeout "
        "grpc_next_upstream_tries grpc_pass grpc_pass_header grpc_read_timeout "
        "grpc_send_timeout grpc_set_header grpc_socket_keepalive grpc_ssl_certificate "
        "grpc_ssl_certificate_cache grpc_ssl_certificate_key grpc_ssl_ciphers "
        "grpc_ssl_conf_command grpc_ssl_crl grpc_ssl_name grpc_ssl_password_file "
        "grpc_ssl_protocols grpc_ssl_server_name grpc_ssl_session_reuse "
        "grpc_ssl_trusted_certificate grpc_ssl_verify grpc_ssl_verify_depth"
    ),
    'ngx_http_gzip_module': (
        "gzip_no_buffer postpone_gzipping"
    ),
    'ngx_http_headers_module': (
        "add_header_inherit add_trailer add_trailer_inherit"
    ),
    'ngx_http_image_filter_module': (
        "image_filter image_filter_buffer image_filter_interlace image_filter_jpeg_quality "
        "image_filter_sharpen image_filter_transparency image_filter_webp_quality"
    ),
    'ngx_http_log_module': (
        "open_log_file_cache"
    ),
    'ngx_http_memcached_module': (
        "memcached_bind memcached_buffer_size memcached_connect_timeout memcached_gzip_flag "
        "memcached_next_upstream memcached_next_upstream_timeout memcached_next_upstream_tries "
        "memcached_pass memcached_read_timeout memcached_send_timeout "
        "memcached_socket_keepalive"
    ),
    'ngx_http_mirror_module': (
        "mirror mirror_request_body"
    ),
    'ngx_http_mp4_module': (
        "mp4 mp4_buffer_size mp4_max_buffer_size mp4_start_key_frame"
    ),
    'ngx_http_perl_module': (
        "perl perl_modules perl_require perl_set"
    ),
    'ngx_http_proxy_module': (
        "proxy_bind proxy_cache_max_range_offset proxy_cookie_flags proxy_force_ranges "
        "proxy_headers_hash_bucket_size proxy_headers_hash_max_size proxy_ignore_client_abort "
        "proxy_limit_rate proxy_pass_trailers proxy_send_lowat "
        "proxy_socket_keepalive proxy_ssl_certificate "
        "proxy_ssl_certificate_cache proxy_ssl_certificate_key proxy_ssl_ciphers "
        "proxy_ssl_conf_command proxy_ssl_crl proxy_ssl_password_file proxy_ssl_session_reuse "
        "proxy_ssl_verify_depth proxy_store proxy_store_access "
    ),
    'ngx_http_random_index_module': (
        "random_index"
    ),
    'ngx_http_referer_module': (
        "referer_hash_bucket_size referer_hash_max_size valid_referers"
    ),
    'ngx_http_rewrite_module': (
        "rewrite_log uninitialized_variable_warn"
    ),
    'ngx_http_scgi_module': (
        "scgi_bind scgi_buffer_size scgi_buffering scgi_buffers scgi_busy_buffers_size "
        "scgi_cache scgi_cache_background_update scgi_cache_bypass scgi_cache_key "
        "scgi_cache_lock scgi_cache_lock_age scgi_cache_lock_timeout "
        "scgi_cache_max_range_offset scgi_cache_methods scgi_cache_min_uses scgi_cache_path "
        "scgi_cache_revalidate scgi_cache_use_stale scgi_cache_valid scgi_connect_timeout "
        "scgi_force_ranges scgi_hide_header scgi_ignore_client_abort scgi_ignore_headers "
        "scgi_intercept_errors scgi_limit_rate scgi_max_temp_file_size scgi_next_upstream "
        "scgi_next_upstream_timeout scgi_next_upstream_tries scgi_no_cache scgi_param "
        "scgi_pass scgi_pass_header scgi_pass_request_body scgi_pass_request_headers "
        "scgi_read_timeout scgi_request_buffering scgi_send_timeout scgi_socket_keepalive "
        "scgi_store scgi_store_access scgi_temp_file_write_size scgi_temp_path"
    ),
    'ngx_http_secure_link_module': (
        "secure_link secure_link_md5 secure_link_secret"
    ),
    'ngx_http_slice_module': (
        "slice"
    ),
    'ngx_http_split_clients_module': (
        "split_clients"
    ),
    'ngx_http_ssi_module': (
        "ssi ssi_ignore_recycled_buffers ssi_last_modified ssi_min_file_chunk "
        "ssi_silent_errors ssi_types ssi_value_length"
    ),
    'ngx_http_ssl_module': (
        "ssl_buffer_size ssl_certificate_cache ssl_certificate_compression "
        "ssl_conf_command ssl_early_data ssl_ecdh_curve "
        "ssl_ech_file ssl_ocsp ssl_ocsp_cache ssl_ocsp_responder "
        "ssl_reject_handshake ssl_session_ticket_key ssl_stapling_file ssl_stapling_responder"
    ),
    'ngx_http_stub_status_module': (
        "stub_status"
    ),
    'ngx_http_sub_module': (
        "sub_filter sub_filter_last_modified sub_filter_once sub_filter_types"
    ),
    'ngx_http_upstream_random_module': (
        "random"
    ),
    'ngx_http_upstream_sticky_module': (
        "sticky"
    ),
    'ngx_http_userid_module': (
        "userid userid_domain userid_expires userid_flags userid_mark userid_name userid_p3p "
        "userid_path userid_service"
    ),
    'ngx_http_uwsgi_module': (
        "uwsgi_bind uwsgi_buffer_size uwsgi_buffering uwsgi_buffers uwsgi_busy_buffers_size "
        "uwsgi_cache uwsgi_cache_background_update uwsgi_cache_bypass uwsgi_cache_key "
        "uwsgi_cache_lock uwsgi_cache_lock_age uwsgi_cache_lock_timeout "
        "uwsgi_cache_max_range_offset uwsgi_cache_methods uwsgi_cache_min_uses "
        "uwsgi_cache_path uwsgi_cache_revalidate uwsgi_cache_use_stale uwsgi_cache_valid "
        "uwsgi_connect_timeout uwsgi_force_ranges uwsgi_hide_header uwsgi_ignore_client_abort "
        "uwsgi_ignore_headers uwsgi_intercept_errors uwsgi_limit_rate uwsgi_max_temp_file_size "
        "uwsgi_modifier1 uwsgi_modifier2 uwsgi_next_upstream uwsgi_next_upstream_timeout "
        "uwsgi_next_upstream_tries uwsgi_no_cache uwsgi_param uwsgi_pass uwsgi_pass_header "
        "uwsgi_pass_request_body uwsgi_pass_request_headers uwsgi_read_timeout "
        "uwsgi_request_buffering uwsgi_send_timeout uwsgi_socket_keepalive "
        "uwsgi_ssl_certificate uwsgi_ssl_certificate_cache uwsgi_ssl_certificate_key "
        "uwsgi_ssl_ciphers uwsgi_ssl_conf_command uwsgi_ssl_crl uwsgi_ssl_name "
        "uwsgi_ssl_password_file uwsgi_ssl_protocols uwsgi_ssl_server_name "
        "uwsgi_ssl_session_reuse uwsgi_ssl_trusted_certificate uwsgi_ssl_verify "
        "uwsgi_ssl_verify_depth uwsgi_store uwsgi_store_access uwsgi_string "
        "uwsgi_temp_file_write_size uwsgi_temp_path"
    ),
    'ngx_http_v2_module': (
        "http2_body_preread_size http2_chunk_size http2_idle_timeout "
        "http2_max_concurrent_pushes http2_max_field_size http2_max_header_size "
        "http2_max_requests http2_pool_size http2_push http2_push_preload "
        "http2_recv_buffer_size http2_recv_timeout http2_streams_index_size"
    ),
    'ngx_http_v3_module': (
        "http3 http3_hq http3_max_concurrent_streams http3_stream_buffer_size "
        "quic_active_connection_id_limit quic_gso quic_host_key quic_retry"
    ),
    'ngx_http_xslt_module': (
        "xml_entities xslt_last_modified xslt_param xslt_string_param xslt_stylesheet "
        "xslt_types"
    ),
    'ngx_mail_auth_http_module': (
        "auth_http auth_http_header auth_http_pass_client_cert auth_http_timeout"
    ),
    'ngx_mail_core_module': (
        "mail max_errors protocol timeout"
    ),
    'ngx_mail_imap_module': (
        "imap_auth imap_capabilities imap_client_buffer"
    ),
    'ngx_mail_pop3_module': (
        "pop3_auth pop3_capabilities"
    ),
    'ngx_mail_proxy_module': (
        "proxy proxy_buffer proxy_pass_error_message proxy_protocol proxy_smtp_auth "
        "proxy_timeout xclient"
    ),
    'ngx_mail_smtp_module': (
        "smtp_auth smtp_capabilities smtp_client_buffer smtp_greeting_delay"
    ),
    'ngx_mail_ssl_module': (
        "starttls"
    ),
    'ngx_stream_core_module': (
        "preread_buffer_size preread_timeout proxy_protocol_timeout stream"
    ),
    'ngx_stream_pass_module': (
        "pass"
    ),
    'ngx_stream_proxy_module': (
        "proxy_download_rate proxy_downstream_buffer proxy_half_close proxy_requests "
        "proxy_responses proxy_ssl proxy_upload_rate proxy_upstream_buffer"
    ),
    'ngx_stream_ssl_module': (
        "ssl_alpn ssl_handshake_timeout"
    ),
    'ngx_stream_ssl_preread_module': (
        "ssl_preread"
    ),
}

# Third-party modules and NGINX Plus, common in configs found in the wild.
_OTHER_UNSUPPORTED: dict[str, str] = {
    "headers-more-nginx-module": (
        "more_set_headers more_clear_headers more_set_input_headers more_clear_input_headers"
    ),
    "ngx_http_lua_module": (
        "lua_package_path lua_package_cpath lua_shared_dict lua_code_cache init_by_lua_block "
        "init_worker_by_lua_block set_by_lua_block rewrite_by_lua_block access_by_lua_block "
        "content_by_lua_block header_filter_by_lua_block body_filter_by_lua_block "
        "log_by_lua_block balancer_by_lua_block ssl_certificate_by_lua_block "
        "init_by_lua_file set_by_lua_file rewrite_by_lua_file access_by_lua_file "
        "content_by_lua_file header_filter_by_lua_file body_filter_by_lua_file "
        "log_by_lua_file content_by_lua access_by_lua rewrite_by_lua"
    ),
    "ngx_http_js_module": (
        "js_import js_include js_content js_set js_path js_var js_body_filter "
        "js_header_filter js_fetch_trusted_certificate js_preload_object js_shared_dict_zone"
    ),
    "ngx_http_echo_module": "echo echo_before_body echo_after_body",
    "ngx_http_geoip2_module": "geoip2",
    "ngx_http_vhost_traffic_status_module": (
        "vhost_traffic_status vhost_traffic_status_zone vhost_traffic_status_display"
    ),
    "ngx_http_modsecurity_module": "modsecurity modsecurity_rules modsecurity_rules_file",
    "ngx_pagespeed": "pagespeed",
    "ngx_http_passenger_module": "passenger_enabled passenger_root passenger_ruby",
    "ngx_http_upstream_hc_module (NGINX Plus)": "health_check health_check_timeout match",
    "ngx_http_api_module (NGINX Plus)": "api status_zone",
    "ngx_http_auth_jwt_module (NGINX Plus)": (
        "auth_jwt auth_jwt_key_file auth_jwt_key_request auth_jwt_claim_set auth_jwt_header_set"
    ),
    "ngx_http_upstream_module (NGINX Plus)": "queue ntlm state sticky_cookie_insert",
    "ngx_http_proxy_module (NGINX Plus)": "proxy_cache_purge",
    "ngx_http_keyval_module (NGINX Plus)": "keyval keyval_zone",
}

# name -> module, for every real directive truehop refuses as "not supported".
UNSUPPORTED: dict[str, str] = {
    n: m for n, m in {**_names(_OTHER_UNSUPPORTED), **_names(_NGINX_UNSUPPORTED)}.items()
    if n not in BY_NAME
}

# Settings fields whose directive truehop refuses: the field keeps nginx's default.
_REFUSED_FIELDS: dict[str, Any] = {"recursive_error_pages": False}

# The refused directives as entries of the same table (the reference lists them by module).
REFUSED: tuple[Spec, ...] = tuple(
    Spec(n, frozenset(), "1MORE", m, "", supported=False, effect=refused(m),
         target=SETTINGS_T if n in _REFUSED_FIELDS else STRUCTURE_T,
         field=n if n in _REFUSED_FIELDS else "", default=_REFUSED_FIELDS.get(n, NO_DEFAULT),
         merge=VALUE if n in _REFUSED_FIELDS else "")
    for n, m in sorted(UNSUPPORTED.items())
)

# Every entry: accepted (SPECS) and refused (REFUSED).
TABLE: tuple[Spec, ...] = SPECS + REFUSED


def entries(target: str) -> dict[str, Spec]:
    """The entries that fill `target`, by directive name (one per name for each target)."""
    return {s.name: s for s in SPECS if s.target == target}


SETTINGS_SPECS: dict[str, Spec] = entries(SETTINGS_T)
MAIN_SPECS: dict[str, Spec] = entries(MAIN_T)
UPSTREAM_SPECS: dict[str, Spec] = entries(UPSTREAM_T)
SERVER_SPECS: dict[str, Spec] = entries(SERVER_T)
REWRITE_SPECS: dict[str, Spec] = entries(REWRITE_T)


def settings_defaults(c: Any) -> dict[str, Any]:
    """Every Settings field's default (the http level's base), for this load."""
    out: dict[str, Any] = {}
    for s in TABLE:
        if s.target == SETTINGS_T:
            out[s.field] = s.default_for(c)
            out.update(s.also)
    return out


def defaults_of(target: str) -> dict[str, Any]:
    """The fields of `target` that have a default, and the default (main, upstream, server)."""
    return {s.field: s.default for s in SPECS
            if s.target == target and not isinstance(s.default, _NoDefault)}


# `-g` values are main-context directives; these (besides `http`/`events`) exist only there.
MAIN_ONLY = frozenset({s.name for s in SPECS
                       if all(x.contexts == M for x in BY_NAME[s.name])} | {
    "master_process", "timer_resolution", "lock_file", "worker_priority", "worker_cpu_affinity",
    "worker_rlimit_core", "working_directory", "env", "load_module", "thread_pool",
    "debug_points", "google_perftools_profiles", "ssl_engine", "stream", "mail",
})


# (name, context) -> the accepted entry nginx would use there (what check_directive finds).
_AT: dict[tuple[str, str], Spec] = {}
for _s in SPECS:
    for _c in _s.contexts:
        _AT.setdefault((_s.name, _c), _s)
del _s, _c


def entry(name: str, context: str) -> Spec | None:
    """The accepted entry of directive `name` written in `context` (None: none there)."""
    return _AT.get((name, context))


def holds_directives(name: str, context: str) -> bool:
    """Does the block of `name` (written in `context`) hold directives? (`map` and `types`
    hold data.)"""
    child = child_context_of(name, context)
    return child is not None and child not in DATA_BLOCKS


def lookup(name: str) -> tuple[Spec, ...]:
    """Every accepted Spec named `name` (empty when truehop does not accept it at all)."""
    return BY_NAME.get(name, ())


def is_known(name: str) -> bool:
    """Is this a real directive (accepted, or refused by name)?"""
    return name in BY_NAME or name in UNSUPPORTED


def _error(message: str, d: Directive) -> ConfigError:
    if d.file == COMMAND_LINE:
        return ConfigError(message, d.file, None)
    return ConfigError.at(message, d)


def check_directive(d: Directive, context: str) -> Spec:
    """Check one directive's name, context, block and arity; return its Spec.

    The order of checks and the words are nginx's (`ngx_conf_handler()`)."""
    specs = BY_NAME.get(d.name)
    if not specs:
        module = UNSUPPORTED.get(d.name)
        if module is not None:
            raise _error(f'"{d.name}" directive is not supported by truehop ({module})', d)
        raise _error(f'unknown directive "{d.name}"', d)
    for s in specs:
        if context not in s.contexts:
            continue
        if not s.supported:
            raise _error(f'"{d.name}" directive is not supported by truehop in "{context}" '
                         f'({s.module})', d)
        if not s.block and d.block is not None:
            raise _error(f'directive "{d.name}" is not terminated by ";"', d)
        if s.block and d.block is None:
            raise _error(f'directive "{d.name}" has no opening "{{"', d)
        if not s.takes(len(d.args)):
            raise _error(f'invalid number of arguments in "{d.name}" directive', d)
        return s
    raise _error(f'"{d.name}" directive is not allowed here', d)


def check_block(directives: Iterable[Directive], context: str) -> None:
    """Check a block's directives (and their blocks, recursively) in `context`."""
    if context in DATA_BLOCKS:
        return
    seen: set[str] = set()
    for d in directives:
        s = check_directive(d, context)
        if s.unique:
            if s.name in seen:
                raise _error(f'"{d.name}" directive is duplicate', d)
            seen.add(s.name)
        if d.block is not None:
            child = child_context_of(d.name, context)
            if child is not None:
                check_block(d.block, child)


def check_tree(directives: tuple[Directive, ...], top: str) -> None:
    """Check a parsed file: `top` is "main" for a whole nginx.conf, "http" for a conf.d-style
    file whose top level is the http context. Raises ConfigError (nginx's words, file:line)."""
    if top not in (MAIN, HTTP):
        raise ValueError(f"top must be 'main' or 'http', not {top!r}")
    check_block(directives, top)


def detect_top(directives: tuple[Directive, ...]) -> str:
    """"main" when the file is a whole nginx.conf (its top level holds `http`, `events` or a
    main-only directive such as `worker_processes`), else "http" (a conf.d-style file)."""
    for d in directives:
        if d.name in ("http", "events") or d.name in MAIN_ONLY:
            return MAIN
    return HTTP


def check_events(directives: tuple[Directive, ...]) -> None:
    """A whole nginx.conf must have an `events` block: nginx checks it once the whole file
    is read (ngx_event_init_conf), with no file:line. A conf.d-style file, which truehop
    runs inside its own main context (with -g too), does not need one."""
    if not any(d.name == "events" for d in directives):
        raise ConfigError('no "events" section in configuration')
