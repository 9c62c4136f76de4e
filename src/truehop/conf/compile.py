"""Directive tree -> `model.Config`, with nginx's meaning and nginx's error wording.

The tree has already passed `directives.check_tree` (names, contexts, arity). Here values are
parsed, variables resolved, regexes compiled, inheritance merged, and references checked
(an unknown upstream is an implicit one, an unknown variable is an error). Like nginx, every
setting is "unset" at its own level and merged with the enclosing one afterwards.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterable
from typing import Any

from truehop.conf import directives as dtable
from truehop.conf import parser
from truehop.conf.ast import ConfigError, Directive
from truehop.conf.model import (
    DEFAULTS,
    SETTING_FIELDS,
    AccessLog,
    BreakOp,
    Condition,
    Config,
    ErrorPage,
    Expires,
    HeaderSetting,
    HttpConf,
    IfOp,
    Listen,
    LocationConf,
    LogFormat,
    MainConf,
    MapConf,
    PeerConf,
    ProxyPass,
    ProxyRedirect,
    RedirectRule,
    ResolverConf,
    ReturnOp,
    RewriteOp,
    ServerConf,
    SetOp,
    Settings,
    SslConf,
    UpstreamConf,
)
from truehop.conf.values import (
    parse_expires,
    parse_flag,
    parse_size,
    parse_time,
    split_proxy_url,
)
from truehop.route.locations import LocationTree, compile_nginx_regex
from truehop.route.template import Template, literal
from truehop.route.variables import UnknownVariable, VariableScope

COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent"')

NEXT_UPSTREAM_FLAGS = frozenset({
    "error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504",
    "http_403", "http_404", "http_429", "non_idempotent", "off",
})

BUILTIN_TYPES = {"html": "text/html", "gif": "image/gif", "jpg": "image/jpeg"}

# The rewrite module's directives: run in order; everything else is a setting.
REWRITE_DIRECTIVES = frozenset({"return", "rewrite", "set", "if", "break"})


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
        self.http_server_values: dict[str, Any] = {}

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
        main = MainConf()
        http_blocks: list[Directive] = []
        if top == "main":
            for d in tree:
                if d.name == "http":
                    http_blocks.append(d)
                elif d.name == "events":
                    for e in d.block or ():
                        if e.name == "worker_connections":
                            main.worker_connections = self.integer(e)
                else:
                    self.main_directive(main, d)
            if not http_blocks:
                http_tree: tuple[Directive, ...] = ()
            elif len(http_blocks) > 1:
                raise ConfigError.at('"http" directive is duplicate', http_blocks[1])
            else:
                http_tree = http_blocks[0].block or ()
        else:
            http_tree = tree
        http = self.compile_http(http_tree)
        if main.user is None and os.geteuid() == 0:
            # nginx's built-in `user nobody nogroup;` (group "nobody" where "nogroup" is not
            # known), for a conf.d-style file too: workers never keep root
            main.user = "nobody"
            main.group = "nogroup" if _group_exists("nogroup") else "nobody"
            main.uid, main.gid = worker_ids(main.user, main.group, None)
        return main, http

    def main_directive(self, main: MainConf, d: Directive) -> None:
        v = d.values
        main.where[d.name] = (d.file, d.line)
        if d.name == "worker_processes":
            if v[0] == "auto":
                main.worker_processes = os.cpu_count() or 1
            else:
                main.worker_processes = self.integer(d)
        elif d.name == "pid":
            main.pid = "off" if v[0] == "off" else self.prefixed(v[0])
        elif d.name == "error_log":
            main.error_logs.append(self.error_log_target(d))
        elif d.name == "daemon":
            main.daemon = self.flag(d)
        elif d.name == "worker_shutdown_timeout":
            main.worker_shutdown_timeout = self.time(d)
        elif d.name == "user":
            main.user = v[0]
            main.group = v[1] if len(v) > 1 else v[0]   # as nginx: a group of the same name
            if os.geteuid() != 0:
                self.warnings.append('the "user" directive makes sense only if the master '
                                     'process runs with super-user privileges, ignored in '
                                     f"{d.file}:{d.line}")
            else:
                main.uid, main.gid = worker_ids(main.user, main.group, d)
        elif d.name == "worker_rlimit_nofile":
            main.rlimit_nofile = self.integer(d)
        # pcre_jit, ... are accepted and have no effect here.

    def error_log_target(self, d: Directive) -> tuple[str, str]:
        """`error_log FILE [LEVEL]` -> (path, level), at any level."""
        v = d.values
        level = v[1] if len(v) > 1 else "error"
        if level not in ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"):
            raise ConfigError.at(f'invalid log level "{level}"', d)
        path = v[0] if v[0] in ("stderr",) or v[0].startswith("syslog:") else self.prefixed(v[0])
        return path, level

    # --- http ----------------------------------------------------------------------------

    def prescan(self, tree: Iterable[Directive]) -> None:
        """Declare `map` and `set` variables before any template is compiled: nginx resolves
        variables after the whole file is read, so order in the file does not matter."""
        for d in tree:
            if d.name == "map" and len(d.args) == 2:
                name = d.args[1].value
                if not name.startswith("$"):
                    raise ConfigError.at(f'invalid variable name "{name}"', d)
                volatile = any(e.name == "volatile" and not e.args for e in d.block or ())
                self.scope.define_lazy(name[1:], lambda r: "", cache=not volatile)
            elif d.name == "set" and d.args and d.args[0].value.startswith("$"):
                self.scope.define_settable(d.args[0].value[1:])
            elif d.name == "server_name":
                for a in d.args:
                    if a.value.startswith("~") and "(?" in a.value:
                        try:
                            rx = compile_nginx_regex(a.value[1:], False)
                        except ValueError:
                            continue    # reported where the server names are built
                        for g in rx.groupindex:
                            self.scope.define_capture(g)
            if d.block and d.name not in ("map", "types"):
                self.prescan(d.block)

    def compile_http(self, tree: tuple[Directive, ...]) -> HttpConf:
        self.prescan(tree)
        for d in tree:
            if d.name == "upstream":
                self.compile_upstream(d)
        for d in tree:
            if d.name == "log_format":
                self.compile_log_format(d)
        maps = [self.compile_map(d) for d in tree if d.name == "map"]
        local = Settings()
        self.fill_settings(local, [d for d in tree if d.name not in ("server", "upstream", "map")])
        top = self.http_defaults(local)
        self.http_server_values = self.server_values(tree)
        servers = [self.compile_server(d, top) for d in tree if d.name == "server"]
        for pd, loc in self._pending_proxy:
            loc.proxy = self.proxy_pass(pd)
        self.upstreams.update(self.implicit)
        return HttpConf(servers, self.upstreams, maps, self.log_formats, top, local, self.scope)

    def http_defaults(self, local: Settings) -> Settings:
        base = Settings()
        for f in SETTING_FIELDS:
            setattr(base, f, DEFAULTS.get(f))
        base.index = (literal("index.html"),)
        base.types = dict(BUILTIN_TYPES)
        base.root = self.prefixed("html")
        base.access_log = (AccessLog(self.prefixed("logs/access.log"), "combined"),)
        base.client_body_temp_path = (self.prefixed("client_body_temp"), ())
        return local.merged_with(base)

    def compile_log_format(self, d: Directive) -> None:
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

    def compile_map(self, d: Directive) -> MapConf:
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
        return m

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

    def compile_upstream(self, d: Directive) -> None:
        name = d.args[0].value
        if name in self.upstreams:
            raise ConfigError.at(f'duplicate upstream "{name}"', d)
        up = UpstreamConf(name, [], where=(d.file, d.line), keepalive=32)
        for e in d.block or ():
            v = e.values
            if e.name == "server":
                up.peers.extend(self.peers(e, up.name))
            elif e.name == "keepalive":
                up.keepalive = self.integer(e)
                up.keepalive_set = True
                if up.keepalive == 0:
                    raise ConfigError.at(f'invalid value "{v[0]}" in "keepalive" directive', e)
                up.keepalive_local = len(v) > 1 and v[1] == "local"
                if len(v) > 1 and v[1] != "local":
                    raise self.invalid(e, v[1])
            elif e.name == "keepalive_timeout":
                up.keepalive_timeout = self.time(e)
            elif e.name == "keepalive_requests":
                up.keepalive_requests = self.integer(e)
            elif e.name == "keepalive_time":
                up.keepalive_time = self.time(e)
            elif e.name in ("least_conn", "ip_hash", "random"):
                up.kind = e.name
            elif e.name == "hash":
                up.kind = "hash"
                up.hash_key = self.template(v[0], e)
                up.hash_consistent = len(v) > 1 and v[1] == "consistent"
        if not up.peers:
            raise ConfigError.at('no servers are inside upstream', d)
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
            elif p == "resolve":
                # nginx 1.27.3+: run-time resolving keeps its peers in the `zone`, which
                # truehop does not have (each worker keeps its own upstream state)
                raise ConfigError.at(f'resolving names at run time requires upstream '
                                     f'"{upstream}" in shared memory', e)
            else:
                raise ConfigError.at(f'invalid parameter "{p}"', e)
        addrs = [host] if port == 0 else resolve(host, e)
        return [PeerConf(addr, port, where=(e.file, e.line), **opts) for addr in addrs]

    @staticmethod
    def _pos_int(s: str, e: Directive, p: str, allow_zero: bool = False) -> int:
        if not s.isdigit() or (int(s) == 0 and not allow_zero):
            raise ConfigError.at(f'invalid parameter "{p}"', e)
        return int(s)

    # --- server --------------------------------------------------------------------------

    def compile_server(self, d: Directive, http: Settings) -> ServerConf:
        body = d.block or ()
        local = Settings()
        self.fill_settings(local, body)
        merged = local.merged_with(http)
        srv = ServerConf([], [], [], {}, merged, local, (), SslConf(), where=(d.file, d.line))
        for e in body:
            v = e.values
            if e.name == "listen":
                srv.listens.extend(self.listen(e))
            elif e.name == "server_name":
                for n in v:
                    if n.startswith("~"):
                        self.regex(n[1:], False, e)
                    srv.names.append(n if n.startswith("~") else n.lower())
        self.apply_server_values(srv, {**self.http_server_values, **self.server_values(body)})
        if not srv.listens:
            srv.listens.append(Listen("*", 80 if os.geteuid() == 0 else 8000, where=(d.file, d.line)))
        for ls in srv.listens:
            if ls.http2:
                srv.http2 = True
        if not srv.names:
            srv.names = [""]
        srv.ops = self.ops(body, None)
        for e in body:
            if e.name == "location":
                loc = self.compile_location(e, merged, None, srv)
                if loc.modifier == "@":
                    if loc.pattern in srv.named:
                        raise ConfigError.at(f'duplicate location "{loc.pattern}"', e)
                    srv.named[loc.pattern] = loc
                else:
                    srv.locations.append(loc)
        try:
            srv.tree = LocationTree.build(srv.locations)
        except ValueError as ex:
            where = getattr(getattr(ex, "location", None), "where", (d.file, d.line))
            raise ConfigError(str(ex), where[0], where[1]) from None
        srv.default_loc = LocationConf("", "", merged, where=(d.file, d.line))
        return srv

    def server_values(self, body: Iterable[Directive]) -> dict[str, Any]:
        """The http/server-level directives (http2, ssl_*, request-head limits) that `body`
        writes itself, by directive name. nginx merges them per server (merge_srv_conf): a
        server takes each value it does not set from the http level. ssl_certificate and
        ssl_certificate_key are arrays: the lines of one level, inherited as a whole."""
        out: dict[str, Any] = {}
        for e in body:
            n = e.name
            v = e.values
            if n in ("ssl_certificate", "ssl_certificate_key"):
                out.setdefault(n, []).append(e)
            elif n == "ssl_protocols":
                for p in v:
                    if p not in ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"):
                        raise ConfigError.at(f'invalid value "{p}" in "ssl_protocols" directive', e)
                out[n] = tuple(v)
            elif n == "ssl_ciphers":
                out[n] = v[0]
            elif n == "ssl_session_cache":
                out[n] = " ".join(v)
            elif n == "ssl_session_timeout" or n == "client_header_timeout":
                out[n] = self.time(e)
            elif n in ("ssl_prefer_server_ciphers", "ssl_session_tickets", "http2",
                       "merge_slashes", "underscores_in_headers", "ignore_invalid_headers"):
                out[n] = self.flag(e)
            elif n == "http2_max_concurrent_streams":
                out[n] = self.integer(e)
            elif n == "large_client_header_buffers":
                out[n] = (self.integer(e), self.size(e, 1))
            elif n == "client_header_buffer_size":
                out[n] = self.size(e)
            elif n in ("ssl_dhparam", "ssl_password_file"):
                out[n] = (self.conf_relative(v[0]), (e.file, e.line))
            elif n in ("ssl_client_certificate", "ssl_trusted_certificate", "ssl_crl"):
                out[n] = (self.conf_relative(v[0]), (e.file, e.line))
            elif n == "ssl_verify_client":
                if v[0] not in ("off", "on", "optional", "optional_no_ca"):
                    raise ConfigError.at(f'invalid value "{v[0]}"', e)   # ngx_conf_set_enum_slot
                if v[0] == "optional_no_ca":
                    # asking for a certificate without verifying it needs an OpenSSL verify
                    # callback, which Python's ssl module does not offer
                    raise ConfigError.at('"ssl_verify_client optional_no_ca" is not supported '
                                         'by truehop: Python\'s ssl module cannot request a '
                                         'client certificate without verifying it', e)
                out[n] = (v[0], (e.file, e.line))
            elif n == "ssl_verify_depth":
                if not v[0].isdigit():
                    raise ConfigError.at('"ssl_verify_depth" directive invalid number', e)
                out[n] = int(v[0])
            # ssl_stapling, ssl_stapling_verify: accepted, no effect: clients fetch OCSP
            # themselves (ssl_trusted_certificate, above, also verifies client certificates)
        return out

    def apply_server_values(self, srv: ServerConf, vals: dict[str, Any]) -> None:
        """Set the merged http/server-level values on the server and its SslConf."""
        for name, val in vals.items():
            where = _SSL_WITH_WHERE.get(name)
            if where is not None:
                # (value, "FILE:LINE"): a file read at run time, named in its errors
                setattr(srv.ssl, where[0], val[0])
                setattr(srv.ssl, where[1], val[1])
            elif name == "ssl_verify_depth":
                srv.ssl.verify_depth = val
            elif name.startswith("ssl_"):
                fld = name[4:]
                if fld in _SSL_FIELDS:
                    setattr(srv.ssl, fld, val)
            else:
                setattr(srv, name, val)
        # pair certificates with keys in order, as nginx does
        certs: list[Directive] = vals.get("ssl_certificate", [])
        keys: list[Directive] = vals.get("ssl_certificate_key", [])
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
                ls.so_keepalive = _so_keepalive(p[13:], e)
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

    def compile_location(self, d: Directive, parent: Settings, parent_loc: LocationConf | None,
                         srv: ServerConf) -> LocationConf:
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
        local = Settings()
        self.fill_settings(local, body)
        merged = local.merged_with(parent)
        loc = LocationConf(mod, pattern, merged, where=(d.file, d.line), parent=parent_loc, local=local)
        if mod in ("~", "~*"):
            loc.regex = self.regex(pattern, mod == "~*", d)
        if local.alias is not None and local.root is not None:
            raise ConfigError.at('"alias" directive is duplicate, "root" directive was specified '
                                 'earlier', d)
        if local.alias is not None:
            # an alias replaces an inherited root
            pass
        elif parent_loc is None and merged.alias is not None:
            merged.alias = None
        loc.internal = any(e.name == "internal" for e in body)
        named = set(loc.regex.groupindex) if loc.regex else set()
        loc.ops = self.ops(body, named, loc)
        for e in body:
            if e.name == "proxy_pass":
                if loc.modifier in ("~", "~*", "@") or parent_loc is not None and parent_loc.regex:
                    uri_part = _proxy_uri_part(e.args[0].value)
                    if uri_part and "$" not in e.args[0].value and loc.modifier != "@":
                        raise ConfigError.at('"proxy_pass" cannot have URI part in location given '
                                             'by regular expression, or inside named location, or '
                                             'inside "if" statement, or inside "limit_except" block', e)
                self._pending_proxy.append((e, loc))
                loc.has_content = True
                loc.auto_redirect = mod in ("", "^~", "=") and pattern.endswith("/")
        if local.try_files is not None or any(e.name == "return" for e in body):
            loc.has_content = True
        for e in body:
            if e.name == "location":
                child = self.compile_location(e, merged, loc, srv)
                if child.modifier in ("", "^~", "=") and loc.modifier in ("", "^~") and \
                        not child.pattern.startswith(loc.pattern):
                    raise ConfigError.at(f'location "{child.pattern}" is outside location '
                                         f'"{loc.pattern}"', e)
                loc.children.append(child)
        return loc

    # --- rewrite module --------------------------------------------------------------------

    def ops(self, body: Iterable[Directive], named: set[str] | None,
            loc: LocationConf | None = None) -> tuple[Any, ...]:
        out: list[Any] = []
        for e in body:
            if e.name not in REWRITE_DIRECTIVES:
                continue
            w = (e.file, e.line)
            v = e.values
            if e.name == "return":
                out.append(self.return_op(e, named))
            elif e.name == "rewrite":
                rx = self.regex(v[0], False, e)
                names = (named or set()) | set(rx.groupindex)
                flag = v[2] if len(v) > 2 else ""
                if flag not in ("", "last", "break", "redirect", "permanent"):
                    raise ConfigError.at(f'invalid parameter "{flag}"', e)
                out.append(RewriteOp(rx, self.template(v[1], e, names), flag, w))
            elif e.name == "set":
                if not v[0].startswith("$"):
                    raise ConfigError.at(f'invalid variable name "{v[0]}"', e)
                out.append(SetOp(v[0][1:], self.template(v[1], e, named), w))
            elif e.name == "break":
                out.append(BreakOp(w))
            elif e.name == "if":
                cond = self.condition(e, named)
                body_ops = self.ops(e.block or (), named, loc)
                if_loc = None
                content = [x for x in e.block or () if x.name not in REWRITE_DIRECTIVES]
                if content and loc is not None:
                    local = Settings()
                    self.fill_settings(local, content)
                    if_loc = LocationConf("if", "", local.merged_with(loc.settings),
                                          where=w, parent=loc, local=local)
                    for x in content:
                        if x.name == "proxy_pass":
                            self._pending_proxy.append((x, if_loc))
                            if_loc.has_content = True
                out.append(IfOp(cond, body_ops, if_loc, w))
        return tuple(out)

    def return_op(self, e: Directive, named: set[str] | None) -> ReturnOp:
        v = e.values
        w = (e.file, e.line)
        if v[0].isdigit():
            code = int(v[0])
            if code > 999:
                raise ConfigError.at(f'invalid return code "{v[0]}"', e)
            text = self.template(v[1], e, named) if len(v) > 1 else None
            return ReturnOp(code, text, w)
        if len(v) > 1:
            raise ConfigError.at(f'invalid return code "{v[0]}"', e)
        if v[0].startswith(("http://", "https://", "$scheme")):
            return ReturnOp(302, self.template(v[0], e, named), w)
        raise ConfigError.at(f'invalid return code "{v[0]}"', e)

    def condition(self, e: Directive, named: set[str] | None) -> Condition:
        args = list(e.args)
        # nginx lexes "($a" / "b)" as tokens with the parentheses attached
        if not args or not args[0].value.startswith("("):
            raise ConfigError.at('invalid condition "' + " ".join(a.value for a in args) + '"', e)
        vals = [a.value for a in args]
        vals[0] = vals[0][1:]
        if not vals[-1].endswith(")"):
            raise ConfigError.at(f'invalid condition "{vals[-1]}"', e)
        vals[-1] = vals[-1][:-1]
        vals = [x for x in vals if x != ""] if not args[-1].quoted else vals
        if len(vals) == 1:
            if not vals[0].startswith("$"):
                raise ConfigError.at(f'invalid condition "{vals[0]}"', e)
            return Condition("var", self.template(vals[0], e, named))
        if len(vals) == 2 and vals[0] in ("-f", "!-f", "-d", "!-d", "-e", "!-e", "-x", "!-x"):
            return Condition("file", self.template(vals[1], e, named), file_test=vals[0])
        if len(vals) == 3:
            left = self.template(vals[0], e, named)
            op = vals[1]
            if op in ("=", "!="):
                return Condition("eq" if op == "=" else "ne", left, self.template(vals[2], e, named))
            if op in ("~", "~*", "!~", "!~*"):
                rx = self.regex(vals[2], "*" in op, e)
                return Condition("nre" if op.startswith("!") else "re", left, regex=rx)
        raise ConfigError.at('unexpected "' + vals[-1] + '" in condition', e)

    # --- proxy_pass ------------------------------------------------------------------------

    def proxy_pass(self, d: Directive) -> ProxyPass:
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

    def fill_settings(self, s: Settings, body: Iterable[Directive]) -> None:
        for e in body:
            h = SETTING_HANDLERS.get(e.name)
            if h is None:
                if e.name == "limit_rate" and e.args and \
                        e.args[0].value.rstrip("kKmMgG").lstrip("0"):   # 0 (0k...): off
                    # accepted, not enforced: kept where it was written, for the lint
                    # finding (limit-rate-ignored) that says so at -t and start-up
                    s.where.setdefault("limit_rate", (e.file, e.line))
                continue
            fld, fn = h
            val = fn(self, e, s)
            if val is not _APPENDED:
                setattr(s, fld, val)
            s.where.setdefault(fld, (e.file, e.line))
            s.where[fld + "@last"] = (e.file, e.line)


_APPENDED = object()

# ssl_* directives kept with where they were set: SslConf field, and its "FILE:LINE" field
_SSL_WITH_WHERE: dict[str, tuple[str, str]] = {
    "ssl_dhparam": ("dhparam", "dhparam_where"),
    "ssl_password_file": ("password_file", "password_where"),
    "ssl_verify_client": ("verify_client", "verify_where"),
    "ssl_client_certificate": ("client_certificate", "client_certificate_where"),
    "ssl_trusted_certificate": ("trusted_certificate", "trusted_certificate_where"),
    "ssl_crl": ("crl", "crl_where"),
}
_SSL_FIELDS = frozenset({"protocols", "ciphers", "prefer_server_ciphers", "session_cache",
                         "session_timeout", "session_tickets"})
Handler = Callable[[Compiler, Directive, Settings], Any]


def _append(field_name: str, make: Callable[[Compiler, Directive], Any]) -> Handler:
    def h(c: Compiler, d: Directive, s: Settings) -> Any:
        cur = getattr(s, field_name) or ()
        setattr(s, field_name, (*cur, make(c, d)))
        return _APPENDED
    return h


def _header_setting(c: Compiler, d: Directive) -> HeaderSetting:
    v = d.values
    always = len(v) > 2 and v[2] == "always"
    if len(v) > 2 and not always:
        raise ConfigError.at(f'invalid parameter "{v[2]}"', d)
    return HeaderSetting(v[0], c.template(v[1], d), (d.file, d.line), always)


def _expires(c: Compiler, d: Directive, s: Settings) -> Expires:
    """ngx_http_headers_expires: `expires [modified] time | epoch | max | off`."""
    v = d.values
    modified = False
    if len(v) == 2:
        if v[0] != "modified":
            raise ConfigError.at('"expires" directive invalid value', d)
        modified = True
    text = v[-1]
    tpl = c.template(text, d)
    if tpl.static is None:
        return Expires("modified" if modified else "access", 0, tpl)
    try:
        kind, secs = parse_expires(text, modified)
    except ValueError as e:
        raise ConfigError.at(f'"expires" directive {e}', d) from None
    return Expires(kind, secs)


def _access_log(c: Compiler, d: Directive) -> AccessLog:
    v = d.values
    if v[0] == "off":
        return AccessLog("off", "")
    path = v[0] if v[0].startswith("syslog:") else c.prefixed(v[0])
    fmt = "combined"
    rest = v[1:]
    if rest and "=" not in rest[0]:
        fmt = rest[0]
        rest = rest[1:]
        if fmt not in c.log_formats and fmt != "combined":
            raise ConfigError.at(f'unknown log format "{fmt}"', d)
    buffer, flush, cond = 0, 0.0, None
    for p in rest:
        if p.startswith("buffer="):
            buffer = parse_size(p[7:])
        elif p.startswith("flush="):
            flush = parse_time(p[6:])
        elif p.startswith("if="):
            cond = c.template(p[3:], d)
        elif p.startswith("gzip"):
            raise ConfigError.at('"access_log" gzip is not supported by truehop', d)
        else:
            raise ConfigError.at(f'invalid parameter "{p}"', d)
    return AccessLog(path, fmt, buffer, flush, cond, (d.file, d.line))


def _error_page(c: Compiler, d: Directive, s: Settings) -> Any:
    v = d.values
    target = v[-1]
    codes = v[:-1]
    override: int | None = None
    if codes and codes[-1].startswith("="):
        o = codes[-1][1:]
        override = int(o) if o.isdigit() else 0
        codes = codes[:-1]
    if not codes:
        raise ConfigError.at('invalid number of arguments in "error_page" directive', d)
    cur = dict(s.error_page or {})
    for code in codes:
        if not code.isdigit() or not 300 <= int(code) <= 599:
            raise ConfigError.at(f'value "{code}" must be between 300 and 599', d)
        cur[int(code)] = ErrorPage(c.template(target, d), override, (d.file, d.line))
    s.error_page = cur
    return _APPENDED


def _real_ip_from(c: Compiler, d: Directive) -> Any:
    v = d.values[0]
    if v == "unix:":
        return "unix:"
    try:
        return ipaddress.ip_network(v, strict=False)
    except ValueError:
        try:
            return ipaddress.ip_network(socket.gethostbyname(v))
        except OSError:
            raise ConfigError.at(f'invalid parameter "{v}"', d) from None


def _types(c: Compiler, d: Directive, s: Settings) -> dict[str, str]:
    table: dict[str, str] = {}
    for e in d.block or ():
        for ext in e.values:
            table[ext.lower()] = e.name
    return table


def _proxy_buffers(c: Compiler, d: Directive, s: Settings) -> tuple[int, int]:
    return (c.integer(d), c.size(d, 1))


def _next_upstream(c: Compiler, d: Directive, s: Settings) -> frozenset[str]:
    flags = frozenset(d.values)
    for f in flags:
        if f not in NEXT_UPSTREAM_FLAGS:
            raise ConfigError.at(f'invalid value "{f}"', d)
    if "off" in flags and len(flags) > 1:
        raise ConfigError.at('invalid value "off"', d)
    return frozenset() if "off" in flags else flags


def _lingering_close(c: Compiler, d: Directive, s: Settings) -> str:
    v = d.values[0]
    if v not in ("off", "on", "always"):
        raise ConfigError.at(f'invalid value "{v}" in "{d.name}" directive, it must be '
                             '"off", "on" or "always"', d)
    return v


def _so_keepalive(v: str, d: Directive) -> tuple[bool, int, int, int]:
    """`so_keepalive=on|off|[keepidle]:[keepintvl]:[keepcnt]` (times in seconds or with a
    unit; an empty part keeps the system's value, as 0 here)."""
    if v in ("on", "off"):
        return (v == "on", 0, 0, 0)
    parts = v.split(":")
    if len(parts) != 3:
        raise ConfigError.at(f'invalid so_keepalive value: "{v}"', d)
    try:
        idle, intvl = (int(parse_time(x)) if x else 0 for x in parts[:2])
        cnt = int(parts[2]) if parts[2] else 0
    except ValueError:
        raise ConfigError.at(f'invalid so_keepalive value: "{v}"', d) from None
    return (True, idle, intvl, cnt)


def _proxy_redirect(c: Compiler, d: Directive, s: Settings) -> Any:
    """ngx_http_proxy_redirect: `off`, `default`, `text replacement` (text may hold
    variables), `~regex replacement` / `~*regex replacement` (captures in the replacement).
    The directives of one level are kept in order; after `off`, further ones are ignored."""
    v = d.values
    cur = s.proxy_redirect
    if cur is not None and cur.kind == "off":
        return cur
    rules = cur.rules if cur is not None else ()
    if len(v) == 1:
        if v[0] == "off":
            if rules:
                raise ConfigError.at('"proxy_redirect" directive is duplicate', d)
            return ProxyRedirect("off")
        if v[0] != "default":
            raise ConfigError.at('invalid parameter "' + v[0] + '"', d)
        return ProxyRedirect("rules", (*rules, RedirectRule("default")))
    return ProxyRedirect("rules", (*rules, _rewrite_rule(c, d)))


def _rewrite_rule(c: Compiler, d: Directive, domain: bool = False) -> RedirectRule:
    """`match replacement` of proxy_redirect / proxy_cookie_*: `~regex` or `~*regex` (its
    captures in the replacement), else a prefix (or, for a cookie domain, the whole domain,
    compared without a leading dot and case) that may hold variables."""
    match, repl = d.values
    if match.startswith("~"):
        caseless = match.startswith("~*")
        rx = c.regex(match[2:] if caseless else match[1:], caseless, d)
        return RedirectRule("regex", regex=rx,
                            replacement=c.template(repl, d, set(rx.groupindex)))
    if domain:
        return RedirectRule("domain", match=c.template(match.removeprefix("."), d),
                            replacement=c.template(repl, d))
    return RedirectRule("prefix", match=c.template(match, d), replacement=c.template(repl, d))


def _cookie_rewrite(field_name: str) -> Handler:
    """proxy_cookie_domain / proxy_cookie_path: `off`, or `text replacement` (text and
    replacement may hold variables), or `~regex replacement` / `~*regex replacement`. The
    directives of one level are kept in order; `off` after rules is a duplicate."""
    domain = field_name == "proxy_cookie_domain"

    def h(c: Compiler, d: Directive, s: Settings) -> Any:
        v = d.values
        cur = getattr(s, field_name)
        if len(v) == 1:
            if v[0] != "off":
                raise ConfigError.at(f'invalid number of arguments in "{d.name}" directive', d)
            if cur:
                raise ConfigError.at(f'"{d.name}" directive is duplicate', d)
            return ()
        if cur == () and cur is not None:
            return cur      # after `off`, as nginx, further rules do nothing
        return (*(cur or ()), _rewrite_rule(c, d, domain))
    return h


def _resolver(c: Compiler, d: Directive, s: Settings) -> ResolverConf:
    """ngx_http_core_resolver: servers (a name is resolved now, port 53 by default), then
    `valid=`, `ipv4=`, `ipv6=`; `status_zone=` only names statistics, not kept."""
    servers: list[tuple[str, int]] = []
    valid: float | None = None
    ipv4 = ipv6 = True
    for v in d.values:
        if v.startswith("valid="):
            try:
                valid = parse_time(v[6:])
            except ValueError:
                raise ConfigError.at(f'invalid parameter "{v}"', d) from None
        elif v.startswith(("ipv4=", "ipv6=")):
            if v[5:] not in ("on", "off"):
                raise ConfigError.at(f'invalid parameter "{v}"', d)
            if v[3] == "4":
                ipv4 = v[5:] == "on"
            else:
                ipv6 = v[5:] == "on"
        elif v.startswith("status_zone="):
            pass
        else:
            host, port = split_host_port(v, 53, d)
            servers.extend((addr, port) for addr in resolve(host, d))
    if not ipv4 and not ipv6:
        raise ConfigError.at('"ipv4" and "ipv6" cannot both be "off"', d)
    if not servers:
        raise ConfigError.at(f'invalid number of arguments in "{d.name}" directive', d)
    return ResolverConf(tuple(servers), valid, ipv4, ipv6)


def _keepalive_timeout(c: Compiler, d: Directive, s: Settings) -> Any:
    """`keepalive_timeout timeout [header_timeout]`: the second value is sent as
    `Keep-Alive: timeout=N` (ngx_http_core_keepalive)."""
    s.keepalive_timeout = c.time(d, 0)
    s.keepalive_header = c.time(d, 1) if len(d.values) > 1 else 0.0
    return _APPENDED


def _ssl_protocols(c: Compiler, d: Directive, s: Settings) -> tuple[str, ...]:
    for p in d.values:
        if p not in ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"):
            raise ConfigError.at(f'invalid value "{p}" in "{d.name}" directive', d)
    return tuple(d.values)


def _template(c: Compiler, d: Directive, s: Settings) -> Template:
    return c.template(d.values[0], d)


def _keepalive_disable(c: Compiler, d: Directive, s: Settings) -> frozenset[str]:
    """`keepalive_disable none | browser ...` (msie6, safari)."""
    out: set[str] = set()
    for v in d.values:
        if v not in ("none", "msie6", "safari"):
            raise ConfigError.at(f'invalid value "{v}"', d)
        if v != "none":
            out.add(v)
    return frozenset(out)


def _http_version(c: Compiler, d: Directive, s: Settings) -> str:
    if d.values[0] not in ("1.0", "1.1"):
        raise ConfigError.at(f'invalid value "{d.values[0]}" in "proxy_http_version" directive, '
                             'it must be "1.0" or "1.1"', d)
    return d.values[0]


def _root(c: Compiler, d: Directive, s: Settings) -> str:
    if s.alias is not None:
        raise ConfigError.at('"root" directive is duplicate, "alias" directive was specified earlier', d)
    return c.prefixed(d.values[0])


def _alias(c: Compiler, d: Directive, s: Settings) -> Template:
    if s.root is not None:
        raise ConfigError.at('"alias" directive is duplicate, "root" directive was specified earlier', d)
    return c.template(c.prefixed(d.values[0]) + ("/" if d.values[0].endswith("/") else ""), d)


def _flag(c: Compiler, d: Directive, s: Settings) -> bool:
    return c.flag(d)


def _time(c: Compiler, d: Directive, s: Settings) -> float:
    return c.time(d)


def _size(c: Compiler, d: Directive, s: Settings) -> int:
    return c.size(d)


def _int(c: Compiler, d: Directive, s: Settings) -> int:
    return c.integer(d)


def _temp_path(c: Compiler, d: Directive, s: Settings) -> tuple[str, tuple[int, ...]]:
    """client_body_temp_path path [level1 [level2 [level3]]] (ngx_conf_set_path_slot): each
    level a number of characters of the ten-digit file name, 10 at most in all."""
    if s.client_body_temp_path is not None:
        raise ConfigError.at(f'"{d.name}" directive is duplicate', d)
    levels = []
    for v in d.values[1:]:
        if not v.isdigit() or int(v) == 0:
            raise ConfigError.at(f'"{d.name}" directive invalid value', d)
        levels.append(int(v))
    if sum(levels) > 10:
        raise ConfigError.at(f'"{d.name}" directive invalid value', d)
    return c.prefixed(d.values[0]).rstrip("/") or "/", tuple(levels)


def _body_in_file_only(c: Compiler, d: Directive, s: Settings) -> str:
    v = d.values[0]
    if v not in ("off", "on", "clean"):
        raise ConfigError.at(f'invalid value "{v}"', d)   # ngx_conf_set_enum_slot
    return v


SETTING_HANDLERS: dict[str, tuple[str, Handler]] = {
    "root": ("root", _root),
    "alias": ("alias", _alias),
    "index": ("index", lambda c, d, s: tuple(c.template(x, d) for x in d.values)),
    "try_files": ("try_files", lambda c, d, s: tuple(c.template(x, d) for x in d.values)),
    "expires": ("expires", _expires),
    "default_type": ("default_type", lambda c, d, s: d.values[0]),
    "types": ("types", _types),
    "sendfile": ("sendfile", _flag),
    "tcp_nodelay": ("tcp_nodelay", _flag),
    "keepalive_timeout": ("keepalive_timeout", _keepalive_timeout),
    "keepalive_time": ("keepalive_time", _time),
    "keepalive_disable": ("keepalive_disable", _keepalive_disable),
    "lingering_close": ("lingering_close", _lingering_close),
    "lingering_time": ("lingering_time", _time),
    "lingering_timeout": ("lingering_timeout", _time),
    "keepalive_requests": ("keepalive_requests", _int),
    "client_max_body_size": ("client_max_body_size", _size),
    "client_body_timeout": ("client_body_timeout", _time),
    "client_body_buffer_size": ("client_body_buffer_size", _size),
    "send_timeout": ("send_timeout", _time),
    "server_tokens": ("server_tokens", lambda c, d, s: d.values[0] != "off"),
    "absolute_redirect": ("absolute_redirect", _flag),
    "server_name_in_redirect": ("server_name_in_redirect", _flag),
    "port_in_redirect": ("port_in_redirect", _flag),
    "proxy_http_version": ("proxy_http_version", _http_version),
    "proxy_buffering": ("proxy_buffering", _flag),
    "proxy_buffer_size": ("proxy_buffer_size", _size),
    "proxy_buffers": ("proxy_buffers", _proxy_buffers),
    "proxy_busy_buffers_size": ("proxy_busy_buffers_size", _size),
    "proxy_request_buffering": ("proxy_request_buffering", _flag),
    "proxy_connect_timeout": ("proxy_connect_timeout", _time),
    "proxy_read_timeout": ("proxy_read_timeout", _time),
    "proxy_send_timeout": ("proxy_send_timeout", _time),
    "proxy_next_upstream": ("proxy_next_upstream", _next_upstream),
    "proxy_next_upstream_tries": ("proxy_next_upstream_tries", _int),
    "proxy_next_upstream_timeout": ("proxy_next_upstream_timeout", _time),
    "proxy_redirect": ("proxy_redirect", _proxy_redirect),
    "proxy_cookie_domain": ("proxy_cookie_domain", _cookie_rewrite("proxy_cookie_domain")),
    "resolver": ("resolver", _resolver),
    "resolver_timeout": ("resolver_timeout", _time),
    "proxy_cookie_path": ("proxy_cookie_path", _cookie_rewrite("proxy_cookie_path")),
    "proxy_pass_request_headers": ("proxy_pass_request_headers", _flag),
    "proxy_pass_request_body": ("proxy_pass_request_body", _flag),
    "proxy_hide_header": ("proxy_hide_header", _append("proxy_hide_header",
                                                       lambda c, d: d.values[0].lower())),
    "proxy_pass_header": ("proxy_pass_header", _append("proxy_pass_header",
                                                       lambda c, d: d.values[0].lower())),
    "proxy_intercept_errors": ("proxy_intercept_errors", _flag),
    "proxy_ssl_server_name": ("proxy_ssl_server_name", _flag),
    "proxy_ssl_verify": ("proxy_ssl_verify", _flag),
    "proxy_ssl_protocols": ("proxy_ssl_protocols", _ssl_protocols),
    "proxy_method": ("proxy_method", _template),
    "proxy_set_body": ("proxy_set_body", _template),
    "proxy_ssl_trusted_certificate": ("proxy_ssl_trusted_certificate",
                                      lambda c, d, s: c.conf_relative(d.values[0])),
    "proxy_ssl_name": ("proxy_ssl_name", lambda c, d, s: c.template(d.values[0], d)),
    "proxy_set_header": ("proxy_set_header", _append("proxy_set_header", _header_setting)),
    "add_header": ("add_header", _append("add_header", _header_setting)),
    "error_page": ("error_page", _error_page),
    "access_log": ("access_log", _append("access_log", _access_log)),
    "log_not_found": ("log_not_found", _flag),
    "etag": ("etag", _flag),
    "max_ranges": ("max_ranges", _int),
    "chunked_transfer_encoding": ("chunked_transfer_encoding", _flag),
    "set_real_ip_from": ("set_real_ip_from", _append("set_real_ip_from", _real_ip_from)),
    "real_ip_header": ("real_ip_header", lambda c, d, s: d.values[0]),
    "real_ip_recursive": ("real_ip_recursive", _flag),
    "autoindex": ("autoindex", _flag),
    "if_modified_since": ("if_modified_since", lambda c, d, s: d.values[0]),
    "disable_symlinks": ("disable_symlinks", lambda c, d, s: d.values[0] != "off"),
    "proxy_ignore_headers": ("proxy_ignore_headers", lambda c, d, s: frozenset(
        x.lower() for x in d.values)),
    "recursive_error_pages": ("recursive_error_pages", _flag),
    "client_body_temp_path": ("client_body_temp_path", _temp_path),
    "client_body_in_file_only": ("client_body_in_file_only", _body_in_file_only),
    # several error_log lines at one level all log; an inner level replaces the outer ones
    "error_log": ("error_log", _append("error_log", lambda c, d: c.error_log_target(d))),
}


# --- helpers --------------------------------------------------------------------------------

def worker_ids(user: str, group: str, d: Directive | None) -> tuple[int, int]:
    """(uid, gid) the workers switch to, with nginx's errors for unknown names."""
    import grp
    import pwd

    def fail(msg: str) -> ConfigError:
        return ConfigError.at(msg, d) if d is not None else ConfigError(msg)

    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        raise fail(f'getpwnam("{user}") failed') from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise fail(f'getgrnam("{group}") failed') from None
    return uid, gid


def _group_exists(name: str) -> bool:
    import grp
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _proxy_uri_part(url: str) -> str:
    rest = url.split("://", 1)[-1]
    _, slash, path = rest.partition("/")
    return slash + path


def split_host_port(s: str, default_port: int, d: Directive) -> tuple[str, int]:
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else str(default_port)
    elif s.count(":") == 1:
        host, _, port_s = s.partition(":")
    else:
        host, port_s = s, str(default_port)
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ConfigError.at(f'invalid port in upstream "{s}"', d)
    return host, int(port_s)


def resolve(host: str, d: Directive) -> list[str]:
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise ConfigError.at(f'host not found in upstream "{host}"', d) from None
    out: list[str] = []
    for info in infos:
        a = str(info[4][0])
        if a not in out:
            out.append(a)
    return out


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


def load(conf_path: str, prefix: str | None = None, globals_: str | None = None) -> Config:
    """Parse, check and compile a configuration file. Raises ConfigError."""
    conf_path = os.path.abspath(conf_path)
    if prefix is None:
        prefix = os.path.dirname(conf_path)
    prefix = os.path.abspath(prefix)
    tree, sources = parser.parse_file_with_sources(conf_path)
    top = dtable.detect_top(tree)
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
    if main.pid != "off" and not os.path.isabs(main.pid):
        main.pid = comp.prefixed(main.pid)
    cfg = Config(main, http, conf_path, prefix, sources, top, comp.warnings)
    return cfg
