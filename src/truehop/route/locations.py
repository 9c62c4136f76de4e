"""nginx location matching, built the way nginx 1.30 builds it.

Theory of operation (ngx_http_core_find_location, src/http/ngx_http_core_module.c):

1. Static locations (`=`, prefix, `^~`) of one level live in nginx's own structure: sorted by
   name (an exact location before a prefix one of the same name, which are then joined into
   one node), each prefix location owning the later names that start with it, and a binary
   tree built over every list by taking the middle element. The search walks it:
   an `=` whose name equals the URI wins at once (OK); the deepest prefix seen is the
   longest matching prefix (AGAIN); a URI that is a location's name minus its trailing '/'
   where that location has `auto_redirect` asks for a 301 (DONE).
2. AGAIN: the locations nested in that prefix location are searched the same way, first.
   An OK or DONE from inside ends the search.
3. Unless the prefix location found at *this* level is `^~`, this level's regex locations are
   tried in file order (`~` case-sensitive, `~*` caseless); the first that matches wins, and
   its own nested locations are searched too.
4. Otherwise the longest prefix (the deepest one found) is the answer.

Consequences that surprise people, all reproduced: a `^~` nested inside a plain prefix
location does not stop the *outer* regexes; regexes nested inside a `^~` location are still
tried; the auto-redirect answer skips the regexes; a regex matching with no capture groups
keeps the captures of an earlier match.

Named locations (`@x`) live outside the tree and are reached only with `named()`.

The per-request cost is a walk down a balanced tree (O(log n) string comparisons per level)
plus the regexes of the levels visited; everything else is done in `build`.

`compile_nginx_regex` turns a PCRE pattern as nginx writes it into a Python `re` pattern with
the same meaning (named groups, POSIX classes, `\\z`, scoped inline flags, ASCII classes);
map, server_name, if and rewrite use it too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any, Final, Generic, Protocol, TypeVar

# -- PCRE -> Python re -------------------------------------------------------------------------

_POSIX: Final = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "xdigit": "0-9A-Fa-f", "word": "\\w",
    "punct": "!-/:-@\\[-`{-~", "cntrl": "\\x00-\\x1f\\x7f", "print": " -~", "graph": "!-~",
    "ascii": "\\x00-\\x7f",
}
_VSPACE: Final = "\\n\\x0b\\f\\r\\x85"
_HSPACE: Final = "\\t \\xa0"
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FLAGS: Final = re.compile(r"\(\?([a-zA-Z]*(?:-[a-zA-Z]*)?)\)")

# PCRE2's wording for the errors people make most often
_PCRE_MESSAGES: Final = (
    ("missing ), unterminated subpattern", "missing closing parenthesis"),
    ("unbalanced parenthesis", "unmatched closing parenthesis"),
    ("unterminated character set", "missing terminating ] for character class"),
    ("nothing to repeat", "quantifier does not follow a repeatable item"),
    ("multiple repeat", "quantifier does not follow a repeatable item"),
    ("bad escape (end of pattern)", "\\ at end of pattern"),
    ("unknown group name", "reference to non-existent subpattern"),
    ("invalid group reference", "reference to non-existent subpattern"),
    ("redefinition of group name", "two named subpatterns have the same name"),
)


class _Translator:
    """One pass over a PCRE pattern, writing the Python equivalent and remembering, for each
    output position, the source position (for nginx's `at "..."` error tail)."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.out: list[str] = []
        self.pos: list[int] = []
        # per open group: inline flags opened with "(?i)" that must be closed with it
        self.scoped: list[list[str]] = [[]]

    def emit(self, text: str, at: int) -> None:
        self.out.append(text)
        self.pos.extend([at] * len(text))

    def fail(self, msg: str, at: int) -> ValueError:
        return ValueError(f'pcre2_compile() failed: {msg} in "{self.src}" at "{self.src[at:]}"')

    def run(self) -> str:
        s = self.src
        n = len(s)
        i = 0
        while i < n:
            c = s[i]
            if c == "\\":
                i = self.escape(i, in_class=False)
            elif c == "[":
                i = self.char_class(i)
            elif c == "(":
                i = self.group(i)
            elif c == ")":
                closes = self.scoped.pop() if len(self.scoped) > 1 else []
                self.emit(")" * len(closes) + ")", i)
                i += 1
            elif c == "|":
                flags = self.scoped[-1]
                self.emit(")" * len(flags) + "|" + "".join(f"(?{f}:" for f in flags), i)
                i += 1
            else:
                self.emit(c, i)
                i += 1
        self.emit(")" * len(self.scoped[0]), n)
        return "".join(self.out)

    def group(self, i: int) -> int:
        s = self.src
        if s.startswith("(?<", i) and i + 3 < len(s) and s[i + 3] not in "=!":
            m = _NAME.match(s, i + 3)
            if m is None or not s.startswith(">", m.end()):
                raise self.fail("syntax error in subpattern name (missing terminator?)", i + 3)
            self.emit(f"(?P<{m.group(0)}>", i)
            self.scoped.append([])
            return m.end() + 1
        if s.startswith("(?'", i):
            m = _NAME.match(s, i + 3)
            if m is None or not s.startswith("'", m.end()):
                raise self.fail("syntax error in subpattern name (missing terminator?)", i + 3)
            self.emit(f"(?P<{m.group(0)}>", i)
            self.scoped.append([])
            return m.end() + 1
        m = _FLAGS.match(s, i)
        if m is not None and m.group(1) and m.group(1) != "-":
            # PCRE: "(?i)" applies to the rest of the enclosing group (every alternative);
            # Python only allows flags at the start, so open a scoped group instead
            self.emit(f"(?{m.group(1)}:", i)
            self.scoped[-1].append(m.group(1))
            return m.end()
        if s.startswith("(?#", i):
            end = s.find(")", i)
            if end < 0:
                raise self.fail("missing ) after (?# comment", len(s))
            return end + 1
        self.emit("(", i)
        self.scoped.append([])
        return i + 1

    def escape(self, i: int, in_class: bool) -> int:
        s = self.src
        if i + 1 >= len(s):
            raise self.fail("\\ at end of pattern", len(s))
        c = s[i + 1]
        if c == "Q":
            end = s.find("\\E", i + 2)
            lit = s[i + 2:] if end < 0 else s[i + 2:end]
            self.emit("".join("\\" + ch if not ch.isalnum() else ch for ch in lit), i)
            return len(s) if end < 0 else end + 2
        if c == "E":
            return i + 2
        if c in "pP":
            return self.prop(i, in_class)
        if in_class:
            if c == "h":
                self.emit(_HSPACE, i)
            elif c == "v":
                self.emit(_VSPACE, i)
            elif c in "HVNRkgzZ":
                raise self.fail(f"escape sequence is invalid in character class (\\{c})", i + 2)
            elif c == "e":
                self.emit("\\x1b", i)
            elif c == "x" and s.startswith("{", i + 2):
                return self.hex_brace(i)
            else:
                self.emit(s[i:i + 2], i)
            return i + 2
        if c == "z":
            self.emit("\\Z", i)
        elif c == "Z":
            self.emit("(?=\\n?\\Z)", i)
        elif c == "h":
            self.emit(f"[{_HSPACE}]", i)
        elif c == "H":
            self.emit(f"[^{_HSPACE}]", i)
        elif c == "v":
            self.emit(f"[{_VSPACE}]", i)
        elif c == "V":
            self.emit(f"[^{_VSPACE}]", i)
        elif c == "R":
            self.emit(f"(?:\\r\\n|[{_VSPACE}])", i)
        elif c == "N" and not s.startswith("{", i + 2):
            self.emit("[^\\n]", i)
        elif c == "e":
            self.emit("\\x1b", i)
        elif c == "x" and s.startswith("{", i + 2):
            return self.hex_brace(i)
        elif c == "k" and i + 2 < len(s) and s[i + 2] in "<'{":
            close = {"<": ">", "'": "'", "{": "}"}[s[i + 2]]
            m = _NAME.match(s, i + 3)
            if m is None or not s.startswith(close, m.end()):
                raise self.fail("\\k is not followed by a braced, angle-bracketed, or quoted name",
                                i + 2)
            self.emit(f"(?P={m.group(0)})", i)
            return m.end() + 1
        elif c == "g":
            m = re.compile(r"\\g(?:\{(\d+)\}|(\d+))").match(s, i)
            if m is None:
                raise self.fail("a numbered reference must not be zero", i + 2)
            self.emit(f"(?:\\{m.group(1) or m.group(2)})", i)
            return m.end()
        else:
            self.emit(s[i:i + 2], i)
        return i + 2

    def prop(self, i: int, in_class: bool) -> int:
        """`\\p{N}`, `\\pL`, `\\P{Lu}`, `\\p{^N}`: a Unicode general category. PCRE2
        without UTF sees bytes, so the class is the characters 0-255 of that category."""
        s = self.src
        if s.startswith("{", i + 2):
            end = s.find("}", i + 3)
            if end < 0:
                raise self.fail("malformed \\P or \\p sequence", i + 2)
            name, nxt = s[i + 3:end], end + 1
        else:
            name, nxt = s[i + 2:i + 3], i + 3
        negate = s[i + 1] == "P"
        if name.startswith("^"):
            negate, name = not negate, name[1:]
        chars = _property_chars(name)
        if chars is None:
            raise self.fail("unknown property name after \\P or \\p", nxt)
        if negate:
            chars = [ch for ch in map(chr, range(256)) if ch not in chars]
        body = "".join(f"\\x{ord(ch):02x}" for ch in chars)
        if in_class:
            self.emit(body, i)
        else:
            self.emit(f"[{body}]" if body else "(?!)", i)
        return nxt

    def hex_brace(self, i: int) -> int:
        s = self.src
        end = s.find("}", i + 3)
        digits = s[i + 3:end] if end > 0 else ""
        if not digits or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise self.fail("\\x{...} is not followed by hexadecimal digits", i + 2)
        v = int(digits, 16)
        if v > 0xFF:
            raise self.fail("character code point value in \\x{} or \\o{} is too large", end)
        self.emit(f"\\x{v:02x}", i)
        return end + 1

    def char_class(self, i: int) -> int:
        s = self.src
        n = len(s)
        self.emit("[", i)
        i += 1
        if i < n and s[i] == "^":
            self.emit("^", i)
            i += 1
        if i < n and s[i] == "]":
            self.emit("\\]", i)
            i += 1
        while i < n:
            c = s[i]
            if c == "]":
                self.emit("]", i)
                return i + 1
            if c == "\\":
                i = self.escape(i, in_class=True)
                continue
            if c == "[" and s.startswith("[:", i):
                end = s.find(":]", i + 2)
                name = s[i + 2:end] if end > 0 else ""
                if name.startswith("^"):
                    raise self.fail("negated POSIX class is not supported by truehop", i)
                if name in _POSIX:
                    self.emit(_POSIX[name], i)
                    i = end + 2
                    continue
                if end > 0 and name.isalpha():
                    raise self.fail("unknown POSIX class name", i)
            if c in "[&~|":
                self.emit("\\" + c, i)       # literal in PCRE; Python would warn
            else:
                self.emit(c, i)
            i += 1
        raise self.fail("missing terminating ] for character class", n)


def _property_chars(name: str) -> list[str] | None:
    """The characters 0-255 with a Unicode general category (`L`, `Lu`, `N`, `Nd`, `L&`,
    `Any`...); None for a name truehop does not know (scripts such as `Greek`)."""
    if name == "Any":
        return [chr(c) for c in range(256)]
    if name in ("L&", "LC"):
        return [chr(c) for c in range(256) if unicodedata.category(chr(c)) in ("Lu", "Ll", "Lt")]
    if not (1 <= len(name) <= 2 and name[0] in "CLMNPSZ" and name[1:] == name[1:].lower()):
        return None
    return [chr(c) for c in range(256) if unicodedata.category(chr(c)).startswith(name)]


def uri_bytes(text: str) -> str:
    """Config text as the bytes nginx compares with $uri: non-ASCII characters become their
    UTF-8 bytes, one character per byte (the form `normalize_path` produces)."""
    return text if text.isascii() else text.encode("utf-8", "surrogateescape").decode("latin-1")


def translate_pcre(pattern: str) -> str:
    """The Python `re` spelling of a PCRE pattern (raises ValueError with nginx's wording)."""
    return _Translator(pattern).run()


def compile_nginx_regex(pattern: str, caseless: bool) -> re.Pattern[str]:
    """Compile a regex as nginx would (PCRE2, no UTF: `\\w`, `\\d`, caseless are ASCII-only).

    Raises ValueError('pcre2_compile() failed: MSG in "PATTERN" at "TAIL"'), nginx's wording.
    """
    tr = _Translator(uri_bytes(pattern))
    py = tr.run()
    try:
        return re.compile(py, re.ASCII | (re.IGNORECASE if caseless else 0))
    except re.error as e:
        msg = e.msg
        for py_msg, pcre_msg in _PCRE_MESSAGES:
            if msg.startswith(py_msg):
                msg = pcre_msg
                break
        at = len(pattern)
        if e.pos is not None and e.pos < len(tr.pos) and \
                msg != "missing closing parenthesis":       # PCRE points at the end
            at = tr.pos[e.pos]
        raise tr.fail(msg, at) from None


# -- the location tree -------------------------------------------------------------------------


class LocationLike(Protocol):
    """What the tree needs from a location. Optional attributes read with getattr:
    `regex` (a precompiled pattern to reuse) and `auto_redirect` (bool, default False)."""

    @property
    def modifier(self) -> str: ...          # "", "=", "^~", "~", "~*", "@"

    @property
    def pattern(self) -> str: ...

    @property
    def children(self) -> Sequence[Any]: ...


L = TypeVar("L", bound=LocationLike)

_OK, _DONE, _AGAIN, _DECLINED = 0, 1, 2, 3
_STATIC: Final = ("", "=", "^~")
_REGEX: Final = ("~", "~*")


class LocationError(ValueError):
    """A configuration error in nginx's wording; `location` is the offending location."""

    def __init__(self, message: str, location: Any) -> None:
        super().__init__(message)
        self.location = location


class _Node(Generic[L]):
    # plain classes, not generic dataclasses: mypyc cannot compile a generic dataclass
    __slots__ = ("name", "exact", "inclusive", "auto_redirect", "sub", "left", "right", "tree")

    def __init__(self, name: str, exact: L | None, inclusive: L | None, auto_redirect: bool,
                 sub: _Level[L] | None) -> None:
        self.name = name                        # relative to the parent node's name
        self.exact = exact
        self.inclusive = inclusive
        self.auto_redirect = auto_redirect
        self.sub = sub                          # levels nested in `inclusive`
        self.left: _Node[L] | None = None
        self.right: _Node[L] | None = None
        self.tree: _Node[L] | None = None


class _Entry(Generic[L]):
    __slots__ = ("name", "exact", "inclusive", "sub", "line")

    def __init__(self, name: str, exact: L | None, inclusive: L | None,
                 sub: _Level[L] | None) -> None:
        self.name = name
        self.exact = exact
        self.inclusive = inclusive
        self.sub = sub
        self.line: list[_Entry[L]] = []


class _Level(Generic[L]):
    __slots__ = ("root", "regexes")

    def __init__(self, root: _Node[L] | None,
                 regexes: tuple[tuple[re.Pattern[str], L, _Level[L] | None], ...]) -> None:
        self.root = root
        self.regexes = regexes


def _is_named(loc: Any) -> bool:
    return bool(loc.modifier == "@" or (loc.modifier == "" and loc.pattern.startswith("@")))


def _check_nested(parent: Any, child: Any) -> None:
    cname = child.pattern
    if parent.modifier == "=":
        raise LocationError(f'location "{cname}" cannot be inside the exact location '
                            f'"{parent.pattern}"', child)
    if _is_named(parent):
        raise LocationError(f'location "{cname}" cannot be inside the named location '
                            f'"{parent.pattern}"', child)
    if _is_named(child):
        raise LocationError(f'named location "{cname}" can be on the server level only', child)
    # nginx compares with the parent's *name*, which for a regex parent is the regex text
    if child.modifier in _STATIC and not cname.startswith(parent.pattern):
        raise LocationError(f'location "{cname}" is outside location "{parent.pattern}"', child)


def _key(name: str) -> str:
    """A name or URI as ngx_filename_cmp orders it: '/' is the lowest character (below '-'
    and '.', above the end of the string), so "/a/" sorts before "/a-a" and the tree nginx
    builds, and walks, has that shape. Mapping '/' to NUL gives that order to plain string
    comparison (a location name holds no NUL, and a URI cannot: %00 is refused). The tree
    keeps its names in this form; lookups compare the URI in the same form."""
    return name.replace("/", "\x00")


def _build_level(locations: Sequence[L]) -> _Level[L]:
    entries: list[_Entry[L]] = []
    regexes: list[tuple[re.Pattern[str], L, _Level[L] | None]] = []
    for loc in locations:
        mod = loc.modifier
        if _is_named(loc) or (mod not in _STATIC and mod not in _REGEX):
            continue                                # named, or no-name ("if", limit_except)
        kids = list(loc.children)
        for kid in kids:
            _check_nested(loc, kid)
        sub = _build_level(kids) if kids else None
        if mod in _REGEX:
            rx = getattr(loc, "regex", None)
            if not isinstance(rx, re.Pattern):
                try:
                    rx = compile_nginx_regex(loc.pattern, mod == "~*")
                except ValueError as err:
                    raise LocationError(str(err), loc) from None
            regexes.append((rx, loc, sub))
        elif mod == "=":
            entries.append(_Entry(_key(uri_bytes(loc.pattern)), loc, None, sub))
        else:
            entries.append(_Entry(_key(uri_bytes(loc.pattern)), None, loc, sub))
    # ngx_http_cmp_locations: by name (ngx_filename_cmp: '/' lowest, see _key), an exact
    # location before the inclusive one of the same name (the sort is stable, so duplicates
    # stay in file order)
    entries.sort(key=lambda e: (e.name, e.exact is None))
    joined: list[_Entry[L]] = []
    for e in entries:                               # ngx_http_join_exact_locations
        if joined and joined[-1].name == e.name:
            prev = joined[-1]
            if (prev.exact is not None and e.exact is not None) or \
                    (prev.inclusive is not None and e.inclusive is not None):
                dup: Any = e.exact if e.exact is not None else e.inclusive
                raise LocationError(f'duplicate location "{dup.pattern}"', dup)
            prev.inclusive = e.inclusive
            prev.sub = e.sub
            continue
        joined.append(e)
    return _Level(_tree(_nest(joined), 0), tuple(regexes))


def _nest(entries: list[_Entry[L]]) -> list[_Entry[L]]:
    """ngx_http_create_locations_list: a prefix location owns the following names that start
    with it."""
    out: list[_Entry[L]] = []
    i = 0
    n = len(entries)
    while i < n:
        e = entries[i]
        i += 1
        if e.inclusive is not None:
            j = i
            while j < n and entries[j].name.startswith(e.name):
                j += 1
            if j > i:
                e.line = _nest(entries[i:j])
                i = j
        out.append(e)
    return out


def _tree(entries: list[_Entry[L]], prefix: int) -> _Node[L] | None:
    """ngx_http_create_locations_tree: the middle element is the node (ngx_queue_middle)."""
    if not entries:
        return None
    mid = len(entries) // 2
    e = entries[mid]
    auto = bool((e.exact is not None and getattr(e.exact, "auto_redirect", False)) or
                (e.inclusive is not None and getattr(e.inclusive, "auto_redirect", False)))
    node: _Node[L] = _Node(e.name[prefix:], e.exact, e.inclusive, auto, e.sub)
    node.left = _tree(entries[:mid], prefix)
    node.right = _tree(entries[mid + 1:], prefix)
    if e.line:
        node.tree = _tree(e.line, len(e.name))
    return node


def _find_static(node: _Node[L] | None, uri: str
                 ) -> tuple[int, L | None, _Level[L] | None]:
    """ngx_http_core_find_static_location, step for step; `uri` in `_key` form."""
    rv = _DECLINED
    loc: L | None = None
    sub: _Level[L] | None = None
    pos = 0
    length = len(uri)
    while node is not None:
        name = node.name
        nlen = len(name)
        rest = length - pos
        if rest >= nlen:
            if not uri.startswith(name, pos):
                node = node.left if uri[pos:pos + nlen] < name else node.right
                continue
            if rest > nlen:
                if node.inclusive is not None:
                    loc, sub, rv = node.inclusive, node.sub, _AGAIN
                    node = node.tree
                    pos += nlen
                    continue
                node = node.right                   # exact only
                continue
            if node.exact is not None:
                return _OK, node.exact, None
            return _AGAIN, node.inclusive, node.sub
        # the URI (from pos) is shorter than the node's name
        head = name[:rest]
        tail = uri[pos:]
        if tail != head:
            node = node.left if tail < head else node.right
            continue
        if rest + 1 == nlen and node.auto_redirect:
            loc = node.exact if node.exact is not None else node.inclusive
            sub = None
            rv = _DONE
        node = node.left
    return rv, loc, sub


def _find(level: _Level[L], uri: str, key: str
          ) -> tuple[int, L | None, re.Match[str] | None]:
    """ngx_http_core_find_location: (rc, location chosen or None if unchanged, captures).
    `key` is `_key(uri)`, for the static tree; the regexes see `uri`."""
    rc, loc, sub = _find_static(level.root, key)
    caps: re.Match[str] | None = None
    if rc == _OK or rc == _DONE:
        return rc, loc, None
    noregex = False
    if rc == _AGAIN:
        assert loc is not None
        noregex = loc.modifier == "^~"
        if sub is not None:
            rc, inner, caps = _find(sub, uri, key)
            if inner is not None:
                loc = inner
            if rc == _OK or rc == _DONE:
                return rc, loc, caps
        else:
            rc = _DECLINED
    if not noregex:
        for rx, rloc, rsub in level.regexes:
            m = rx.search(uri)
            if m is None:
                continue
            loc = rloc
            if rx.groups:
                caps = m
            if rsub is not None:
                _, inner, inner_caps = _find(rsub, uri, key)
                if inner is not None:
                    loc = inner
                if inner_caps is not None:
                    caps = inner_caps
            return _OK, loc, caps
    return rc, loc, caps


class LocationTree(Generic[L]):
    """The locations of one server, ready for per-request lookups.

    build() raises LocationError (a ValueError) with nginx's wording:
      duplicate location "/x"
      location "/x" is outside location "/y"
      location "/x" cannot be inside the exact location "/y"
      location "/x" cannot be inside the named location "@y"
      named location "@x" can be on the server level only
      pcre2_compile() failed: ... in "..." at "..."   (a regex location without `.regex`)
    """

    __slots__ = ("_level", "exact", "named_locations")

    def __init__(self, level: _Level[L], exact: dict[str, L], named: dict[str, L]) -> None:
        self._level = level
        self.exact = exact                  # top-level `=` locations by name
        self.named_locations = named        # "@name" -> location (the first of a name wins)

    @classmethod
    def build(cls, locations: Sequence[L]) -> LocationTree[L]:
        named: dict[str, L] = {}
        for loc in locations:
            if _is_named(loc):
                if loc.children:
                    _check_nested(loc, loc.children[0])
                named.setdefault(loc.pattern, loc)
        exact = {uri_bytes(loc.pattern): loc for loc in reversed(locations) if loc.modifier == "="}
        return cls(_build_level(locations), exact, named)

    def lookup(self, uri: str) -> tuple[L | None, re.Match[str] | None, bool]:
        """Find the location for a normalised URI ($uri), nginx's way: (location, captures,
        redirect), a plain tuple (a NamedTuple is built by interpreted code, even compiled).

        location: the selected location, or None when nothing matched (the server level
          applies).
        captures: the last regex match that had capture groups (positional via group(n),
          named via groupdict()), or None; None means "keep the captures you had" (nginx
          keeps those of a regex server_name).
        redirect: True when nginx answers 301 with `Location: <uri>/` (and the query
          string): `location` is then the auto-redirect location, whose `internal` flag
          still applies.
        """
        rc, loc, caps = _find(self._level, uri, _key(uri))
        return loc, caps, rc == _DONE

    def match(self, uri: str) -> tuple[L | None, re.Match[str] | None]:
        """(location, captures) — `lookup` without the redirect flag. For a URI that nginx
        answers with the auto-redirect 301, the location is the one that asks for it."""
        rc, loc, caps = _find(self._level, uri, _key(uri))
        return loc, caps

    def needs_slash_redirect(self, uri: str) -> bool:
        """True when nginx answers this URI with a 301 to uri + '/' (a proxied location named
        uri + '/', no location named exactly uri; regexes are not consulted)."""
        return _find(self._level, uri, _key(uri))[0] == _DONE

    def named(self, name: str) -> L | None:
        """A named location, by "@name" (or "name")."""
        loc = self.named_locations.get(name)
        if loc is None and not name.startswith("@"):
            loc = self.named_locations.get("@" + name)
        return loc
