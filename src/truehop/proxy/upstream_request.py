"""The upstream request, built as one value (nginx's ngx_http_proxy_create_request).

Pure: no sockets, no awaits. Given the request state, the location's settings, the URI
chosen by `proxy.target` and the client body as read (or to be streamed), `build_request`
returns an `UpstreamRequest`: method, URI, headers (one framing header, `proxy_set_header`
results, the client's headers minus hop-by-hop ones), the body and how it is sent, the
upgrade decision, the connection-reuse verdict and the serialized head. The proxy sends it;
`truehop explain` prints it (with `notes=True`, each header's source line and each header
left out with the reason), so the two cannot disagree.

The decisions made before the body is read are here too: `upgrade_ok` (an upgrade the
client really asked for and the proxy may forward), `body_mode` and `reads_body_whole` (whether the client body is
read whole before the request is written: HTTP/2 sizes its flow-control window by it).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Final

from truehop.conf.model import HeaderSetting, Settings, UpstreamConf
from truehop.http.events import RequestHead
from truehop.http.h1client import request_head_bytes
from truehop.http.headers import HOP_BY_HOP, connection_tokens
from truehop.proxy.request_body import BodyFile
from truehop.route.state import RequestState

# headers nginx never copies from the client when it writes the upstream request
CLIENT_SKIP: Final = frozenset({"host", "connection", "keep-alive", "proxy-connection", "te", "upgrade",
                         "transfer-encoding", "content-length", "expect", "http2-settings",
                         "trailer"})
# methods whose empty body is still framed (Content-Length: 0), as nginx writes them
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
# what a proxy_set_header line is, for the per-request loop (0: any other header)
_SET_KIND: Final = {"host": 1, "upgrade": 2, "connection": 3}
_KIND_HOST: Final = 1
_KIND_UPGRADE: Final = 2
_KIND_CONNECTION: Final = 3
_NAME_CACHE_MAX: Final = 1024

# how the client's body reaches the upstream (nginx: r->request_body_no_buffering and the
# proxy module's body handling)
BODY_NONE: Final = 0       # the request has none: an empty body (Content-Length: 0 for POST...)
BODY_READ: Final = 1       # read whole before the request is written (memory or temp file)
BODY_STREAM: Final = 2     # proxy_request_buffering off: sent as it arrives
BODY_KEPT: Final = 3       # read by an earlier pass (an error_page or X-Accel-Redirect proxies again)


class RequestPlan:
    """What a location's settings say about the headers of every request it proxies, worked
    out once per `Settings` (nginx too compiles proxy_set_header into a script at
    configuration time): the per-request loop then only tests set membership."""

    __slots__ = ("set_entries", "framing_entries", "client_skip", "conn_close", "pass_client",
                 "client_forward", "set_by_name", "version")

    def __init__(self, s: Settings) -> None:
        entries: list[tuple[str, Callable[[RequestState], str], str | None, int,
                            HeaderSetting]] = []
        framing: list[HeaderSetting] = []
        set_names: set[str] = set()
        by_name: dict[str, HeaderSetting] = {}
        for h in s.proxy_set_header:
            lname = h.name.lower()
            set_names.add(lname)
            by_name[lname] = h
            if lname in ("content-length", "transfer-encoding"):
                framing.append(h)
                continue  # framing is ours
            tpl = h.value
            parts = tpl.parts
            # a value that is one variable ($host, $remote_addr...) calls its getter directly
            render = parts[0] if len(parts) == 1 and callable(parts[0]) else tpl.render
            entries.append((h.name, render, tpl.static, _SET_KIND.get(lname, 0), h))
        self.set_entries = tuple(entries)
        self.framing_entries = tuple(framing)
        # the last proxy_set_header of each name (what replaced a client header, for notes)
        self.set_by_name = by_name
        # client headers never copied: hop-by-hop, framing, and those proxy_set_header sets
        self.client_skip = frozenset(CLIENT_SKIP | HOP_BY_HOP | set_names)
        self.version: str = s.proxy_http_version
        self.conn_close = self.version == "1.0" and "connection" not in set_names
        self.pass_client = bool(s.proxy_pass_request_headers)
        # per field name as sent (a bounded cache): most clients spell the same few names
        # the same way, so the loop over every field skips lower() and the set test
        self.client_forward: dict[str, bool] = {}

    def forward_client(self, name: str) -> bool:
        """Whether a client field is copied to the upstream (before Connection's own list)."""
        ok = name.lower() not in self.client_skip
        if len(self.client_forward) < _NAME_CACHE_MAX:
            self.client_forward[name] = ok
        return ok


class HeaderNote:
    """Why a header is in the upstream request, or why it is not: `rule` is the rule, with
    `{at}` where the config line goes ("proxy_set_header at FILE:LINE") when `where` is set."""

    __slots__ = ("name", "value", "rule", "where")

    def __init__(self, name: str, value: str, rule: str,
                 where: tuple[str, int] | None = None) -> None:
        self.name = name
        self.value = value
        self.rule = rule
        self.where = where

    def describe(self, shown_path: Callable[[str], str] = str) -> str:
        if self.where is None:
            return self.rule
        at = f"proxy_set_header at {shown_path(self.where[0])}:{self.where[1]}"
        return self.rule.replace("{at}", at)


_FROM_CLIENT: Final = "from client"
_BY_SET: Final = "{at}"


class UpstreamRequest:
    """One upstream request, everything the proxy sends and decides before it connects."""

    __slots__ = ("method", "uri", "version", "headers", "head", "body", "stream_body",
                 "upgrading", "keep_alive", "close_why", "body_length", "sources", "dropped")

    def __init__(self, method: str, uri: str, version: str, headers: list[tuple[str, str]],
                 body: bytes | BodyFile | None, stream_body: bool, upgrading: bool,
                 keep_alive: bool, close_why: str, body_length: int,
                 sources: list[HeaderNote] | None, dropped: list[HeaderNote] | None) -> None:
        self.method = method            # proxy_method, else the client's
        self.uri = uri
        self.version = version          # proxy_http_version
        self.headers = headers          # in order, the framing header last
        self.body = body                # bytes, a temp file, or None: the client's stream
        self.stream_body = stream_body  # the body is streamed (proxy_request_buffering off)
        self.upgrading = upgrading      # Upgrade is forwarded: a 101 makes a tunnel
        self.keep_alive = keep_alive    # the request leaves the connection reusable
        self.close_why = close_why      # else why not
        self.body_length = body_length  # $request_length's body part when known, else -1
        self.sources = sources          # with notes: why each header is sent (parallel)
        self.dropped = dropped          # with notes: what was left out and why
        self.head = request_head_bytes(method, uri, headers, version)


def upgrade_ok(head: RequestHead) -> bool:
    """Whether the client's upgrade may be forwarded (a 101 then opens a tunnel). As nginx,
    any protocol the client names in `Upgrade` (Docker's `tcp` on a POST, kubectl's
    `SPDY/3.1`, a WebSocket), with these refusals kept from bad-input.md:
    - HTTP/1.1 only, `upgrade` named in Connection and no body: the parser sets
      `head.upgrade` only then (no upgrade over HTTP/1.0, W04);
    - never `h2c`: a tunnel to an HTTP/2 speaker carries requests the proxy never routes
      or checks (h2c smuggling, S77);
    - a WebSocket handshake (one with `Sec-WebSocket-Key`) must be a valid one: GET, a
      16-byte key, version 13; its 101 is checked against the key (`tunnel.switch_refusal`).
      nginx forwards an `Upgrade: websocket` without a key too, as any other protocol."""
    up = head.upgrade
    if up is None or head.version != "1.1" or head.chunked or head.content_length:
        return False  # the parser says so already; HTTP/2's heads and tests build their own
    protocols = [p.strip().split("/", 1)[0] for p in up.split(",")]
    if "h2c" in protocols or "h2" in protocols:
        return False
    key = head.get("sec-websocket-key")
    if key is None:
        return True
    if "websocket" not in protocols or head.method != "GET" or \
            head.get("sec-websocket-version") != "13":
        return False
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


def reads_body_whole(s: Settings, head: RequestHead) -> bool:
    """Whether the proxy reads the client body whole before writing the request (nginx's
    !r->request_body_no_buffering): proxy_request_buffering on, and proxy_set_body and
    proxy_pass_request_body off (the body is read, only never sent), and a chunked body to
    an HTTP/1.0 upstream (which needs its length)."""
    return bool(s.proxy_request_buffering or s.proxy_set_body is not None or
                not s.proxy_pass_request_body or
                (s.proxy_http_version == "1.0" and head.chunked))


def body_mode(s: Settings, head: RequestHead, body_read: bool, pending: bool = False) -> int:
    """BODY_NONE, BODY_READ, BODY_STREAM or BODY_KEPT for this pass. An empty body is read
    too under client_body_in_file_only (nginx writes its empty file), and so is one still
    `pending`: an HTTP/2 request declaring `content-length: 0` whose stream has not ended.
    nginx reads that body like any other: buffered, the request waits for the stream's end
    (and DATA on it makes the request malformed: 400, nothing forwarded, bad-input.md H02);
    with proxy_request_buffering off, the head goes upstream at once."""
    if not (head.chunked or head.content_length or pending
            or (head.content_length == 0 and s.client_body_in_file_only != "off")):
        return BODY_NONE
    if body_read:
        return BODY_KEPT
    return BODY_READ if reads_body_whole(s, head) else BODY_STREAM


def build_request(r: RequestState, s: Settings, plan: RequestPlan, uri: str, upgrade: bool,
                  stream_body: bool, read: bytes | BodyFile | None,
                  notes: bool = False) -> UpstreamRequest:
    """The upstream request. `upgrade`: `upgrade_ok` of the client's head; `read`: the body
    as read (None when there is none or it is streamed). Renders the proxy_set_header
    values, then proxy_set_body, then proxy_method, in nginx's order. Raises ValueError when
    the head cannot be written (a value with CR or LF, a method that is no token)."""
    head = r.head
    sources: list[HeaderNote] | None = [] if notes else None
    dropped: list[HeaderNote] | None = [] if notes else None
    out: list[tuple[str, str]] = []
    host_value: str | None = None
    host_setting: HeaderSetting | None = None
    upgrading = False
    keep_alive = True
    close_why = ""
    for name, render, static, kind, h in plan.set_entries:
        v = static if static is not None else render(r)
        if kind:
            if kind == _KIND_HOST:
                host_value = v
                host_setting = h
                continue
            if not v:
                if dropped is not None:
                    dropped.append(_empty_note(h, v))
                continue
            if kind == _KIND_UPGRADE:
                if not upgrade:
                    if dropped is not None:
                        dropped.append(_no_upgrade_note(h, v))
                    continue
                upgrading = True
            else:
                low = v.lower()
                if not upgrade and "upgrade" in low:
                    # Connection: upgrade without an upgrade to forward
                    if dropped is not None:
                        dropped.append(_no_upgrade_note(h, v))
                    continue
                if "close" in low and "close" in connection_tokens(v):
                    keep_alive = False
                    close_why = 'the request carries "Connection: close"'
        elif not v:
            if dropped is not None:
                dropped.append(_empty_note(h, v))
            continue  # an empty value removes the header
        out.append((name, v))
        if sources is not None:
            sources.append(HeaderNote(name, v, _BY_SET, h.where))
    if host_value is None:
        host_value = r.proxy_host
    if host_value:
        out.insert(0, ("Host", host_value))
        if sources is not None:
            sources.insert(0, HeaderNote("Host", host_value, _BY_SET, host_setting.where)
                           if host_setting is not None
                           else HeaderNote("Host", host_value, "default: $proxy_host"))
    if plan.conn_close:
        out.append(("Connection", "close"))
        if sources is not None:
            sources.append(HeaderNote("Connection", "close", "default: proxy_http_version 1.0"))
    if plan.version != "1.1":
        keep_alive = False
        close_why = "proxy_http_version 1.0"
    if plan.pass_client:
        forward = plan.client_forward
        named = head.conn_tokens
        for kv in head.headers:
            k = kv[0]
            ok = forward.get(k)
            if ok is None:
                ok = plan.forward_client(k)
            if ok and not (named and k.lower() in named):
                out.append(kv)
                if sources is not None:
                    sources.append(HeaderNote(k, kv[1], _FROM_CLIENT))
            elif dropped is not None:
                dropped.append(_client_note(plan, kv, named, True))
    elif dropped is not None:
        for kv in head.headers:
            dropped.append(_client_note(plan, kv, head.conn_tokens, False))
    if dropped is not None:
        for h in plan.framing_entries:
            dropped.append(HeaderNote(h.name, h.value.render(r),
                                      "not sent: framing is written by the proxy ({at})",
                                      h.where))

    # the body and its one framing header
    body: bytes | BodyFile | None = None
    body_length = -1
    framing = ""
    if s.proxy_set_body is not None:
        # proxy_set_body: the client's body was read and is dropped, this one sent
        text = s.proxy_set_body.render(r)
        try:
            body = text.encode("latin-1")    # values read off the wire round-trip
        except UnicodeEncodeError:
            body = text.encode("utf-8")      # text from the config: its bytes
        framing = str(len(body))
        out.append(("Content-Length", framing))
    elif not (head.chunked or head.content_length):
        body = b""
        if head.method in _BODY_METHODS:
            framing = "0"
            out.append(("Content-Length", "0"))
    else:
        if not s.proxy_pass_request_body:
            body = b""
        elif not stream_body:
            body = read
        if type(body) is bytes:
            body_length = len(body)
            framing = str(body_length)
            out.append(("Content-Length", framing))
        elif isinstance(body, BodyFile):
            body_length = body.length
            framing = str(body_length)
            out.append(("Content-Length", framing))
        elif head.content_length is not None:
            framing = str(head.content_length)
            out.append(("Content-Length", framing))
        else:
            out.append(("Transfer-Encoding", "chunked"))
            if sources is not None:
                sources.append(HeaderNote("Transfer-Encoding", "chunked", "framing"))
    if sources is not None and framing:
        sources.append(HeaderNote("Content-Length", framing, "framing"))
    # proxy_method: the upstream request's method; retries still judge the client's
    method = s.proxy_method.render(r) if s.proxy_method is not None else head.method
    return UpstreamRequest(method, uri, plan.version, out, body, stream_body, upgrading,
                           keep_alive, close_why, body_length, sources, dropped)


def _empty_note(h: HeaderSetting, v: str) -> HeaderNote:
    if h.value.static == "":
        return HeaderNote(h.name, v, "removed: empty {at}", h.where)
    return HeaderNote(h.name, v, f"not sent: {h.value.source} is empty for this request ({{at}})",
                      h.where)


def _no_upgrade_note(h: HeaderSetting, v: str) -> HeaderNote:
    return HeaderNote(h.name, v, "not sent: this request is no upgrade the proxy forwards "
                      "({at})",
                      h.where)


def _client_note(plan: RequestPlan, kv: tuple[str, str], named: frozenset[str],
                 passing: bool) -> HeaderNote:
    """Why a client header is not forwarded (notes only)."""
    k, v = kv
    lk = k.lower()
    h = plan.set_by_name.get(lk)
    if h is not None:
        return HeaderNote(k, v, "replaced: {at}", h.where)
    if lk == "host":
        return HeaderNote(k, v, "replaced: Host is $proxy_host unless set")
    if lk in HOP_BY_HOP or (named and lk in named):
        return HeaderNote(k, v, "dropped: hop-by-hop")
    if lk in CLIENT_SKIP:
        return HeaderNote(k, v, "dropped: written by the proxy itself")
    if not passing:
        return HeaderNote(k, v, "dropped: proxy_pass_request_headers off")
    return HeaderNote(k, v, "dropped")


def reuse_verdict(req: UpstreamRequest, up: UpstreamConf,
                  shown_path: Callable[[str], str] = str) -> tuple[bool, str]:
    """Whether the upstream connection can go back to the pool after this request (the
    upstream's answer permitting): the upstream must keep idle connections (`keepalive`,
    nginx 1.30's default 32 in an upstream block; none for a bare address) and the request
    must not close it. The reason names the config line."""
    if up.implicit:
        return False, ("proxy_pass to an address without an upstream block keeps no idle "
                       "connections")
    if up.keepalive <= 0:
        return False, f'upstream "{up.name}" has no keepalive'
    if not req.keep_alive:
        return False, req.close_why
    how = (f"keepalive {up.keepalive}" if up.keepalive_set
           else f"keepalive {up.keepalive} (nginx 1.30 default)")
    return True, (f'upstream "{up.name}" ({shown_path(up.where[0])}:{up.where[1]}) has {how} '
                  'and no "Connection: close" is sent')
