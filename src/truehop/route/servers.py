"""Server selection by name, as nginx does it for one listen address:port.

Order: exact name, longest leading wildcard (`*.example.com`, `.example.com`), longest
trailing wildcard (`www.example.*`), regexes in file order, then the default server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Generic, TypeVar

from truehop.route.locations import compile_nginx_regex

T = TypeVar("T")


class ServerNameIndex(Generic[T]):
    def __init__(self, default: T) -> None:
        self.default = default
        self.exact: dict[str, T] = {}
        self.head: list[tuple[str, T]] = []     # suffix to match, e.g. ".example.com"
        self.tail: list[tuple[str, T]] = []     # prefix to match, e.g. "www.example."
        self.dot: dict[str, T] = {}             # ".example.com" also matches example.com
        self.regex: list[tuple[re.Pattern[str], T]] = []
        self.cache: dict[str, tuple[T, re.Match[str] | None]] = {}

    @classmethod
    def build(cls, entries: Sequence[tuple[list[str], T]], default: T) -> ServerNameIndex[T]:
        idx = cls(default)
        for names, srv in entries:
            for name in names:
                if not name or name == "_":
                    continue
                if name.startswith("~"):
                    idx.regex.append((compile_nginx_regex(name[1:], False), srv))
                    continue
                n = name.lower()
                if n.startswith("*."):
                    idx.head.append((n[1:], srv))
                elif n.startswith("."):
                    idx.head.append((n, srv))
                    idx.dot.setdefault(n[1:], srv)
                elif n.endswith(".*"):
                    idx.tail.append((n[:-1], srv))
                else:
                    idx.exact.setdefault(n, srv)
        # longest wildcard wins
        idx.head.sort(key=lambda e: -len(e[0]))
        idx.tail.sort(key=lambda e: -len(e[0]))
        return idx

    def find(self, host: str) -> T:
        return self.find_with_captures(host)[0]

    def find_with_captures(self, host: str) -> tuple[T, re.Match[str] | None]:
        hit = self.cache.get(host)
        if hit is not None:
            return hit
        res = self._find(host)
        if len(self.cache) < 4096:
            self.cache[host] = res
        return res

    def _find(self, host: str) -> tuple[T, re.Match[str] | None]:
        if not host:
            return self.default, None
        srv = self.exact.get(host)
        if srv is not None:
            return srv, None
        srv = self.dot.get(host)
        if srv is not None:
            return srv, None
        for suffix, s in self.head:
            if host.endswith(suffix):
                return s, None
        for prefix, s in self.tail:
            if host.startswith(prefix):
                return s, None
        for rx, s in self.regex:
            m = rx.search(host)
            if m is not None:
                return s, m
        return self.default, None


def name_warnings(name: str) -> list[str]:
    if "/" in name or "\\" in name:
        return [f'server name "{name}" has suspicious symbols']
    return []
