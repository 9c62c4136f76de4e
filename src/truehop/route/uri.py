"""URI normalisation as nginx's ngx_http_parse_complex_uri does it, and re-escaping.

The normalised URI is a str in which each character is one byte (latin-1), so that file
paths and regexes see the bytes nginx sees.
"""

from __future__ import annotations

import re


class BadRequest(Exception):
    status = 400


_HEX = "0123456789abcdefABCDEF"


def split_target(target: str) -> tuple[str, str | None]:
    path, q, query = target.partition("?")
    return path, (query if q else None)


def normalize_path(raw_path: str, merge_slashes: bool = True) -> str:
    """Percent-decode, resolve `.`/`..`, merge slashes. Raises BadRequest for a path that
    climbs above the root, a NUL, or a malformed escape."""
    if not raw_path.startswith("/"):
        raise BadRequest("path must start with /")
    if "%" in raw_path:
        out: list[str] = []
        i = 0
        n = len(raw_path)
        while i < n:
            ch = raw_path[i]
            if ch != "%":
                out.append(ch)
                i += 1
                continue
            h = raw_path[i + 1:i + 3]
            if len(h) != 2 or h[0] not in _HEX or h[1] not in _HEX:
                raise BadRequest("bad escape")
            out.append(chr(int(h, 16)))
            i += 3
        path = "".join(out)
    else:
        path = raw_path
    if "\x00" in path:
        raise BadRequest("NUL in path")
    if "/." not in path and (not merge_slashes or "//" not in path):
        return path
    segs: list[str] = []
    parts = path.split("/")
    trailing = parts[-1] in ("", ".", "..")
    for seg in parts[1:]:
        if seg == "" and merge_slashes:
            continue
        if seg == ".":
            continue
        if seg == "..":
            if not segs:
                raise BadRequest("path climbs above the root")
            segs.pop()
            continue
        segs.append(seg)
    result = "/" + "/".join(segs)
    if trailing and not result.endswith("/"):
        result += "/"
    if not merge_slashes and path.endswith("/") and not result.endswith("/"):
        result += "/"
    return result


# nginx's NGX_ESCAPE_URI: escape space, #, %, ?, controls and bytes >= 0x7f
_ESCAPE = re.compile(r"[\x00-\x20#%?\x7f-\xff\"<>\\^`{|}]")


def escape_uri(path: str) -> str:
    if _ESCAPE.search(path) is None:
        return path
    return _ESCAPE.sub(lambda m: f"%{ord(m.group(0)):02X}", path)
