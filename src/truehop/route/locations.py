"""nginx location matching.

`=` exact wins at once; else the longest matching prefix; `^~` on it stops the search;
otherwise the prefix's nested locations are searched (recursively), then regexes in file order
(first match wins); else the longest prefix. `@named` locations are reached only by name.
Prefix lookup walks a sorted list of prefixes by length, so a request does not scan every
location.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_NAMED = re.compile(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>")
_NAMED_QUOTE = re.compile(r"\(\?'([A-Za-z_][A-Za-z0-9_]*)'")


def compile_nginx_regex(pattern: str, caseless: bool) -> re.Pattern[str]:
    """A PCRE pattern as Python's `re` understands it (named groups translated)."""
    p = _NAMED.sub(r"(?P<\1>", pattern)
    p = _NAMED_QUOTE.sub(r"(?P<\1>", p)
    try:
        return re.compile(p, re.IGNORECASE if caseless else 0)
    except re.error as e:
        raise ValueError(f'pcre2_compile() failed: {e.msg} in "{pattern}" at "'
                         f'{pattern[e.pos:] if e.pos is not None else ""}"') from None


class LocationTree:
    """Locations of one level (a server, or a location's nested ones)."""

    __slots__ = ("exact", "prefixes", "regexes", "children")

    def __init__(self) -> None:
        self.exact: dict[str, Any] = {}
        self.prefixes: list[tuple[str, Any]] = []     # longest first
        self.regexes: list[tuple[re.Pattern[str], Any]] = []
        self.children: dict[int, LocationTree] = {}

    @classmethod
    def build(cls, locations: Sequence[Any]) -> LocationTree:
        t = cls()
        seen: set[tuple[str, str]] = set()
        for loc in locations:
            mod = loc.modifier
            key = ("=" if mod == "=" else "p" if mod in ("", "^~") else mod, loc.pattern)
            if mod in ("", "^~", "=") and key in seen:
                raise ValueError(f'duplicate location "{loc.pattern}"')
            seen.add(key)
            if mod == "=":
                t.exact[loc.pattern] = loc
            elif mod in ("", "^~"):
                t.prefixes.append((loc.pattern, loc))
            elif mod in ("~", "~*"):
                rx = getattr(loc, "regex", None) or compile_nginx_regex(loc.pattern, mod == "~*")
                t.regexes.append((rx, loc))
            else:
                continue
            kids = [c for c in getattr(loc, "children", ()) if c.modifier != "@"]
            if kids:
                t.children[id(loc)] = cls.build(kids)
        t.prefixes.sort(key=lambda e: -len(e[0]))
        return t

    def match(self, uri: str) -> tuple[Any, re.Match[str] | None]:
        loc = self.exact.get(uri)
        if loc is not None:
            return loc, None
        best = None
        for prefix, cand in self.prefixes:
            if uri.startswith(prefix):
                best = cand
                break
        if best is not None:
            # an exact location "=/x" also counts as a prefix for nginx only when it matches
            if best.modifier == "^~":
                sub = self.children.get(id(best))
                if sub is not None:
                    inner, caps = sub.match(uri)
                    if inner is not None:
                        return inner, caps
                return best, None
            sub = self.children.get(id(best))
            if sub is not None:
                inner, caps = sub.match(uri)
                if inner is not None and (inner.modifier in ("=", "~", "~*", "^~") or
                                          caps is not None):
                    return inner, caps
                if inner is not None and inner.modifier == "":
                    nested_best = inner
                else:
                    nested_best = None
            else:
                nested_best = None
        else:
            nested_best = None
        for rx, cand in self.regexes:
            m = rx.search(uri)
            if m is not None:
                sub = self.children.get(id(cand))
                if sub is not None:
                    inner, caps = sub.match(uri)
                    if inner is not None:
                        return inner, caps
                return cand, m
        if nested_best is not None:
            return nested_best, None
        return best, None
