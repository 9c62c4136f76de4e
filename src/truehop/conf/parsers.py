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
import ipaddress
import os
import pwd
import re
import socket
from collections.abc import Callable
from typing import Any, Protocol

from truehop.conf.ast import ConfigError, Directive
from truehop.conf.model import (
    AccessLog,
    BreakOp,
    Condition,
    ErrorPage,
    Expires,
    HeaderSetting,
    IfOp,
    LevelSettings,
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
    UpstreamConf,
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
        return Condition("var", c.template(vals[0], e, named))
    if len(vals) == 2 and vals[0] in ("-f", "!-f", "-d", "!-d", "-e", "!-e", "-x", "!-x"):
        return Condition("file", c.template(vals[1], e, named), file_test=vals[0])
    if len(vals) == 3:
        left = c.template(vals[0], e, named)
        op = vals[1]
        if op in ("=", "!="):
            return Condition("eq" if op == "=" else "ne", left, c.template(vals[2], e, named))
        if op in ("~", "~*", "!~", "!~*"):
            rx = c.regex(vals[2], "*" in op, e)
            return Condition("nre" if op.startswith("!") else "re", left, regex=rx)
    raise ConfigError.at('unexpected "' + vals[-1] + '" in condition', e)


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
    return c.template(c.prefixed(d.values[0]) + ("/" if d.values[0].endswith("/") else ""), d)


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

