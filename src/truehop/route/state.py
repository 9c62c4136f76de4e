"""Per-request state: what nginx keeps in `ngx_http_request_t`, reduced to what truehop reads.

One `RequestState` lives for one request. The variable getters (`route.variables`), the
rewrite engine, the proxy pipeline and the access log all read it; only the pipeline writes
it. Fields are plain attributes (slots) because they are read on the hot path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from truehop.certificate import ClientCert
from truehop.clock import wall as _time
from truehop.http.events import RequestHead

if TYPE_CHECKING:
    from truehop.conf.model import LocationConf, ServerConf


class UpstreamLink(Protocol):
    """What the request state keeps of the upstream connection its exchange holds
    (net.upstream.UpstreamConnection): enough for the pipeline to abort one the exchange did
    not release, and for the byte counts of the attempt it served."""

    bytes_in: int
    bytes_out: int

    def is_closed(self) -> bool: ...

    def abort(self) -> None: ...


class ConnectionInfo:
    """What is known of the client connection; shared by every request on it."""

    __slots__ = (
        "remote_addr", "remote_port", "server_addr", "server_port", "scheme", "number",
        "requests", "ssl_protocol", "ssl_cipher", "ssl_server_name", "listen_key",
        "ssl_session_reused", "pipelined", "start", "client_cert",
    )

    def __init__(self, remote_addr: str, remote_port: int, server_addr: str, server_port: int,
                 scheme: str, number: int, listen_key: tuple[str, int] = ("*", 0)) -> None:
        self.remote_addr = remote_addr
        self.remote_port = remote_port
        self.server_addr = server_addr
        self.server_port = server_port
        self.scheme = scheme
        self.number = number
        self.requests = 0
        self.ssl_protocol = ""
        self.ssl_cipher = ""
        self.ssl_server_name = ""
        self.listen_key = listen_key
        self.ssl_session_reused = False     # $ssl_session_reused: the TLS session was resumed
        # $pipe: the current request's head was already read when the previous one ended
        # (HTTP/1 requests on a connection are answered one at a time)
        self.pipelined = False
        self.start = _time()            # $connection_time
        # the peer's certificate (lazily parsed), when the TLS context asked for one
        self.client_cert: ClientCert | None = None


class UpstreamTry:
    """One attempt at an upstream peer (nginx's ngx_http_upstream_state_t). Times are
    monotonic seconds; None until reached, shown as "-" by the variables: `connect` when the
    connection was ready (a reused one: at once), `header` when the response head arrived,
    `end` when the attempt ended, well or not. The byte counts are what went over this
    attempt's connection, shown per attempt like the times."""

    __slots__ = ("addr", "url", "status", "start", "connect", "header", "end",
                 "bytes_sent", "bytes_received", "response_length")

    def __init__(self, addr: str, url: str, start: float) -> None:
        self.addr = addr            # $upstream_addr: 127.0.0.1:3000, or the upstream's name
        self.url = url              # for error log lines: http://127.0.0.1:3000/x
        self.status = 0             # 0 until known
        self.start = start
        self.connect: float | None = None
        self.header: float | None = None
        self.end: float | None = None
        self.bytes_sent = 0         # $upstream_bytes_sent: request head and body written
        self.bytes_received = 0     # $upstream_bytes_received: status line, headers and body
        self.response_length = 0    # $upstream_response_length: the response body


class LimitState:
    """What the limit modules keep of a request (nginx's r->main->limit_req_status and
    limit_conn_status, and r->limit_rate): made when a limit first looks at it.
    The statuses are 0 (not looked at) or 1-based as nginx keeps them; `rate` is -1 until
    something sets it (X-Accel-Limit-Rate, an unbuffered response: 0, or the pacing body
    filter once it knows the rate); `proxy_rate` is proxy_limit_rate's, for this response."""

    __slots__ = ("req_status", "conn_status", "rate", "proxy_rate")

    def __init__(self) -> None:
        self.req_status = 0
        self.conn_status = 0
        self.rate = -1
        self.proxy_rate = 0


class RequestState:
    __slots__ = (
        "conn", "head", "server", "loc", "uri", "args", "captures", "vars", "remote_addr",
        "remote_port", "realip_remote_addr", "status", "body_bytes_sent", "bytes_sent",
        "start", "upstream_tries", "upstream_conn", "upstream_headers", "sent_headers", "request_length", "host", "proxy_host",
        "proxy_port", "server_name", "internal", "uri_changes", "request_body_length",
        "uri_rewritten", "rewrite_break", "uri_changed", "error_location", "in_error_page",
        "error_status", "extra_headers", "carried_headers", "x_accel_redirect",
        "upstream_uri", "request_id", "pipelined", "realip_done", "request_body", "request_body_file",
        "body_read", "body_file", "cache_status", "limits", "parent",
        "vary_encoding", "gzip_ratio", "brotli_ratio",
    )

    def __init__(self, conn: ConnectionInfo, head: RequestHead, server: ServerConf) -> None:
        self.conn = conn
        self.head = head
        self.server = server
        self.loc: LocationConf | None = None    # once chosen
        self.uri = head.path                    # normalised by the pipeline before routing
        self.args = head.query
        self.captures: Any = None               # re.Match of the last regex that matched
        self.vars: dict[str, str] = {}          # `set` variables and cached map results
        self.remote_addr = conn.remote_addr     # may be replaced by realip
        self.remote_port = conn.remote_port
        self.realip_remote_addr = conn.remote_addr
        self.status = 0
        self.body_bytes_sent = 0
        self.bytes_sent = 0
        self.start = _time()
        self.upstream_tries: list[UpstreamTry] = []
        # aborted by the pipeline unless released
        self.upstream_conn: UpstreamLink | None = None
        self.upstream_headers: list[tuple[str, str]] = []
        self.sent_headers: list[tuple[str, str]] = []
        self.request_length = head.header_bytes
        self.host = ""                          # $host: set by the pipeline after server choice
        self.proxy_host = ""
        self.proxy_port = ""
        self.server_name = ""
        self.internal = False                   # reached through an internal redirect
        self.uri_changes = 11                   # nginx's NGX_HTTP_MAX_URI_CHANGES + 1
        self.request_body_length = 0
        # the rewrite module's marks: the URI was changed (rewrite, try_files, an internal
        # redirect), so proxy_pass without a URI part sends the current one, not the
        # client's; `rewrite ... break` ran in this location (proxy_pass's URI part is then
        # ignored); a location's `rewrite` without a flag changed the URI (the location is
        # looked up again)
        self.uri_rewritten = False
        self.rewrite_break = False
        self.uri_changed = False
        # error_page: a Location set before the redirect to the page (`return 302 text`),
        # kept for the page's response; an error page is being served (no second one,
        # unless recursive_error_pages); the status the page is sent with (nginx's
        # r->err_status; 0: the page's own)
        self.error_location: str | None = None
        self.in_error_page = False
        self.error_status = 0
        # the fields of a static file's special response (304, 412, 416)
        self.extra_headers: list[tuple[str, str]] | None = None
        # fields an answer hands on across an internal redirect (X-Accel-Redirect's
        # Content-Type..., an intercepted 401's WWW-Authenticate); proxy.filters applies them
        self.carried_headers: list[tuple[str, str]] | None = None
        # the upstream's X-Accel-Redirect value, until the relay turns it into a redirect
        self.x_accel_redirect: str | None = None
        self.upstream_uri = ""                  # the URI of the upstream request line
        self.request_id: str | None = None      # $request_id, made when first read
        self.pipelined = conn.pipelined         # $pipe: read while the previous one ran
        self.realip_done = False                # realip replaced remote_addr already
        # $request_body: the body once read whole into memory (proxy_request_buffering on,
        # as nginx); None when it was not (streamed, discarded, no body was read, or it went
        # to a temp file)
        self.request_body: bytes | None = None
        # $request_body_file: the name of the temp file the buffered body went to (beyond
        # client_body_buffer_size, or client_body_in_file_only); None when it did not
        self.request_body_file: str | None = None
        # the client's body was taken by a proxy pass (read, streamed, or failed reading): a
        # later pass, after an internal redirect, sends what was kept and never reads again
        # (nginx reads r->request_body once); `body_file` is the kept proxy.request_body
        # BodyFile, closed when the exchange ends
        self.body_read = False
        self.body_file: Any = None
        # $upstream_cache_status: MISS, HIT, EXPIRED... (proxy.cache); "" when not cached
        self.cache_status = ""
        # the limit modules' view of this request (proxy.limits, proxy.pacing); None when
        # no limit looked at it
        self.limits: LimitState | None = None
        # the main request of a subrequest (auth_request's, proxy.subrequest); None for a
        # main request (nginx's r != r->main)
        self.parent: RequestState | None = None
        # gzip (proxy/gzip.py): a gzip module looked at the response (nginx's r->gzip_vary:
        # the header writer then adds `Vary: Accept-Encoding` under gzip_vary on); the
        # ratio of a compressed response, nginx's "%.2f" of in/out, for $gzip_ratio
        self.vary_encoding = False
        self.gzip_ratio: str | None = None
        self.brotli_ratio: str | None = None    # $brotli_ratio (proxy/brotli.py)
