"""Content codings as a client asks for them: the pure tests nginx's gzip modules make of
a request head (no I/O, no configuration).

* `accepts_gzip(value)`: an `Accept-Encoding` value allows gzip, as
  ngx_http_gzip_ok reads it: the fast path for the common "gzip, ..." first, then
  ngx_http_gzip_accept_encoding: a "gzip" token (case-insensitive) at the start or after ","
  or " ", then either nothing, a ",", or ";q=" with a quality that is not zero
  ("gzip;q=0" refuses; a malformed parameter refuses too, as nginx). The other codings and
  "*" are not read: nginx does not.
* `accepts_br(value)`: the third-party ngx_brotli module's own test for "br" (laxer about
  parameters than nginx's for gzip).
* `is_msie6(user_agent)`: MSIE 4 to 6 (not 6 with "SV1"), not Opera: the browsers
  `gzip_disable msie6` means (ngx_http_process_user_agent's r->headers_in.msie6).
"""

from __future__ import annotations


def _quality_nonzero(v: str, p: int) -> bool:
    """ngx_http_gzip_quantity: the q value from `p` on is a number that is not 0. The digits
    after the point are summed, not weighed, as nginx does: only zero matters here."""
    n = len(v)
    c = v[p]
    p += 1
    if c != "0" and c != "1":
        return False
    q = (ord(c) - 48) * 100
    if p == n:
        return q != 0
    c = v[p]
    p += 1
    if c == "," or c == " ":
        return q != 0
    if c != ".":
        return False
    digits = 0
    while p < n:
        c = v[p]
        p += 1
        if c == "," or c == " ":
            break
        if "0" <= c <= "9":
            q += ord(c) - 48
            digits += 1
            continue
        return False
    if q > 100 or digits > 3:
        return False
    return q != 0


def accepts_coding(value: str, token: str) -> bool:
    """ngx_http_gzip_accept_encoding for `token` (lower-case): found at the start or after
    "," or " ", followed by the end, ",", or ";q=<non-zero>" (spaces skipped)."""
    low = value.lower()
    n = len(value)
    t = len(token)
    start = 0
    while True:
        p = low.find(token, start)
        if p < 0:
            return False
        # nginx compares with where its search started (the start, or just after an
        # earlier match), not only the value's start
        if p == start or value[p - 1] == "," or value[p - 1] == " ":
            break
        start = p + t
    p += t
    while p < n:
        c = value[p]
        p += 1
        if c == ",":
            return True
        if c == ";":
            break
        if c != " ":
            return False
    else:
        return True
    # ";": a quality parameter must follow
    while p < n:
        c = value[p]
        p += 1
        if c == "q" or c == "Q":
            break
        if c != " ":
            return False
    else:
        return True
    if p + 2 > n or value[p] != "=":
        return False
    return _quality_nonzero(value, p + 1)


def accepts_gzip(value: str) -> bool:
    """ngx_http_gzip_ok's reading of Accept-Encoding (its first field)."""
    if len(value) < 4:
        return False
    # the most common case, tested first (case-sensitively) by nginx: "gzip, deflate"
    if value.startswith("gzip,"):
        return True
    return accepts_coding(value, "gzip")


def accepts_br(value: str) -> bool:
    """ngx_brotli's check_accept_encoding: a "br" token (case-insensitive) with ",", " " or
    the start before it and ",", " ", ";" or the end after it; refused only by a quality
    written as 0, 0., 0.0, 0.00 or 0.000 (a malformed one after "0" refuses too), any
    other parameter, or none, accepts."""
    n = len(value)
    if n < 2:
        return False
    low = value.lower()

    def at(i: int) -> str:
        # the C code reads the NUL after the header value
        return value[i] if i < n else "\0"

    cursor = 0
    while True:
        p = low.find("br", cursor)
        if p < 0:
            return False
        before = " " if p == 0 else value[p - 1]
        cursor = p + 2
        after = " " if cursor >= n else value[cursor]
        if before not in ", " or after not in ", ;":
            continue
        break
    for want in (";", "q", "=", "0"):
        while at(cursor) == " ":
            cursor += 1
        if at(cursor) != want:
            return True
        cursor += 1
    if at(cursor) != ".":
        return False
    cursor += 1
    for _ in range(3):
        d = at(cursor)
        cursor += 1
        if not "0" <= d <= "9":
            return False
        if d != "0":
            return True
    return False


def is_msie6(ua: str) -> bool:
    """r->headers_in.msie6 (ngx_http_process_user_agent): "MSIE " then 4., 5., or 6. (6
    without "SV1" after it, XP SP2's MSIE 6 that handles gzip); never for Opera, which
    says MSIE too."""
    i = ua.find("MSIE ")
    if i < 0 or i + 7 >= len(ua) or "Opera" in ua:
        return False
    if ua[i + 6] != ".":
        return False
    major = ua[i + 5]
    if major == "4" or major == "5":
        return True
    return major == "6" and "SV1" not in ua[i + 8:]
