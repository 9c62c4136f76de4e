"""`charset`, `source_charset`, `charset_types`, `override_charset`: the header half of
nginx's ngx_http_charset_filter_module.

Theory of operation
-------------------
The filter runs after add_header (nginx's order) on every response whose location sets
`charset` (a location without it pays one attribute test). It decides, as
ngx_http_charset_header_filter does, from the response's Content-Type:

* no Content-Type: nothing to do;
* Content-Type names a charset (`text/html; charset=koi8-r`, as an upstream sends it):
  left alone unless `override_charset on`, then that charset is the source;
* otherwise the type (the whole value, lower-cased: nginx only splits off a `charset`
  parameter) must be in `charset_types`, and the source is `source_charset` (off: none).

With no source, or a source equal to `charset` (ignoring case), the Content-Type becomes
`type; charset=<charset>`. Converting the body between two different charsets needs a
`charset_map`, which truehop refuses: the configuration check refuses a static pair as
nginx does (`no "charset_map" between the charsets ...`), and a charset met at run time
(an upstream's, with override_charset on) leaves the response as it came, as nginx does
when it has no table.
"""

from __future__ import annotations

from truehop.conf.model import Settings
from truehop.route.state import RequestState


def split_charset(value: str) -> tuple[str, str | None]:
    """(the type, the charset) of a Content-Type value; the type is the whole value when
    no `charset=` parameter is there (ngx_http_upstream_copy_content_type)."""
    low = value.lower()
    at = low.find("charset=")
    if at < 0:
        return value, None
    semi = value.rfind(";", 0, at)
    if semi < 0:
        return value, None
    cs = value[at + 8:].split(";", 1)[0].strip().strip('"')
    return value[:semi].rstrip(" "), cs


def charset_filter(r: RequestState, s: Settings, headers: list[tuple[str, str]]) -> None:
    """Set the charset of the response's Content-Type in `headers` (in place)."""
    dst = s.charset
    if dst is None:
        return
    i = 0
    n = len(headers)
    while i < n:
        k = headers[i][0]
        if len(k) == 12 and k.lower() == "content-type":
            break
        i += 1
    else:
        return
    mime, src = split_charset(headers[i][1])
    if src is not None:
        if not s.override_charset:
            return
    else:
        types = s.charset_types
        if "*" not in types and mime.lower() not in types:
            return
        src = s.source_charset
    if src is not None and src.lower() != dst.lower():
        return      # a conversion with no charset_map: passed as it came
    headers[i] = (k, f"{mime}; charset={dst}")
