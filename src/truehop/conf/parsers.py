"""The value parsers of the directive table (conf/directives.py): one function per kind of
value, each `parse(c, d, target) -> value`, with nginx's error wording.

`c` is the compiler (`Context`: paths, templates, regexes and the number/size/time/flag
readers with nginx's messages), `d` the directive, `target` what the directive fills:
the level's `LevelSettings` for http/server/location directives and server-level ones, the
`MainConf` for main and events directives, the `UpstreamConf` for upstream-level ones. The
table says which field the returned value fills and how levels merge it; a parser that
fills a second field itself says so in its docstring (`keepalive_timeout`, `keepalive`,
`user`).
"""

from __future__ import annotations

import grp
import importlib.util
import ipaddress
import os
import pwd
import re
import socket
import ssl
from collections.abc import Callable
from typing import Any, Final, Protocol

from truehop.conf.ast import ConfigError, Directive
from truehop.conf.model import (
    AccessLog,
    AccessRule,
    AuthRequestSet,
    BreakOp,
    CachePath,
    CacheValid,
    Condition,
    CookieFlags,
    ErrorPage,
    Expires,
    HeaderSetting,
    IfOp,
    LevelSettings,
    LimitConn,
    LimitReq,
    LimitZone,
    Listen,
    LogFormat,
    MainConf,
    PeerConf,
    ProxyRedirect,
    RedirectRule,
    ResolverConf,
    ReturnOp,
    RewriteOp,
    SetOp,
    SslCommand,
    UpstreamConf,
    UserFile,
)
from truehop.conf.values import parse_expires, parse_size, parse_time
from truehop.route.template import Template, literal

NEXT_UPSTREAM_FLAGS = frozenset({
    "error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504",
    "http_403", "http_404", "http_429", "non_idempotent", "off",
})

BUILTIN_TYPES = {"html": "text/html", "gif": "image/gif", "jpg": "image/jpeg"}

SSL_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


class Context(Protocol):
    """What a parser asks of the compiler (conf/compile.py's Compiler)."""

    log_formats: dict[str, LogFormat]
    warnings: list[str]
    http_level: LevelSettings

    def prefixed(self, path: str) -> str: ...
    def conf_relative(self, path: str) -> str: ...
    def template(self, text: str, d: Directive, named: set[str] | None = None) -> Template: ...
    def regex(self, pattern: str, caseless: bool, d: Directive) -> re.Pattern[str]: ...
    def invalid(self, d: Directive, value: str | None = None) -> ConfigError: ...
    def time(self, d: Directive, i: int = 0) -> float: ...
    def size(self, d: Directive, i: int = 0) -> int: ...
    def flag(self, d: Directive) -> bool: ...
    def integer(self, d: Directive, i: int = 0) -> int: ...
    def error_log_target(self, d: Directive) -> tuple[str, str]: ...
    def listen(self, e: Directive) -> list[Listen]: ...
    def peers(self, e: Directive, upstream: str = "") -> list[PeerConf]: ...
    def if_op(self, e: Directive, named: set[str] | None, loc: Any) -> IfOp: ...


Parser = Callable[[Any, Directive, Any], Any]


# --- defaults that depend on the load (the prefix) ------------------------------------------

def default_root(c: Context) -> str:
    return c.prefixed("html")


def default_index(c: Context) -> tuple[Template, ...]:
    return (literal("index.html"),)


def builtin_types(c: Context) -> dict[str, str]:
    """nginx's built-in `types` when none is written: html, gif, jpg."""
    return dict(BUILTIN_TYPES)


def default_access_log(c: Context) -> tuple[AccessLog, ...]:
    return (AccessLog(c.prefixed("logs/access.log"), "combined"),)


def default_temp_path(c: Context) -> tuple[str, tuple[int, ...]]:
    return (c.prefixed("client_body_temp"), ())


def default_proxy_temp_path(c: Context) -> tuple[str, tuple[int, ...]]:
    """nginx's compiled-in NGX_HTTP_PROXY_TEMP_PATH, under the prefix."""
    return (c.prefixed("proxy_temp"), ())


def default_write_size(c: Context) -> int:
    """proxy_temp_file_write_size unset: 0, read as nginx's merge computes it (twice the
    larger of proxy_buffer_size and one of proxy_buffers; proxy.spool.spool_limits)."""
    return 0


# --- plain values -------------------------------------------------------------------------

def word(c: Context, d: Directive, s: Any) -> str:
    return d.values[0]


def not_off(c: Context, d: Directive, s: Any) -> bool:
    """server_tokens, disable_symlinks: anything but `off` is on."""
    return d.values[0] != "off"


def lower_word(c: Context, d: Directive, s: Any) -> str:
    return d.values[0].lower()


def lower_words(c: Context, d: Directive, s: Any) -> frozenset[str]:
    return frozenset(x.lower() for x in d.values)


def templates(c: Context, d: Directive, s: Any) -> tuple[Template, ...]:
    return tuple(c.template(x, d) for x in d.values)


def conf_path(c: Context, d: Directive, s: Any) -> str:
    return c.conf_relative(d.values[0])


def conf_path_where(c: Context, d: Directive, s: Any) -> tuple[str, tuple[str, int]]:
    """A file read at run time, kept with the line that named it (for its errors)."""
    return c.conf_relative(d.values[0]), (d.file, d.line)


def error_log(c: Context, d: Directive, s: Any) -> tuple[str, str]:
    return c.error_log_target(d)


def joined(c: Context, d: Directive, s: Any) -> str:
    return " ".join(d.values)


def directive(c: Context, d: Directive, s: Any) -> Directive:
    """ssl_certificate / ssl_certificate_key: kept as written, paired in order at the end."""
    return d


# --- main and events ------------------------------------------------------------------------

def worker_processes(c: Context, d: Directive, m: MainConf) -> int:
    if d.values[0] == "auto":
        return os.cpu_count() or 1
    return c.integer(d)


def pid(c: Context, d: Directive, m: MainConf) -> str:
    return "off" if d.values[0] == "off" else c.prefixed(d.values[0])


def user(c: Context, d: Directive, m: MainConf) -> str:
    """`user name [group]`: also fills `group` (nginx: a group of the same name) and, when
    the master runs as root, the ids the workers switch to."""
    v = d.values
    m.group = v[1] if len(v) > 1 else v[0]
    if os.geteuid() != 0:
        c.warnings.append('the "user" directive makes sense only if the master '
                          'process runs with super-user privileges, ignored in '
                          f"{d.file}:{d.line}")
    else:
        m.uid, m.gid = worker_ids(v[0], m.group, d)
    return v[0]


# --- upstream -------------------------------------------------------------------------------

def upstream_server(c: Context, d: Directive, up: UpstreamConf) -> list[PeerConf]:
    return c.peers(d, up.name)


def zone_name(c: Context, d: Directive, up: UpstreamConf) -> str:
    """`zone name [size]`: the name is kept (`resolve` requires one, as in nginx)."""
    if len(d.values) > 1:
        size = d.values[1]
        try:
            parse_size(size)
        except ValueError:
            raise ConfigError.at(f'invalid zone size "{size}"', d) from None
    return d.values[0]


def keepalive(c: Context, d: Directive, up: UpstreamConf) -> int:
    """`keepalive connections [local]`: also fills keepalive_local and keepalive_set."""
    v = d.values
    n = c.integer(d)
    up.keepalive_set = True
    if n == 0:
        raise ConfigError.at(f'invalid value "{v[0]}" in "keepalive" directive', d)
    up.keepalive_local = len(v) > 1 and v[1] == "local"
    if len(v) > 1 and v[1] != "local":
        raise c.invalid(d, v[1])
    return n


def balance(c: Context, d: Directive, up: UpstreamConf) -> str:
    """least_conn, ip_hash: the balancing method is the directive's name."""
    return d.name


def hash_key(c: Context, d: Directive, up: UpstreamConf) -> Template:
    """`hash key [consistent]`: also sets the method and `consistent`."""
    v = d.values
    up.kind = "hash"
    up.hash_consistent = len(v) > 1 and v[1] == "consistent"
    return c.template(v[0], d)


# --- server level ---------------------------------------------------------------------------

def listen(c: Context, d: Directive, s: Any) -> list[Listen]:
    return c.listen(d)


def server_names(c: Context, d: Directive, s: Any) -> list[str]:
    out = []
    for n in d.values:
        if n.startswith("~"):
            c.regex(n[1:], False, d)
        out.append(n if n.startswith("~") else n.lower())
    return out


def ssl_verify_client(c: Context, d: Directive, s: Any) -> tuple[str, tuple[str, int]]:
    v = d.values
    if v[0] not in ("off", "on", "optional", "optional_no_ca"):
        raise ConfigError.at(f'invalid value "{v[0]}"', d)   # ngx_conf_set_enum_slot
    if v[0] == "optional_no_ca":
        # asking for a certificate without verifying it needs an OpenSSL verify
        # callback, which Python's ssl module does not offer
        raise ConfigError.at('"ssl_verify_client optional_no_ca" is not supported '
                             'by truehop: Python\'s ssl module cannot request a '
                             'client certificate without verifying it', d)
    return v[0], (d.file, d.line)


def ssl_verify_depth(c: Context, d: Directive, s: Any) -> int:
    if not d.values[0].isdigit():
        raise ConfigError.at('"ssl_verify_depth" directive invalid number', d)
    return int(d.values[0])


def header_buffers(c: Context, d: Directive, s: Any) -> tuple[int, int]:
    """large_client_header_buffers number size."""
    return (c.integer(d), c.size(d, 1))


# --- the rewrite module: instructions run in order (scope: the names of the location's
# regex captures, and the location, for `if`) ---------------------------------------------

Scope = tuple[set[str] | None, Any]


def rewrite_return(c: Context, e: Directive, scope: Scope) -> ReturnOp:
    return return_op(c, e, scope[0])


def rewrite(c: Context, e: Directive, scope: Scope) -> RewriteOp:
    named = scope[0]
    v = e.values
    rx = c.regex(v[0], False, e)
    names = (named or set()) | set(rx.groupindex)
    flag = v[2] if len(v) > 2 else ""
    if flag not in ("", "last", "break", "redirect", "permanent"):
        raise ConfigError.at(f'invalid parameter "{flag}"', e)
    return RewriteOp(rx, c.template(v[1], e, names), flag, (e.file, e.line))


def set_variable(c: Context, e: Directive, scope: Scope) -> SetOp:
    v = e.values
    if not v[0].startswith("$"):
        raise ConfigError.at(f'invalid variable name "{v[0]}"', e)
    return SetOp(v[0][1:], c.template(v[1], e, scope[0]), (e.file, e.line))


def break_op(c: Context, e: Directive, scope: Scope) -> BreakOp:
    return BreakOp((e.file, e.line))


def if_block(c: Context, e: Directive, scope: Scope) -> IfOp:
    return c.if_op(e, scope[0], scope[1])


def return_op(c: Context, e: Directive, named: set[str] | None) -> ReturnOp:
    v = e.values
    w = (e.file, e.line)
    if v[0].isdigit():
        code = int(v[0])
        if code > 999:
            raise ConfigError.at(f'invalid return code "{v[0]}"', e)
        text = c.template(v[1], e, named) if len(v) > 1 else None
        return ReturnOp(code, text, w)
    if len(v) > 1:
        raise ConfigError.at(f'invalid return code "{v[0]}"', e)
    if v[0].startswith(("http://", "https://", "$scheme")):
        return ReturnOp(302, c.template(v[0], e, named), w)
    raise ConfigError.at(f'invalid return code "{v[0]}"', e)


def condition(c: Context, e: Directive, named: set[str] | None) -> Condition:
    """ngx_http_rewrite_if_condition: `($var)`, `($var op value)`, `(-f path)`; nginx lexes
    "($a" / "b)" as words with the parentheses attached, or as words of their own."""
    vals = [a.value for a in e.args]
    if not vals or not vals[0].startswith("("):
        raise ConfigError.at('invalid condition "' + (vals[0] if vals else "") + '"', e)
    # a lone "(" or ")" word is dropped, an attached one is cut off; any other empty word
    # (a quoted '' or "") is an operand and stays
    if vals[0] == "(":
        vals = vals[1:]
    else:
        vals[0] = vals[0][1:]
    if not vals or not vals[-1].endswith(")"):
        raise ConfigError.at(f'invalid condition "{vals[-1] if vals else ""}"', e)
    if vals[-1] == ")" and len(vals) > 1:
        vals = vals[:-1]
    else:
        vals[-1] = vals[-1][:-1]
    first = vals[0]
    if len(first) > 1 and first[0] == "$":
        if len(vals) not in (1, 3):
            raise ConfigError.at(f'invalid condition "{first}"', e)
        left = c.template(first, e, named)
        if len(vals) == 1:
            return Condition("var", left)
        op = vals[1]
        if op in ("=", "!="):
            return Condition("eq" if op == "=" else "ne", left, c.template(vals[2], e, named))
        if op in ("~", "~*", "!~", "!~*"):
            rx = c.regex(vals[2], "*" in op, e)
            return Condition("nre" if op.startswith("!") else "re", left, regex=rx)
        raise ConfigError.at(f'unexpected "{op}" in condition', e)
    if first in ("-f", "!-f", "-d", "!-d", "-e", "!-e", "-x", "!-x"):
        if len(vals) != 2:
            raise ConfigError.at(f'invalid condition "{first}"', e)
        return Condition("file", c.template(vals[1], e, named), file_test=first)
    raise ConfigError.at(f'invalid condition "{first}"', e)


# --- http / server / location settings ------------------------------------------------------

def header_setting(c: Context, d: Directive, s: LevelSettings) -> HeaderSetting:
    v = d.values
    always = len(v) > 2 and v[2] == "always"
    if len(v) > 2 and not always:
        raise ConfigError.at(f'invalid parameter "{v[2]}"', d)
    return HeaderSetting(v[0], c.template(v[1], d), (d.file, d.line), always)


def expires(c: Context, d: Directive, s: LevelSettings) -> Expires:
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


def access_log(c: Context, d: Directive, s: LevelSettings) -> AccessLog:
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


def error_page(c: Context, d: Directive, s: LevelSettings) -> Any:
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
    cur = dict(s.get("error_page") or {})
    for code in codes:
        if not code.isdigit() or not 300 <= int(code) <= 599:
            raise ConfigError.at(f'value "{code}" must be between 300 and 599', d)
        cur[int(code)] = ErrorPage(c.template(target, d), override, (d.file, d.line))
    return cur


def real_ip_from(c: Context, d: Directive, s: LevelSettings) -> Any:
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


def types(c: Context, d: Directive, s: LevelSettings) -> dict[str, str]:
    table: dict[str, str] = {}
    for e in d.block or ():
        for ext in e.values:
            table[ext.lower()] = e.name
    return table


def proxy_buffers(c: Context, d: Directive, s: LevelSettings) -> tuple[int, int]:
    return (c.integer(d), c.size(d, 1))


def next_upstream(c: Context, d: Directive, s: LevelSettings) -> frozenset[str]:
    flags = frozenset(d.values)
    for f in flags:
        if f not in NEXT_UPSTREAM_FLAGS:
            raise ConfigError.at(f'invalid value "{f}"', d)
    if "off" in flags and len(flags) > 1:
        raise ConfigError.at('invalid value "off"', d)
    return frozenset() if "off" in flags else flags


def lingering_close(c: Context, d: Directive, s: LevelSettings) -> str:
    v = d.values[0]
    if v not in ("off", "on", "always"):
        raise ConfigError.at(f'invalid value "{v}" in "{d.name}" directive, it must be '
                             '"off", "on" or "always"', d)
    return v


def so_keepalive(v: str, d: Directive) -> tuple[bool, int, int, int]:
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


def proxy_redirect(c: Context, d: Directive, s: LevelSettings) -> Any:
    """ngx_http_proxy_redirect: `off`, `default`, `text replacement` (text may hold
    variables), `~regex replacement` / `~*regex replacement` (captures in the replacement).
    The directives of one level are kept in order; after `off`, further ones are ignored."""
    v = d.values
    cur: ProxyRedirect | None = s.get("proxy_redirect")
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
    return ProxyRedirect("rules", (*rules, rewrite_rule(c, d)))


def rewrite_rule(c: Context, d: Directive, domain: bool = False) -> RedirectRule:
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


def cookie_rewrite(field_name: str) -> Parser:
    """proxy_cookie_domain / proxy_cookie_path: `off`, or `text replacement` (text and
    replacement may hold variables), or `~regex replacement` / `~*regex replacement`. The
    directives of one level are kept in order; `off` after rules is a duplicate."""
    domain = field_name == "proxy_cookie_domain"

    def h(c: Context, d: Directive, s: LevelSettings) -> Any:
        v = d.values
        cur = s.get(field_name)
        if len(v) == 1:
            if v[0] != "off":
                raise ConfigError.at(f'invalid number of arguments in "{d.name}" directive', d)
            if cur:
                raise ConfigError.at(f'"{d.name}" directive is duplicate', d)
            return ()
        if cur == () and cur is not None:
            return cur      # after `off`, as nginx, further rules do nothing
        return (*(cur or ()), rewrite_rule(c, d, domain))
    return h


def resolver(c: Context, d: Directive, s: LevelSettings) -> ResolverConf:
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


def keepalive_timeout(c: Context, d: Directive, s: LevelSettings) -> Any:
    """`keepalive_timeout timeout [header_timeout]`: the second value is sent as
    `Keep-Alive: timeout=N` (ngx_http_core_keepalive)."""
    s.set("keepalive_header", c.time(d, 1) if len(d.values) > 1 else 0.0)
    return c.time(d, 0)


def ssl_protocols(c: Context, d: Directive, s: Any) -> tuple[str, ...]:
    for p in d.values:
        if p not in SSL_PROTOCOLS:
            raise ConfigError.at(f'invalid value "{p}" in "{d.name}" directive', d)
    return tuple(d.values)


def template(c: Context, d: Directive, s: LevelSettings) -> Template:
    return c.template(d.values[0], d)


def keepalive_disable(c: Context, d: Directive, s: LevelSettings) -> frozenset[str]:
    """`keepalive_disable none | browser ...` (msie6, safari)."""
    out: set[str] = set()
    for v in d.values:
        if v not in ("none", "msie6", "safari"):
            raise ConfigError.at(f'invalid value "{v}"', d)
        if v != "none":
            out.add(v)
    return frozenset(out)


def http_version(c: Context, d: Directive, s: LevelSettings) -> str:
    if d.values[0] not in ("1.0", "1.1"):
        raise ConfigError.at(f'invalid value "{d.values[0]}" in "proxy_http_version" directive, '
                             'it must be "1.0" or "1.1"', d)
    return d.values[0]


def root(c: Context, d: Directive, s: LevelSettings) -> str:
    if s.defined_here("alias"):
        raise ConfigError.at('"root" directive is duplicate, "alias" directive was specified earlier', d)
    return c.prefixed(d.values[0])


def alias(c: Context, d: Directive, s: LevelSettings) -> Template:
    if s.defined_here("root"):
        raise ConfigError.at('"alias" directive is duplicate, "root" directive was specified earlier', d)
    path = c.prefixed(d.values[0])
    if d.values[0].endswith("/") and not path.endswith("/"):
        path += "/"     # normpath() of a relative alias dropped the slash it was written with
    return c.template(path, d)


def flag(c: Context, d: Directive, s: LevelSettings) -> bool:
    return c.flag(d)


def time_(c: Context, d: Directive, s: LevelSettings) -> float:
    return c.time(d)


def size(c: Context, d: Directive, s: LevelSettings) -> int:
    return c.size(d)


def integer(c: Context, d: Directive, s: LevelSettings) -> int:
    return c.integer(d)


def temp_path(c: Context, d: Directive, s: LevelSettings) -> tuple[str, tuple[int, ...]]:
    """client_body_temp_path / proxy_temp_path path [level1 [level2 [level3]]]
    (ngx_conf_set_path_slot): each
    level a number of characters of the ten-digit file name, 10 at most in all."""
    if s.defined_here(d.name):
        raise ConfigError.at(f'"{d.name}" directive is duplicate', d)
    levels = []
    for v in d.values[1:]:
        if not v.isdigit() or int(v) == 0:
            raise ConfigError.at(f'"{d.name}" directive invalid value', d)
        levels.append(int(v))
    if sum(levels) > 10:
        raise ConfigError.at(f'"{d.name}" directive invalid value', d)
    return c.prefixed(d.values[0]).rstrip("/") or "/", tuple(levels)


def body_in_file_only(c: Context, d: Directive, s: LevelSettings) -> str:
    v = d.values[0]
    if v not in ("off", "on", "clean"):
        raise ConfigError.at(f'invalid value "{v}"', d)   # ngx_conf_set_enum_slot
    return v




# --- limits (ngx_http_limit_req_module, ngx_http_limit_conn_module, limit_rate) -------------

_ZONE_MIN: Final = 8 * 4096          # nginx: a zone of fewer than 8 pages "is too small"
NODELAY: Final = 1 << 60             # nginx's NGX_MAX_INT_T_VALUE / 1000, in milli-requests
LIMIT_LOG_LEVELS: Final = ("info", "notice", "warn", "error")


def _once(d: Directive, s: LevelSettings, name: str) -> None:
    """ngx_conf_set_*_slot's "is duplicate": a value written twice in one block."""
    if s.defined_here(name):
        raise ConfigError.at(f'"{d.name}" directive is duplicate', d)


def _zone_parameter(d: Directive, arg: str) -> tuple[str, int]:
    """`zone=name:size` of limit_req_zone / limit_conn_zone."""
    name, colon, size_text = arg[5:].partition(":")
    if not colon:
        raise ConfigError.at(f'invalid zone size "{arg}"', d)
    try:
        size = parse_size(size_text)
    except ValueError:
        raise ConfigError.at(f'invalid zone size "{arg}"', d) from None
    if size < _ZONE_MIN:
        raise ConfigError.at(f'zone "{arg}" is too small', d)
    return name, size


def _declare_zone(d: Directive, s: LevelSettings, zone: LimitZone) -> LimitZone:
    """ngx_shared_memory_add's checks against the zones declared before, in nginx's order
    (size, use, then key)."""
    for kind in ("limit_req", "limit_conn"):
        for z in s.get(kind + "_zone") or ():
            if z.name != zone.name:
                continue
            if z.size != zone.size:
                raise ConfigError.at(f'the size {zone.size} of shared memory zone '
                                     f'"{zone.name}" conflicts with already declared size '
                                     f'{z.size}', d)
            if z.kind != zone.kind:
                raise ConfigError.at(f'the shared memory zone "{zone.name}" is already '
                                     'declared for a different use', d)
            raise ConfigError.at(f'{d.name} "{zone.name}" is already bound to key '
                                 f'"{z.key.source}"', d)
    return zone


def limit_req_zone(c: Context, d: Directive, s: LevelSettings) -> LimitZone:
    """`limit_req_zone key zone=name:size rate=rate` (ngx_http_limit_req_zone): the rate in
    milli-requests per second. `sync` (NGINX Plus' zone synchronisation) is refused."""
    v = d.values
    key = c.template(v[0], d)
    name, size, rate, scale = "", 0, 1, 1
    for arg in v[1:]:
        if arg.startswith("zone="):
            name, size = _zone_parameter(d, arg)
            continue
        if arg.startswith("rate="):
            text = arg[5:]
            if text.endswith("r/s"):
                text = text[:-3]
            elif text.endswith("r/m"):
                text, scale = text[:-3], 60
            rate = int(text) if text.isdigit() else 0
            if rate <= 0:
                raise ConfigError.at(f'invalid rate "{arg}"', d)
            continue
        if arg == "sync":
            raise ConfigError.at('the "sync" parameter of "limit_req_zone" is not supported '
                                 'by truehop (NGINX Plus zone synchronization)', d)
        raise ConfigError.at(f'invalid parameter "{arg}"', d)
    if not name:
        raise ConfigError.at(f'"{d.name}" must have "zone" parameter', d)
    return _declare_zone(d, s, LimitZone("limit_req", name, key, size, rate * 1000 // scale,
                                         (d.file, d.line)))


def limit_conn_zone(c: Context, d: Directive, s: LevelSettings) -> LimitZone:
    """`limit_conn_zone key zone=name:size` (ngx_http_limit_conn_zone)."""
    v = d.values
    key = c.template(v[0], d)
    name, size = "", 0
    for arg in v[1:]:
        if arg.startswith("zone="):
            name, size = _zone_parameter(d, arg)
            continue
        raise ConfigError.at(f'invalid parameter "{arg}"', d)
    if not name:
        raise ConfigError.at(f'"{d.name}" must have "zone" parameter', d)
    return _declare_zone(d, s, LimitZone("limit_conn", name, key, size, 0, (d.file, d.line)))


def _positive(d: Directive, arg: str, skip: int, what: str) -> int:
    text = arg[skip:]
    n = int(text) if text.isdigit() else 0
    if n <= 0:
        raise ConfigError.at(f'invalid {what} value "{arg}"', d)
    return n


def limit_req(c: Context, d: Directive, s: LevelSettings) -> LimitReq:
    """`limit_req zone=name [burst=number] [nodelay | delay=number]` (ngx_http_limit_req);
    the zone must be declared somewhere (checked when the zones are made)."""
    zone: str | None = None
    burst = delay = 0
    for arg in d.values:
        if arg.startswith("zone="):
            zone = arg[5:]
        elif arg.startswith("burst="):
            burst = _positive(d, arg, 6, "burst")
        elif arg.startswith("delay="):
            delay = _positive(d, arg, 6, "delay")
        elif arg == "nodelay":
            delay = NODELAY
        else:
            raise ConfigError.at(f'invalid parameter "{arg}"', d)
    if zone is None:
        raise ConfigError.at(f'"{d.name}" must have "zone" parameter', d)
    if any(x.zone == zone for x in s.get("limit_req") or ()):
        raise ConfigError.at(f'"{d.name}" directive is duplicate', d)
    return LimitReq(zone, burst * 1000, min(delay * 1000, NODELAY), (d.file, d.line))


def limit_conn(c: Context, d: Directive, s: LevelSettings) -> LimitConn:
    """`limit_conn zone number` (ngx_http_limit_conn)."""
    zone, number = d.values
    n = int(number) if number.isdigit() else 0
    if n <= 0:
        raise ConfigError.at(f'invalid number of connections "{number}"', d)
    if n > 65535:
        raise ConfigError.at('connection limit must be less 65536', d)
    if any(x.zone == zone for x in s.get("limit_conn") or ()):
        raise ConfigError.at(f'"{d.name}" directive is duplicate', d)
    return LimitConn(zone, n, (d.file, d.line))


def limit_status(c: Context, d: Directive, s: LevelSettings) -> int:
    """limit_req_status / limit_conn_status: ngx_conf_set_num_slot bounded to 400..599."""
    _once(d, s, d.name)
    v = d.values[0]
    if not v.isdigit():
        raise ConfigError.at(f'"{d.name}" directive invalid number', d)
    n = int(v)
    if not 400 <= n <= 599:
        raise ConfigError.at("value must be between 400 and 599", d)
    return n


def limit_log_level(c: Context, d: Directive, s: LevelSettings) -> str:
    """limit_req_log_level / limit_conn_log_level: info | notice | warn | error."""
    _once(d, s, d.name)
    v = d.values[0]
    if v not in LIMIT_LOG_LEVELS:
        raise ConfigError.at(f'invalid value "{v}"', d)
    return v


def flag_once(c: Context, d: Directive, s: LevelSettings) -> bool:
    """An on/off flag that may be written once per block (limit_req_dry_run...)."""
    _once(d, s, d.name)
    return c.flag(d)


def size_value(c: Context, d: Directive, s: LevelSettings) -> int | Template:
    """ngx_http_set_complex_value_size_slot (limit_rate, limit_rate_after,
    proxy_limit_rate): a size parsed now, or, with variables, a template whose value is
    parsed per request."""
    _once(d, s, d.name)
    tpl = c.template(d.values[0], d)
    if tpl.static is None:
        return tpl
    try:
        return parse_size(tpl.static)
    except ValueError:
        raise ConfigError.at(f'"{d.name}" directive invalid value', d) from None


def worker_ids(user: str, group: str, d: Directive | None) -> tuple[int, int]:
    """(uid, gid) the workers switch to, with nginx's errors for unknown names."""
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


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


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



# --- the proxy cache (proxy/cache/) ----------------------------------------------------------

CACHE_STALE_FLAGS = frozenset({
    "error", "timeout", "invalid_header", "updating", "http_500", "http_502", "http_503",
    "http_504", "http_403", "http_404", "http_429", "off",
})
# proxy_cache_path parameters of NGINX Plus only (its cache purger)
_CACHE_PLUS_ONLY = frozenset({"purger", "purger_files", "purger_sleep", "purger_threshold"})
_CACHE_TIMES = ("inactive", "manager_sleep", "manager_threshold", "loader_sleep",
                "loader_threshold")


def cache_path(c: Context, d: Directive, s: LevelSettings) -> CachePath:
    """proxy_cache_path path [levels=1:2] keys_zone=name:size [use_temp_path=on|off]
    [inactive=time] [max_size=size] [min_free=size] [manager_files=n] [manager_sleep=time]
    [manager_threshold=time] [loader_files=n] [loader_sleep=time] [loader_threshold=time]
    (ngx_http_file_cache_set_slot, its words). NGINX Plus's purger parameters are refused
    by name."""
    v = d.values
    path = c.prefixed(v[0]).rstrip("/") or "/"
    levels: tuple[int, ...] = ()
    zone = ""
    zone_size = 0
    nums: dict[str, Any] = {}
    for p in v[1:]:
        name, eq, val = p.partition("=")
        if name == "levels" and eq:
            parts = val.split(":")
            if len(parts) > 3 or not all(x in ("1", "2") for x in parts):
                raise ConfigError.at(f'invalid "levels" "{p}"', d)
            levels = tuple(int(x) for x in parts)
        elif name == "keys_zone" and eq:
            zname, colon, zsize = val.partition(":")
            if not colon or not zname:
                raise ConfigError.at(f'invalid keys zone size "{p}"', d)
            try:
                zone_size = parse_size(zsize)
            except ValueError:
                raise ConfigError.at(f'invalid keys zone size "{p}"', d) from None
            if zone_size < 8192:
                raise ConfigError.at(f'keys zone "{p}" is too small', d)
            zone = zname
        elif name == "use_temp_path" and eq:
            if val not in ("on", "off"):
                raise ConfigError.at(f'invalid use_temp_path value "{p}", it must be "on" or '
                                     f'"off"', d)
            nums[name] = val == "on"
        elif name in _CACHE_TIMES and eq:
            try:
                nums[name] = parse_time(val)
            except ValueError:
                raise ConfigError.at(f'invalid {name} value "{p}"', d) from None
        elif name in ("max_size", "min_free") and eq:
            try:
                nums[name] = parse_size(val)
            except ValueError:
                raise ConfigError.at(f'invalid {name} value "{p}"', d) from None
        elif name in ("manager_files", "loader_files") and eq:
            if not val.isdigit() or int(val) == 0:
                raise ConfigError.at(f'invalid {name} value "{p}"', d)
            nums[name] = int(val)
        elif name in _CACHE_PLUS_ONLY:
            raise ConfigError.at(f'invalid parameter "{p}": cache purging ({name}=) is '
                                 f'NGINX Plus only, not supported by truehop', d)
        else:
            raise ConfigError.at(f'invalid parameter "{p}"', d)
    if not zone:
        raise ConfigError.at(f'"{d.name}" must have "keys_zone" parameter', d)
    for other in s.get("proxy_cache_path") or ():
        if other.zone == zone:
            raise ConfigError.at(f'duplicate zone "{zone}"', d)
        if other.path == path:
            raise ConfigError.at(f'the same path name "{path}" used in {other.where[0]}:'
                                 f'{other.where[1]} and in {d.file}:{d.line}', d)
    return CachePath(path, levels, zone, zone_size, where=(d.file, d.line), **nums)


def cache_zone(c: Context, d: Directive, s: LevelSettings) -> Template | None:
    """proxy_cache zone | off. A zone named without variables must be declared by a
    proxy_cache_path; known from the server level down, where the http level is complete
    (an http-level one is checked when the runtime is built: proxy.cache.store)."""
    if s.defined_here("proxy_cache"):
        raise ConfigError.at(f'"{d.name}" directive is duplicate', d)
    v = d.values[0]
    if v == "off":
        return None
    tpl = c.template(v, d)
    http = c.http_level
    if tpl.static is not None and http is not s and http.defined_here("proxy_cache_path"):
        if all(z.zone != v for z in http.get("proxy_cache_path")):
            raise ConfigError.at(f'"{d.name}" zone "{v}" is unknown', d)
    return tpl


def default_cache_key(c: Context) -> Template:
    return c.template("$scheme$proxy_host$request_uri", Directive("proxy_cache_key", (), None,
                                                                  "", 0))


def cache_valid(c: Context, d: Directive, s: LevelSettings) -> CacheValid:
    """proxy_cache_valid [code ...|any] time; with no code: 200, 301 and 302."""
    v = d.values
    try:
        secs = parse_time(v[-1])
    except ValueError:
        raise ConfigError.at(f'invalid time value "{v[-1]}"', d) from None
    codes = v[:-1]
    if not codes:
        return CacheValid(frozenset({200, 301, 302}), secs)
    if "any" in codes:
        return CacheValid(frozenset(), secs, any=True)
    out = set()
    for code in codes:
        if not code.isdigit() or not 100 <= int(code) <= 599:
            raise ConfigError.at(f'invalid status "{code}"', d)
        out.add(int(code))
    return CacheValid(frozenset(out), secs)


def cache_methods(c: Context, d: Directive, s: LevelSettings) -> frozenset[str]:
    """proxy_cache_methods GET|HEAD|POST ...: GET and HEAD are always in."""
    for m in d.values:
        if m not in ("GET", "HEAD", "POST"):
            raise ConfigError.at(f'invalid value "{m}"', d)
    return frozenset({"GET", "HEAD", *d.values})


def cache_conditions(c: Context, d: Directive, s: LevelSettings) -> tuple[Template, ...]:
    """proxy_cache_bypass / proxy_no_cache: strings, any non-empty and not "0" applies."""
    return tuple(c.template(v, d) for v in d.values)


def cache_use_stale(c: Context, d: Directive, s: LevelSettings) -> frozenset[str]:
    flags = frozenset(d.values)
    for f in d.values:
        if f not in CACHE_STALE_FLAGS:
            raise ConfigError.at(f'invalid value "{f}"', d)
    if "off" in flags and len(flags) > 1:
        raise ConfigError.at('invalid value "off"', d)
    return frozenset() if "off" in flags else flags


def ignore_headers(c: Context, d: Directive, s: LevelSettings) -> frozenset[str]:
    """proxy_ignore_headers: a bitmask in nginx (ngx_conf_set_bitmask_slot), so the lines
    of one level add up."""
    cur: frozenset[str] | None = s.get(d.name) if s.defined_here(d.name) else None
    new = frozenset(x.lower() for x in d.values)
    return new if cur is None else cur | new


def min_uses(c: Context, d: Directive, s: LevelSettings) -> int:
    n = c.integer(d)
    if n == 0:
        raise c.invalid(d)
    return n


# --- issue 15, misc: charset, proxy_cookie_flags, SSL tuning, sizes ---------------------------

# ngx_http_charset_module's charset_types default (text/html is always among them)
CHARSET_TYPES: frozenset[str] = frozenset({
    "text/html", "text/xml", "text/plain", "text/vnd.wap.wml", "application/javascript",
    "application/rss+xml"})


def charset_name(c: Context, d: Directive, s: LevelSettings) -> str | None:
    """charset / source_charset: a name, or `off` (None). A name with variables is refused:
    nginx then needs every value it can take declared, which truehop does not track."""
    v = d.values[0]
    if v == "off":
        return None
    if "$" in v:
        c.template(v, d)    # an unknown variable is nginx's error first
        raise ConfigError.at(f'"{d.name}" with variables is not supported by truehop', d)
    return v


def charset_types(c: Context, d: Directive, s: LevelSettings) -> frozenset[str]:
    """charset_types: MIME types (lower-cased; "*" is any), text/html always included."""
    return frozenset(v.lower() for v in d.values) | {"text/html"}


def cookie_flags(c: Context, d: Directive, s: LevelSettings) -> tuple[CookieFlags, ...]:
    """ngx_http_proxy_cookie_flags: `off`, or `cookie flag...` where cookie is a name (may
    hold variables, compared ignoring case) or `~regex` (always caseless: `~*` is not a
    form of its own, nginx compiles the `*`); flags may hold variables and are read per
    response (an unknown one is skipped, as nginx does). `off` twice, or `off` together
    with rules at one level, is a duplicate."""
    v = d.values
    cur = s.get("proxy_cookie_flags")
    if cur == () and s.defined_here("proxy_cookie_flags"):
        raise ConfigError.at('"proxy_cookie_flags" directive is duplicate', d)
    if len(v) == 1:
        if v[0] != "off":
            raise ConfigError.at(f'invalid parameter "{v[0]}"', d)
        if cur:
            raise ConfigError.at('"proxy_cookie_flags" directive is duplicate', d)
        return ()
    flags = tuple(c.template(f, d) for f in v[1:])
    if v[0].startswith("~"):
        rule = CookieFlags(None, c.regex(v[0][1:], True, d), flags)
    else:
        rule = CookieFlags(c.template(v[0], d), None, flags)
    return (*(cur or ()), rule)


# names OpenSSL's SSL_CTX_set1_curves_list() knows for a group, and the one Python's
# SSLContext.set_ecdh_curve() takes (OBJ_sn2nid: case matters there)
_GROUP_NAMES: dict[str, str] = {
    "x25519": "X25519", "x448": "X448", "p-256": "prime256v1", "secp256r1": "prime256v1",
    "prime256v1": "prime256v1", "p-384": "secp384r1", "secp384r1": "secp384r1",
    "p-521": "secp521r1", "secp521r1": "secp521r1",
}


def settable_group(name: str) -> str | None:
    """The name SSLContext.set_ecdh_curve() accepts for an OpenSSL group name, when this
    build can set it (None: it cannot)."""
    n = _GROUP_NAMES.get(name.lower(), name)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ecdh_curve(n)
    except (ValueError, ssl.SSLError):
        return None
    return n


def ecdh_curve(c: Context, d: Directive, s: Any) -> tuple[tuple[str, tuple[str, ...]], Any]:
    """ssl_ecdh_curve `auto` or a list `a:b:c`: Python's ssl sets one group, so the first
    this build knows is set and the rest are kept to be named by lint; none known is
    nginx's SSL_CTX_set1_curves_list() failure."""
    v = d.values[0]
    where = (d.file, d.line)
    if v == "auto":
        return ("auto", ()), where
    names = [n for n in v.split(":") if n]
    for i, n in enumerate(names):
        g = settable_group(n)
        if g is not None:
            return (g, tuple(names[:i] + names[i + 1:])), where
    raise ConfigError.at(f'SSL_CTX_set1_curves_list("{v}") failed', d)


# SSL_CONF "Options" names -> (SSLContext.options bit, True when the name turns the bit off:
# "SessionTicket" clears OP_NO_TICKET, "-SessionTicket" sets it)
_SSL_OPTIONS: dict[str, tuple[int, bool]] = {
    "sessionticket": (ssl.OP_NO_TICKET, True),
    "compression": (ssl.OP_NO_COMPRESSION, True),
    "serverpreference": (ssl.OP_CIPHER_SERVER_PREFERENCE, False),
    "norenegotiation": (ssl.OP_NO_RENEGOTIATION, False),
    "prioritizechacha": (1 << 21, False),           # SSL_OP_PRIORITIZE_CHACHA
    "middleboxcompat": (ssl.OP_ENABLE_MIDDLEBOX_COMPAT, False),
    "ignoreunexpectedeof": (ssl.OP_IGNORE_UNEXPECTED_EOF, False),
}
_PROTOCOL_VERSIONS = frozenset({"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "None"})


def ssl_conf_command(c: Context, d: Directive, s: Any) -> SslCommand:
    """ssl_conf_command name value: what maps onto Python's SSLContext is applied (Options,
    CipherString, Groups/Curves, MinProtocol/MaxProtocol), the rest is kept with how="" so
    that lint names it (Ciphersuites, SignatureAlgorithms...: no API for them)."""
    name, value = d.values
    where = (d.file, d.line)
    key = name.lower()
    if key == "options":
        set_bits = clear_bits = 0
        for tok in value.split(","):
            tok = tok.strip()
            neg = tok.startswith("-")
            known = _SSL_OPTIONS.get(tok.lstrip("-").lower())
            if known is None:
                return SslCommand(name, value, "", where)
            bit, inverted = known
            if neg != inverted:
                clear_bits |= bit
            else:
                set_bits |= bit
        return SslCommand(name, value, "options", where, set_bits=set_bits, clear_bits=clear_bits)
    if key == "cipherstring":
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(value)
        except ssl.SSLError:
            raise ConfigError.at(f'SSL_CONF_cmd("{name}", "{value}") failed', d) from None
        return SslCommand(name, value, "ciphers", where, arg=value)
    if key in ("groups", "curves"):
        g = next((x for x in (settable_group(n) for n in value.split(":") if n) if x), None)
        if g is None:
            raise ConfigError.at(f'SSL_CONF_cmd("{name}", "{value}") failed', d)
        return SslCommand(name, value, "groups", where, arg=g)
    if key in ("minprotocol", "maxprotocol") and value in _PROTOCOL_VERSIONS:
        return SslCommand(name, value, key[:3], where, arg=value)
    return SslCommand(name, value, "", where)
# --- access and auth (ngx_http_access_module, ngx_http_auth_basic_module,
# ngx_http_auth_request_module, satisfy) ----------------------------------------------------


def _inet_addr(text: str) -> int | None:
    """ngx_inet_addr: four decimal parts, each at most 255 (leading zeros allowed)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    v = 0
    for p in parts:
        if not p.isdigit() or not p.isascii() or int(p) > 255:
            return None
        v = (v << 8) | int(p)
    return v


def access_rule(c: Context, d: Directive, s: LevelSettings) -> AccessRule:
    """`allow` / `deny` ADDRESS[/BITS] | unix: | all (ngx_http_access_rule, ngx_ptocidr).
    Host bits set under the mask are cleared, with nginx's warning."""
    v = d.values[0]
    deny = d.name == "deny"
    w = (d.file, d.line)
    if v == "all":
        return AccessRule(deny, "all", text=v, where=w)
    if v == "unix:":
        return AccessRule(deny, "unix", text=v, where=w)
    addr_text, slash, bits = v.partition("/")
    addr4 = _inet_addr(addr_text)
    if addr4 is not None:
        family, width, addr = "4", 32, addr4
    else:
        try:
            if "%" in addr_text:
                raise ValueError(addr_text)
            addr = int(ipaddress.IPv6Address(addr_text))
        except ValueError:
            raise ConfigError.at(f'invalid parameter "{v}"', d) from None
        family, width = "6", 128
    if not slash:
        shift = width
    elif not bits.isdigit() or not bits.isascii() or int(bits) > width:
        raise ConfigError.at(f'invalid parameter "{v}"', d)
    else:
        shift = int(bits)
    mask = ((1 << shift) - 1) << (width - shift)
    if addr & ~mask & ((1 << width) - 1):
        c.warnings.append(f"low address bits of {v} are meaningless in {d.file}:{d.line}")
        addr &= mask
    return AccessRule(deny, family, addr, mask, v, w)


def satisfy(c: Context, d: Directive, s: LevelSettings) -> str:
    """`satisfy all | any` (an enum: nginx compares without case)."""
    v = d.values[0]
    if v.lower() not in ("all", "any"):
        raise ConfigError.at(f'invalid value "{v}"', d)
    return v.lower()


def user_file(c: Context, d: Directive, s: LevelSettings) -> UserFile:
    """auth_basic_user_file: a path, variables allowed; relative to the configuration's
    directory (nginx's ccv.conf_prefix), also when variables render a relative one."""
    v = d.values[0]
    tpl = c.template(v, d)
    if tpl.static is not None:
        tpl = literal(c.conf_relative(v))
    return UserFile(tpl, c.conf_relative("."))


def auth_request(c: Context, d: Directive, s: LevelSettings) -> str | None:
    """`auth_request URI | off`: None is off (it cancels an inherited one)."""
    v = d.values[0]
    return None if v == "off" else v


def auth_request_set(c: Context, d: Directive, s: LevelSettings) -> AuthRequestSet:
    name, value = d.values
    if not name.startswith("$"):
        raise ConfigError.at(f'invalid variable name "{name}"', d)
    return AuthRequestSet(name[1:], c.template(value, d), (d.file, d.line))
# --- gzip (ngx_http_gzip_module, ngx_http_gzip_static_module, the core's gzip_*) ----------


GZIP_PROXIED_FLAGS = frozenset({"off", "expired", "no-cache", "no-store", "private",
                                "no_last_modified", "no_etag", "auth", "any"})


def mime_types(default: str) -> Parser:
    """`gzip_types` (and the like: ngx_http_types_slot): the level's lines add up; the
    directive's default type (text/html) is always in; `*` means any type, even none, and
    ends the list; a type named twice is nginx's warning `duplicate MIME type`."""
    def parse(c: Context, d: Directive, s: LevelSettings) -> frozenset[str]:
        cur = s.get(d.name)
        if cur is None:
            cur = frozenset({default})
        if "*" in cur:
            return frozenset({"*"})
        out = set(cur)
        for v in d.values:
            if v == "*":
                return frozenset({"*"})
            lv = v.lower()
            if lv in out:
                c.warnings.append(f'duplicate MIME type "{lv}" in {d.file}:{d.line}')
            else:
                out.add(lv)
        return frozenset(out)
    return parse


def comp_level(low: int, high: int) -> Parser:
    """`gzip_comp_level` (ngx_conf_set_num_slot with bounds), nginx's wording."""
    def parse(c: Context, d: Directive, s: LevelSettings) -> int:
        v = d.values[0]
        if not v.isdigit():
            raise ConfigError.at(f'"{d.name}" directive invalid number', d)
        n = int(v)
        if not low <= n <= high:
            raise ConfigError.at(f'"{d.name}" directive must be between {low} and {high}', d)
        return n
    return parse


def bufs(c: Context, d: Directive, s: LevelSettings) -> tuple[int, int]:
    """`gzip_buffers number size` (ngx_conf_set_bufs_slot): both positive."""
    n = d.values[0]
    try:
        size = parse_size(d.values[1])
    except ValueError:
        size = 0
    if not n.isdigit() or int(n) == 0 or size == 0:
        raise ConfigError.at(f'"{d.name}" directive invalid value', d)
    return (int(n), size)


def _power_of_two(d: Directive, v: int, top: int, top_log: int, words: str) -> int:
    # ngx_http_gzip_window / ngx_http_gzip_hash: the size maps to zlib's log2 parameter
    size, log = top, top_log
    while size > 256:
        if size == v:
            return log
        size >>= 1
        log -= 1
    raise ConfigError.at(f'"{d.name}" directive must be {words}', d)


def gzip_window(c: Context, d: Directive, s: LevelSettings) -> int:
    """`gzip_window size` -> zlib's wbits (32k -> 15 ... 512 -> 9)."""
    return _power_of_two(d, c.size(d), 32 * 1024, 15, "512, 1k, 2k, 4k, 8k, 16k, or 32k")


def gzip_hash(c: Context, d: Directive, s: LevelSettings) -> int:
    """`gzip_hash size` -> zlib's memLevel (128k -> 9 ... 512 -> 1)."""
    return _power_of_two(d, c.size(d), 128 * 1024, 9,
                         "512, 1k, 2k, 4k, 8k, 16k, 32k, 64k, or 128k")


def enum(*words: str) -> Parser:
    """ngx_conf_set_enum_slot: one of `words`, else `invalid value "x"`."""
    def parse(c: Context, d: Directive, s: LevelSettings) -> str:
        v = d.values[0]
        for w in words:
            if v.lower() == w:
                return w
        raise ConfigError.at(f'invalid value "{v}"', d)
    return parse


def gzip_proxied(c: Context, d: Directive, s: LevelSettings) -> frozenset[str]:
    """`gzip_proxied` (ngx_conf_set_bitmask_slot): the level's lines add up."""
    out = set(s.get("gzip_proxied") or ())
    for v in d.values:
        lv = v.lower()
        if lv not in GZIP_PROXIED_FLAGS:
            raise ConfigError.at(f'invalid value "{v}"', d)
        if lv in out:
            c.warnings.append(f'duplicate value "{v}" in {d.file}:{d.line}')
        out.add(lv)
    return frozenset(out)


def gzip_disable(c: Context, d: Directive, s: LevelSettings) -> tuple[re.Pattern[str], ...]:
    """`gzip_disable regex ... | msie6` (ngx_http_gzip_disable): caseless regexes matched
    against User-Agent, the level's lines adding up; the word msie6 sets
    gzip_disable_msie6, which levels inherit apart from the regexes, as nginx's do."""
    out = list(s.get("gzip_disable") or ())
    for v in d.values:
        if v == "msie6":
            s.set("gzip_disable_msie6", True)
            continue
        out.append(c.regex(v, True, d))
    return tuple(out)


# --- ngx_brotli ---------------------------------------------------------------------------

def brotli_flag(c: Context, d: Directive, s: LevelSettings) -> bool:
    """`brotli on` compresses with Google's encoder, an optional dependency: without it
    the configuration is refused rather than silently sending uncompressed responses."""
    on = c.flag(d)
    if on and importlib.util.find_spec("brotli") is None:
        raise ConfigError.at('"brotli" directive needs the Python package "brotli" '
                             "(pip install 'truehop[brotli]')", d)
    return on


def brotli_window(c: Context, d: Directive, s: LevelSettings) -> int:
    """`brotli_window size` -> the encoder's lgwin (1k -> 10 ... 16m -> 24)."""
    v = c.size(d)
    for bits in range(10, 25):
        if v == 1 << bits:
            return bits
    raise ConfigError.at(f'"{d.name}" directive must be 1k, 2k, 4k, 8k, 16k, 32k, 64k, '
                         "128k, 256k, 512k, 1m, 2m, 4m, 8m or 16m", d)
