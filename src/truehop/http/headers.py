"""Small header helpers shared by the HTTP/1 and HTTP/2 layers and the proxy.

* `HOP_BY_HOP`: fields that describe one connection and are never forwarded (RFC 9110 §7.6.1,
  plus the legacy names nginx and the bad-input research list). `Trailer` is included because
  truehop drops trailers: announcing fields that will never come would be a lie.
* `connection_tokens(value)`: the lower-cased option names of a `Connection` value.
* `is_token(name)`: RFC 9110 token check, cached for the handful of names a proxy sees.
* `get_header` / `get_all`: case-insensitive lookups over a `[(name, value)]` list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

HOP_BY_HOP: Final[frozenset[str]] = frozenset({
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "transfer-encoding",
    "http2-settings",
    "trailer",
})

# tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
#         / DIGIT / ALPHA
TCHAR_BYTES: Final[bytes] = (b"!#$%&'*+-.^_`|~0123456789"
                      b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NOT_TCHAR: Final[bytes] = bytes(b for b in range(256) if b not in TCHAR_BYTES)

# names already checked by is_token; `known_tokens.get(name)` is its fast path, for loops
# that check every field of every message
known_tokens: Final[dict[str, bool]] = {}
_TOKEN_CACHE_MAX: Final = 4096


def is_token_bytes(b: bytes) -> bool:
    """True when `b` is a non-empty RFC 9110 token."""
    return bool(b) and not b.translate(None, TCHAR_BYTES) and b.isascii()


def is_token(name: str) -> bool:
    """True when `name` is a non-empty RFC 9110 token (header names, methods)."""
    ok = known_tokens.get(name)
    if ok is None:
        try:
            raw = name.encode("latin-1")
        except UnicodeEncodeError:
            return False
        ok = is_token_bytes(raw)
        if len(known_tokens) < _TOKEN_CACHE_MAX:
            known_tokens[name] = ok
    return ok


def connection_tokens(value: str) -> set[str]:
    """`"keep-alive, Upgrade"` -> `{"keep-alive", "upgrade"}` (empty elements skipped)."""
    if "," not in value:
        v = value.strip(" \t").lower()
        return {v} if v else set()
    out: set[str] = set()
    for part in value.split(","):
        p = part.strip(" \t").lower()
        if p:
            out.add(p)
    return out


def get_header(headers: Iterable[tuple[str, str]], lname: str) -> str | None:
    """First value of a header; `lname` given lower-case."""
    for k, v in headers:
        if len(k) == len(lname) and k.lower() == lname:
            return v
    return None


def get_all(headers: Iterable[tuple[str, str]], lname: str) -> list[str]:
    """Every value of a header, in order; `lname` given lower-case."""
    return [v for k, v in headers if len(k) == len(lname) and k.lower() == lname]


def has_value_injection(value: str) -> bool:
    """True when a field value contains CR, LF or NUL (never serialise such a value)."""
    return "\r" in value or "\n" in value or "\0" in value
