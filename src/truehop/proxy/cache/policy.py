"""The proxy cache's decisions, with no I/O: what nginx's ngx_http_file_cache.c and the
cache parts of ngx_http_upstream.c decide from a key, a response head and the clock.

- `key_hash` / `entry_path`: the md5 of the key in hex is the file's name; `levels=1:2`
  puts it under its last character, then the two before it (ngx_create_hashed_filename).
- `freshness`: how long an upstream response stays fresh, in nginx 1.30's precedence:
  X-Accel-Expires, then Cache-Control (no-cache / no-store / private refuse, s-maxage then
  max-age, 0 refuses; stale-while-revalidate= and stale-if-error= widen what a stale entry
  may answer), then Expires (past or invalid refuses), then proxy_cache_valid; Set-Cookie
  and `Vary: *` refuse. `proxy_ignore_headers` turns each of those fields off.
- `variant`: the Vary'd request fields folded into a second md5 (nginx's c->variant).
- `not_modified` / `byte_range`: a cached response's answer to a conditional or a Range
  request (nginx's not_modified and range filters, which run on cached responses too).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import Final, Literal

from truehop.conf.model import CacheValid
from truehop.proxy.static import byte_ranges, parse_http_date

# $upstream_cache_status
MISS: Final = "MISS"
HIT: Final = "HIT"
EXPIRED: Final = "EXPIRED"
STALE: Final = "STALE"
UPDATING: Final = "UPDATING"
REVALIDATED: Final = "REVALIDATED"
BYPASS: Final = "BYPASS"

# why a response was not stored (the live detector says the first one once)
NO_VALIDITY: Final = "no-validity"      # nothing said how long: no proxy_cache_valid for it
REFUSED_CACHE_CONTROL: Final = "cache-control"
REFUSED_EXPIRES: Final = "expires"
REFUSED_ACCEL: Final = "x-accel-expires"
REFUSED_COOKIE: Final = "set-cookie"
REFUSED_VARY: Final = "vary"
REFUSED_STATUS: Final = "status"

# statuses never stored: interim, partial and the answers to conditional requests
_NEVER: Final = frozenset({101, 206, 304})


def key_hash(key: str) -> str:
    """The md5 of the key, in hex: the entry's file name (ngx_http_file_cache_create_key)."""
    return hashlib.md5(key.encode("latin-1", "replace")).hexdigest()


def variant(key: str, vary: Sequence[str], headers: Iterable[tuple[str, str]]) -> str:
    """The variant of a Vary'd response (ngx_http_file_cache_vary): the key and, for each
    name the response varies on, the request's values of that field."""
    wanted = [n.strip().lower() for n in vary if n.strip()]
    hs = list(headers)
    parts = [key]
    for name in wanted:
        vals = [v for k, v in hs if k.lower() == name]
        parts.append(f"{name}:{','.join(vals)}")
    return hashlib.md5("\n".join(parts).encode("latin-1", "replace")).hexdigest()


def entry_path(root: str, levels: tuple[int, ...], hexkey: str) -> str:
    """nginx's layout: levels=1:2 puts `...029c` at root/c/29/...029c."""
    end = len(hexkey)
    parts = [root]
    for n in levels:
        parts.append(hexkey[end - n:end])
        end -= n
    parts.append(hexkey)
    return os.path.join(*parts)


def valid_for(valid: tuple[CacheValid, ...], status: int) -> float:
    """proxy_cache_valid's time for a status (ngx_http_file_cache_valid): the lines in
    order, the first naming the status or `any`; 0 when none does."""
    for v in valid:
        if v.any or status in v.codes:
            return v.seconds
    return 0.0


def _delta_seconds(low: str, p: int) -> int | None:
    """ngx_http_upstream_process_delta_seconds: the digits at `p` up to `,` `;` ` ` or the
    end; None for anything else (nginx then does not cache); an overflow is the maximum."""
    n = 0
    end = len(low)
    while p < end:
        ch = low[p]
        if ch in ",; ":
            break
        if not "0" <= ch <= "9":
            return None
        n = n * 10 + ord(ch) - 48
        if n > _MAX_INT:
            return _MAX_INT
        p += 1
    return n


def _atoi(v: str) -> int | None:
    """ngx_atoi: only digits, at least one, no overflow; else None (NGX_ERROR)."""
    if not v:
        return None
    n = 0
    for ch in v:
        if not "0" <= ch <= "9":
            return None
        n = n * 10 + ord(ch) - 48
        if n > _MAX_INT:
            return None
    return n


_MAX_INT: Final = (1 << 63) - 1
_VARY_LEN: Final = 128     # NGX_HTTP_CACHE_VARY_LEN


class Freshness:
    """What a response head says about caching it: `valid_until` (wall time; 0: not
    stored, `refused` says why), the stale windows Cache-Control gave, and the Vary names."""

    __slots__ = ("valid_until", "refused", "updating_sec", "error_sec", "vary")

    def __init__(self) -> None:
        self.valid_until = 0.0
        self.refused = ""
        self.updating_sec = 0.0
        self.error_sec = 0.0
        self.vary: tuple[str, ...] = ()


def freshness(status: int, headers: Sequence[tuple[str, str]], ignore: frozenset[str],
              valid: tuple[CacheValid, ...], now: float) -> Freshness:
    """How long a response stays fresh, as nginx 1.30 decides it: the fields in the order
    received, each as its handler in ngx_http_upstream.c treats it
    (ngx_http_upstream_process_cache_control / _expires / _accel_expires / _set_cookie /
    _vary), then ngx_http_upstream_send_response's verdict: a refusal that the fields
    cannot lift (`cacheable = 0`: X-Accel-Expires 0, Set-Cookie, Vary *, a malformed
    max-age) wins; `no-cache`-like and a past Expires refuse unless X-Accel-Expires came
    after them; else the time they gave, else proxy_cache_valid's for the status.
    Whole seconds, as nginx counts them (ngx_time()): an entry valid for 1s is fresh until
    the second after next has begun (`fresh`)."""
    f = Freshness()
    now = float(int(now))
    if status in _NEVER or status < 200:
        f.refused = REFUSED_STATUS
        return f
    ign_cc = "cache-control" in ignore
    ign_exp = "expires" in ignore
    ign_xae = "x-accel-expires" in ignore
    until = 0.0
    hard = ""           # u->cacheable = 0
    no_cache = False    # u->headers_in.no_cache
    expired = False     # u->headers_in.expired
    accel_seen = expires_seen = False
    vary: list[str] = []
    vary_len = -2
    for k, v in headers:
        lk = k.lower()
        if lk == "cache-control":
            if ign_cc:
                continue
            low = v.lower()
            if not (until and accel_seen):
                if "no-cache" in low or "no-store" in low or "private" in low:
                    no_cache = True
                    continue
                p = low.find("s-maxage=")
                if p >= 0:
                    p += 9
                else:
                    p = low.find("max-age=")
                    if p >= 0:
                        p += 8
                if p >= 0:
                    n = _delta_seconds(low, p)
                    if n is None:
                        hard = hard or REFUSED_CACHE_CONTROL
                        continue
                    if n == 0:
                        no_cache = True
                        continue
                    until = min(now + n, float(_MAX_INT))
                    expired = False
            # the extensions count even after X-Accel-Expires
            p = low.find("stale-while-revalidate=")
            if p >= 0:
                n = _delta_seconds(low, p + 23)
                if n is None:
                    hard = hard or REFUSED_CACHE_CONTROL
                    continue
                f.updating_sec = f.error_sec = float(n)
            p = low.find("stale-if-error=")
            if p >= 0:
                n = _delta_seconds(low, p + 15)
                if n is None:
                    hard = hard or REFUSED_CACHE_CONTROL
                    continue
                f.error_sec = float(n)
        elif lk == "expires":
            if expires_seen:
                continue        # a duplicate is ignored
            expires_seen = True
            if ign_exp or until:
                continue
            t = parse_http_date(v)
            if t is None or t < now:
                expired = True
                continue
            until = t
        elif lk == "x-accel-expires":
            if accel_seen:
                continue        # a duplicate is ignored
            accel_seen = True
            if ign_xae:
                continue
            if v[:1] != "@":
                n = _atoi(v)
                if n == 0:
                    hard = hard or REFUSED_ACCEL
                    continue
                if n is None:
                    continue
                until = now + n
            else:
                n = _atoi(v[1:])
                if n is None:
                    continue
                until = float(n)
            no_cache = expired = False
        elif lk == "set-cookie":
            if "set-cookie" not in ignore:
                hard = hard or REFUSED_COOKIE
        elif lk == "vary":
            if "vary" in ignore or hard:
                continue
            if v.strip() == "*":
                hard = REFUSED_VARY
                continue
            vary_len += len(v) + 2
            if vary_len > _VARY_LEN:
                hard = REFUSED_VARY
                continue
            vary.extend(x.strip() for x in v.split(","))
    if hard:
        f.refused = hard
        return f
    if no_cache:
        f.refused = REFUSED_CACHE_CONTROL
        return f
    if expired:
        f.refused = REFUSED_EXPIRES
        return f
    f.vary = tuple(x for x in vary if x)
    if not until:
        secs = valid_for(valid, status)
        if secs <= 0:
            f.refused = NO_VALIDITY
            return f
        until = now + secs
    f.valid_until = until
    return f


def fresh(valid_until: float, now: float) -> bool:
    """ngx_http_file_cache_read's test: expired once valid_sec < now, in whole seconds."""
    return valid_until >= int(now)


def says_nothing(headers: Sequence[tuple[str, str]]) -> bool:
    """The response carries no field that decides caching (the lint detector's case: with
    no proxy_cache_valid for its status such an app caches nothing)."""
    for k, _ in headers:
        lk = k.lower()
        if lk in ("cache-control", "expires", "x-accel-expires"):
            return False
    return True


def truthy(values: Iterable[str]) -> bool:
    """proxy_cache_bypass / proxy_no_cache: any value that is neither empty nor "0"."""
    for v in values:
        if v and v != "0":
            return True
    return False


def etag_matches(header: str, etag: str | None, weak: bool) -> bool:
    """nginx's ngx_http_test_if_match (weak for If-None-Match)."""
    if header.strip() == "*":
        return etag is not None
    if etag is None:
        return False
    if weak and etag.startswith("W/"):
        etag = etag[2:]
    for item in header.split(","):
        item = item.strip()
        if weak and item.startswith("W/"):
            item = item[2:]
        if item == etag:
            return True
    return False


def not_modified(req: dict[str, str], etag: str | None, last_modified: str | None,
                 ims_mode: str) -> int:
    """The not_modified filter on a cached 200: 412 (If-Match / If-Unmodified-Since fail),
    304 (If-None-Match / If-Modified-Since match), or 0 to send the response."""
    lm = parse_http_date(last_modified) if last_modified is not None else None
    ius = req.get("if-unmodified-since")
    if ius is not None:
        t = parse_http_date(ius)
        if lm is None or t is None or t < lm:
            return 412
    im = req.get("if-match")
    if im is not None and not etag_matches(im, etag, weak=False):
        return 412
    ims = req.get("if-modified-since")
    inm = req.get("if-none-match")
    if ims is None and inm is None:
        return 0
    if ims is not None:
        if ims_mode == "off" or lm is None:
            return 0
        t = parse_http_date(ims)
        if t != lm and (ims_mode == "exact" or t is None or t < lm):
            return 0
    if inm is not None and not etag_matches(inm, etag, weak=True):
        return 0
    return 304


def byte_range(req: dict[str, str], size: int, etag: str | None, last_modified: str | None,
               max_ranges: int | None) -> list[tuple[int, int]] | None | Literal[False]:
    """A `Range: bytes=` on a cached 200 (the range filter, ngx_http_range_header_filter):
    the [start, end) ranges to send as 206 (several: multipart/byteranges); False for 416;
    None for the whole response (no Range, an If-Range that does not match, too many)."""
    rng = req.get("range")
    if rng is None or len(rng) < 7 or rng[:6].lower() != "bytes=":
        return None
    if max_ranges == 0:
        return None
    ir = req.get("if-range")
    if ir is not None:
        if len(ir) >= 2 and ir.endswith('"'):
            if etag is None or ir != etag:
                return None
        elif last_modified is None or parse_http_date(ir) != parse_http_date(last_modified):
            return None
    return byte_ranges(rng[6:], size, max_ranges)
