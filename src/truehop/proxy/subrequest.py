"""Subrequests, as far as auth_request needs them (nginx's ngx_http_subrequest with
NGX_HTTP_SUBREQUEST_WAITED and `header_only`): the smallest honest mechanism.

A subrequest is a second `RequestState` for the same connection and server, whose URI is
the one given, that runs the same phases as any request (server rewrite, find location,
location rewrite, content: proxy_pass, `return`, a static file, internal redirects and
error_page included) through the pipeline, with two differences nginx makes too:

* it is internal (an `internal` location is reachable) and it skips the access phase
  (ngx_http_core_access_phase: `r != r->main`);
* its response is not sent: a `SubrequestExchange` stands where the client would be, keeps
  the status and the header fields, and drops the body (read from the upstream to its end,
  so the connection goes back to the pool).

What it is given of the main request (ngx_http_subrequest): the same header fields, the
HTTP version, the client address (after realip), $request_uri, $host and $server_name, and
the same variables (one `vars` table: what one sets, the other reads). Its method is GET
(nginx's sr->method_name; $request_method still says the main request's) and it has no body
(auth_request gives it an empty one, so nothing is read from the client): the upstream
request of a proxy_pass there is a GET without Content-Length or Transfer-Encoding, whatever
the client sent. nginx itself would copy the client's Content-Length into that request
unless `proxy_set_header Content-Length ""` (which every documented auth_request
configuration writes); truehop writes framing itself and never sends a length it has no
body for.

Not done (auth_request needs none of it): subrequests in memory, background subrequests
(mirror), postponed output, nested subrequests, $args on the subrequest URI.
"""

from __future__ import annotations

from typing import Any, Protocol

from truehop.http.events import RequestHead
from truehop.http.exchange import NO_BODY, Exchange
from truehop.route.state import RequestState


class SubrequestRunner(Protocol):
    """What runs a subrequest's phases (proxy.pipeline.Pipeline.subrequest)."""

    async def subrequest(self, sr: RequestState, ex: Exchange) -> None: ...


class SubrequestExchange(Exchange):
    """Where a subrequest's response goes: its status and header fields are kept, its body
    counted and dropped (nginx's sr->header_only)."""

    __slots__ = ("headers",)

    def __init__(self, head: RequestHead) -> None:
        self.head = head
        self.body = NO_BODY
        self.started = False
        self.finished = False
        self.status = 0
        self.bytes_sent = 0
        self.body_bytes_sent = 0
        self.keep_alive = True
        self.chunked = False
        self.head_only = True
        self.aborted = False
        self.remaining = None
        self.on_done = None
        self.settings = None
        self.headers: list[tuple[str, str]] = []

    def start_response(self, status: int, headers: list[tuple[str, str]],
                       content_length: int | None, reason: str | None = None,
                       close: bool = False, cork: bool = False) -> None:
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        self.headers = list(headers)

    def send_continue(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.body_bytes_sent += len(data)

    def flush(self) -> None:
        pass

    async def drain(self) -> None:
        pass

    @property
    def write_blocked(self) -> bool:
        return False

    async def sendfile(self, f: Any, offset: int, count: int) -> None:
        self.body_bytes_sent += count

    def end(self) -> None:
        self.finished = True

    def abort(self) -> None:
        self.aborted = True
        self.finished = True

    def get(self, name: str) -> list[str]:
        """The values of a response header field, in order."""
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]


def start_subrequest(r: RequestState, uri: str) -> tuple[RequestState, SubrequestExchange]:
    """The state and exchange of a subrequest of `r` to `uri` (ngx_http_subrequest)."""
    h = r.head
    head = RequestHead("GET", h.target, uri, None, h.version, h.headers, h.host, None, False,
                       h.keep_alive, None, False, h.scheme, 0, h.conn_tokens)
    sr = RequestState(r.conn, head, r.server)
    sr.parent = r.parent if r.parent is not None else r
    sr.uri = uri
    sr.args = None
    sr.uri_rewritten = True          # proxy_pass sends this URI, not the client's
    sr.internal = True
    sr.vars = r.vars
    sr.remote_addr = r.remote_addr
    sr.remote_port = r.remote_port
    sr.realip_remote_addr = r.realip_remote_addr
    sr.realip_done = r.realip_done
    sr.host = r.host
    sr.server_name = r.server_name
    sr.request_id = r.request_id
    sr.body_read = True              # auth_request's empty body: nothing is read
    return sr, SubrequestExchange(head)


async def run_subrequest(runner: SubrequestRunner, r: RequestState, uri: str
                         ) -> tuple[RequestState, SubrequestExchange]:
    """Run a subrequest of `r` to `uri` to its end; its state and what it answered."""
    sr, ex = start_subrequest(r, uri)
    try:
        await runner.subrequest(sr, ex)
    finally:
        up = sr.upstream_conn
        if up is not None and not up.is_closed():
            up.abort()      # not ended cleanly: never reused
        if not ex.finished:
            ex.end()
    return sr, ex
