"""HTTP/2 server side, sans-IO: client bytes -> stream events, responses -> bytes.

Theory of operation. `H2Server` is truehop's own HTTP/2 connection (RFC 9113), in the shape
of `http.h1`: `feed` takes what the client sent and returns events, the `send_*` methods queue
frames that `data_to_send` hands out. Frames are read in place (`http.h2frames`), header
blocks decoded by `http.hpack` (nginx's limits applied as it decodes), and the whole of it is
compiled by mypyc with the rest of the request path. The `h2` library is only the tests'
client and oracle.

- **Frames and stream states.** A frame is acted on once it is complete (header checks
  below run as soon as its 9-byte header is in). Streams are idle until HEADERS opens them
  (odd ids, increasing: else PROTOCOL_ERROR), open, half-closed when either side sent
  END_STREAM, closed when both did or either reset it (`_Stream`). A header block is
  HEADERS then CONTINUATION frames on the same stream with nothing between (else
  PROTOCOL_ERROR); it is decoded when END_HEADERS arrives, whatever the stream's fate, so the
  HPACK context stays in step. Frames on streams we reset are dropped (their DATA still gives
  the connection window back); DATA on a stream the client half-closed is answered with
  RST_STREAM(STREAM_CLOSED) on that stream, as ngx_http_v2_state_data. SETTINGS are
  applied and acknowledged; PING answered; a client GOAWAY ends the connection; PRIORITY
  is read for the send order (below); unknown frame types are skipped; PUSH_PROMISE from a
  client is a PROTOCOL_ERROR.
- **Request validation, per stream.** Malformed header blocks are stream errors (RFC 9113
  §8.1.1, and nginx): `_validate` checks each block: lower-case token names, no CR/LF/NUL in
  values, known pseudo-headers first and once, no connection-specific fields (§8.2.2;
  `te: trailers` only), `:method` a token and `:path` origin-form (`*` only for OPTIONS)
  before anything reaches an HTTP/1.1 serializer. Syntax violations reset the stream with
  PROTOCOL_ERROR; semantic ones (`:method` with a space, absolute `:path`, a `host` that
  disagrees with `:authority`) become a `StreamError` that the connection answers with 400
  on that stream, as nginx does.
- **Abuse limits.** As soon as a frame header is in: a header block (HEADERS +
  CONTINUATION) larger than `max_header_block` bytes or 32 frames, a flood of PING /
  SETTINGS / PRIORITY / empty DATA frames, end the connection with GOAWAY ENHANCE_YOUR_CALM
  before the block is buffered; a DATA frame larger than its stream's window is
  FLOW_CONTROL_ERROR, any other frame over 16k FRAME_SIZE_ERROR. A header block that has
  only partly arrived is followed (`hpack.walk`) so that an HPACK string over
  `max_field_size` or an overlong integer is refused as soon as its bytes are in, as nginx's
  streaming parser does. Rapid reset (CVE-2023-44487): more than 2 x
  `max_concurrent_streams` new streams in one read, or client resets of unfinished streams
  beyond the same budget per `reset_window` seconds, end the connection the same way. A
  stream arriving while `max_concurrent_streams` of ours are still active (a reset stream
  stays active until its pipeline task is gone, see `stream_done`) is refused with
  REFUSED_STREAM. Streams opened and reset in the same read are never reported.
- **Flow control both ways.** Request body bytes are acknowledged (`ack`) only when the
  consumer has taken them, so a slow upstream slows the client (a WINDOW_UPDATE once half a
  window is consumed, `_Window`); as nginx, a stream's window is the preread 64k until the
  reader opens it (`open_window`), the connection's is 2^31-1, and a stream answered before
  its request ended is reset with NO_ERROR (`stream_done`). Response bodies are queued per
  stream (`send_body` / `send_end`) and written as the client's windows allow; `pending(sid)`
  tells the caller how much waits, for back-pressure. A WINDOW_UPDATE or SETTINGS that takes
  a window past 2^31-1 is FLOW_CONTROL_ERROR (the stream's, or the connection's).
- **Priority (RFC 7540 §5.3, as nginx keeps it).** PRIORITY frames and HEADERS priority
  build a dependency tree (`_Node`: weight, parent, children, rank = depth, rel_weight =
  weight/256 times the parent's). Nodes of closed or idle streams are kept up to 32 and then
  reused oldest first, their children moving up to the removed node's parent with scaled
  weights, as nginx's `ngx_http_v2_get_closed_node`. `pump` serves the streams in nginx's
  frame order: shallower first, then the larger relative weight, round robin among equals.
  A stream that depends on itself ends the connection with PROTOCOL_ERROR; for a HEADERS
  frame its GOAWAY names the previous stream, since the new one was never accepted.
- **Graceful GOAWAY.** `goaway()` writes GOAWAY(NO_ERROR, 2^31-1) and a PING, so streams in
  flight still finish; the PING's ACK sends the final GOAWAY; newer streams are refused.
- **Last stream of a connection (keepalive_requests, keepalive_time, keepalive_timeout 0).**
  nginx decides it when a stream is created (ngx_http_v2_state_headers): the stream that makes
  the count reach `max_requests`, or that arrives when the connection is older than
  `max_lifetime`, is served and is the last one; `accept_until` names it, streams after it are
  refused (REFUSED_STREAM, safe for the client to retry), and the caller sends the final GOAWAY
  (`goaway_final`, naming that stream) once its streams are done. nginx sends that GOAWAY at
  once; waiting for the streams in flight gives the same last stream id and keeps h2-based
  clients (python h2 / httpx), which drop every open stream when a GOAWAY arrives, working.

Errors never leave as exceptions: a connection-level failure becomes a `ConnectionEnded`
event (GOAWAY already queued in `data_to_send`), after which the caller closes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from truehop.http.events import RequestHead
from truehop.http.h1 import parse_host
from truehop.http.h2frames import (
    ACK,
    CONTINUATION,
    DATA,
    DEFAULT_FRAME_SIZE,
    DEFAULT_WINDOW,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PADDED,
    PING,
    PRIORITY,
    PRIORITY_FLAG,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    SETTINGS_ENABLE_CONNECT_PROTOCOL,
    SETTINGS_ENABLE_PUSH,
    SETTINGS_HEADER_TABLE_SIZE,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    SETTINGS_MAX_FRAME_SIZE,
    WINDOW_UPDATE,
    data_frame,
    goaway_frame,
    headers_frames,
    ping_frame,
    read_header,
    rst_stream_frame,
    settings_ack,
    settings_frame,
    u32,
    window_update_frame,
)
from truehop.http.h2frames import PREFACE as PREFACE
from truehop.http.hpack import DEFAULT_TABLE_SIZE, Decoder, Encoder, HPACKError, walk

NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
FLOW_CONTROL_ERROR: Final = 0x3
STREAM_CLOSED: Final = 0x5
FRAME_SIZE_ERROR: Final = 0x6
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
COMPRESSION_ERROR: Final = 0x9
ENHANCE_YOUR_CALM: Final = 0xB

MAX_CONTINUATION_FRAMES: Final = 32   # nginx-like bound on the frames of one header block
MAX_FRAME_SIZE: Final = (1 << 24) - 1  # nginx advertises (and reads) frames up to this size
MAX_WINDOW: Final = (1 << 31) - 1      # NGX_HTTP_V2_MAX_WINDOW, the largest RFC 9113 allows
PREREAD_SIZE: Final = 65536            # http2_body_preread_size's default: a stream's first window
_MAX_CONTROL_FRAME: Final = 16384      # any frame but HEADERS, CONTINUATION and DATA
_GOAWAY_PING: Final = b"truehop\x00"
_RESET_IDS_KEPT: Final = 1024          # streams reset lately whose late frames are dropped


# RFC 9110 token characters; header names must also be lower case in HTTP/2
_NAME_OK: Final = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")
# ngx_http_v2_validate_header: these name bytes make the request a 400; any byte outside
# _NAME_PLAIN (and '_' with underscores_in_headers) only makes the field invalid
_NAME_BAD: Final = bytes(range(0x00, 0x21)) + b"\x7f:ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME_PLAIN: Final = frozenset(b"-0123456789abcdefghijklmnopqrstuvwxyz")
_NAME_PLAIN_US: Final = _NAME_PLAIN | {0x5F}


def _changing(keep: frozenset[int]) -> bytes:
    """A translate table that keeps the bytes in `keep` and changes every other one."""
    return bytes(c if c in keep else (0 if c else 1) for c in range(256))


_PLAIN_MAP: Final = _changing(_NAME_PLAIN)
_PLAIN_MAP_US: Final = _changing(_NAME_PLAIN_US)
_PATH_MAP: Final = _changing(frozenset(c for c in range(0x21, 0x7F) if c != 0x23))
_NAME_STRS: Final[dict[bytes, str]] = {}


def _name_str(name: bytes) -> str:
    """A header name as str: the same few names come again and again (HPACK's tables hand
    out the same bytes objects), so they are decoded once."""
    s = _NAME_STRS.get(name)
    if s is None:
        s = name.decode("latin-1")
        if len(_NAME_STRS) >= 4096:
            _NAME_STRS.clear()
        _NAME_STRS[name] = s
    return s


_ALPHA: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SCHEME_OK: Final = _ALPHA | frozenset(b"0123456789+-.")
# ngx_http_v2_parse_method: a method nginx knows, or upper-case letters, '_' and '-'
_METHODS: Final = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PROPFIND", "PUT", "MKCOL", "DELETE",
                      "COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK", "PATCH", "TRACE",
                      "CONNECT"})
_METHOD_OK: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-")
_PSEUDO: Final = frozenset({b":method", b":scheme", b":authority", b":path"})
# RFC 9113 §8.2.2: connection-specific fields make a request malformed
_CONNECTION_SPECIFIC: Final = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                                  b"transfer-encoding", b"upgrade"})
_DROPPED_OUT: Final = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                          "upgrade", "te", "http2-settings"})




@dataclass
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


class StreamRequest:
    """A valid request head on a new stream. `end_stream`: no body follows."""

    def __init__(self, stream_id: int, head: RequestHead, end_stream: bool) -> None:
        self.stream_id = stream_id
        self.head = head
        self.end_stream = end_stream


class StreamError:
    """A request the connection must answer with `status` on this stream (400, 494),
    nothing forwarded. `head` is a best-effort view of the request for the access log."""

    def __init__(self, stream_id: int, status: int, reason: str, head: RequestHead) -> None:
        self.stream_id = stream_id
        self.status = status
        self.reason = reason
        self.head = head


class StreamBodyError:
    """The request body is not what its content-length says (ngx_http_v2_filter_request_body):
    the bytes past it were not reported; the stream's request ends with `status`."""

    def __init__(self, stream_id: int, status: int, reason: str) -> None:
        self.stream_id = stream_id
        self.status = status
        self.reason = reason


class StreamData:
    """Request body bytes; `flow`: their flow-controlled length, to pass to `ack` once
    consumed."""

    def __init__(self, stream_id: int, data: bytes, flow: int) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow = flow


class StreamEnded:
    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamReset:
    """The client reset a stream we knew (or we reset it after a protocol error in it)."""

    def __init__(self, stream_id: int, error_code: int, by_client: bool,
                 reason: str = "") -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.by_client = by_client
        self.reason = reason


class WindowOpened:
    """Send windows may have grown: the caller should offer queued bodies again (`pump`
    already ran; this tells it to wake writers waiting on `pending`)."""


class GoAwayComplete:
    """The final GOAWAY of a graceful shutdown went out: close once no stream is left."""


class ConnectionEnded:
    """The connection is over: flush `data_to_send()` and close. `calm`: abuse detected."""

    def __init__(self, error_code: int, reason: str, calm: bool = False) -> None:
        self.error_code = error_code
        self.reason = reason
        self.calm = calm


H2Event = StreamRequest | StreamError | StreamData | StreamEnded | StreamReset | WindowOpened | \
    GoAwayComplete | ConnectionEnded | StreamBodyError

_PLACEHOLDER: Final = StreamReset(0, 0, True, "")   # a request reset in the same read


class _ConnectionError(Exception):
    """Ends the connection: GOAWAY with `code`, naming `last` (-1: the last stream taken)."""

    def __init__(self, code: int, reason: str, last: int = -1) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.last = last


class _Window:
    """A receive window and when to reopen it, as the h2 library did (its WindowManager,
    which the tests' h2 client also uses): bytes the consumer has taken are given back once
    they reach half the window (or at once when the window is shut), so WINDOW_UPDATE frames
    stay few."""

    def __init__(self, size: int) -> None:
        self.current = size
        self.max = size
        self.processed = 0

    def opened(self, n: int) -> None:
        self.current += n
        if self.current > self.max:
            self.max = self.current

    def process(self, n: int) -> int:
        """`n` bytes consumed: the increment to send now (0: none yet)."""
        self.processed += n
        done = self.processed
        increment = 0
        if self.current == 0 and done > min(1024, self.max // 4):
            increment = min(done, self.max - self.current)
            self.processed = 0
        elif done >= self.max // 2:
            increment = min(done, self.max - self.current)
            self.processed = 0
        self.current += increment
        return increment


class _Stream:
    """One stream's protocol state (the exchange itself is the caller's)."""

    def __init__(self, sid: int, recv_window: int, send_window: int) -> None:
        self.sid = sid
        self.remote_closed = False       # the client sent END_STREAM
        self.local_closed = False        # we sent END_STREAM
        self.recv = _Window(recv_window)
        self.send_window = send_window
        self.declared = -1               # the request's content-length, -1: none
        self.received = 0                # body bytes so far, against `declared`
        self.bad_feed = -1               # the read in which the body length was refused


class H2ConnectionState:
    """The connection's windows and the peer's settings that bound what we send."""

    def __init__(self) -> None:
        self.outbound_flow_control_window = DEFAULT_WINDOW
        self.max_outbound_frame_size = DEFAULT_FRAME_SIZE
        self.peer_initial_window = DEFAULT_WINDOW
        self.recv = _Window(DEFAULT_WINDOW)


class _Outbox:

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


DEFAULT_WEIGHT: Final = 16
MAX_CLOSED_NODES: Final = 32              # nginx: priority nodes kept for closed and idle streams


class _Node:
    """One stream in the priority tree. `parent` is None until the node is placed; the root
    is a `_Node(0)` with rank 0 and rel_weight 1.0."""


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
        self.conn = H2ConnectionState()
        self.streams: dict[int, _Stream] = {}
        self.decoder = Decoder(lim.max_field_size,
                               max(lim.max_header_list_size, lim.header_limit + 32 * 1024))
        self.encoder = Encoder()
        self.closed = False
        self.going_away = False
        self.last_stream_id = 0          # highest stream id accepted (GOAWAY's last id)
        self.highest_id = 0              # highest stream id the client opened
        self.goaway_id: int | None = None
        self.accept_until: int | None = None   # the connection's last stream, once decided
        self.accepted = 0                # streams accepted (nginx's connection->requests)
        self._clock = clock
        self._stop_at = clock() + lim.max_lifetime if lim.max_lifetime > 0 else -1.0
        self.active: set[int] = set()    # streams reported and not yet `stream_done`
        self.reset_streams = 0           # client resets of unfinished streams (lifetime)
        self._reset_ids: dict[int, None] = {}   # streams reset lately (late frames dropped)
        self._send = bytearray()         # frames to send
        self._out: dict[int, _Outbox] = {}
        self._resets = _Budget(lim.reset_budget, lim.reset_window, clock)
        self._block_limit = max(lim.max_header_block, 2 * lim.header_limit)
        self._control = _Budget(lim.control_frame_budget, lim.reset_window, clock)
        # input state: bytes of an incomplete frame (or preface) and how many it needs
        self._buf = bytearray()
        self._need = len(PREFACE)
        self._preface = True
        self._checked = False            # the buffered frame's header checks are done
        # the header block being received: its stream, flags of its HEADERS frame, its
        # fragments so far when it spans frames, bytes and frames counted, priority fields
        self.in_header_block = False
        self._block_sid = 0
        self._block_flags = 0
        self._block_prio: tuple[int, int, bool] | None = None
        self._blk = bytearray()
        self._block_bytes = 0            # HPACK bytes ($request_length as nginx counts it)
        self._block_frames = 0
        self._block_limit_seen = 0       # bytes of the block's frames (the flood bound)
        self._w_resume = 0               # where `hpack.walk` resumes in the open block
        # per read
        self._events: list[H2Event] = []
        self._feeds = 0
        self._new_streams = 0
        self._pending: dict[int, int] = {}     # stream -> index of its request in _events
        self._placeholders = False
        self._pump_after = False
        self.prio = _PriorityTree()
        self._window_cap = lim.initial_window   # the largest stream window given

    # -- setup -----------------------------------------------------------------------------

    def start(self) -> None:
        """Queue the server preface: SETTINGS (as before the codec was truehop's own: the
        RFC defaults spelled out, and nginx's values: MAX_FRAME_SIZE 2^24-1, so a client may
        send a whole header block in one HEADERS frame; no MAX_HEADER_LIST_SIZE), and a
        larger connection window."""
        lim = self.limits
        out = self._send
        settings_frame(out, [(SETTINGS_HEADER_TABLE_SIZE, DEFAULT_TABLE_SIZE),
                             (SETTINGS_ENABLE_PUSH, 0),
                             (SETTINGS_INITIAL_WINDOW_SIZE, lim.initial_window),
                             (SETTINGS_MAX_FRAME_SIZE, lim.max_frame_size),
                             (SETTINGS_ENABLE_CONNECT_PROTOCOL, 0),
                             (SETTINGS_MAX_CONCURRENT_STREAMS, lim.max_concurrent_streams)])
        extra = lim.connection_window - DEFAULT_WINDOW
        if extra > 0:
            window_update_frame(out, 0, extra)
            self.conn.recv.opened(extra)

    # -- input -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[H2Event]:
        if self.closed:
            return []
        buf = self._buf
        if buf:
            if len(buf) + len(data) < self._need and self._checked and \
                    not self.in_header_block and not self._partial_is_block():
                buf += data             # the rest of a large frame: nothing to do yet
                return []
            buf += data
            data = bytes(buf)
            self._buf = bytearray()
        events: list[H2Event] = []
        self._events = events
        self._feeds += 1
        self._new_streams = 0
        if self._pending:
            self._pending = {}
        self._placeholders = False
        self._pump_after = False
        mark = len(self._send)
        try:
            self._frames(data)
            if self.in_header_block or (self._buf and self._partial_is_block()):
                self._walk_block()
        except _ConnectionError as e:
            if e.last >= 0 and e.last > self.last_stream_id:
                # an error inside a header block: nginx has taken that stream as its last
                # one (ngx_http_v2_state_headers sets last_sid before reading the block)
                self.last_stream_id = e.last
            if e.code == ENHANCE_YOUR_CALM:
                del self._send[mark:]   # no pile of answers to a flood
            events.append(self._terminate(e.code, e.reason, e.code == ENHANCE_YOUR_CALM))
            return self._result(events)
        if self.closed:
            return self._result(events)
        if self._pump_after:
            self.pump()
            events.append(WindowOpened())
        return self._result(events)

    def _result(self, events: list[H2Event]) -> list[H2Event]:
        if self._placeholders:
            return [e for e in events if e is not _PLACEHOLDER]
        return events

    def _partial_is_block(self) -> bool:
        """Whether the buffered incomplete frame carries part of a header block."""
        buf = self._buf
        return not self._preface and len(buf) >= 9 and \
            (buf[3] == HEADERS or buf[3] == CONTINUATION)

    def _frames(self, data: bytes) -> None:
        pos = 0
        n = len(data)
        if self._preface:
            m = min(n, len(PREFACE))
            if data[:m] != PREFACE[:m]:
                raise _ConnectionError(PROTOCOL_ERROR,
                                       "client sent invalid HTTP/2: invalid preface")
            if n < len(PREFACE):
                self._buf = bytearray(data)
                self._need = len(PREFACE)
                return
            self._preface = False
            pos = len(PREFACE)
        while pos < n:
            if n - pos < 9:
                self._buf = bytearray(data[pos:])
                self._need = 9
                self._checked = False
                return
            length, ftype, flags, sid = read_header(data, pos)
            if not self._checked:
                self._check_header(length, ftype, flags, sid)
            if n - pos - 9 < length:
                self._buf = bytearray(data[pos:])
                self._need = 9 + length
                self._checked = True
                return
            self._checked = False
            start = pos + 9
            pos = start + length
            if self.in_header_block and ftype != CONTINUATION:
                raise _ConnectionError(PROTOCOL_ERROR, f"client sent frame of type {ftype} "
                                                       f"inside a header block")
            if ftype == HEADERS:
                self._headers(data, start, length, flags, sid)
            elif ftype == DATA:
                self._data(data, start, length, flags, sid)
            elif ftype == CONTINUATION:
                self._continuation(data, start, length, flags, sid)
            elif ftype == WINDOW_UPDATE:
                self._window_update(data, start, length, sid)
            elif ftype == SETTINGS:
                self._settings(data, start, length, flags, sid)
            elif ftype == RST_STREAM:
                self._rst_stream(data, start, length, sid)
            elif ftype == PING:
                self._ping(data, start, length, flags, sid)
            elif ftype == PRIORITY:
                self._priority_frame(data, start, length, sid)
            elif ftype == GOAWAY:
                if sid != 0:
                    raise _ConnectionError(PROTOCOL_ERROR, "client sent GOAWAY frame with "
                                                           "non-zero stream id")
                if length < 8:
                    raise _ConnectionError(FRAME_SIZE_ERROR, "client sent GOAWAY frame with "
                                                             "incorrect length")
                self.closed = True
                self._out.clear()
                self._events.append(ConnectionEnded(u32(data, start + 4),
                                                    "client sent GOAWAY"))
                return
            elif ftype == PUSH_PROMISE:
                raise _ConnectionError(PROTOCOL_ERROR, "client sent PUSH_PROMISE frame")
            # other types: extensions, skipped (RFC 9113 §4.1)
            if self.closed:
                return

    def _check_header(self, length: int, ftype: int, flags: int, sid: int) -> None:
        """What is refused as soon as a frame header is in, before its payload is buffered:
        an oversized header block, a control-frame flood, a DATA frame no window can take,
        an oversized control frame."""
        if length > self.limits.max_frame_size:
            raise _ConnectionError(FRAME_SIZE_ERROR, f"client sent too large frame of type "
                                                     f"{ftype}: {length}")
        if ftype == HEADERS:
            if length > self._block_limit:
                raise _ConnectionError(ENHANCE_YOUR_CALM, "client sent too large header block")
            self._block_limit_seen = length
            self._block_frames = 1
            self._block_sid = sid
            # a new block: nothing of it walked yet
            self._w_resume = 0
            self._blk = bytearray()
        elif ftype == CONTINUATION:
            if self.in_header_block:
                self._block_limit_seen += length
                self._block_frames += 1
                if self._block_limit_seen > self._block_limit or \
                        self._block_frames > MAX_CONTINUATION_FRAMES:
                    raise _ConnectionError(
                        ENHANCE_YOUR_CALM,
                        "client sent too large header block (CONTINUATION flood)")
        elif ftype == PING or ftype == SETTINGS:
            if not flags & ACK and self._control.hit():
                raise _ConnectionError(ENHANCE_YOUR_CALM,
                                       "client sent too many PING/SETTINGS frames (flood)")
        elif ftype == PRIORITY or (ftype == DATA and length == 0 and not flags & END_STREAM):
            if self._control.hit():
                raise _ConnectionError(ENHANCE_YOUR_CALM, "client sent too many empty frames "
                                                          "(flood)")
        if ftype == DATA:
            # a frame larger than its stream's window (the initial one, unless the body's
            # reader opened it) is a flow-control violation, refused before it is buffered
            if length > self.limits.initial_window and length > self._stream_window(sid):
                raise _ConnectionError(FLOW_CONTROL_ERROR, f"client violated flow control: "
                                                           f"received DATA frame length "
                                                           f"{length}")
        elif ftype != HEADERS and ftype != CONTINUATION and length > _MAX_CONTROL_FRAME:
            # we accept frames up to 2^24-1 as nginx advertises (for HEADERS and DATA); no
            # other frame needs more than this
            raise _ConnectionError(FRAME_SIZE_ERROR, f"client sent too large frame of type "
                                                     f"{ftype}")

    def _stream_window(self, sid: int) -> int:
        """The largest DATA frame the client may send on a stream now (or had in flight when
        we closed it)."""
        st = self.streams.get(sid)
        if st is None:
            # a new stream (HEADERS in this read), or one closed and forgotten, whose DATA
            # may still be in flight within the largest window we gave
            return self._window_cap
        return max(st.recv.current, self.limits.initial_window)

    # -- header blocks ---------------------------------------------------------------------

    def _walk_block(self) -> None:
        """Follow what has arrived of an open header block (module docstring): the complete
        fragments in `_blk`, then the part of a buffered incomplete frame."""
        buf = self._buf
        frag = b""
        if buf and not self._preface and len(buf) >= 9:
            length, ftype, flags, sid = read_header(bytes(buf[:9]), 0)
            if ftype == HEADERS:
                pre = (1 if flags & PADDED else 0) + (5 if flags & PRIORITY_FLAG else 0)
                if len(buf) - 9 < pre:
                    return
                pad = buf[9] if flags & PADDED else 0
                if pad + pre >= length:
                    return                   # refused when complete
                frag = bytes(buf[9 + pre:min(len(buf), 9 + length - pad)])
            elif ftype == CONTINUATION and self.in_header_block:
                frag = bytes(buf[9:])
        blk = self._blk
        r = self._w_resume
        if r < len(blk):
            tail = bytes(blk[r:]) + frag
        else:
            tail = frag[r - len(blk):]
        if not tail:
            return
        try:
            self._w_resume = r + walk(tail, 0, len(tail), self.limits.max_field_size)
        except HPACKError as e:
            raise _ConnectionError(e.code, e.reason, self._block_sid) from None

    def _headers(self, data: bytes, start: int, length: int, flags: int, sid: int) -> None:
        if sid == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "client sent HEADERS frame with "
                                                   "stream id 0")
        pos = start
        end = start + length
        if flags & PADDED:
            if length < 1:
                raise _ConnectionError(FRAME_SIZE_ERROR, "client sent HEADERS frame with "
                                                         "incorrect length")
            end -= data[pos]
            pos += 1
        prio: tuple[int, int, bool] | None = None
        if flags & PRIORITY_FLAG:
            if end - pos < 5:
                raise _ConnectionError(PROTOCOL_ERROR if flags & PADDED else FRAME_SIZE_ERROR,
                                       "client sent HEADERS frame with incorrect length")
            dep = u32(data, pos)
            prio = (data[pos + 4] + 1, dep & 0x7FFFFFFF, dep >> 31 == 1)
            pos += 5
        if end < pos:
            raise _ConnectionError(PROTOCOL_ERROR, "client sent padded HEADERS frame with "
                                                   "incorrect length")
        if prio is not None and prio[1] == sid:
            # nginx never took that stream: its GOAWAY names the one before
            raise _ConnectionError(PROTOCOL_ERROR, f"client sent HEADERS frame for stream "
                                                   f"{sid} with incorrect dependency")
        self._block_sid = sid
        self._block_flags = flags
        self._block_prio = prio
        self._block_bytes = end - pos
        if flags & END_HEADERS:
            self.in_header_block = False
            self._block(data, pos, end)
        else:
            self.in_header_block = True
            self._blk = bytearray(data[pos:end])

    def _continuation(self, data: bytes, start: int, length: int, flags: int,
                      sid: int) -> None:
        if not self.in_header_block or sid != self._block_sid:
            raise _ConnectionError(PROTOCOL_ERROR, "client sent unexpected CONTINUATION "
                                                   "frame")
        self._blk += data[start:start + length]
        self._block_bytes += length
        if flags & END_HEADERS:
            self.in_header_block = False
            blk = bytes(self._blk)
            self._blk = bytearray()
            self._block(blk, 0, len(blk))

    def _block(self, data: bytes, pos: int, end: int) -> None:
        """A complete header block for `_block_sid`: decoded, then a request, trailers, or
        dropped (a stream we reset)."""
        sid = self._block_sid
        try:
            fields = self.decoder.decode(data, pos, end)
        except HPACKError as e:
            if e.code == ENHANCE_YOUR_CALM and e.reason == "client sent too large header":
                # nginx counts names and values as it decodes them
                # (ngx_http_v2_state_process_header): its GOAWAY names this stream
                raise _ConnectionError(ENHANCE_YOUR_CALM, e.reason, sid) from None
            reason = e.reason
            if e.code == COMPRESSION_ERROR or e.code == FRAME_SIZE_ERROR:
                reason = f"client sent invalid header block: {reason}"
            raise _ConnectionError(e.code, reason, sid) from None
        end_stream = self._block_flags & END_STREAM != 0
        st = self.streams.get(sid)
        if st is not None:
            self._trailers(st, fields, end_stream)
            return
        if sid <= self.highest_id:
            if sid in self._reset_ids:
                return                   # a stream we reset: late frames are dropped
            raise _ConnectionError(STREAM_CLOSED if sid & 1 else PROTOCOL_ERROR,
                                   f"client sent HEADERS frame for closed stream {sid}")
        if not sid & 1:
            raise _ConnectionError(PROTOCOL_ERROR, f"client sent HEADERS frame with "
                                                   f"incorrect identifier {sid}")
        self.highest_id = sid
        self._new_streams += 1
        if self._new_streams > self.limits.reset_budget:
            raise _ConnectionError(ENHANCE_YOUR_CALM, "client sent too many streams at once")
        if self.decoder.list_size > self.limits.header_limit:
            raise _ConnectionError(ENHANCE_YOUR_CALM, "client sent too large header", sid)
        r = self._request(sid, fields, end_stream, self._block_prio)
        if r is None:
            return
        t = type(r)
        events = self._events
        if t is StreamRequest or t is StreamError:
            self._pending[sid] = len(events)
        events.append(r)
        if end_stream and sid in self.active:
            st = self.streams.get(sid)
            if st is not None:
                self._remote_end(st)

    def _trailers(self, st: _Stream, fields: list[tuple[bytes, bytes]],
                  end_stream: bool) -> None:
        sid = st.sid
        if st.remote_closed:
            self._stream_error(sid, STREAM_CLOSED, "client sent HEADERS frame for "
                                                   "half-closed stream")
            return
        if not end_stream:
            raise _ConnectionError(PROTOCOL_ERROR, "client sent trailer headers without "
                                                   "END_STREAM flag")
        if self.decoder.list_size > self.limits.header_limit:
            raise _ConnectionError(ENHANCE_YOUR_CALM, "client sent too large header", sid)
        bad = _check_trailers(fields)
        if bad is not None:
            self._stream_error(sid, PROTOCOL_ERROR, bad)
            return
        self._remote_end(st)

    def _stream_error(self, sid: int, code: int, reason: str) -> None:
        """Reset the stream from our side for what the client did on it (reported when it
        is active)."""
        self._out.pop(sid, None)
        self._send_rst(sid, code)
        if sid in self.active:
            self._events.append(StreamReset(sid, code, False, reason))

    # -- other frames ----------------------------------------------------------------------

    def _data(self, data: bytes, start: int, length: int, flags: int, sid: int) -> None:
        if sid == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "client sent DATA frame with stream id 0")
        pos = start
        end = start + length
        if flags & PADDED:
            if length < 1 or data[pos] >= length:
                raise _ConnectionError(PROTOCOL_ERROR, "client sent padded DATA frame with "
                                                       "incorrect length")
            end -= data[pos]
            pos += 1
        conn = self.conn
        if length > conn.recv.current:
            raise _ConnectionError(FLOW_CONTROL_ERROR, f"client violated connection flow "
                                                       f"control: received DATA frame length "
                                                       f"{length}")
        conn.recv.current -= length
        st = self.streams.get(sid)
        if st is None:
            if sid > self.highest_id:
                raise _ConnectionError(PROTOCOL_ERROR, f"client sent DATA frame for idle "
                                                       f"stream {sid}")
            self._ack_connection(length)     # a stream gone: nobody reads it
            return
        if st.remote_closed:
            # ngx_http_v2_state_data: "client sent DATA frame for half-closed stream"
            self._ack_connection(length)
            self._stream_error(sid, STREAM_CLOSED, "client sent DATA frame for half-closed "
                                                   "stream")
            return
        if length > st.recv.current:
            raise _ConnectionError(FLOW_CONTROL_ERROR, f"client violated flow control for "
                                                       f"stream {sid}: received DATA frame "
                                                       f"length {length}")
        st.recv.current -= length
        last = flags & END_STREAM != 0
        if st.declared >= 0:
            st.received += end - pos
            if st.received > st.declared or (last and st.received != st.declared):
                # never forwarded, not even the bytes before the end that comes short:
                # nginx answers 400 on the stream
                over = st.received > st.declared
                declared = st.declared
                st.declared = -1
                self.ack(sid, length)
                if sid in self.active:
                    self._events.append(StreamBodyError(sid, 400, (
                        "client intended to send body data larger than declared" if over else
                        f"client prematurely closed stream: only {st.received} out of "
                        f"{declared} bytes of request body received")))
                    st.bad_feed = self._feeds
                if last:
                    self._remote_end(st)
                return
        if sid in self.active:
            self._events.append(StreamData(sid, data[pos:end], length))
        else:
            self.ack(sid, length)
        if last:
            self._remote_end(st)

    def _remote_end(self, st: _Stream) -> None:
        """The client's END_STREAM on `st`."""
        st.remote_closed = True
        sid = st.sid
        declared = st.declared
        st.declared = -1
        if st.local_closed:
            self._forget(sid)
        if st.bad_feed == self._feeds:
            return
        if sid in self.active:
            if declared >= 0 and st.received != declared:
                self._events.append(StreamBodyError(
                    sid, 400, f"client prematurely closed stream: only {st.received} out of "
                              f"{declared} bytes of request body received"))
                return
            self._events.append(StreamEnded(sid))

    def _window_update(self, data: bytes, start: int, length: int, sid: int) -> None:
        if length != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "client sent WINDOW_UPDATE frame with "
                                                     "incorrect length")
        inc = u32(data, start) & 0x7FFFFFFF
        if sid == 0:
            if inc == 0:
                raise _ConnectionError(PROTOCOL_ERROR, "client sent WINDOW_UPDATE frame with "
                                                       "incorrect window increment 0")
            conn = self.conn
            if conn.outbound_flow_control_window + inc > MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "client violated connection flow "
                                                           "control: window overflow")
            conn.outbound_flow_control_window += inc
            self._pump_after = True
            return
        st = self.streams.get(sid)
        if st is None:
            return                       # idle or closed: nothing to send on it
        if inc == 0:
            self._stream_error(sid, PROTOCOL_ERROR, "client sent WINDOW_UPDATE frame with "
                                                    "incorrect window increment 0")
            return
        if st.send_window + inc > MAX_WINDOW:
            self._stream_error(sid, FLOW_CONTROL_ERROR, "client violated flow control: "
                                                        "window overflow")
            return
        st.send_window += inc
        self._pump_after = True

    def _settings(self, data: bytes, start: int, length: int, flags: int, sid: int) -> None:
        if sid != 0:
            raise _ConnectionError(PROTOCOL_ERROR, "client sent SETTINGS frame with non-zero "
                                                   "stream id")
        if flags & ACK:
            if length:
                raise _ConnectionError(FRAME_SIZE_ERROR, "client sent SETTINGS frame with "
                                                         "the ACK flag and payload")
            return
        if length % 6:
            raise _ConnectionError(FRAME_SIZE_ERROR, "client sent SETTINGS frame with "
                                                     "incorrect length")
        conn = self.conn
        pos = start
        end = start + length
        while pos < end:
            ident = (data[pos] << 8) | data[pos + 1]
            value = u32(data, pos + 2)
            pos += 6
            if ident == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise _ConnectionError(FLOW_CONTROL_ERROR, "client sent SETTINGS frame "
                                                               "with incorrect "
                                                               "INITIAL_WINDOW_SIZE value")
                delta = value - conn.peer_initial_window
                conn.peer_initial_window = value
                if delta:
                    for st in self.streams.values():
                        if st.send_window + delta > MAX_WINDOW:
                            raise _ConnectionError(FLOW_CONTROL_ERROR, "client violated flow "
                                                                       "control: window "
                                                                       "overflow")
                        st.send_window += delta
            elif ident == SETTINGS_MAX_FRAME_SIZE:
                if value < DEFAULT_FRAME_SIZE or value > MAX_FRAME_SIZE:
                    raise _ConnectionError(PROTOCOL_ERROR, "client sent SETTINGS frame with "
                                                           "incorrect MAX_FRAME_SIZE value")
                conn.max_outbound_frame_size = value
            elif ident == SETTINGS_HEADER_TABLE_SIZE:
                self.encoder.set_max_size(value)
            elif ident == SETTINGS_ENABLE_PUSH:
                if value > 1:
                    raise _ConnectionError(PROTOCOL_ERROR, "client sent SETTINGS frame with "
                                                           "incorrect ENABLE_PUSH value")
        settings_ack(self._send)
        self._pump_after = True

    def _rst_stream(self, data: bytes, start: int, length: int, sid: int) -> None:
        if length != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "client sent RST_STREAM frame with "
                                                     "incorrect length")
        if sid == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "client sent RST_STREAM frame with "
                                                   "stream id 0")
        st = self.streams.get(sid)
        if st is None:
            if sid > self.highest_id:
                raise _ConnectionError(PROTOCOL_ERROR, f"client sent RST_STREAM frame for "
                                                       f"idle stream {sid}")
            return
        code = u32(data, start)
        self._forget(sid)
        self._remember_reset(sid)
        self._out.pop(sid, None)
        events = self._events
        idx = self._pending.pop(sid, -1)
        if idx >= 0:
            # opened and reset in the same read: never reported, never started
            events[idx] = _PLACEHOLDER
            self._placeholders = True
            self.active.discard(sid)
            self.prio.closed_stream(sid)
            self.reset_streams += 1
            if self._resets.hit():
                raise _ConnectionError(ENHANCE_YOUR_CALM, "client reset too many streams")
            return
        if sid in self.active:
            self.reset_streams += 1
            if self._resets.hit():
                events.append(StreamReset(sid, code, True))
                raise _ConnectionError(ENHANCE_YOUR_CALM, "client reset too many streams")
            events.append(StreamReset(sid, code, True))

    def _ping(self, data: bytes, start: int, length: int, flags: int, sid: int) -> None:
        if length != 8:
            raise _ConnectionError(FRAME_SIZE_ERROR, "client sent PING frame with incorrect "
                                                     "length")
        if sid != 0:
            raise _ConnectionError(PROTOCOL_ERROR, "client sent PING frame with non-zero "
                                                   "stream id")
        opaque = data[start:start + 8]
        if not flags & ACK:
            ping_frame(self._send, opaque, True)
        elif opaque == _GOAWAY_PING and self.goaway_final():
            self._events.append(GoAwayComplete())

    def _priority_frame(self, data: bytes, start: int, length: int, sid: int) -> None:
        if length != 5:
            raise _ConnectionError(FRAME_SIZE_ERROR, "client sent PRIORITY frame with "
                                                     "incorrect length")
        if sid == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "client sent PRIORITY frame with stream "
                                                   "id 0")
        dep = u32(data, start)
        depend = dep & 0x7FFFFFFF
        if depend == sid:
            raise _ConnectionError(PROTOCOL_ERROR, f"client sent PRIORITY frame for stream "
                                                   f"{sid} with incorrect dependency")
        self.prio.priority(sid, data[start + 4] + 1, depend, dep >> 31 == 1)
        if len(self._out) > 1:
            self._pump_after = True

    # -- streams ---------------------------------------------------------------------------

    def _request(self, sid: int, raw: list[tuple[bytes, bytes]], end_stream: bool,
                 prio: tuple[int, int, bool] | None = None) -> H2Event | None:
        if self.going_away and self.goaway_id is not None and sid > self.goaway_id:
            self._send_rst(sid, REFUSED_STREAM)
            return None
        if self.accept_until is not None and sid > self.accept_until:
            self._send_rst(sid, REFUSED_STREAM)
            return None
        if len(self.active) >= self.limits.max_concurrent_streams:
            # nginx: "concurrent streams exceeded"; the client may retry it
            self._send_rst(sid, REFUSED_STREAM)
            if self._resets.hit():
                raise _ConnectionError(ENHANCE_YOUR_CALM, "client sent too many streams")
            return StreamReset(sid, REFUSED_STREAM, False, "concurrent streams exceeded")
        if sid > self.last_stream_id:
            self.last_stream_id = sid
        self.accepted += 1
        lim = self.limits
        if self.accept_until is None and (
                (lim.max_requests and self.accepted >= lim.max_requests) or
                (self._stop_at >= 0 and self._clock() > self._stop_at)):
            self.accept_until = sid
        self.prio.opened(sid, prio)
        res = _validate(raw, end_stream, lim)
        if isinstance(res, str):
            self._send_rst(sid, PROTOCOL_ERROR)
            self.prio.closed_stream(sid)
            return StreamReset(sid, PROTOCOL_ERROR, False, res)
        st = _Stream(sid, lim.initial_window, self.conn.peer_initial_window)
        self.streams[sid] = st
        self.active.add(sid)
        if isinstance(res, tuple):
            status, reason, head = res
            return StreamError(sid, status, reason, head)
        res.header_bytes = self._block_bytes
        if res.content_length is not None and not end_stream:
            st.declared = res.content_length
        return StreamRequest(sid, res, end_stream)

    def _send_rst(self, sid: int, code: int) -> None:
        rst_stream_frame(self._send, sid, code)
        self._forget(sid)
        self._remember_reset(sid)

    def _forget(self, sid: int) -> None:
        self.streams.pop(sid, None)

    def _remember_reset(self, sid: int) -> None:
        ids = self._reset_ids
        ids[sid] = None
        if len(ids) > _RESET_IDS_KEPT:
            del ids[next(iter(ids))]

    # -- output ----------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        out = self._send
        if not out:
            return b""
        data = bytes(out)
        out.clear()
        return data

    def header_pending(self) -> bool:
        """A header block has begun and not ended (client_header_timeout bounds it)."""
        return self.in_header_block or (not self.closed and self._partial_is_block())

    def send_response(self, sid: int, status: int, headers: list[tuple[str, str]],
                      end_stream: bool = False) -> bool:
        """HEADERS with `:status` and lower-cased fields (connection-specific ones dropped).
        False when the stream is gone."""
        st = self.streams.get(sid)
        if st is None or st.local_closed or self.closed:
            return False
        block: list[tuple[bytes, bytes]] = [(b":status", _status_bytes(status))]
        for k, v in headers:
            name = _out_name(k)
            if name:
                block.append((name, v.encode("latin-1", "replace")))
        self._headers_out(st, block, end_stream)
        if end_stream:
            self._out.pop(sid, None)
        return True

    def _headers_out(self, st: _Stream, block: list[tuple[bytes, bytes]],
                     end_stream: bool) -> None:
        encoded = bytearray()
        self.encoder.encode(block, encoded)
        headers_frames(self._send, st.sid, encoded, end_stream,
                       self.conn.max_outbound_frame_size)
        if end_stream:
            self._local_end(st)

    def _local_end(self, st: _Stream) -> None:
        st.local_closed = True
        if st.remote_closed:
            self._forget(st.sid)

    def send_informational(self, sid: int, status: int = 100) -> None:
        st = self.streams.get(sid)
        if st is None or st.local_closed or self.closed:
            return
        self._headers_out(st, [(b":status", _status_bytes(status))], False)

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
        out = self._send
        progress = True
        while progress:
            progress = False
            for sid in sids:
                box = self._out.get(sid)
                if box is None:
                    continue
                st = self.streams.get(sid)
                if st is None or st.local_closed:
                    del self._out[sid]
                    continue
                if box.size == 0:
                    if box.end:
                        data_frame(out, sid, b"", True)
                        self._local_end(st)
                        del self._out[sid]
                        if box.done:
                            self._close_remote(sid)
                    continue
                window = min(conn.outbound_flow_control_window, st.send_window,
                             conn.max_outbound_frame_size)
                if window <= 0:
                    continue
                piece = box.take(window)
                last = box.end and box.size == 0
                data_frame(out, sid, piece, last)
                conn.outbound_flow_control_window -= len(piece)
                st.send_window -= len(piece)
                if last:
                    self._local_end(st)
                    del self._out[sid]
                    if box.done:
                        self._close_remote(sid)
                progress = True

    def open_window(self, sid: int, size: int) -> None:
        """The stream's body is being read: raise its window by `size` (WINDOW_UPDATE), at
        most to MAX_WINDOW, as ngx_http_v2_read_request_body does. Nothing when the client
        has ended the stream (nginx sends none then)."""
        st = self.streams.get(sid)
        if self.closed or st is None or st.remote_closed:
            return
        now = st.recv.current
        size = min(size, MAX_WINDOW - now)
        if size <= 0:
            return
        window_update_frame(self._send, sid, size)
        st.recv.opened(size)
        if now + size > self._window_cap:
            self._window_cap = now + size

    def ack(self, sid: int, n: int) -> None:
        """The consumer took `n` flow-controlled bytes of this stream's body: reopen windows
        (the connection's always; the stream's while the client may still send on it)."""
        if n <= 0 or self.closed:
            return
        self._ack_connection(n)
        st = self.streams.get(sid)
        if st is not None and not st.remote_closed:
            inc = st.recv.process(n)
            if inc:
                window_update_frame(self._send, sid, inc)

    def _ack_connection(self, n: int) -> None:
        inc = self.conn.recv.process(n)
        if inc:
            window_update_frame(self._send, 0, inc)

    def reset(self, sid: int, code: int = INTERNAL_ERROR) -> None:
        """Reset a stream from our side (e.g. an aborted response)."""
        self._out.pop(sid, None)
        self._reset(sid, code)

    def _reset(self, sid: int, code: int) -> None:
        if self.closed or sid not in self.streams:
            return
        self._send_rst(sid, code)

    def stream_done(self, sid: int) -> None:
        """The stream's exchange is over (answered, aborted, or never started): it no longer
        counts against max_concurrent_streams. A client still sending the request body is
        told to stop (`_close_remote`) once the response's END_STREAM is out."""
        self.active.discard(sid)
        self.prio.closed_stream(sid)
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
        st = self.streams.get(sid)
        if st is not None and st.local_closed and not st.remote_closed:
            self._reset(sid, NO_ERROR)

    def stream_open(self, sid: int) -> bool:
        """Whether the client still accepts frames on this stream from us."""
        return sid in self.streams

    def goaway(self) -> None:
        """Graceful shutdown, first step (RFC 9113 §6.8): GOAWAY with the largest stream id,
        so the client stops opening streams but none in flight is lost, and a PING; its ACK
        (one round trip later) brings `GoAwayComplete` and the final GOAWAY."""
        if self.closed or self.going_away:
            return
        self.going_away = True
        goaway_frame(self._send, 0x7FFFFFFF, NO_ERROR)
        ping_frame(self._send, _GOAWAY_PING, False)

    def goaway_final(self) -> bool:
        """GOAWAY naming the last stream we accept; later streams are refused. True when it
        was sent now."""
        if self.closed or self.goaway_id is not None:
            return False
        self.going_away = True
        self.goaway_id = self.last_stream_id
        goaway_frame(self._send, self.goaway_id, NO_ERROR)
        return True

    def terminate(self, code: int, reason: str = "") -> ConnectionEnded:
        return self._terminate(code, reason)

    def _terminate(self, code: int, reason: str, calm: bool = False) -> ConnectionEnded:
        if not self.closed:
            self.closed = True
            goaway_frame(self._send, self.last_stream_id, code)
        self._out.clear()
        return ConnectionEnded(code, reason, calm)


_STATUS_BYTES: Final = {s: str(s).encode() for s in range(100, 600)}
_OUT_NAMES: Final[dict[str, bytes]] = {}


def _out_name(name: str) -> bytes:
    """A response header name as HTTP/2 sends it: lower case, b"" for the fields HTTP/2 has
    no place for (connection-specific ones); the same few names come on every response."""
    b = _OUT_NAMES.get(name)
    if b is None:
        lower = name.lower()
        b = b"" if lower in _DROPPED_OUT else lower.encode("latin-1")
        if len(_OUT_NAMES) >= 4096:
            _OUT_NAMES.clear()
        _OUT_NAMES[name] = b
    return b


def _status_bytes(status: int) -> bytes:
    b = _STATUS_BYTES.get(status)
    return b if b is not None else str(status).encode()


def _check_trailers(raw: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in raw:
        if name[:1] == b":":
            return "client sent pseudo-header in trailers"
        if not name or not _NAME_OK.issuperset(name):
            return "client sent invalid header name in trailers"
        if 0 in value or 13 in value or 10 in value:
            return "client sent invalid header value in trailers"
    return None


# -- request validation ---------------------------------------------------------------------


def _empty_head(method: str = "GET", path: str = "/") -> RequestHead:
    return RequestHead(method, path, path, None, "2.0", [], "", None, False, True)


def _bad(status: int, method: str | None, raw: list[tuple[bytes, bytes]],
         reason: str) -> tuple[int, str, RequestHead]:
    # a best-effort view for the access log: the method once it is known to be valid
    head = _empty_head(method or "GET")
    head.header_bytes = _head_bytes(raw)
    return status, reason, head


def _head_bytes(raw: list[tuple[bytes, bytes]]) -> int:
    n = 0
    for name, value in raw:
        n += len(name) + len(value) + 4
    return n


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
    method: str | None = None
    scheme: str | None = None
    authority: str | None = None
    path: str | None = None
    seen_regular = False
    headers: list[tuple[str, str]] = []
    cookies: list[str] = []
    host_hdr: str | None = None
    cl: int | None = None
    count = 0
    plain_map = _PLAIN_MAP_US if lim.underscores_in_headers else _PLAIN_MAP

    for name, value in raw:
        if not name:
            return "client sent zero header name length"   # `_walk` ends the connection first
        pseudo = name[0] == 0x3A  # ':'
        # the common case first: a name of plain characters only (translate with a table
        # and nothing to delete gives back the same object when nothing changed)
        is_plain = not pseudo and name.translate(plain_map) is name
        if not is_plain and (not pseudo or name not in _PSEUDO):
            chars = name[1:] if pseudo else name
            if chars.translate(None, _NAME_BAD) != chars:
                return _bad(400, method, raw, f"client sent invalid header name: "
                                              f"\"{name.decode('latin-1')}\"")
        if 0 in value or 13 in value or 10 in value:
            return _bad(400, method, raw, f"client sent header \"{name.decode('latin-1')}\" "
                                          f"with invalid value")
        if pseudo:
            if seen_regular:
                return "client sent pseudo-header after regular header"
            sval = value.decode("latin-1")
            if name == b":method":
                if method is not None:
                    return _bad(400, method, raw, "client sent duplicate :method header")
                if not sval:
                    return _bad(400, method, raw, "client sent empty :method header")
                if sval not in _METHODS and not _METHOD_OK.issuperset(value):
                    return _bad(400, method, raw, f"client sent invalid method: \"{sval}\"")
                method = sval
            elif name == b":path":
                if path is not None:
                    return _bad(400, method, raw, "client sent duplicate :path header")
                if not sval:
                    return _bad(400, method, raw, "client sent empty :path header")
                # ngx_http_parse_uri: origin-form only ('*' too is refused), no control
                # characters or spaces; '#' and bytes >= 0x80 are refused here as well
                if value[0] != 0x2F or value.translate(_PATH_MAP) is not value:
                    return _bad(400, method, raw, f"client sent invalid :path header: \"{sval}\"")
                path = sval
            elif name == b":scheme":
                if scheme is not None:
                    return _bad(400, method, raw, "client sent duplicate :scheme header")
                if not sval:
                    return _bad(400, method, raw, "client sent empty :scheme header")
                if not _ALPHA.issuperset(value[:1]) or not _SCHEME_OK.issuperset(value):
                    return _bad(400, method, raw, f"client sent invalid :scheme header: \"{sval}\"")
                scheme = sval
            elif name == b":authority":
                if authority is not None:
                    return _bad(400, method, raw, "client sent duplicate \":authority\" header")
                if parse_host(sval) is None:
                    return _bad(400, method, raw, "client sent invalid \":authority\" header")
                authority = sval
            else:
                return _bad(400, method, raw, f"client sent unknown pseudo-header "
                                f"\"{name.decode('latin-1')}\"")
            continue
        seen_regular = True
        if not is_plain and lim.ignore_invalid_headers:
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
            return _bad(494, method, raw, "client sent too many header lines")
        if name == b"host":
            if host_hdr is not None:
                return _bad(400, method, raw, "client sent duplicate host header")
            if parse_host(sval) is None:
                return _bad(400, method, raw, "client sent invalid host header")
            host_hdr = sval
            continue
        if name == b"content-length":
            if cl is not None:
                return _bad(400, method, raw, "client sent duplicate header line: \"Content-Length\"")
            if not sval.isdigit() or not sval.isascii() or len(sval) > 18:
                return _bad(400, method, raw, "client sent invalid \"Content-Length\" header")
            cl = int(sval)
        if name == b"http2-settings":
            continue
        headers.append((_name_str(name), sval))
    if method is None:
        return _bad(400, method, raw, "client sent no :method header")
    if scheme is None:
        return _bad(400, method, raw, "client sent no :scheme header")
    if path is None:
        return _bad(400, method, raw, "client sent no :path header")
    head = _empty_head()
    head.header_bytes = _head_bytes(raw)
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
