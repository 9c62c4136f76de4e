"""Directive tree -> `model.Config`, with nginx's meaning and nginx's error wording.

The tree has already passed `directives.check_tree` (names, contexts, arity). Here values are
parsed, variables resolved, regexes compiled, inheritance merged, and references checked
(an unknown upstream is an implicit one, an unknown variable is an error). Every directive
goes through its entry in the directive table (conf/directives.py): a value directive's
parser, the field it fills, its default and merge; a block or structural directive's
compile method (`Spec.compile`, here, called by `walk` in the entry's `stage`), and the
method that declares the variables it defines (`Spec.declare`, called by `prescan`). The
compiler dispatches on the entry, never on a directive's name. Like nginx, every setting
is "unset" at its own level (`LevelSettings`) and merged with the enclosing one afterwards,
down from the table's defaults at the http level, so a merged `Settings` has every field set.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from truehop.conf import directives as dtable
from truehop.conf import parser
from truehop.conf.ast import ConfigError, Directive
from truehop.conf.directives import EVENTS, HTTP, LEVEL, LIST, LOCATION, MAIN, SERVER, Spec
from truehop.conf.model import (
    Config,
    HttpConf,
    IfOp,
    LevelSettings,
    LimitExcept,
    Listen,
    LocationConf,
    LogFormat,
    MainConf,
    MapConf,
    PeerConf,
    ProxyPass,
    ReturnOp,
    ServerConf,
    Settings,
    SslConf,
    UpstreamConf,
)
from truehop.conf.parsers import (
    condition,
    group_exists,
    resolve,
    so_keepalive,
    split_host_port,
    worker_ids,
)
from truehop.conf.values import parse_flag, parse_size, parse_time, split_proxy_url
from truehop.route.locations import LocationTree, compile_nginx_regex
from truehop.route.template import Template, literal
from truehop.route.variables import UnknownVariable, VariableScope

COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent"')

# the methods limit_except may list (ngx_methods_names)
LIMIT_EXCEPT_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "MKCOL", "COPY", "MOVE",
                                  "OPTIONS", "PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "PATCH"})

# walk() stages: everything before a block's own values, everything after them
BEFORE_LEVEL = range(LEVEL)
AFTER_LEVEL = range(LEVEL + 1, dtable.NESTED + 1)
EVERY_STAGE = range(dtable.NESTED + 1)


@dataclass(slots=True)
class HttpLevel:
    """What the http level's walk builds (the `into` of its structural directives)."""

    maps: list[MapConf] = field(default_factory=list)
    servers: list[ServerConf] = field(default_factory=list)
    settings: Settings | None = None    # merged with the table's defaults, before any server


class Compiler:
    def __init__(self, conf_path: str, prefix: str) -> None:
        self.conf_path = conf_path
        self.conf_dir = os.path.dirname(conf_path)
        self.prefix = prefix
        self.scope = VariableScope()
        self.upstreams: dict[str, UpstreamConf] = {}
        self.implicit: dict[str, UpstreamConf] = {}
        self.warnings: list[str] = []
        self.log_formats: dict[str, LogFormat] = {}
        self._pending_proxy: list[tuple[Directive, LocationConf]] = []
        self._http_block: Directive | None = None
        self.http_level = LevelSettings()
        self.not_applied: list[tuple[str, tuple[str, int]]] = []

    # --- helpers -----------------------------------------------------------------------

    def prefixed(self, path: str) -> str:
        return path if os.path.isabs(path) else os.path.normpath(os.path.join(self.prefix, path))

    def conf_relative(self, path: str) -> str:
        return path if os.path.isabs(path) else os.path.normpath(os.path.join(self.conf_dir, path))

    def template(self, text: str, d: Directive, named: set[str] | None = None) -> Template:
        try:
            return self.scope.compile(text, named)
        except UnknownVariable as e:
            raise ConfigError.at(str(e), d) from None

    def regex(self, pattern: str, caseless: bool, d: Directive) -> re.Pattern[str]:
        try:
            return compile_nginx_regex(pattern, caseless)
        except ValueError as e:
            raise ConfigError.at(f'{e} in "{pattern}"' if "in \"" not in str(e) else str(e), d) from None

    @staticmethod
    def invalid(d: Directive, value: str | None = None) -> ConfigError:
        v = value if value is not None else " ".join(d.values)
        return ConfigError.at(f'invalid value "{v}" in "{d.name}" directive', d)

    def time(self, d: Directive, i: int = 0) -> float:
        try:
            return parse_time(d.args[i].value)
        except ValueError:
            raise ConfigError.at(f'"{d.name}" directive invalid value', d) from None

    def size(self, d: Directive, i: int = 0) -> int:
        try:
            return parse_size(d.args[i].value)
        except ValueError:
            raise ConfigError.at(f'"{d.name}" directive invalid value', d) from None

    def flag(self, d: Directive) -> bool:
        try:
            return parse_flag(d.args[0].value)
        except ValueError:
            raise ConfigError.at(
                f'invalid value "{d.args[0].value}" in "{d.name}" directive, '
                f'it must be "on" or "off"', d) from None

    def integer(self, d: Directive, i: int = 0) -> int:
        v = d.args[i].value
        if not v.isdigit():
            raise self.invalid(d, v)
        return int(v)

    # --- entry ---------------------------------------------------------------------------

    def compile(self, tree: tuple[Directive, ...], top: str) -> tuple[MainConf, HttpConf]:
        main = MainConf(**dtable.defaults_of(dtable.MAIN_T))
        if top == MAIN:
            self.walk(tree, MAIN, main, EVERY_STAGE, lambda d: self.main_directive(main, d))
            http_block = self._http_block
            http_tree = http_block.block or () if http_block is not None else ()
        else:
            http_tree = tree
        http = self.compile_http(http_tree)
        if main.user is None and os.geteuid() == 0:
            # nginx's built-in `user nobody nogroup;` (group "nobody" where "nogroup" is not
            # known), for a conf.d-style file too: workers never keep root
            main.user = "nobody"
            main.group = "nogroup" if group_exists("nogroup") else "nobody"
            main.uid, main.gid = worker_ids(main.user, main.group, None)
        return main, http

    def walk(self, body: Sequence[Directive], context: str, into: Any, stages: Container[int],
             value: Callable[[Directive], None] | None = None) -> None:
        """Compile the directives of `body` (written in `context`) whose stage is in `stages`:
        stage by stage, each in file order, a structural one by the Compiler method its entry
        names (`compile(directive, into)`), a value one (stage LEVEL) by `value` if given."""
        todo: list[tuple[int, int, str]] = []
        for i, d in enumerate(body):
            spec = dtable.entry(d.name, context)
            method = spec.compile if spec is not None else ""
            stage = spec.stage if spec is not None and method else LEVEL
            if stage in stages and (method or value is not None):
                todo.append((stage, i, method))
        for _, i, method in sorted(todo):
            if method:
                getattr(self, method)(body[i], into)
            elif value is not None:
                value(body[i])

    def take_http(self, d: Directive, main: MainConf) -> None:
        """The `http { }` block: compiled by compile_http once the main context is read."""
        if self._http_block is not None:
            raise ConfigError.at('"http" directive is duplicate', d)
        self._http_block = d

    def compile_events(self, d: Directive, main: MainConf) -> None:
        """`events { }`: its directives are main ones (MainConf fields), in file order."""
        self.walk(d.block or (), EVENTS, main, EVERY_STAGE, lambda e: self.main_directive(main, e))

    def main_directive(self, main: MainConf, d: Directive) -> None:
        """A main or events directive, through its table entry."""
        main.where[d.name] = (d.file, d.line)
        spec = dtable.MAIN_SPECS.get(d.name)
        if spec is None:
            self.note_effect(d, dtable.lookup(d.name))
            return
        self.fill(main, spec, d)

    def fill(self, target: Any, spec: Spec, d: Directive) -> None:
        """Parse `d` with its entry and set the field it fills (append, for a list)."""
        assert spec.parse is not None, spec.name
        value = spec.parse(self, d, target)
        if spec.merge == LIST:
            getattr(target, spec.field).extend(value if isinstance(value, list) else [value])
        else:
            setattr(target, spec.field, value)

    def note_effect(self, d: Directive, specs: tuple[Spec, ...]) -> None:
        """A directive that fills nothing: when its entry says "accepted, not applied" and
        this occurrence leaves something undone, keep its line for lint."""
        for spec in specs:
            eff = spec.effect
            if eff.kind == "not-applied" and (eff.active is None or eff.active(d)):
                self.not_applied.append((d.name, (d.file, d.line)))
                return

    def error_log_target(self, d: Directive) -> tuple[str, str]:
        """`error_log FILE [LEVEL]` -> (path, level), at any level."""
        v = d.values
        level = v[1] if len(v) > 1 else "error"
        if level not in ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"):
            raise ConfigError.at(f'invalid log level "{level}"', d)
        path = v[0] if v[0] in ("stderr",) or v[0].startswith("syslog:") else self.prefixed(v[0])
        return path, level

    # --- http ----------------------------------------------------------------------------

    def prescan(self, tree: Iterable[Directive], context: str) -> None:
        """Declare the variables of `map`, `set` and server_name captures (each entry's
        `declare`) before any template is compiled: nginx resolves variables after the whole
        file is read, so order in the file does not matter."""
        for d in tree:
            spec = dtable.entry(d.name, context)
            if spec is not None and spec.declare:
                getattr(self, spec.declare)(d)
            if d.block and dtable.holds_directives(d.name, context):
                child = dtable.child_context_of(d.name, context)
                assert child is not None
                self.prescan(d.block, child)

    def declare_map(self, d: Directive) -> None:
        name = d.args[1].value
        if not name.startswith("$"):
            raise ConfigError.at(f'invalid variable name "{name}"', d)
        # a map's body is data: `volatile` is one of its keys, not a directive
        volatile = any(e.name == "volatile" and not e.args for e in d.block or ())
        self.scope.define_lazy(name[1:], lambda r: "", cache=not volatile)

    def declare_set(self, d: Directive) -> None:
        if d.args[0].value.startswith("$"):
            self.scope.define_settable(d.args[0].value[1:])

    def declare_captures(self, d: Directive) -> None:
        """The named captures of `server_name ~regex` names are variables."""
        for a in d.args:
            if a.value.startswith("~") and "(?" in a.value:
                try:
                    rx = compile_nginx_regex(a.value[1:], False)
                except ValueError:
                    continue    # reported where the server names are built
                for g in rx.groupindex:
                    self.scope.define_capture(g)

    def compile_http(self, tree: tuple[Directive, ...]) -> HttpConf:
        self.prescan(tree, HTTP)
        http = HttpLevel()
        self.walk(tree, HTTP, http, BEFORE_LEVEL)     # upstreams, log formats, maps
        local = LevelSettings()
        self.fill_level(local, self.values(tree, HTTP))
        # the http level merges with the table's defaults: every field is set from here down
        top = local.merged_with(Settings.from_values(dtable.settings_defaults(self), {}))
        self.http_level = local
        http.settings = top
        self.walk(tree, HTTP, http, AFTER_LEVEL)      # servers
        for up in self.upstreams.values():
            # `server ... resolve`: the block's resolver, else the http level's
            named = [p for p in up.peers if p.resolve]
            if not named or up.resolver is not None:
                continue
            if top.resolver is None:
                raise ConfigError('no resolver defined to resolve names at run time in '
                                  f'upstream "{up.name}"', *named[0].where)
            up.resolver = top.resolver
            if up.resolver_timeout == 30.0:      # not written in the block: the http level's
                up.resolver_timeout = top.resolver_timeout
        for pd, loc in self._pending_proxy:
            loc.proxy = self.proxy_pass_target(pd)
        self.upstreams.update(self.implicit)
        check_charsets(top, http.servers)
        return HttpConf(http.servers, self.upstreams, http.maps, self.log_formats, top, local,
                        self.scope)

    @staticmethod
    def values(body: Iterable[Directive], context: str) -> list[Directive]:
        """The directives of a block that its walk does not compile (the level's values)."""
        out = []
        for d in body:
            spec = dtable.entry(d.name, context)
            if spec is None or not spec.compile:
                out.append(d)
        return out

    def compile_log_format(self, d: Directive, http: HttpLevel) -> None:
        args = d.values
        name = args[0]
        escape = "default"
        rest = args[1:]
        if rest and rest[0].startswith("escape="):
            escape = rest[0][7:]
            if escape not in ("default", "json", "none"):
                raise ConfigError.at(f'unknown log format escaping "{escape}"', d)
            rest = rest[1:]
        if name in self.log_formats or name == "combined":
            raise ConfigError.at(f'duplicate "log_format" name "{name}"', d)
        if not rest:
            raise ConfigError.at('invalid number of arguments in "log_format" directive', d)
        self.log_formats[name] = LogFormat(name, self.template("".join(rest), d), escape)

    def compile_map(self, d: Directive, http: HttpLevel) -> None:
        src = self.template(d.args[0].value, d)
        var = d.args[1].value[1:]
        m = MapConf(var, src, {}, [], [], literal(""), False, (d.file, d.line))
        pending: list[tuple[Directive, str, str]] = []
        for e in d.block or ():
            key = e.name
            vals = e.values
            if key == "hostnames" and not vals:
                m.hostnames = True
                continue
            if key == "include":
                raise ConfigError.at('"include" inside "map" is not supported by truehop', e)
            if key == "volatile" and not vals:
                m.volatile = True
                continue
            if len(vals) != 1:
                raise ConfigError.at('invalid number of the map parameters', e)
            pending.append((e, key, vals[0]))
        for e, key, val in pending:
            if key.startswith("~"):
                caseless = key.startswith("~*")
                pattern = key[2:] if caseless else key[1:]
                rx = self.regex(pattern, caseless, e)
                tpl = self.template(val, e, set(rx.groupindex))
                m.regexes.append((rx, tpl))
            else:
                tpl = self.template(val, e)
                k = key[1:] if key.startswith("\\") else key
                if key == "default":
                    m.default = tpl
                elif m.hostnames and ("*" in k or k.startswith(".")):
                    self.map_wildcard(m, k, tpl, val, e)
                else:
                    kk = k.lower()
                    if kk in m.exact or (m.hostnames and m.head.get(kk, (None, False))[1]):
                        raise ConfigError.at(f'conflicting parameter "{kk}"', e)
                    m.exact[kk] = tpl
            m.entries.append((key, tpl, (e.file, e.line)))
        self.scope.define_lazy(var, _map_evaluator(m), cache=not m.volatile)
        http.maps.append(m)

    @staticmethod
    def map_wildcard(m: MapConf, k: str, tpl: Template, val: str, e: Directive) -> None:
        """A `hostnames` mask (ngx_hash_add_key with NGX_HASH_WILDCARD_KEY)."""
        low = k.lower()
        if low.count("*") > 1 or ".." in low or low in ("*.", ".*", "."):
            raise ConfigError.at(f'invalid hostname or wildcard "{k}"', e)
        m.wildcards.append((low, tpl))
        if low.startswith("*."):
            key, itself = low[2:], False
        elif low.startswith("."):
            key, itself = low[1:], True
        else:
            if not low.endswith(".*") or "*" in low[:-2]:
                raise ConfigError.at(f'invalid hostname or wildcard "{k}"', e)
            if low[:-2] in m.tail:
                raise ConfigError.at(f'conflicting parameter "{k}"', e)
            m.tail[low[:-2]] = tpl
            return
        if "*" in key:
            raise ConfigError.at(f'invalid hostname or wildcard "{k}"', e)
        if key in m.head or (itself and key in m.exact):
            raise ConfigError.at(f'conflicting parameter "{k}"', e)
        m.head[key] = (tpl, itself)

    # --- upstream ------------------------------------------------------------------------

    def compile_upstream(self, d: Directive, http: HttpLevel) -> None:
        name = d.args[0].value
        if name in self.upstreams:
            raise ConfigError.at(f'duplicate upstream "{name}"', d)
        up = UpstreamConf(name, [], where=(d.file, d.line))
        for fld, value in dtable.defaults_of(dtable.UPSTREAM_T).items():
            setattr(up, fld, value)    # keepalive 32, ...: written once, in the table
        for e in d.block or ():
            spec = dtable.UPSTREAM_SPECS.get(e.name)
            if spec is None:
                self.note_effect(e, dtable.lookup(e.name))
            else:
                self.fill(up, spec, e)
        if not up.peers:
            raise ConfigError.at('no servers are inside upstream', d)
        named = [p for p in up.peers if p.resolve]
        if named and up.zone is None:
            # nginx keeps run-time resolved peers in the zone; truehop needs none, but the
            # same file must mean the same thing on both
            raise ConfigError(f'resolving names at run time requires upstream "{name}" '
                              'in shared memory', *named[0].where)
        self.upstreams[name] = up

    def peers(self, e: Directive, upstream: str = "") -> list[PeerConf]:
        v = e.values
        if v[0][:5].lower() == "unix:":
            if len(v[0]) == 5:
                raise ConfigError.at(f'no path in the unix domain socket "{v[0]}"', e)
            host, port = "unix:" + v[0][5:], 0
        else:
            host, port = split_host_port(v[0], 80, e)
        opts: dict[str, Any] = {}
        for p in v[1:]:
            if p.startswith("weight="):
                opts["weight"] = self._pos_int(p[7:], e, p)
            elif p.startswith("max_fails="):
                opts["max_fails"] = self._pos_int(p[10:], e, p, allow_zero=True)
            elif p.startswith("fail_timeout="):
                try:
                    opts["fail_timeout"] = parse_time(p[13:])
                except ValueError:
                    raise ConfigError.at(f'invalid parameter "{p}"', e) from None
            elif p == "backup":
                opts["backup"] = True
            elif p == "down":
                opts["down"] = True
            elif p.startswith("max_conns="):
                opts["max_conns"] = self._pos_int(p[10:], e, p, allow_zero=True)
            elif p == "resolve" and upstream:
                # nginx 1.27.3+: the name is looked up at run time (proxy/resolving.py);
                # compile_upstream checks the zone and the resolver
                opts["resolve"] = True
            else:
                raise ConfigError.at(f'invalid parameter "{p}"', e)
        if port != 0 and not _is_address(host):
            opts["name"] = host
            if opts.get("resolve"):
                return [PeerConf(host, port, where=(e.file, e.line), **opts)]
        opts.pop("resolve", None)
        addrs = [host] if port == 0 else resolve(host, e)
        return [PeerConf(addr, port, where=(e.file, e.line), **opts) for addr in addrs]

    @staticmethod
    def _pos_int(s: str, e: Directive, p: str, allow_zero: bool = False) -> int:
        if not s.isdigit() or (int(s) == 0 and not allow_zero):
            raise ConfigError.at(f'invalid parameter "{p}"', e)
        return int(s)

    # --- server --------------------------------------------------------------------------

    def compile_server(self, d: Directive, http: HttpLevel) -> None:
        body = d.block or ()
        local = LevelSettings()
        self.fill_level(local, body)
        assert http.settings is not None
        merged = local.merged_with(http.settings)
        srv = ServerConf([], [], [], {}, merged, local, (), SslConf(), where=(d.file, d.line))
        self.apply_server_values(srv, local)
        if not srv.listens:
            srv.listens.append(Listen("*", 80 if os.geteuid() == 0 else 8000, where=(d.file, d.line)))
        for ls in srv.listens:
            if ls.http2:
                srv.http2 = True
        if not srv.names:
            srv.names = [""]
        srv.ops = self.ops(body, None)
        self.walk(body, SERVER, srv, AFTER_LEVEL)     # locations
        try:
            srv.tree = LocationTree.build(srv.locations)
        except ValueError as ex:
            where = getattr(getattr(ex, "location", None), "where", (d.file, d.line))
            raise ConfigError(str(ex), where[0], where[1]) from None
        srv.default_loc = LocationConf("", "", merged, where=(d.file, d.line))
        http.servers.append(srv)

    def apply_server_values(self, srv: ServerConf, local: LevelSettings) -> None:
        """Set the server-level values (listen, server_name, http2, ssl_*, request-head
        limits) on the server and its SslConf. nginx merges them per server
        (merge_srv_conf): a server takes each value it does not write from the http level,
        else the table's default. ssl_certificate and ssl_certificate_key are arrays: the
        lines of one level, inherited as a whole, paired in order."""
        http = self.http_level
        for spec in dtable.SERVER_SPECS.values():
            if spec.name in ("ssl_certificate", "ssl_certificate_key"):
                continue    # paired below
            fld = spec.field
            if local.defined_here(fld):
                value, written = local.values[fld], True
            elif http.defined_here(fld):
                value, written = http.values[fld], True
            elif spec.merge != LIST:
                value, written = spec.default, False
            else:
                continue
            if spec.where_field and written:
                value, where = value
                _set_path(srv, spec.where_field, where)
            _set_path(srv, fld, value)
        # pair certificates with keys in order, as nginx does
        certs: list[Directive] = local.get("ssl_certificate") or http.get("ssl_certificate") or []
        keys: list[Directive] = (local.get("ssl_certificate_key")
                                 or http.get("ssl_certificate_key") or [])
        if len(keys) < len(certs):
            c = certs[-1]   # nginx names the last certificate
            raise ConfigError(f'no "ssl_certificate_key" is defined for certificate '
                              f'"{c.args[0].value}"', c.file, c.line)
        srv.ssl.certificates = [
            (self.conf_relative(c.args[0].value), self.conf_relative(k.args[0].value), (c.file, c.line))
            for c, k in zip(certs, keys, strict=False)
        ]

    def listen(self, e: Directive) -> list[Listen]:
        """One Listen per port: `listen 127.0.0.1:8182-8183` (nginx 1.27.3+) is a range."""
        v = e.values
        a = v[0]
        if a.startswith("unix:"):
            ports = [0]
            host = a
        else:
            if a.startswith("["):
                host, _, rest = a[1:].partition("]")
                port_s = rest[1:] if rest.startswith(":") else "80"
            elif a.replace("-", "").isdigit():
                host, port_s = "*", a
            elif ":" in a:
                host, _, port_s = a.rpartition(":")
            else:
                host, port_s = a, "80"
            lo, dash, hi = port_s.partition("-")
            if not lo.isdigit() or (dash and not hi.isdigit()):
                raise ConfigError.at(f'invalid port in "{a}" of the "listen" directive', e)
            first, last = int(lo), int(hi) if dash else int(lo)
            if not 0 < first <= last < 65536:
                raise ConfigError.at(f'invalid port in "{a}" of the "listen" directive', e)
            ports = list(range(first, last + 1))
            if host not in ("*", ""):
                try:
                    ipaddress.ip_address(host)
                except ValueError:
                    if host == "localhost":
                        host = "127.0.0.1"
                    else:
                        raise ConfigError.at(f'host not found in "{a}" of the "listen" directive', e) from None
            host = host or "*"
        out = [Listen(host, port, where=(e.file, e.line)) for port in ports]
        ls = out[0]
        for p in v[1:]:
            if p == "default_server" or p == "default":
                ls.default_server = True
            elif p == "ssl":
                ls.ssl = True
            elif p == "http2":
                ls.http2 = True
                self.warnings.append(f'the "listen ... http2" directive is deprecated, use the '
                                     f'"http2" directive instead in {e.file}:{e.line}')
            elif p == "reuseport":
                ls.reuseport = True
            elif p.startswith("backlog="):
                ls.backlog = self._pos_int(p[8:], e, p)
            elif p.startswith("ipv6only="):
                ls.ipv6only = p[9:] == "on"
            elif p.startswith(("rcvbuf=", "sndbuf=")):
                try:
                    size = parse_size(p[7:])
                except ValueError:
                    raise ConfigError.at(f'invalid {p[:6]} "{p[7:]}"', e) from None
                if p[0] == "r":
                    ls.rcvbuf = size
                else:
                    ls.sndbuf = size
            elif p.startswith("so_keepalive="):
                ls.so_keepalive = so_keepalive(p[13:], e)
            elif p == "deferred":
                ls.deferred = True
            elif p.startswith("fastopen="):
                ls.fastopen = self._pos_int(p[9:], e, p)
            elif p == "bind":
                pass    # every address gets its own socket anyway
            elif p == "proxy_protocol" or p.startswith(("setfib=", "accept_filter=")):
                # not available here: refused, never silently ignored
                raise ConfigError.at(f'the "{p.split("=")[0]}" parameter of "listen" is not '
                                     f'supported by truehop', e)
            else:
                raise ConfigError.at(f'invalid parameter "{p}"', e)
        for other in out[1:]:
            # the parameters apply to every port of a range
            other.default_server, other.ssl, other.http2 = ls.default_server, ls.ssl, ls.http2
            other.reuseport, other.backlog, other.ipv6only = ls.reuseport, ls.backlog, ls.ipv6only
            other.rcvbuf, other.sndbuf, other.so_keepalive = ls.rcvbuf, ls.sndbuf, ls.so_keepalive
            other.deferred, other.fastopen = ls.deferred, ls.fastopen
        return out

    # --- location ------------------------------------------------------------------------

    def compile_location(self, d: Directive, owner: ServerConf | LocationConf) -> None:
        """A `location` of a server, or nested in a location (`owner`)."""
        parent = owner.settings
        parent_loc = owner if isinstance(owner, LocationConf) else None
        v = d.values
        if len(v) == 2:
            mod, pattern = v
            if mod not in ("=", "^~", "~", "~*"):
                raise ConfigError.at(f'invalid location modifier "{mod}"', d)
        else:
            pattern = v[0]
            mod = ""
            for m in ("=", "^~", "~*", "~", "@"):
                if pattern.startswith(m) and len(pattern) > len(m):
                    mod, pattern = m, pattern[len(m):]
                    break
        if parent_loc is not None and (parent_loc.modifier == "=" ):
            raise ConfigError.at(f'location "{pattern}" cannot be inside the exact location '
                                 f'"{parent_loc.pattern}"', d)
        if mod == "@" and parent_loc is not None:
            raise ConfigError.at(f'named location "@{pattern}" can be on the server level only', d)
        body = d.block or ()
        local = LevelSettings()
        self.fill_level(local, body)
        merged = local.merged_with(parent)
        loc = LocationConf(mod, pattern, merged, where=(d.file, d.line), parent=parent_loc, local=local)
        if mod in ("~", "~*"):
            loc.regex = self.regex(pattern, mod == "~*", d)
        if local.defined_here("alias") and local.defined_here("root"):
            raise ConfigError.at('"alias" directive is duplicate, "root" directive was specified '
                                 'earlier', d)
        if local.defined_here("alias"):
            # an alias replaces an inherited root
            pass
        elif parent_loc is None and merged.alias is not None:
            merged.alias = None
        named = set(loc.regex.groupindex) if loc.regex else set()
        loc.ops = self.ops(body, named, loc)
        self.walk(body, LOCATION, loc, AFTER_LEVEL)   # proxy_pass, internal, then locations
        if local.defined_here("try_files") or any(isinstance(op, ReturnOp) for op in loc.ops):
            loc.has_content = True
        if parent_loc is None:
            srv = owner
            assert isinstance(srv, ServerConf)
            if mod == "@":
                if pattern in srv.named:
                    raise ConfigError.at(f'duplicate location "{pattern}"', d)
                srv.named[pattern] = loc
            else:
                srv.locations.append(loc)
        else:
            if mod in ("", "^~", "=") and parent_loc.modifier in ("", "^~") and \
                    not pattern.startswith(parent_loc.pattern):
                raise ConfigError.at(f'location "{pattern}" is outside location '
                                     f'"{parent_loc.pattern}"', d)
            parent_loc.children.append(loc)

    def compile_internal(self, d: Directive, loc: LocationConf) -> None:
        loc.internal = True

    def compile_limit_except(self, d: Directive, loc: LocationConf) -> None:
        """`limit_except METHOD ... { }` (ngx_http_core_limit_except): the listed methods
        pass (GET lets HEAD through too); every other one is checked with the block's
        access rules, merged with the location's as nginx merges the block (a nested
        location of its own)."""
        methods: set[str] = set()
        for m in d.values:
            up = m.upper()
            if up not in LIMIT_EXCEPT_METHODS:
                raise ConfigError.at(f'invalid method "{m}"', d)
            methods.add(up)
        if "GET" in methods:
            methods.add("HEAD")
        local = LevelSettings()
        self.fill_level(local, d.block or ())
        loc.limit_except = LimitExcept(frozenset(methods), local.merged_with(loc.settings),
                                       (d.file, d.line))
        loc.settings.access_phase = True

    def compile_proxy_pass(self, e: Directive, loc: LocationConf) -> None:
        """`proxy_pass` in a location or in its `if` (modifier "if"): checked here, its
        target built by proxy_pass_target once every upstream is known."""
        # ngx_http_proxy_pass: a URI part (without variables) cannot be placed where no
        # prefix is matched: a regex location, a named location, an `if` block
        parent_loc = loc.parent
        if loc.modifier in ("~", "~*", "@", "if") or \
                loc.modifier != "if" and parent_loc is not None and parent_loc.regex:
            uri_part = _proxy_uri_part(e.args[0].value)
            if uri_part and "$" not in e.args[0].value:
                raise ConfigError.at('"proxy_pass" cannot have URI part in location given '
                                     'by regular expression, or inside named location, or '
                                     'inside "if" statement, or inside "limit_except" block', e)
        self._pending_proxy.append((e, loc))
        loc.has_content = True
        if loc.modifier != "if":
            loc.auto_redirect = loc.modifier in ("", "^~", "=") and loc.pattern.endswith("/")

    # --- rewrite module --------------------------------------------------------------------

    def ops(self, body: Iterable[Directive], named: set[str] | None,
            loc: LocationConf | None = None) -> tuple[Any, ...]:
        """The rewrite module's instructions of a block, in order, each built by its table
        entry's parser (conf/parsers.py); the rest of the block is not theirs."""
        out: list[Any] = []
        scope = (named, loc)
        for e in body:
            spec = dtable.REWRITE_SPECS.get(e.name)
            if spec is not None:
                assert spec.parse is not None, spec.name
                out.append(spec.parse(self, e, scope))
        return tuple(out)

    def if_op(self, e: Directive, named: set[str] | None, loc: LocationConf | None) -> IfOp:
        """`if (condition) { ... }`: its rewrite instructions, and, in a location, the
        settings and proxy_pass of an implicit location used when the condition holds."""
        w = (e.file, e.line)
        cond = condition(self, e, named)
        body_ops = self.ops(e.block or (), named, loc)
        if_loc = None
        content = [x for x in e.block or () if x.name not in dtable.REWRITE_SPECS]
        if content and loc is not None:
            local = LevelSettings()
            self.fill_level(local, content)
            if_loc = LocationConf("if", "", local.merged_with(loc.settings),
                                  where=w, parent=loc, local=local)
            self.walk(content, dtable.IF_LOCATION, if_loc, AFTER_LEVEL)     # proxy_pass
        return IfOp(cond, body_ops, if_loc, w)

    # --- proxy_pass ------------------------------------------------------------------------

    def proxy_pass_target(self, d: Directive) -> ProxyPass:
        """What `proxy_pass` sends to: a named upstream, an implicit one, or a template."""
        url = d.args[0].value
        w = (d.file, d.line)
        if "$" in url:
            return ProxyPass("http", None, None, self.template(url, d), "", "", w)
        split = split_proxy_url(url)
        if split is None:
            raise ConfigError.at(f'invalid URL prefix in "{url}"', d)
        scheme, rest = split
        if rest[:5].lower() == "unix:":
            return self.unix_proxy_pass(scheme, rest, d)
        hostport, slash, path = rest.partition("/")
        uri = slash + path if slash else None
        if not hostport:
            raise ConfigError.at(f'no host in "{url}"', d)
        up = self.upstreams.get(hostport)
        if up is not None:
            return ProxyPass(scheme, up, uri, None, hostport, "80" if scheme == "http" else "443", w)
        default_port = 80 if scheme == "http" else 443
        host, port = split_host_port(hostport, default_port, d)
        key = f"{host}:{port}"
        imp = self.implicit.get(key)
        if imp is None:
            imp = UpstreamConf(key, [PeerConf(a, port, where=w) for a in resolve(host, d)],
                               implicit=True, keepalive=0, where=w)
            self.implicit[key] = imp
        return ProxyPass(scheme, imp, uri, None, hostport, str(port), w)

    def unix_proxy_pass(self, scheme: str, rest: str, d: Directive) -> ProxyPass:
        """`proxy_pass http://unix:/path/app.sock[:/uri]`: the socket path ends at the first
        ':'; the Host sent is `localhost`, as nginx's."""
        path, colon, uri = rest[5:].partition(":")
        if not path:
            raise ConfigError.at(f'no path in the unix domain socket "{rest}"', d)
        if colon and not uri.startswith("/"):
            raise ConfigError.at(f'invalid URI in "{rest}"', d)
        key = "unix:" + path
        imp = self.implicit.get(key)
        w = (d.file, d.line)
        if imp is None:
            imp = UpstreamConf(key, [PeerConf(key, 0, where=w)], implicit=True, keepalive=0,
                               where=w)
            self.implicit[key] = imp
        return ProxyPass(scheme, imp, uri or None, None, "localhost", "", w)

    # --- settings --------------------------------------------------------------------------

    def fill_level(self, level: LevelSettings, body: Iterable[Directive]) -> None:
        """What one http/server/location/`if` level writes, through the table: a settings
        directive fills its field (a list directive appends its line), a server-level one
        its server value; any other (blocks, rewrite instructions, proxy_pass) is the
        compiler's walk, or accepted with no field (the table's effect says what then)."""
        for e in body:
            w = (e.file, e.line)
            spec = dtable.SETTINGS_SPECS.get(e.name)
            if spec is not None:
                assert spec.parse is not None, spec.name
                value = spec.parse(self, e, level)
                if spec.merge == LIST:
                    value = (*(level.get(spec.field) or ()), value)
                level.set(spec.field, value)
                level.where.setdefault(spec.field, w)
                level.where[spec.field + "@last"] = w
                continue
            spec = dtable.SERVER_SPECS.get(e.name)
            if spec is not None:
                assert spec.parse is not None, spec.name
                value = spec.parse(self, e, level)
                if spec.merge == LIST:
                    value = [*(level.get(spec.field) or ()),
                             *(value if isinstance(value, list) else [value])]
                level.set(spec.field, value)
                continue
            before = len(self.not_applied)
            self.note_effect(e, dtable.lookup(e.name))
            if len(self.not_applied) > before:
                # kept with the level's lines too: lint shows it with the location
                level.where.setdefault(e.name, w)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def _set_path(obj: Any, path: str, value: Any) -> None:
    """Set "field" or "ssl.field" on a ServerConf."""
    head, dot, rest = path.partition(".")
    if dot:
        setattr(getattr(obj, head), rest, value)
    else:
        setattr(obj, path, value)


# --- helpers --------------------------------------------------------------------------------

def _proxy_uri_part(url: str) -> str:
    rest = url.split("://", 1)[-1]
    _, slash, path = rest.partition("/")
    return slash + path


def _map_evaluator(m: MapConf) -> Callable[[Any], str]:
    src = m.source
    find = m.find

    def evaluate(r: Any) -> str:
        tpl, mm = find(src.render(r))
        if mm is None:
            return tpl.render(r)
        saved = r.captures
        r.captures = mm
        try:
            return tpl.render(r)
        finally:
            r.captures = saved
    return evaluate


def check_charsets(top: Settings, servers: Iterable[ServerConf]) -> None:
    """ngx_http_charset_postconfiguration: a level whose source_charset and charset differ
    needs a charset_map between them (truehop has none: it converts nothing), refused with
    nginx's words, without file:line as nginx says it."""
    todo: list[Settings] = [top]
    stack: list[LocationConf] = []
    for srv in servers:
        todo.append(srv.settings)
        stack.extend(srv.locations)
        stack.extend(srv.named.values())
    while stack:
        loc = stack.pop()
        todo.append(loc.settings)
        stack.extend(loc.children)
        stack.extend(op.loc for op in loc.ops if isinstance(op, IfOp) and op.loc is not None)
    for st in todo:
        src, dst = st.source_charset, st.charset
        if src is not None and dst is not None and src.lower() != dst.lower():
            raise ConfigError(f'no "charset_map" between the charsets "{src}" and "{dst}"')


def load(conf_path: str, prefix: str | None = None, globals_: str | None = None) -> Config:
    """Parse, check and compile a configuration file. Raises ConfigError."""
    conf_path = os.path.abspath(conf_path)
    if prefix is None:
        prefix = os.path.dirname(conf_path)
    prefix = os.path.abspath(prefix)
    tree, sources = parser.parse_file_with_sources(conf_path)
    top = dtable.detect_top(tree)
    whole_file = top == "main"
    if globals_:
        gtree = parser.parse_string(globals_, "command line")
        if top == "http":
            # -g holds main-context directives: give a conf.d file a main context around it
            tree = (*gtree, Directive("http", (), tree, conf_path, 1))
            top = "main"
        else:
            tree = (*gtree, *tree)
    dtable.check_tree(tree, top)
    comp = Compiler(conf_path, prefix)
    main, http = comp.compile(tree, top)
    if whole_file:
        dtable.check_events(tree)
    if main.pid != "off" and not os.path.isabs(main.pid):
        main.pid = comp.prefixed(main.pid)
    cfg = Config(main, http, conf_path, prefix, sources, top, comp.warnings, comp.not_applied)
    return cfg
