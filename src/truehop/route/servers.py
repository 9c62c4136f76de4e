"""Server selection by name for one listen address:port, as nginx 1.30 does it.

Build (ngx_http_server_names + ngx_hash_add_key, src/http/ngx_http.c, src/core/ngx_hash.c):
every name of every server on the address, in file order, goes to one of four tables.

* exact names (lower-cased; `""` is a name too: it matches a request without Host, and a
  server without `server_name` has it). A name seen twice keeps its first server and logs
  `conflicting server name "x" on ADDR, ignored`.
* leading wildcards: `*.example.com` matches subdomains only; `.example.com` matches
  `example.com` and its subdomains. The two spellings of one domain conflict with each other;
  `.example.com` also conflicts with an exact `example.com` in either order (the later one is
  ignored, wholly).
* trailing wildcards: `www.example.*`.
* regexes (`~...`), in file order; caseless when the pattern has an upper-case letter (nginx's
  rule). Any other use of `*` (`www.*.com`, two stars) or `..` is
  `invalid server name or wildcard "..." on ADDR`.

Lookup (ngx_http_find_virtual_server): exact, then the most specific leading wildcard, then
the most specific trailing wildcard, then the regexes in order (not for an empty host), then
the default server of the address. `_` is not special: it is a name no valid client asks for.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from typing import Final, Generic, TypeVar

from truehop.route.locations import compile_nginx_regex, uri_bytes

T = TypeVar("T")

_CACHE_MAX: Final = 1024


def check_server_name(name: str) -> list[str]:
    """Config-time checks of one `server_name` argument (ngx_http_core_server_name).

    Returns warnings (nginx logs them at [warn]); raises ValueError for errors. Wildcard shape
    errors are reported by `ServerNameIndex.build`, as nginx reports them per address.
    """
    ch = name[:1]
    if (ch == "*" and (len(name) < 3 or name[1] != ".")) or (ch == "." and len(name) < 2):
        raise ValueError(f'server name "{name}" is invalid')
    warnings = []
    if "/" in name:
        warnings.append(f'server name "{name}" has suspicious symbols')
    if ch == "~":
        if len(name) == 1:
            raise ValueError(f'empty regex in server name "{name}"')
        _compile_name_regex(name[1:])
    return warnings


def name_warnings(name: str) -> list[str]:
    """Warnings only (kept for callers of the first API); see check_server_name."""
    try:
        return check_server_name(name)
    except ValueError:
        return []


def names_hashed(servers: int, default_names: Sequence[str]) -> bool:
    """Does nginx build the server-name hash of an address (ngx_http_optimize_servers)? Only
    when more than one server shares it, or its default server has a regex name with
    captures; otherwise every request goes to that one server and its names are never
    hashed, so `server_name ...;` or `a..com` on a lone server is accepted."""
    if servers > 1:
        return True
    for n in default_names:
        if n.startswith("~") and len(n) > 1:
            try:
                if _compile_name_regex(n[1:]).groups:
                    return True
            except (re.error, ValueError):
                return True
    return False


def _compile_name_regex(pattern: str) -> re.Pattern[str]:
    caseless = any("A" <= c <= "Z" for c in pattern)
    return compile_nginx_regex(pattern, caseless)


class ServerNameIndex(Generic[T]):
    """The virtual-server names of one listen address. `warnings` lists what nginx would log
    at [warn] while building it (conflicting names)."""

    __slots__ = ("default", "exact", "head", "tail", "regex", "warnings", "_cache")

    def __init__(self, default: T) -> None:
        self.default = default
        self.exact: dict[str, T] = {}
        # "example.com" -> (server, also matches "example.com" itself)
        self.head: dict[str, tuple[T, bool]] = {}
        self.tail: dict[str, T] = {}                # "www.example" for "www.example.*"
        self.regex: list[tuple[re.Pattern[str], T]] = []
        self.warnings: list[str] = []
        self._cache: dict[str, tuple[T, re.Match[str] | None]] = {}

    @classmethod
    def build(cls, entries: Sequence[tuple[Sequence[str], T]], default: T, *,
              addr_text: str = "", hostname: str | None = None,
              check: bool = True) -> ServerNameIndex[T]:
        """entries: (server_name arguments, server) per server on this address:port, in file
        order. default: the `default_server` of the address, else its first server.
        addr_text (e.g. "0.0.0.0:80") only goes into messages. `$hostname` is replaced by
        `hostname` (default: this machine's name).

        Raises ValueError for `invalid server name or wildcard ...` and bad regexes.
        `check=False` (see `names_hashed`): nginx builds no name hash for the address, so a
        name it could not hash is never looked at: it is left out, not refused.
        """
        idx = cls(default)
        on = f" on {addr_text}" if addr_text else ""
        exact_keys: set[str] = set()        # nginx's keys_hash: exact names + ".x" as "x"
        head_keys: set[str] = set()
        tail_keys: set[str] = set()
        for names, srv in entries:
            for raw in names:
                if raw.startswith("~"):
                    if len(raw) == 1:
                        raise ValueError(f'empty regex in server name "{raw}"')
                    idx.regex.append((_compile_name_regex(raw[1:]), srv))
                    continue
                if raw.lower() == "$hostname":
                    raw = hostname if hostname is not None else socket.gethostname()
                name = uri_bytes(raw.lower())
                busy = f'conflicting server name "{name}"{on}, ignored'
                if name.count("*") > 1 or ".." in name or "\x00" in name:
                    if not check:
                        continue
                    raise ValueError(f'invalid server name or wildcard "{name}"{on}')
                if len(name) > 1 and name[0] == ".":
                    key = name[1:]
                    if key in exact_keys:
                        idx.warnings.append(busy)
                        continue
                    exact_keys.add(key)
                    if key in head_keys:
                        idx.warnings.append(busy)
                        continue
                    head_keys.add(key)
                    idx.head[key] = (srv, True)
                elif len(name) > 2 and name.startswith("*."):
                    key = name[2:]
                    if key in head_keys:
                        idx.warnings.append(busy)
                        continue
                    head_keys.add(key)
                    idx.head[key] = (srv, False)
                elif len(name) > 2 and name.endswith(".*"):
                    key = name[:-2]
                    if key in tail_keys:
                        idx.warnings.append(busy)
                        continue
                    tail_keys.add(key)
                    idx.tail[key] = srv
                elif "*" in name:
                    if not check:
                        continue
                    raise ValueError(f'invalid server name or wildcard "{name}"{on}')
                else:
                    if name in exact_keys:
                        idx.warnings.append(busy)
                        continue
                    exact_keys.add(name)
                    idx.exact[name] = srv
        return idx

    def find(self, host: str) -> T:
        """The server for a Host (lower-cased, port and trailing dot stripped; "" if none)."""
        srv = self.exact.get(host)
        if srv is not None:
            return srv
        return self.find_with_captures(host)[0]

    def find_with_captures(self, host: str) -> tuple[T, re.Match[str] | None]:
        """(server, match) — match is the regex server name's match (positional groups via
        group(n), named via groupdict()) when a regex chose the server, else None."""
        srv = self.exact.get(host)
        if srv is not None:
            return srv, None
        if not host:
            return self.default, None
        hit = self._wildcard(host)
        if hit is not None:
            return hit, None
        if not self.regex:
            return self.default, None
        cached = self._cache.get(host)
        if cached is not None:
            return cached
        res: tuple[T, re.Match[str] | None] = (self.default, None)
        for rx, s in self.regex:
            m = rx.search(host)
            if m is not None:
                res = (s, m)
                break
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[host] = res
        return res

    def _wildcard(self, host: str) -> T | None:
        return match_wildcard(self.head, self.tail, host)


V = TypeVar("V")


def match_wildcard(head: dict[str, tuple[V, bool]], tail: dict[str, V], host: str) -> V | None:
    """nginx's wildcard names (server_name, map hostnames): the longest leading wildcard
    (`head`: "example.com" -> (value, also matches "example.com" itself), for `*.example.com`
    and `.example.com`), then the longest trailing one (`tail`: "www.example" for
    `www.example.*`). `host` is lower-cased, without a trailing dot."""
    if head:
        e = head.get(host)
        if e is not None and e[1]:
            return e[0]
        i = host.find(".")
        while i >= 0:                           # longest suffix first
            e = head.get(host[i + 1:])
            if e is not None:
                return e[0]
            i = host.find(".", i + 1)
    if tail:
        i = host.rfind(".")
        while i > 0:                            # longest prefix first
            s = tail.get(host[:i])
            if s is not None:
                return s
            i = host.rfind(".", 0, i)
    return None
