"""HTTP/2 server side, sans-IO: client bytes -> stream events, responses -> bytes.

Theory of operation. `H2Server` wraps an `h2.connection.H2Connection` (server side) and adds
what h2 leaves to the application:

- **Request validation, per stream.** h2's own inbound header validation is off: a malformed
  header block would make h2 tear down the whole connection, where RFC 9113 §8.1.1 (and nginx)
  make it a stream error. `_validate` checks each block itself: lower-case token names,
  no CR/LF/NUL in values, known pseudo-headers first and once, no connection-specific
  fields (§8.2.2; `te: trailers` only), `:method` a token and `:path` origin-form (`*` only
  for OPTIONS) before anything reaches an HTTP/1.1 serializer. Syntax violations reset the
  stream with PROTOCOL_ERROR; semantic ones (`:method` with a space, absolute `:path`, a
  `host` that disagrees with `:authority`) become a `StreamError` that the connection
  answers with 400 on that stream, as nginx does.
- **Abuse limits.** A frame scanner runs ahead of h2 over the raw bytes: a header block
  (HEADERS + CONTINUATION) larger than `max_header_block` bytes, or a flood of PING /
  SETTINGS / PRIORITY / empty DATA frames, ends the connection with GOAWAY
  ENHANCE_YOUR_CALM before h2 buffers it. Rapid reset (CVE-2023-44487): more than
  2 x `max_concurrent_streams` new streams in one read, or client resets of unfinished
  streams beyond the same budget per `reset_window` seconds, end the connection the same way.
  A stream arriving while `max_concurrent_streams` of ours are still active (a reset stream
  stays active until its pipeline task is gone, see `stream_done`) is refused with
  REFUSED_STREAM. Streams opened and reset in the same read are never reported.
- **Flow control both ways.** Request body bytes are acknowledged (`ack`) only when the
  consumer has taken them, so a slow upstream slows the client; as nginx, a stream's window is
  the preread 64k until the reader opens it (`open_window`), the connection's is 2^31-1, and
  a stream answered before its request ended is reset with NO_ERROR (`stream_done`). Response bodies are queued
  per stream (`send_body` / `send_end`) and written as the client's windows allow;
  `pending(sid)` tells the caller how much waits, for back-pressure.
- **Priority (RFC 7540 §5.3, as nginx keeps it).** PRIORITY frames and HEADERS priority
  build a dependency tree (`_Node`: weight, parent, children, rank = depth, rel_weight =
  weight/256 times the parent's). Nodes of closed or idle streams are kept up to 32 and then
  reused oldest first, their children moving up to the removed node's parent with scaled
  weights, as nginx's `ngx_http_v2_get_closed_node`. `pump` serves the streams in nginx's
  frame order: shallower first, then the larger relative weight, round robin among equals.
  A stream that depends on itself ends the connection with PROTOCOL_ERROR; for a HEADERS
  frame its GOAWAY names the previous stream, since the new one was never accepted.
- **Graceful GOAWAY.** `goaway()` writes GOAWAY(NO_ERROR, last stream) without putting h2 in
  its closed state, so streams in flight still finish; newer streams are refused.
- **Last stream of a connection (keepalive_requests, keepalive_time, keepalive_timeout 0).**
  nginx decides it when a stream is created (ngx_http_v2_state_headers): the stream that makes
  the count reach `max_requests`, or that arrives when the connection is older than
  `max_lifetime`, is served and is the last one; `accept_until` names it, streams after it are
  refused (REFUSED_STREAM, safe for the client to retry), and the caller sends the final GOAWAY
  (`goaway_final`, naming that stream) once its streams are done. nginx sends that GOAWAY at
  once; waiting for the streams in flight gives the same last stream id and keeps h2-based
  clients (python h2 / httpx), which drop every open stream when a GOAWAY arrives, working.

Errors never leak as h2 exceptions: a connection-level failure becomes a `ConnectionEnded`
event (GOAWAY already queued in `data_to_send`), after which the caller closes.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hpack.exceptions
from hyperframe.frame import GoAwayFrame

from truehop.http.events import RequestHead
from truehop.http.h1 import parse_host

# frame types and flags (RFC 9113 §6)
_DATA, _HEADERS, _PRIORITY, _RST, _SETTINGS, _PUSH, _PING, _GOAWAY, _WINDOW, _CONT = range(10)
_END_STREAM = 0x1
_END_HEADERS = 0x4
_PADDED = 0x8
_PRIORITY_FLAG = 0x20
_ACK = 0x1

MAX_CONTINUATION_FRAMES = 32      # below h2's own 64, so the answer is ENHANCE_YOUR_CALM
MAX_FRAME_SIZE = (1 << 24) - 1    # nginx advertises (and reads) frames up to this size
MAX_WINDOW = (1 << 31) - 1        # NGX_HTTP_V2_MAX_WINDOW, the largest RFC 9113 allows
PREREAD_SIZE = 65536              # http2_body_preread_size's default: a stream's first window
_MAX_CONTROL_FRAME = 16384        # any frame but HEADERS, CONTINUATION and DATA
_INT_OCTETS = 4                   # nginx's NGX_HTTP_V2_INT_OCTETS: longest HPACK integer
# what `_walk` expects next in a header block: a field representation, a name or value length
_W_REPR, _W_NAME, _W_VALUE = range(3)
_GOAWAY_PING = b"truehop\x00"
_SELF_DEPENDENCY = re.compile(r"Stream (\d+) may not depend on itself")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

NO_ERROR = h2.errors.ErrorCodes.NO_ERROR
PROTOCOL_ERROR = h2.errors.ErrorCodes.PROTOCOL_ERROR
INTERNAL_ERROR = h2.errors.ErrorCodes.INTERNAL_ERROR
REFUSED_STREAM = h2.errors.ErrorCodes.REFUSED_STREAM
ENHANCE_YOUR_CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
COMPRESSION_ERROR = h2.errors.ErrorCodes.COMPRESSION_ERROR
FRAME_SIZE_ERROR = h2.errors.ErrorCodes.FRAME_SIZE_ERROR
FLOW_CONTROL_ERROR = h2.errors.ErrorCodes.FLOW_CONTROL_ERROR
CANCEL = h2.errors.ErrorCodes.CANCEL

# RFC 9110 token characters; header names must also be lower case in HTTP/2
_NAME_OK = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")
# ngx_http_v2_validate_header: these name bytes make the request a 400; any byte outside
# _NAME_PLAIN (and '_' with underscores_in_headers) only makes the field invalid
_NAME_BAD = bytes(range(0x00, 0x21)) + b"\x7f:ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME_PLAIN = frozenset(b"-0123456789abcdefghijklmnopqrstuvwxyz")
_NAME_PLAIN_US = _NAME_PLAIN | {0x5F}
_VALUE_BAD = b"\x00\r\n"
_PATH_BAD = bytes(b for b in range(256) if b <= 0x20 or b >= 0x7F or b == 0x23)
_ALPHA = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SCHEME_OK = _ALPHA | frozenset(b"0123456789+-.")
# ngx_http_v2_parse_method: a method nginx knows, or upper-case letters, '_' and '-'
_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PROPFIND", "PUT", "MKCOL", "DELETE",
                      "COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK", "PATCH", "TRACE",
                      "CONNECT"})
_METHOD_OK = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-")
_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})
# RFC 9113 §8.2.2: connection-specific fields make a request malformed
_CONNECTION_SPECIFIC = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                                  b"transfer-encoding", b"upgrade"})
_DROPPED_OUT = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                          "upgrade", "te", "http2-settings"})


@dataclass(slots=True)
class H2Limits:
    """Per-connection limits. Defaults: nginx's http2_max_concurrent_streams 128,
    large_client_header_buffers 4 8k (`max_field_size`: one HPACK string, as sent;
    `header_limit`: the decoded header list, names and values), 100 header fields.

    `max_header_list_size` only bounds what the HPACK decoder inflates (at least header_limit
    and 32 bytes for each of 1024 fields, RFC 7541's sizes); it is not advertised, as nginx
    advertises none. The encoded block is bounded by `max_header_block` or 2 x header_limit,
    the larger (Huffman makes some bytes longer than 8 bits)."""

    max_concurrent_streams: int = 128
    max_header_list_size: int = 65536
    max_header_block: int = 65536
    max_field_size: int = 8192
    header_limit: int = 32768
    max_header_count: int = 100
    # nginx's windows: a stream's is http2_body_preread_size (64k) until its body is read
    # (`open_window`), the connection's NGX_HTTP_V2_MAX_WINDOW from the preface on: the
    # stream windows bound what a client can make us hold
    initial_window: int = PREREAD_SIZE
    connection_window: int = MAX_WINDOW
    max_frame_size: int = MAX_FRAME_SIZE
    underscores_in_headers: bool = False
    ignore_invalid_headers: bool = True
    control_frame_budget: int = 1000      # PING/SETTINGS/PRIORITY/empty DATA per window
    reset_window: float = 1.0             # seconds over which resets and floods are counted
    max_requests: int = 0                 # keepalive_requests (1 for keepalive_timeout 0); 0: none
    max_lifetime: float = 0.0             # keepalive_time, seconds; 0: none

    @property
    def reset_budget(self) -> int:
        return 2 * self.max_concurrent_streams


# -- events ---------------------------------------------------------------------------------


@dataclass(slots=True)
class StreamRequest:
    """A valid request head on a new stream. `end_stream`: no body follows."""

    stream_id: int
    head: RequestHead
    end_stream: bool


@dataclass(slots=True)
class StreamError:
    """A request the connection must answer with `status` on this stream (400, 494),
    nothing forwarded. `head` is a best-effort view of the request for the access log."""

    stream_id: int
    status: int
    reason: str
    head: RequestHead


@dataclass(slots=True)
class StreamBodyError:
    """The request body is not what its content-length says (ngx_http_v2_filter_request_body):
    the bytes past it were not reported; the stream's request ends with `status`."""

    stream_id: int
    status: int
    reason: str


@dataclass(slots=True)
class StreamData:
    stream_id: int
    data: bytes
    flow: int          # flow-controlled length, to pass to `ack` once consumed


@dataclass(slots=True)
class StreamEnded:
    stream_id: int


@dataclass(slots=True)
class StreamReset:
    """The client reset a stream we knew (or we reset it after a protocol error in it)."""

    stream_id: int
    error_code: int
    by_client: bool
    reason: str = ""


@dataclass(slots=True)
class WindowOpened:
    """Send windows may have grown: the caller should offer queued bodies again (`pump`
    already ran; this tells it to wake writers waiting on `pending`)."""


@dataclass(slots=True)
class GoAwayComplete:
    """The final GOAWAY of a graceful shutdown went out: close once no stream is left."""


@dataclass(slots=True)
class ConnectionEnded:
    """The connection is over: flush `data_to_send()` and close. `calm`: abuse detected."""

    error_code: int
    reason: str
    calm: bool = False


H2Event = StreamRequest | StreamError | StreamData | StreamEnded | StreamReset | WindowOpened | \
    GoAwayComplete | ConnectionEnded | StreamBodyError


def _no_content_length(headers: object) -> None:
    pass


class _Connection(h2.connection.H2Connection):
    """h2's connection without its request body length check, which ends the whole
    connection (InvalidBodyLengthError), nor its concurrent stream check, which ends it too
    (TooManyStreamsError, GOAWAY PROTOCOL_ERROR); RFC 9113 makes both stream errors, and
    `H2Server` checks them per stream, as nginx does."""

    @property
    def open_inbound_streams(self) -> int:
        # h2 reads this only to refuse a new stream over max_concurrent_streams (the count
        # also drops closed streams: kept). `H2Server._request` refuses it alone with
        # REFUSED_STREAM (RFC 9113 §5.1.2), first flight included.
        _ = super().open_inbound_streams
        return 0

    def _begin_new_stream(self, stream_id: int, allowed_ids: Any) -> Any:
        s = super()._begin_new_stream(stream_id, allowed_ids)
        s._initialize_content_length = _no_content_length  # type: ignore[method-assign]
        return s


class _Outbox:
    __slots__ = ("chunks", "size", "end", "offset", "done")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.end = False
        self.offset = 0        # bytes of chunks[0] already sent
        self.done = False      # the exchange is over: `_close_remote` once END_STREAM is out

    def take(self, n: int) -> bytes:
        """Up to `n` queued bytes as one piece (one DATA frame, across chunk boundaries)."""
        n = min(n, self.size)
        head = self.chunks[0]
        off = self.offset
        avail = len(head) - off
        self.size -= n
        if n <= avail:
            self.offset = off + n
            if self.offset == len(head):
                self.chunks.popleft()
                self.offset = 0
                if off == 0:
                    return head
            return head[off:off + n]
        parts = [head[off:]]
        self.chunks.popleft()
        self.offset = 0
        need = n - avail
        while need:
            h = self.chunks[0]
            if len(h) <= need:
                parts.append(h)
                self.chunks.popleft()
                need -= len(h)
            else:
                parts.append(h[:need])
                self.offset = need
                need = 0
        return b"".join(parts)


DEFAULT_WEIGHT = 16
MAX_CLOSED_NODES = 32              # nginx: priority nodes kept for closed and idle streams


class _Node:
    """One stream in the priority tree. `parent` is None until the node is placed; the root
    is a `_Node(0)` with rank 0 and rel_weight 1.0."""

    __slots__ = ("id", "weight", "parent", "children", "rank", "rel_weight", "active")

    def __init__(self, sid: int) -> None:
        self.id = sid
        self.weight = DEFAULT_WEIGHT
        self.parent: _Node | None = None
        self.children: list[_Node] = []
        self.rank = 0
        self.rel_weight = 0.0
        self.active = False            # its stream is open (else: kept in the closed queue)


def _children_update(node: _Node) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        for child in n.children:
            child.rank = n.rank + 1
            child.rel_weight = n.rel_weight / 256 * child.weight
            stack.append(child)


class _PriorityTree:
    """nginx's HTTP/2 dependency tree (ngx_http_v2_set_dependency and friends)."""

    __slots__ = ("root", "nodes", "closed")

    def __init__(self) -> None:
        self.root = _Node(0)
        self.root.rel_weight = 1.0
        self.nodes: dict[int, _Node] = {}
        self.closed: dict[int, None] = {}      # reuse queue, oldest first

    def key(self, sid: int) -> tuple[int, float]:
        """Send order: lower first (shallower, then heavier)."""
        n = self.nodes.get(sid)
        if n is None or n.parent is None:
            return 1, -DEFAULT_WEIGHT / 256
        return n.rank, -n.rel_weight

    def _node(self, sid: int) -> _Node:
        n = self.nodes.get(sid)
        if n is not None:
            return n
        if len(self.closed) >= MAX_CLOSED_NODES:
            self._evict()
        n = self.nodes[sid] = _Node(sid)
        return n

    def _evict(self) -> None:
        """Drop the oldest closed node; its children move to its parent (weights scaled)."""
        sid = next(iter(self.closed))
        del self.closed[sid]
        node = self.nodes.pop(sid)
        parent = node.parent or self.root
        if node in parent.children:
            parent.children.remove(node)
        total = sum(c.weight for c in node.children)
        for c in node.children:
            c.parent = parent
            c.weight = max(1, node.weight * c.weight // total)
        node.rank = parent.rank
        node.rel_weight = parent.rel_weight
        _children_update(node)
        parent.children.extend(node.children)
        node.children = []

    def opened(self, sid: int, prio: tuple[int, int, bool] | None) -> None:
        """A HEADERS frame opened this stream; `prio`: (weight, depends_on, exclusive)."""
        n = self._node(sid)
        if n.parent is not None:
            self.closed.pop(sid, None)
        n.active = True
        if prio is not None or n.parent is None:
            weight, depend, excl = prio or (DEFAULT_WEIGHT, 0, False)
            n.weight = weight
            self._set_dependency(n, depend, excl)

    def priority(self, sid: int, weight: int, depend: int, excl: bool) -> None:
        """A PRIORITY frame."""
        n = self._node(sid)
        n.weight = weight
        if not n.active:
            self.closed.pop(sid, None)
            self.closed[sid] = None
        self._set_dependency(n, depend, excl)

    def closed_stream(self, sid: int) -> None:
        n = self.nodes.get(sid)
        if n is None or not n.active:
            return
        n.active = False
        self.closed[sid] = None

    def _set_dependency(self, node: _Node, depend: int, exclusive: bool) -> None:
        parent = self.nodes.get(depend) if depend else None
        if parent is None or parent.parent is None:
            parent = self.root
            if depend:
                exclusive = False
            node.rank = 1
            node.rel_weight = node.weight / 256
        else:
            if node.parent is not None:
                # the new parent depends on this node: it moves up to this node's place
                nxt: _Node | None = parent.parent
                while nxt is not None and nxt is not self.root and nxt.rank >= node.rank:
                    if nxt is node:
                        assert parent.parent is not None
                        parent.parent.children.remove(parent)
                        sib = node.parent.children
                        sib.insert(sib.index(node) + 1, parent)
                        parent.parent = node.parent
                        parent.rank = node.parent.rank + 1
                        parent.rel_weight = node.parent.rel_weight / 256 * parent.weight
                        if not exclusive:
                            _children_update(parent)
                        break
                    nxt = nxt.parent
            node.rank = parent.rank + 1
            node.rel_weight = parent.rel_weight / 256 * node.weight
            if not parent.active and parent.id in self.closed:
                del self.closed[parent.id]
                self.closed[parent.id] = None
        children = parent.children
        if exclusive:
            for c in children:
                c.parent = node
            node.children.extend(children)
            children.clear()
        if node.parent is not None:
            node.parent.children.remove(node)
        children.append(node)
        node.parent = parent
        _children_update(node)


class _Budget:
    """Counts events in a fixed window; `hit()` is True once `limit` is exceeded."""

    __slots__ = ("limit", "period", "count", "start", "clock")

    def __init__(self, limit: int, period: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.period = period
        self.count = 0
        self.clock = clock
        self.start = clock()

    def hit(self, n: int = 1) -> bool:
        now = self.clock()
        if now - self.start > self.period:
            self.start = now
            self.count = 0
        self.count += n
        return self.count > self.limit


class H2Server:
    """One HTTP/2 server connection without I/O. See the module docstring."""

    def __init__(self, limits: H2Limits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = lim = limits or H2Limits()
        cfg = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                        validate_inbound_headers=False,
                                        normalize_inbound_headers=False,
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False)
        self.conn = _Connection(cfg)
        # request bodies against their content-length: [declared, received] per stream
        self._body_len: dict[int, list[int]] = {}
        self.closed = False
        self.going_away = False
        self.last_stream_id = 0          # highest stream id accepted (GOAWAY's last id)
        self.goaway_id: int | None = None
        self.accept_until: int | None = None   # the connection's last stream, once decided
        self.accepted = 0                # streams accepted (nginx's connection->requests)
        self._clock = clock
        self._stop_at = clock() + lim.max_lifetime if lim.max_lifetime > 0 else None
        self.active: set[int] = set()    # streams reported and not yet `stream_done`
        self.reset_streams = 0           # client resets of unfinished streams (lifetime)
        self._extra = bytearray()        # frames written around h2 (graceful GOAWAY)
        self._out: dict[int, _Outbox] = {}
        self._resets = _Budget(lim.reset_budget, lim.reset_window, clock)
        self._block_limit = max(lim.max_header_block, 2 * lim.header_limit)
        self._control = _Budget(lim.control_frame_budget, lim.reset_window, clock)
        # frame scanner state (runs over the raw bytes ahead of h2)
        self._skip = len(PREFACE)        # payload bytes of the current frame still to pass
        self._fh = b""                   # partial frame header
        self._block = 0                  # bytes in the open header block, -1 when none
        self._block_frames = 0
        self.in_header_block = False
        self._block_sid = 0
        self._headers_seen: list[int] = []   # header blocks the current read touches
        self._scan_high = 0              # highest new stream id a HEADERS frame named
        self._hpre_need = 0              # HEADERS: Pad Length / priority bytes still to come
        self._hpre = b""
        self._hflags = 0
        self._hblock_left = 0            # header block bytes of the current frame still to come
        self._hpad = 0                   # its padding, skipped after the block
        # the HPACK walker (`_walk`): on for the current block, CONTINUATION to come, what it
        # expects next (_W_*), the representation an index belongs to, the integer being
        # read (octets so far, value), string bytes still to skip
        self._w_on = True
        self._w_more = False
        self._w_kind = self._w_then = _W_REPR
        self._w_octets = self._w_value = self._w_left = 0
        # HPACK bytes of each stream's last complete header block ($request_length, as nginx
        # counts it: the HEADERS and CONTINUATION payloads), taken when the stream opens
        self.block_sizes: dict[int, int] = {}
        self.prio = _PriorityTree()
        self._window_cap = lim.initial_window   # the largest stream window given (`_scan`)

    # -- setup -----------------------------------------------------------------------------

    def start(self) -> None:
        """Queue the server preface: SETTINGS, and a larger connection window."""
        lim = self.limits
        # initial values go out in the preface SETTINGS and bind h2's own checks at once;
        # MAX_FRAME_SIZE as nginx's (2^24-1): a client may send a whole header block in one
        # HEADERS frame (`_scan` bounds what is buffered)
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: lim.max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: lim.initial_window,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: lim.max_frame_size,
        })
        self.conn.max_inbound_frame_size = lim.max_frame_size
        self.conn.initiate_connection()
        self.conn.decoder.max_header_list_size = max(lim.max_header_list_size,
                                                     lim.header_limit + 32 * 1024)
        extra = lim.connection_window - 65535
        if extra > 0:
            self.conn.increment_flow_control_window(extra)

    # -- input -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[H2Event]:
        if self.closed:
            return []
        self._headers_seen = [self._block_sid] if self.in_header_block else []
        why = self._scan(data)
        if why is not None:
            code, reason, last = why
            if last is not None:
                # an error inside a header block: nginx has taken that stream as its last
                # one (ngx_http_v2_state_headers sets last_sid before reading the block)
                self.last_stream_id = max(self.last_stream_id, last)
            return [self._terminate(code, reason, calm=code == ENHANCE_YOUR_CALM)]
        high = self.conn.highest_inbound_stream_id
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            # h2 has queued GOAWAY with the right code
            self.closed = True
            code = getattr(e, "error_code", PROTOCOL_ERROR)
            if isinstance(e.__cause__, hpack.exceptions.HPACKError) and \
                    not isinstance(e, h2.exceptions.DenialOfServiceError):
                # RFC 7541 §4.3 / RFC 9113 §4.3: a header block that cannot be decoded is a
                # COMPRESSION_ERROR; nginx's GOAWAY names that block's stream (last_sid is
                # set before decoding). h2 decodes before opening the stream: the block that
                # failed is the first new one of this read. A field running past the end of
                # the block is nginx's "header block with incorrect length": SIZE_ERROR.
                cause = e.__cause__
                truncated = isinstance(cause.__cause__, IndexError) or \
                    str(cause) == "Truncated header block"
                code = FRAME_SIZE_ERROR if truncated else COMPRESSION_ERROR
                new = [sid for sid in self._headers_seen if sid > high]
                last = min(new) if new else self.conn.highest_inbound_stream_id
                self._replace_goaway(last, int(code))
                return [ConnectionEnded(int(code), f"client sent invalid header block: {cause}")]
            m = _SELF_DEPENDENCY.match(str(e))
            if m is not None and int(m[1]) == self.conn.highest_inbound_stream_id > high:
                # a HEADERS frame depending on its own stream: nginx never accepted that
                # stream, so its GOAWAY names the one before
                self._replace_goaway(high, int(code))
                return [ConnectionEnded(int(code), f"client sent HEADERS frame for stream "
                                                   f"{m[1]} with incorrect dependency")]
            return [ConnectionEnded(int(code), f"client sent invalid HTTP/2: {e}")]
        except Exception as e:  # hpack/hyperframe errors not wrapped by h2
            return [self._terminate(PROTOCOL_ERROR, f"client sent invalid HTTP/2: {e}")]
        return self._translate(events)

    def _replace_goaway(self, last_id: int, code: int) -> None:
        out = self.conn.data_to_send()
        if len(out) >= 17 and out[-17 + 3] == _GOAWAY and int.from_bytes(out[-17:-14], "big") == 8:
            out = out[:-17]
        self._extra += out
        self._extra += GoAwayFrame(0, last_stream_id=last_id, error_code=code).serialize()

    def _scan(self, data: bytes) -> tuple[int, str, int | None] | None:
        """Walk frame headers over the raw bytes, and the HPACK field representations of
        header blocks (`_walk`); return (error code, reason, GOAWAY's last stream id or None
        for the highest accepted) to end the connection: an oversized header block or field,
        a control-frame flood, a frame no flow-control window can take."""
        lim = self.limits
        pos = 0
        n = len(data)
        while pos < n:
            if self._hpre_need:
                # the Pad Length / priority fields before a HEADERS frame's block
                take = min(self._hpre_need, n - pos)
                self._hpre += data[pos:pos + take]
                self._hpre_need -= take
                pos += take
                if self._hpre_need:
                    break
                self._headers_prefix_done()
                continue
            if self._hblock_left:
                take = min(self._hblock_left, n - pos)
                self._hblock_left -= take
                if self._w_on:
                    err = self._walk(data, pos, pos + take)
                    if err is not None:
                        return err[0], err[1], self._scan_high
                pos += take
                if not self._hblock_left:
                    self._skip = self._hpad
                    self._hpad = 0
                continue
            if self._skip:
                take = min(self._skip, n - pos)
                self._skip -= take
                pos += take
                continue
            need = 9 - len(self._fh)
            hdr = self._fh + data[pos:pos + need]
            pos += min(need, n - pos)
            if len(hdr) < 9:
                self._fh = hdr
                break
            self._fh = b""
            length = int.from_bytes(hdr[0:3], "big")
            ftype = hdr[3]
            flags = hdr[4]
            self._skip = length
            if ftype == _HEADERS:
                sid = int.from_bytes(hdr[5:9], "big") & 0x7FFFFFFF
                self._headers_seen.append(sid)
                if sid & 1 and sid > self._scan_high:
                    self._scan_high = sid
                if length > self._block_limit:
                    return ENHANCE_YOUR_CALM, "client sent too large header block", None
                self.in_header_block = not flags & _END_HEADERS
                self._block = length
                self._block_frames = 1
                self._block_sid = sid
                if len(self.block_sizes) > 256:
                    self.block_sizes.clear()  # trailers' sizes are never taken
                self.block_sizes[sid] = length
                self._w_reset(more=not flags & _END_HEADERS)
                self._hflags = flags
                self._hpre = b""
                pre = (1 if flags & _PADDED else 0) + (5 if flags & _PRIORITY_FLAG else 0)
                if length > pre:
                    self._skip = 0
                    self._hpre_need = pre
                    self._hblock_left = length - pre
                    if not pre:
                        self._headers_prefix_done()
                # else: an empty or short frame, h2 answers it (FRAME_SIZE_ERROR)
            elif ftype == _CONT:
                if self.in_header_block:
                    self._block += length
                    self._block_frames += 1
                    if self._block > self._block_limit or \
                            self._block_frames > MAX_CONTINUATION_FRAMES:
                        return (ENHANCE_YOUR_CALM,
                                "client sent too large header block (CONTINUATION flood)", None)
                    sid = self._block_sid
                    self.block_sizes[sid] = self.block_sizes.get(sid, 0) + length
                    if flags & _END_HEADERS:
                        self.in_header_block = False
                    if int.from_bytes(hdr[5:9], "big") & 0x7FFFFFFF == sid:
                        self._w_more = not flags & _END_HEADERS
                        self._skip = 0
                        self._hblock_left = length
                        self._hpad = 0
                    else:
                        self._w_on = False    # h2 refuses it (PROTOCOL_ERROR)
            elif ftype in (_PING, _SETTINGS):
                if not flags & _ACK and self._control.hit():
                    return ENHANCE_YOUR_CALM, "client sent too many PING/SETTINGS frames (flood)", \
                        None
            elif ftype == _PRIORITY or (ftype == _DATA and length == 0
                                         and not flags & _END_STREAM):
                if self._control.hit():
                    return ENHANCE_YOUR_CALM, "client sent too many empty frames (flood)", None
            if ftype == _DATA:
                # a frame larger than its stream's window (the initial one, unless the body's
                # reader opened it) is a flow-control violation, refused before h2 buffers
                # it whole; the window now is never smaller than when h2 reads the frame
                if length > lim.initial_window and \
                        length > self._stream_window(int.from_bytes(hdr[5:9], "big") & 0x7FFFFFFF):
                    return (FLOW_CONTROL_ERROR, f"client violated flow control: received DATA "
                            f"frame length {length}", None)
            elif ftype not in (_HEADERS, _CONT) and length > _MAX_CONTROL_FRAME:
                # we accept frames up to 2^24-1 as nginx advertises (for HEADERS and DATA);
                # no other frame needs more than this, and h2 buffers a frame whole
                return FRAME_SIZE_ERROR, f"client sent too large frame of type {ftype}", None
        return None

    def _stream_window(self, sid: int) -> int:
        """The largest DATA frame the client may send on a stream now (or had in flight when
        we closed it)."""
        st = self.conn.streams.get(sid)
        if st is None:
            # a new stream (HEADERS in this read), or one closed and forgotten, whose DATA
            # may still be in flight within the largest window we gave (and h2 drops it)
            return self._window_cap
        return max(int(st.inbound_flow_control_window), self.limits.initial_window)

    def _headers_prefix_done(self) -> None:
        """The Pad Length and priority fields of a HEADERS frame are in: the block follows,
        then the padding (not part of $request_length, as nginx counts it)."""
        pre = self._hpre
        pad = pre[0] if self._hflags & _PADDED and pre else 0
        if pad >= self._hblock_left:
            self._w_on = False          # h2 refuses the frame (PROTOCOL_ERROR)
            self._hpad = 0
            return
        self._hblock_left -= pad
        self._hpad = pad
        self.block_sizes[self._block_sid] = self._hblock_left
        if not self._hblock_left:
            self._skip = pad
            self._hpad = 0

    def _w_reset(self, more: bool) -> None:
        self._w_on = True
        self._w_more = more
        self._w_kind = _W_REPR
        self._w_then = _W_REPR
        self._w_octets = 0
        self._w_value = 0
        self._w_left = 0

    def _walk(self, data: bytes, pos: int, end: int) -> tuple[int, str] | None:
        """Follow the HPACK field representations of a header block as nginx's streaming
        parser reads them (ngx_http_v2_state_header_block, _field_len), without decoding:
        a string longer than large_client_header_buffers' size is ENHANCE_YOUR_CALM, an
        integer still going after NGX_HTTP_V2_INT_OCTETS (4) octets is COMPRESSION_ERROR, an
        empty name PROTOCOL_ERROR, each as soon as its bytes are in, even in a frame not yet
        complete. The decoding itself (and every other HPACK error) is h2's."""
        while pos < end:
            if self._w_left:
                take = min(self._w_left, end - pos)
                self._w_left -= take
                pos += take
                continue
            b = data[pos]
            pos += 1
            if self._w_octets == 0:
                if self._w_kind == _W_REPR:
                    if b & 0x80:
                        prefix, self._w_then = 0x7F, _W_REPR        # indexed field
                    elif b & 0x40:
                        prefix, self._w_then = 0x3F, _W_NAME        # literal, indexed
                    elif b & 0x20:
                        prefix, self._w_then = 0x1F, _W_REPR        # table size update
                    else:
                        prefix, self._w_then = 0x0F, _W_NAME        # literal, not indexed
                else:
                    prefix = 0x7F                                   # string length, H bit
                v = b & prefix
                if v < prefix:
                    err = self._w_int(v)
                    if err is not None:
                        return err
                    continue
                self._w_value = v
                self._w_octets = 1
                continue
            self._w_octets += 1
            self._w_value += (b & 0x7F) << (7 * (self._w_octets - 2))
            if b < 0x80:
                self._w_octets = 0
                err = self._w_int(self._w_value)
                if err is not None:
                    return err
            elif self._w_octets == _INT_OCTETS:
                if end - pos + self._hblock_left > 0 or self._w_more:
                    what = "length" if self._w_kind != _W_REPR else "index"
                    return COMPRESSION_ERROR, f"client sent header block with too long " \
                                              f"{what} value"
                # the integer runs to the end of the block: nginx's "incorrect length",
                # as h2 reports it (FRAME_SIZE_ERROR)
                self._w_on = False
                return None
        return None

    def _w_int(self, v: int) -> tuple[int, str] | None:
        kind = self._w_kind
        if kind == _W_REPR:
            if self._w_then == _W_NAME:
                self._w_kind = _W_NAME if v == 0 else _W_VALUE
            return None
        if v > self.limits.max_field_size:
            return ENHANCE_YOUR_CALM, "client sent too large header field"
        if kind == _W_NAME:
            if v == 0:
                return PROTOCOL_ERROR, "client sent zero header name length"
            self._w_kind = _W_VALUE
        else:
            self._w_kind = _W_REPR
        self._w_left = v
        return None

    def _translate(self, events: list[h2.events.Event]) -> list[H2Event]:
        out: list[H2Event] = []
        new_streams = 0
        pump = False
        pending: dict[int, int] = {}     # stream id -> index in `out` of its request
        skip_prio: object = None         # the PriorityUpdated of a HEADERS already applied
        body_bad: set[int] = set()       # streams whose body length was refused in this read
        for ev in events:
            t = type(ev)
            if t is h2.events.RequestReceived:
                sid = ev.stream_id  # type: ignore[attr-defined]
                new_streams += 1
                if new_streams > self.limits.reset_budget:
                    out.append(self._terminate(ENHANCE_YOUR_CALM,
                                               "client sent too many streams at once",
                                               calm=True))
                    return out
                if _list_size(ev.headers) > self.limits.header_limit:  # type: ignore[attr-defined]
                    out.append(self._too_large_header(sid))
                    return [e for e in out if not _placeholder(e)]
                pu = ev.priority_updated  # type: ignore[attr-defined]
                if pu is not None:
                    skip_prio = pu
                r = self._request(sid, ev.headers, ev.stream_ended is not None,  # type: ignore[attr-defined]
                                  None if pu is None else
                                  (pu.weight, pu.depends_on, bool(pu.exclusive)))
                if r is not None:
                    if isinstance(r, (StreamRequest, StreamError)):
                        pending[sid] = len(out)
                    out.append(r)
            elif t is h2.events.DataReceived:
                sid = ev.stream_id  # type: ignore[attr-defined]
                flow = ev.flow_controlled_length or 0  # type: ignore[attr-defined]
                data = ev.data or b""  # type: ignore[attr-defined]
                bl = self._body_len.get(sid)
                if bl is not None:
                    bl[1] += len(data)
                    last = ev.stream_ended is not None  # type: ignore[attr-defined]
                    if bl[1] > bl[0] or (last and bl[1] != bl[0]):
                        # never forwarded, not even the bytes before the end that comes
                        # short: nginx answers 400 on the stream
                        del self._body_len[sid]
                        self._ack_closed(sid, flow)
                        if sid in self.active:
                            out.append(StreamBodyError(sid, 400, (
                                "client intended to send body data larger than declared"
                                if bl[1] > bl[0] else
                                f"client prematurely closed stream: only {bl[1]} out of "
                                f"{bl[0]} bytes of request body received")))
                            body_bad.add(sid)
                        continue
                if sid in self.active:
                    out.append(StreamData(sid, data, flow))
                else:
                    self._ack_closed(sid, flow)
            elif t is h2.events.StreamEnded:
                sid = ev.stream_id  # type: ignore[attr-defined]
                bl = self._body_len.pop(sid, None)
                if sid in body_bad:
                    continue
                if bl is not None and bl[1] != bl[0] and sid in self.active:
                    out.append(StreamBodyError(sid, 400, f"client prematurely closed stream: "
                                                         f"only {bl[1]} out of {bl[0]} bytes "
                                                         f"of request body received"))
                    continue
                if sid in self.active:
                    out.append(StreamEnded(sid))
            elif t is h2.events.StreamReset:
                sid = ev.stream_id  # type: ignore[attr-defined]
                self._out.pop(sid, None)
                if sid in pending:
                    # opened and reset in the same read: never reported, never started
                    out[pending.pop(sid)] = StreamReset(sid, 0, True, "")
                    self.active.discard(sid)
                    self.prio.closed_stream(sid)
                    self.reset_streams += 1
                    if self._resets.hit():
                        out.append(self._terminate(ENHANCE_YOUR_CALM,
                                                   "client reset too many streams",
                                                   calm=True))
                        return [e for e in out if not _placeholder(e)]
                    continue
                if sid in self.active and ev.remote_reset:  # type: ignore[attr-defined]
                    self.reset_streams += 1
                    if self._resets.hit():
                        out.append(StreamReset(sid, int(ev.error_code or 0), True))  # type: ignore[attr-defined]
                        out.append(self._terminate(ENHANCE_YOUR_CALM,
                                                   "client reset too many streams",
                                                   calm=True))
                        return [e for e in out if not _placeholder(e)]
                if sid in self.active:
                    out.append(StreamReset(sid, int(ev.error_code or 0),  # type: ignore[attr-defined]
                                           bool(ev.remote_reset)))  # type: ignore[attr-defined]
            elif t is h2.events.PriorityUpdated:
                if ev is not skip_prio:
                    self.prio.priority(ev.stream_id, ev.weight,  # type: ignore[attr-defined]
                                       ev.depends_on, bool(ev.exclusive))  # type: ignore[attr-defined]
                    pump = pump or len(self._out) > 1
            elif t is h2.events.PingAckReceived:
                if ev.ping_data == _GOAWAY_PING and self.goaway_final():  # type: ignore[attr-defined]
                    out.append(GoAwayComplete())
            elif t is h2.events.WindowUpdated or t is h2.events.RemoteSettingsChanged:
                pump = True
            elif t is h2.events.ConnectionTerminated:
                self.closed = True
                out.append(ConnectionEnded(int(ev.error_code or 0),  # type: ignore[attr-defined]
                                           "client sent GOAWAY"))
                return [e for e in out if not _placeholder(e)]
            elif t is h2.events.TrailersReceived:
                sid = ev.stream_id  # type: ignore[attr-defined]
                if _list_size(ev.headers) > self.limits.header_limit:  # type: ignore[attr-defined]
                    out.append(self._too_large_header(sid))
                    return [e for e in out if not _placeholder(e)]
                bad = self._check_trailers(ev.headers)  # type: ignore[attr-defined]
                if bad is not None and sid in self.active:
                    self._reset(sid, PROTOCOL_ERROR)
                    out.append(StreamReset(sid, int(PROTOCOL_ERROR), False, bad))
                    continue
                if ev.stream_ended is not None and sid in self.active:  # type: ignore[attr-defined]
                    pass  # StreamEnded follows as its own event
            elif t is h2.events.InformationalResponseReceived or \
                    t is h2.events.ResponseReceived or t is h2.events.PushedStreamReceived:
                # a client never sends these; h2 refuses them itself
                pass
        if pump:
            self.pump()
            out.append(WindowOpened())
        return [e for e in out if not _placeholder(e)]

    def _too_large_header(self, sid: int) -> ConnectionEnded:
        # nginx counts names and values against large_client_header_buffers' number x size
        # as it decodes them (ngx_http_v2_state_process_header): the connection ends, and its
        # GOAWAY names this stream, the last one nginx took
        self.last_stream_id = max(self.last_stream_id, sid)
        return self._terminate(ENHANCE_YOUR_CALM, "client sent too large header", calm=True)

    def _request(self, sid: int, raw: list[tuple[bytes, bytes]], end_stream: bool,
                 prio: tuple[int, int, bool] | None = None) -> H2Event | None:
        if self.going_away and self.goaway_id is not None and sid > self.goaway_id:
            self._reset(sid, REFUSED_STREAM)
            return None
        if self.accept_until is not None and sid > self.accept_until:
            self._reset(sid, REFUSED_STREAM)
            return None
        if len(self.active) >= self.limits.max_concurrent_streams:
            # nginx: "concurrent streams exceeded"; the client may retry it
            self._reset(sid, REFUSED_STREAM)
            if self._resets.hit():
                return self._terminate(ENHANCE_YOUR_CALM, "client sent too many streams",
                                       calm=True)
            return StreamReset(sid, int(REFUSED_STREAM), False,
                               "concurrent streams exceeded")
        self.last_stream_id = max(self.last_stream_id, sid)
        self.accepted += 1
        lim = self.limits
        if self.accept_until is None and (
                (lim.max_requests and self.accepted >= lim.max_requests) or
                (self._stop_at is not None and self._clock() > self._stop_at)):
            self.accept_until = sid
        self.prio.opened(sid, prio)
        res = _validate(raw, end_stream, self.limits)
        if isinstance(res, str):
            self._reset(sid, PROTOCOL_ERROR)
            self.prio.closed_stream(sid)
            return StreamReset(sid, int(PROTOCOL_ERROR), False, res)
        self.active.add(sid)
        block = self.block_sizes.pop(sid, None)
        if isinstance(res, tuple):
            status, reason, head = res
            return StreamError(sid, status, reason, head)
        if block is not None:
            res.header_bytes = block
        if res.content_length is not None and not end_stream:
            if len(self._body_len) > 4 * self.limits.max_concurrent_streams:
                self._body_len = {k: v for k, v in self._body_len.items() if k in self.active}
            self._body_len[sid] = [res.content_length, 0]
        return StreamRequest(sid, res, end_stream)

    def _check_trailers(self, raw: list[tuple[bytes, bytes]]) -> str | None:
        for name, value in raw:
            if name[:1] == b":":
                return "client sent pseudo-header in trailers"
            if not name or not _NAME_OK.issuperset(name):
                return "client sent invalid header name in trailers"
            if value.translate(None, _VALUE_BAD) != value:
                return "client sent invalid header value in trailers"
        return None

    # -- output ----------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        if self._extra:
            self._extra += self.conn.data_to_send()
            out = bytes(self._extra)
            self._extra.clear()
            return out
        return self.conn.data_to_send()

    def send_response(self, sid: int, status: int, headers: list[tuple[str, str]],
                      end_stream: bool = False) -> bool:
        """HEADERS with `:status` and lower-cased fields (connection-specific ones dropped).
        False when the stream is gone."""
        block: list[tuple[bytes, bytes]] = [(b":status", str(status).encode())]
        for k, v in headers:
            lk = k.lower()
            if lk in _DROPPED_OUT:
                continue
            block.append((lk.encode("latin-1"), v.encode("latin-1", "replace")))
        try:
            self.conn.send_headers(sid, block, end_stream=end_stream)
        except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError, KeyError):
            return False
        if end_stream:
            self._out.pop(sid, None)
        return True

    def send_informational(self, sid: int, status: int = 100) -> None:
        try:
            self.conn.send_headers(sid, [(b":status", str(status).encode())])
        except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError, KeyError):
            pass

    def send_body(self, sid: int, data: bytes) -> None:
        """Queue response body bytes; they go out as the windows allow (`pump`)."""
        if not data or self.closed:
            return
        box = self._out.get(sid)
        if box is None:
            box = self._out[sid] = _Outbox()
        box.chunks.append(data)
        box.size += len(data)
        self.pump()

    def send_end(self, sid: int) -> None:
        """END_STREAM after whatever is queued."""
        box = self._out.get(sid)
        if box is None:
            box = self._out[sid] = _Outbox()
        box.end = True
        self.pump()

    def pending(self, sid: int) -> int:
        box = self._out.get(sid)
        return box.size if box is not None else 0

    def pump(self) -> None:
        """Send queued bodies within the flow-control windows: streams in priority order
        (see `_PriorityTree.key`), one frame per stream per round among equals."""
        if self.closed or not self._out:
            return
        if len(self._out) == 1:
            self._pump(list(self._out))
            return
        key = self.prio.key
        order = sorted(self._out, key=key)      # stable: first queued first among equals
        i, n = 0, len(order)
        while i < n:
            k = key(order[i])
            j = i + 1
            while j < n and key(order[j]) == k:
                j += 1
            self._pump(order[i:j])
            i = j

    def _pump(self, sids: list[int]) -> None:
        conn = self.conn
        progress = True
        while progress:
            progress = False
            for sid in sids:
                box = self._out.get(sid)
                if box is None:
                    continue
                try:
                    if box.size == 0:
                        if box.end:
                            conn.end_stream(sid)
                            del self._out[sid]
                            if box.done:
                                self._close_remote(sid)
                        continue
                    window = min(conn.local_flow_control_window(sid),
                                 conn.max_outbound_frame_size)
                    if window <= 0:
                        continue
                    piece = box.take(window)
                    last = box.end and box.size == 0
                    conn.send_data(sid, piece, end_stream=last)
                    if last:
                        del self._out[sid]
                        if box.done:
                            self._close_remote(sid)
                    progress = True
                except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError,
                        h2.exceptions.FlowControlError, KeyError):
                    self._out.pop(sid, None)

    def open_window(self, sid: int, size: int) -> None:
        """The stream's body is being read: raise its window by `size` (WINDOW_UPDATE), at
        most to MAX_WINDOW, as ngx_http_v2_read_request_body does. Nothing when the client
        has ended the stream (nginx sends none then)."""
        st = self.conn.streams.get(sid)
        if self.closed or st is None or st.closed or \
                st.state_machine.state == h2.stream.StreamState.HALF_CLOSED_REMOTE:
            return
        now = int(st.inbound_flow_control_window)
        size = min(size, MAX_WINDOW - now)
        if size <= 0:
            return
        try:
            self.conn.increment_flow_control_window(size, sid)
        except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError, KeyError):
            return
        if now + size > self._window_cap:
            self._window_cap = now + size

    def ack(self, sid: int, n: int) -> None:
        """The consumer took `n` flow-controlled bytes of this stream's body: reopen windows."""
        if n <= 0 or self.closed:
            return
        try:
            self.conn.acknowledge_received_data(n, sid)
        except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError, KeyError,
                ValueError):
            self._ack_closed(sid, n)

    def _ack_closed(self, sid: int, n: int) -> None:
        # data for a stream nobody reads any more: give the connection window back
        if n <= 0 or self.closed:
            return
        try:
            self.conn.acknowledge_received_data(n, sid)
        except Exception:
            try:
                self.conn.increment_flow_control_window(n)
            except Exception:
                pass

    def reset(self, sid: int, code: int = INTERNAL_ERROR) -> None:
        """Reset a stream from our side (e.g. an aborted response)."""
        self._out.pop(sid, None)
        self._reset(sid, code)

    def _reset(self, sid: int, code: int) -> None:
        if self.closed:
            return
        try:
            self.conn.reset_stream(sid, code)
        except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError, KeyError):
            pass

    def stream_done(self, sid: int) -> None:
        """The stream's exchange is over (answered, aborted, or never started): it no longer
        counts against max_concurrent_streams. A client still sending the request body is
        told to stop (`_close_remote`) once the response's END_STREAM is out."""
        self.active.discard(sid)
        self.prio.closed_stream(sid)
        self._body_len.pop(sid, None)
        box = self._out.get(sid)
        if box is not None and box.size == 0 and not box.end:
            del self._out[sid]
            box = None
        if box is not None:
            box.done = True         # the response is still queued: after its last frame
        else:
            self._close_remote(sid)

    def _close_remote(self, sid: int) -> None:
        """RFC 9113 §8.1, as ngx_http_v2_close_stream: a complete response sent before the
        whole request arrived is followed by RST_STREAM(NO_ERROR), so the client stops
        sending a body nobody reads (and keeps the response)."""
        st = self.conn.streams.get(sid)
        if st is not None and st.state_machine.state == h2.stream.StreamState.HALF_CLOSED_LOCAL:
            self._reset(sid, NO_ERROR)

    def stream_open(self, sid: int) -> bool:
        """Whether the client still accepts frames on this stream from us."""
        s = self.conn.streams.get(sid)
        return s is not None and not s.closed

    def goaway(self) -> None:
        """Graceful shutdown, first step (RFC 9113 §6.8): GOAWAY with the largest stream id,
        so the client stops opening streams but none in flight is lost, and a PING; its ACK
        (one round trip later) brings `GoAwayComplete` and the final GOAWAY."""
        if self.closed or self.going_away:
            return
        self.going_away = True
        self._raw(GoAwayFrame(0, last_stream_id=0x7FFFFFFF, error_code=int(NO_ERROR)))
        try:
            self.conn.ping(_GOAWAY_PING)
        except Exception:
            pass

    def goaway_final(self) -> bool:
        """GOAWAY naming the last stream we accept; later streams are refused. True when it
        was sent now."""
        if self.closed or self.goaway_id is not None:
            return False
        self.going_away = True
        self.goaway_id = self.last_stream_id
        self._raw(GoAwayFrame(0, last_stream_id=self.goaway_id, error_code=int(NO_ERROR)))
        return True

    def _raw(self, f: GoAwayFrame) -> None:
        # written around h2 so that h2 stays open for the streams still in flight
        self._extra += self.conn.data_to_send()
        self._extra += f.serialize()

    def terminate(self, code: int, reason: str = "") -> ConnectionEnded:
        return self._terminate(code, reason)

    def _terminate(self, code: int, reason: str, calm: bool = False) -> ConnectionEnded:
        if not self.closed:
            self.closed = True
            try:
                self.conn.close_connection(code, last_stream_id=self.last_stream_id)
            except Exception:
                pass
        self._out.clear()
        return ConnectionEnded(int(code), reason, calm)


def _list_size(raw: list[tuple[bytes, bytes]]) -> int:
    return sum(len(n) + len(v) for n, v in raw)


def _placeholder(e: H2Event) -> bool:
    """A request that was reset in the same read: dropped from the events."""
    return type(e) is StreamReset and e.error_code == 0 and e.by_client and not e.reason


# -- request validation ---------------------------------------------------------------------


def _empty_head(method: str = "GET", path: str = "/") -> RequestHead:
    return RequestHead(method, path, path, None, "2.0", [], "", None, False, True)


def _validate(raw: list[tuple[bytes, bytes]], end_stream: bool,
              lim: H2Limits) -> RequestHead | str | tuple[int, str, RequestHead]:
    """A header block -> RequestHead; a str (reason) for a block we reset with PROTOCOL_ERROR;
    or (status, reason, head) for a request to answer with that status.

    Fields are taken in order, as nginx's ngx_http_v2_state_process_header does, and the
    first one it refuses decides: a name with a control character, space, ':' or upper case,
    or a value with NUL, CR or LF (ngx_http_v2_validate_header), a duplicate, empty, unknown
    or invalid pseudo-header, a duplicate host or content-length: 400; more fields than
    `max_header_count`: 494. Other odd name characters ('.', '_' without
    underscores_in_headers...) only make the field invalid: dropped under
    ignore_invalid_headers, kept otherwise. Then, as ngx_http_v2_run_request: no :method,
    :scheme or :path, no :authority nor host, a host that is not the :authority, an invalid
    content-length or one with no body: 400; CONNECT and TRACE: 405.

    Stricter than nginx, and reset: a pseudo-header after a regular field, connection-specific
    fields and `te` other than trailers (RFC 9113 §8.2.2, §8.3: malformed requests)."""
    method = scheme = authority = path = None
    seen_regular = False
    headers: list[tuple[str, str]] = []
    cookies: list[str] = []
    host_hdr: str | None = None
    cl: int | None = None
    count = 0
    plain = _NAME_PLAIN_US if lim.underscores_in_headers else _NAME_PLAIN

    def bad(status: int, reason: str) -> tuple[int, str, RequestHead]:
        # a best-effort view for the access log: the method once it is known to be valid
        head = _empty_head(method or "GET")
        head.header_bytes = sum(len(n) + len(v) + 4 for n, v in raw)
        return status, reason, head

    for name, value in raw:
        if not name:
            return "client sent zero header name length"   # `_walk` ends the connection first
        pseudo = name[0] == 0x3A  # ':'
        chars = name[1:] if pseudo else name
        if chars.translate(None, _NAME_BAD) != chars:
            return bad(400, f"client sent invalid header name: \"{name.decode('latin-1')}\"")
        if value.translate(None, _VALUE_BAD) != value:
            return bad(400, f"client sent header \"{name.decode('latin-1')}\" with invalid "
                            f"value")
        if pseudo:
            if seen_regular:
                return "client sent pseudo-header after regular header"
            sval = value.decode("latin-1")
            if name == b":method":
                if method is not None:
                    return bad(400, "client sent duplicate :method header")
                if not sval:
                    return bad(400, "client sent empty :method header")
                if sval not in _METHODS and not _METHOD_OK.issuperset(value):
                    return bad(400, f"client sent invalid method: \"{sval}\"")
                method = sval
            elif name == b":path":
                if path is not None:
                    return bad(400, "client sent duplicate :path header")
                if not sval:
                    return bad(400, "client sent empty :path header")
                # ngx_http_parse_uri: origin-form only ('*' too is refused), no control
                # characters or spaces; '#' and bytes >= 0x80 are refused here as well
                if value[0] != 0x2F or value.translate(None, _PATH_BAD) != value:
                    return bad(400, f"client sent invalid :path header: \"{sval}\"")
                path = sval
            elif name == b":scheme":
                if scheme is not None:
                    return bad(400, "client sent duplicate :scheme header")
                if not sval:
                    return bad(400, "client sent empty :scheme header")
                if not _ALPHA.issuperset(value[:1]) or not _SCHEME_OK.issuperset(value):
                    return bad(400, f"client sent invalid :scheme header: \"{sval}\"")
                scheme = sval
            elif name == b":authority":
                if authority is not None:
                    return bad(400, "client sent duplicate \":authority\" header")
                if parse_host(sval) is None:
                    return bad(400, "client sent invalid \":authority\" header")
                authority = sval
            else:
                return bad(400, f"client sent unknown pseudo-header "
                                f"\"{name.decode('latin-1')}\"")
            continue
        seen_regular = True
        if not plain.issuperset(name) and lim.ignore_invalid_headers:
            continue                     # nginx: "client sent invalid header", dropped
        if name in _CONNECTION_SPECIFIC:
            return f"client sent connection-specific header {name.decode('latin-1')!r}"
        if name == b"te" and value.strip().lower() != b"trailers":
            return "client sent TE header other than trailers"
        sval = value.decode("latin-1").strip(" \t")
        if name == b"cookie":
            cookies.append(sval)
            continue
        count += 1
        if count > lim.max_header_count:
            return bad(494, "client sent too many header lines")
        if name == b"host":
            if host_hdr is not None:
                return bad(400, "client sent duplicate host header")
            if parse_host(sval) is None:
                return bad(400, "client sent invalid host header")
            host_hdr = sval
            continue
        if name == b"content-length":
            if cl is not None:
                return bad(400, "client sent duplicate header line: \"Content-Length\"")
            if not sval.isdigit() or not sval.isascii() or len(sval) > 18:
                return bad(400, "client sent invalid \"Content-Length\" header")
            cl = int(sval)
        if name == b"http2-settings":
            continue
        headers.append((name.decode("latin-1"), sval))
    if method is None:
        return bad(400, "client sent no :method header")
    if scheme is None:
        return bad(400, "client sent no :scheme header")
    if path is None:
        return bad(400, "client sent no :path header")
    head = _empty_head()
    head.header_bytes = sum(len(n) + len(v) + 4 for n, v in raw)
    head.method = method
    if authority is not None:
        host = parse_host(authority) or ""
        # nginx compares the two values as sent (1.29.1+ accepts them when equal)
        if host_hdr is not None and host_hdr != authority:
            return 400, "client sent \":authority\" and \"Host\" headers with different " \
                        "values", head
        headers.insert(0, ("host", authority))
    elif host_hdr is not None:
        host = parse_host(host_hdr) or ""
        headers.insert(0, ("host", host_hdr))
    else:
        return 400, "client sent neither \":authority\" nor \"Host\" header", head
    if cookies:
        headers.append(("cookie", "; ".join(cookies)))
    qpos = path.find("?")
    head.target = path
    head.path = path[:qpos] if qpos >= 0 else path
    head.query = path[qpos + 1:] if qpos >= 0 else None
    head.host = host
    head.headers = headers
    head.scheme = None
    if end_stream and cl:
        return 400, "client prematurely closed stream", head
    if method == "CONNECT":
        return 405, "client sent CONNECT method", head
    if method == "TRACE":
        return 405, "client sent TRACE method", head
    head.content_length = cl
    head.chunked = not end_stream and cl is None
    head.keep_alive = True
    head.upgrade = None
    return head
