"""Request-target handling as nginx 1.30 does it.

`normalize_path` is ngx_http_parse_complex_uri (src/http/ngx_http_parse.c): percent-decode
the whole path, resolve `.` and `..` segments, merge slashes (`merge_slashes on`). The result
is nginx's `$uri`: a str in which each character is one byte (latin-1), so that file paths
and regexes see the bytes nginx sees.

Rules reproduced exactly (each one is a branch of nginx's state machine):

* `%XX` decodes to byte XX and is then processed as if it had been sent raw — `%2F` is a
  slash (merged, and a segment separator), `%2e%2e` is a `..` segment — except that a decoded
  `%`, `#` or `?` is a literal character.
* An invalid escape (`%zz`, `%4`, a trailing `%`) and `%00` are 400 Bad Request.
* `..` that climbs above the root is 400; `/a/..` is `/`; a trailing `.`/`..` segment leaves a
  trailing slash (`/a/.` -> `/a/`).
* A raw `#` ends the path (the fragment is dropped); a raw `?` ends it too (the caller normally
  splits the query off first with `split_target`).
* Raw control characters (0x00-0x1f, 0x7f) are 400, as nginx's request-line parser says;
  a raw space is allowed (nginx accepts it in HTTP/1.x request lines).
* With `merge_slashes off`, empty segments are kept and `..` removes one of them
  (`/a//..` -> `/a/`).

`escape_uri` is ngx_escape_uri(NGX_ESCAPE_URI): what nginx does to `$uri` (or its tail)
before putting it in an upstream request line.
"""

from __future__ import annotations

import re
from typing import ClassVar, Final


class BadRequest(Exception):
    """The request target cannot be a URI nginx accepts: answer 400."""

    status: ClassVar[int] = 400


# anything that makes the path "complex" for nginx (or invalid): the fast path skips all
# work when none of these occur
_COMPLEX: Final = re.compile(r"[%#?\x00-\x1f\x7f]|/\.|//")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_ESC: Final = re.compile(r"%(.?)(.?)", re.DOTALL)
_HEXDIGITS: Final = frozenset("0123456789abcdefABCDEF")


def split_target(target: str) -> tuple[str, str | None]:
    """Split an origin-form request target into (path, query); query is None when there is
    no '?'. A fragment ('#...') is dropped from both, as nginx does."""
    hash_at = target.find("#")
    if hash_at >= 0:
        target = target[:hash_at]
    path, q, query = target.partition("?")
    return path, (query if q else None)


def _decode(raw: str) -> str:
    """Percent-decode every %XX. Decoded characters are then handled like raw ones (so %2F
    is a slash and %2e%2e a `..` segment); a decoded '%', '#' or '?' stays a literal because
    decoding is one pass and the raw '#'/'?' were cut off before."""

    def one(m: re.Match[str]) -> str:
        h1, h2 = m.group(1), m.group(2)
        if not h1 or not h2 or h1 not in _HEXDIGITS or h2 not in _HEXDIGITS:
            raise BadRequest("client sent invalid request: bad escape")
        c = int(h1 + h2, 16)
        if c == 0:
            raise BadRequest("client sent invalid request: %00 in URI")
        return chr(c)

    return _ESC.sub(one, raw)


def normalize_path(raw_path: str, merge_slashes: bool = True) -> str:
    """nginx's $uri for a raw path (see the module docstring). Raises BadRequest (400)."""
    if not raw_path:
        return "/"                      # absolute-form target without a path
    if raw_path[0] != "/":
        raise BadRequest("client sent invalid request: path must start with /")
    m = _COMPLEX.search(raw_path)
    if m is None or (not merge_slashes and m.group(0) == "//" and
                     _COMPLEX.search(raw_path.replace("//", "/")) is None):
        return raw_path
    # a raw '#' or '?' ends the path
    end = len(raw_path)
    for stop in ("#", "?"):
        i = raw_path.find(stop)
        if 0 <= i < end:
            end = i
    path = raw_path[:end]
    if _CONTROL.search(path) is not None:
        raise BadRequest("client sent invalid request: control character in URI")
    return _resolve(_decode(path) if "%" in path else path, merge_slashes)


def _resolve(path: str, merge_slashes: bool) -> str:
    """Resolve dot segments and merge slashes in a decoded path (which starts with '/').
    Equivalent to nginx's sw_slash/sw_dot/sw_dot_dot states: a trailing '', '.' or '..'
    segment leaves a trailing slash; '..' pops the previous segment (an empty one too when
    slashes are not merged)."""
    if "/." not in path and (not merge_slashes or "//" not in path):
        return path
    parts = path.split("/")
    segs: list[str] = []
    for seg in parts[1:-1]:
        if seg == "..":
            if not segs:
                raise BadRequest("client sent invalid request: URI climbs above the root")
            segs.pop()
        elif seg == "." or (seg == "" and merge_slashes):
            continue
        else:
            segs.append(seg)
    last = parts[-1]
    if last == "..":
        if not segs:
            raise BadRequest("client sent invalid request: URI climbs above the root")
        segs.pop()
    elif last not in (".", ""):
        return "/" + "/".join(segs + [last])
    # trailing slash
    return "/" + "".join(s + "/" for s in segs)


# nginx's NGX_ESCAPE_URI table: controls, space, '"', '#', '%', '<', '>', '?', '\\', '^',
# '`', '{', '|', '}', DEL and every byte >= 0x80
_ESCAPED: Final = "".join(chr(c) for c in range(256) if c < 0x21 or c >= 0x7f) + "\"#%<>?\\^`{|}"
_ESCAPE: Final = re.compile("[" + re.escape(_ESCAPED) + "]")
_ESCAPE_TABLE: Final = {ord(c): f"%{ord(c):02X}" for c in _ESCAPED}


def escape_uri(path: str) -> str:
    """Re-encode a normalised URI for an upstream request line (NGX_ESCAPE_URI)."""
    if _ESCAPE.search(path) is None:
        return path
    return path.translate(_ESCAPE_TABLE)


# nginx's NGX_ESCAPE_ARGS table: the URI table's characters plus '&', '+' and ';' (they
# would change the meaning of the argument string they land in): controls, space, '"', '#',
# '%', '&', '+', ';', '<', '>', '?', '\\', '^', '`', '{', '|', '}', DEL and every byte >= 0x80
_ARGS_ESCAPED: Final = "".join(chr(c) for c in range(256) if c < 0x21 or c >= 0x7f) + \
    "\"#%&+;<>?\\^`{|}"
_ARGS_ESCAPE: Final = re.compile("[" + re.escape(_ARGS_ESCAPED) + "]")
_ARGS_TABLE: Final = {ord(c): f"%{ord(c):02X}" for c in _ARGS_ESCAPED}


def escape_args(text: str) -> str:
    """ngx_escape_uri(NGX_ESCAPE_ARGS): what nginx does to a regex capture it copies into
    an argument string (or into a redirect) when the request's URI was escaped."""
    if _ARGS_ESCAPE.search(text) is None:
        return text
    return text.translate(_ARGS_TABLE)


_HEXVAL: Final = {c: int(c, 16) for c in "0123456789abcdefABCDEF"}


def unescape_redirect(text: str) -> str:
    """ngx_unescape_uri(NGX_UNESCAPE_REDIRECT), as `rewrite ... redirect` applies it to the
    rendered replacement: up to the first '?' (a raw one, or a decoded `%3F`/`%3f`), each
    %XX becomes its character when that is above '%' and below DEL, else stays as written;
    the rest is copied as it is. An invalid escape loses its '%' (`%zz` -> `zz`), and a
    valid first digit with an invalid second loses all three characters, as in nginx."""
    q = text.find("?")
    head = text if q < 0 else text[:q]
    if "%" not in head:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        i += 1
        if ch == "?":
            out.append(ch)
            break
        if ch != "%":
            out.append(ch)
            continue
        if i >= n:
            break                                   # a trailing '%' is dropped
        d1 = _HEXVAL.get(text[i])
        if d1 is None:
            out.append(text[i])                     # "the invalid quoted character"
            i += 1
            continue
        if i + 1 >= n:
            i += 1
            break
        c2 = text[i + 1]
        d2 = _HEXVAL.get(c2)
        i += 2
        if d2 is None:
            continue                                # both digits and the '%' are lost
        v = d1 * 16 + d2
        if v == 0x3F:                               # a decoded '?' starts the args too
            out.append("?")
            break
        if 0x25 < v < 0x7F:
            out.append(chr(v))
        else:
            out.append(text[i - 3:i])
    out.append(text[i:])
    return "".join(out)
