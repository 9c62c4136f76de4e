"""nginx's status table: the reason phrase of each status line, the title of each built-in
error page, and the internal codes nginx sends under another status. One table for every
writer (the HTTP/1 status line, the pipeline's special responses), so they cannot disagree.

Taken from nginx 1.30's ngx_http_status_lines (ngx_http_header_filter_module.c) and
ngx_http_error_pages (ngx_http_special_response.c). A status nginx has no line for is written
with no reason ("HTTP/1.1 203 "), and a special response nginx has no page for goes out with
no body ("unknown code, zero body"): 203, 205, 407, 417, 422-428, 506... are such.
"""

from __future__ import annotations

from typing import Final

# the reason phrase of nginx's status lines
REASONS: Final[dict[int, str]] = {
    100: "Continue", 101: "Switching Protocols",
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 206: "Partial Content",
    301: "Moved Permanently", 302: "Moved Temporarily", 303: "See Other",
    304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Not Allowed", 406: "Not Acceptable", 408: "Request Time-out",
    409: "Conflict", 410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Request Entity Too Large", 414: "Request-URI Too Large",
    415: "Unsupported Media Type", 416: "Requested Range Not Satisfiable",
    421: "Misdirected Request", 429: "Too Many Requests",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Temporarily Unavailable", 504: "Gateway Time-out",
    505: "HTTP Version Not Supported", 507: "Insufficient Storage",
}

# the titles of nginx's built-in pages. Mostly the reason phrase; a few differ (302 "Found",
# 401 "Authorization Required") and the internal codes 494-497 have pages of their own.
TITLES: Final[dict[int, str]] = {
    301: "Moved Permanently", 302: "Found", 303: "See Other", 307: "Temporary Redirect",
    308: "Permanent Redirect",
    **{c: r for c, r in REASONS.items() if 400 <= c <= 416}, 401: "Authorization Required",
    421: "Misdirected Request", 429: "Too Many Requests",
    494: "Request Header Or Cookie Too Large", 495: "The SSL certificate error",
    496: "No required SSL certificate was sent",
    497: "The plain HTTP request was sent to HTTPS port",
    **{c: REASONS[c] for c in (500, 501, 502, 503, 504, 505, 507)},
}

# nginx's internal codes, sent as 400 (ngx_http_special_response_handler); 499 (the client
# closed the connection) is only ever logged, but written as 400 should it be written
SENT_AS: Final[dict[int, int]] = {494: 400, 495: 400, 496: 400, 497: 400, 499: 400}
