"""HTTP/1.x on the client side of truehop: request bytes -> events, and our answers -> bytes.

Theory of operation
-------------------
`H1ServerParser` is sans-IO. `feed(data)` returns `Request`, `Data` and `EndOfMessage` events
for every (pipelined) request the bytes complete, in order; any violation raises
`ProtocolError(status, reason)` with the status nginx answers, after which the parser is dead
(the caller answers and closes).

The parser owns the framing; httptools (llhttp) is only the header-field validator:

* **Head.** Bytes are collected until the end of the head: the first empty line, where a line
  ends in LF with an optional CR before it (`CRLF CRLF`, `LF LF`, `LF CRLF`, `CRLF LF`). A bare LF
  line ending is accepted and normalised to CRLF (nginx does the same; RFC 9112 §2.2 allows it);
  a CR not followed by LF is refused. Limits count the bytes as received. Chunked framing stays
  strict CRLF. Leading CR/LF before a
  request line are skipped, as nginx and RFC 9112 §2.2 allow. The request line is split and
  checked here (method `[A-Z_-]+`, exactly two SPs, origin-/absolute-form target, `HTTP/d.d`),
  then a fixed `GET / HTTP/1.1` line plus the raw header section go to a fresh
  `httptools.HttpRequestParser`, which rejects bad tokens, NUL/CR/obs-fold, bad or duplicate
  `Content-Length` and so on. Its leniency flags for TE/CL framing are on, because llhttp never
  frames a body here: truehop's own checks below decide, in nginx's order and with nginx's
  statuses (e.g. an unknown `Transfer-Encoding` is 501, not llhttp's generic error).
* **Limits** are judged on whole heads, so the answer does not depend on how the bytes were
  split: request line > `max_request_line` -> 414; head > `max_headers_total`, one line >
  `max_header_line`, or more than `max_header_count` fields -> 494 (nginx's internal "Request
  Header Or Cookie Too Large", sent as 400). A head still incomplete is refused as soon as the
  bytes so far already break a limit, so memory stays bounded.
* **Body.** `Content-Length` bodies are sliced; chunked bodies go through `ChunkedDecoder`
  (strict CRLF, 1-16 hex digits, bounded chunk extensions, trailers validated and dropped).
* **Upgrade.** After a request whose head has `upgrade` set (HTTP/1.1, `Connection: upgrade`,
  an `Upgrade` field, no body), the parser stops: later bytes are held, `take_unparsed()` hands
  them over for a tunnel, or `resume()` goes back to parsing HTTP when no tunnel was opened.

The response writer (`response_head_bytes`, `chunk`, `LAST_CHUNK`) uses precomputed status
lines with nginx's reason phrases.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

import httptools

from truehop.http.events import (
    END,
    Data,
    Event,
    ProtocolError,
    Request,
    RequestHead,
)
from truehop.http.headers import is_token, known_tokens
from truehop.http.status import REASONS, SENT_AS

__all__ = [
    "H1Limits",
    "H1ServerParser",
    "ChunkedDecoder",
    "response_head_bytes",
    "status_line",
    "chunk",
    "LAST_CHUNK",
    "REASONS",
    "parse_host",
]


@dataclass(frozen=True, slots=True)
class H1Limits:
    """Client request limits. Defaults are nginx's `large_client_header_buffers 4 8k`."""

    max_request_line: int = 8192      # request line incl. CRLF -> 414
    max_header_line: int = 8192       # one header line incl. CRLF -> 494 (sent as 400)
    max_headers_total: int = 32768    # whole head -> 494
    max_header_count: int = 100       # field lines -> 494
    underscores_in_headers: bool = False
    ignore_invalid_headers: bool = True
    max_chunk_ext: int = 4096         # chunk extension bytes -> 400


DEFAULT_LIMITS: Final = H1Limits()

# -- byte tables -------------------------------------------------------------------------------

_ALL: Final = bytes(range(256))
_HEX: Final = b"0123456789abcdefABCDEF"
# bytes allowed in a request target: VCHAR except '#'
_TARGET_BAD: Final = bytes(b for b in range(256) if b <= 0x20 or b >= 0x7F or b == 0x23)
# bytes allowed in a method (nginx: A-Z, '_', '-')
_METHOD_OK: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-"
# chunk-ext / reason-phrase bytes that are never allowed: CTLs except HTAB, and DEL
_CTL_NO_TAB: Final = bytes(b for b in range(256) if (b < 0x20 and b != 0x09) or b == 0x7F)
# header-name bytes nginx calls valid (others make the line "invalid" and it is ignored)
_NAME_OK: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"
_NAME_OK_UNDERSCORE: Final = _NAME_OK + b"_"
_REGNAME_OK: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")

_CANON_REQUEST_LINE: Final = b"GET / HTTP/1.1\r\n"

# the framing states of an HTTP/1 message, one numbering for both directions: the request
# parser here and the response parser in h1client.py read the same names
ST_HEAD: Final = 0           # reading a head
ST_BODY_CL: Final = 1        # a body of Content-Length bytes
ST_BODY_CHUNKED: Final = 2   # a chunked body
ST_PAUSED: Final = 3         # an upgrade request: nothing more is parsed until resume()
ST_DEAD: Final = 4           # after a ProtocolError: nothing more is parsed
ST_BODY_CLOSE: Final = 5     # a response body that ends when the connection closes
ST_DONE: Final = 6           # a response read whole

_SPECIAL: Final = {
    "host": 1,
    "content-length": 2,
    "transfer-encoding": 3,
    "connection": 4,
    "upgrade": 5,
    "expect": 6,
}

_COMMON_METHODS: Final = frozenset({b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"})
_METHOD_STR: Final = {m: m.decode("ascii") for m in _COMMON_METHODS}
_VERSIONS: Final = {b"HTTP/1.1": "1.1", b"HTTP/1.0": "1.0"}
# the usual request line, recognised in one C pass: a common method, an origin-form target of
# plain characters (no '%', '#', CTL or non-ASCII: those take the full checks), HTTP/1.x
# the common request line, taken in one match. A "/." anywhere in the target (a dot-segment,
# or a name starting with a dot) fails it and goes the careful way, as does anything else
_PLAIN_LINE: Final = re.compile(rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) "
                                rb"((?:/(?!\.)[A-Za-z0-9\-._~!$&'()*+,;=:@?]*)+) "
                                rb"HTTP/1\.([01])\r\n")
_MINOR: Final = {b"1": "1.1", b"0": "1.0"}


_INVALID_NAME: Final = -1
_ORDINARY: Final = 0
# name as sent -> _INVALID_NAME / _ORDINARY / a _SPECIAL kind; one cache per underscores flag
_NAME_KIND: tuple[dict[str, int], dict[str, int]] = ({}, {})
_NAME_KIND_MAX: Final = 4096


def _name_kind(name: str, underscores: bool) -> int:
    """Classify a header name (already an RFC token, llhttp checked): invalid for nginx (a
    byte outside [A-Za-z0-9-], '_' allowed with underscores_in_headers), or its special kind."""
    cache = _NAME_KIND[underscores]
    kind = cache.get(name)
    if kind is None:
        ok = _NAME_OK_UNDERSCORE if underscores else _NAME_OK
        try:
            valid = not name.encode("ascii").translate(None, ok)
        except UnicodeEncodeError:
            valid = False
        kind = _SPECIAL.get(name.lower(), _ORDINARY) if valid else _INVALID_NAME
        if len(cache) < _NAME_KIND_MAX:
            cache[name] = kind
    return kind


def _head_end(buf: bytes | bytearray, start: int) -> int:
    """The end of a request head in `buf[start:]` (the index after its empty line), or -1: the
    first LF followed by an empty line, i.e. by LF or CR LF."""
    i = buf.find(b"\n\r\n", start)
    j = buf.find(b"\n\n", start, len(buf) if i < 0 else i + 2)
    if j >= 0:
        return j + 2
    return i + 3 if i >= 0 else -1


def _bad(status: int, reason: str) -> ProtocolError:
    return ProtocolError(status, reason)


# -- chunked bodies -----------------------------------------------------------------------------

_C_SIZE: Final = 0
_C_DATA: Final = 1
_C_DATA_END: Final = 2
_C_TRAILER: Final = 3
_C_DONE: Final = 4

_MAX_CHUNK_SIZE: Final = (1 << 63) - 1


class ChunkedDecoder:
    """Decodes `chunked` framing (RFC 9112 §7.1) into `Data` events; trailers are checked and
    dropped. Strict: CRLF only, 1-16 hex digits, no whitespace around the size, extensions
    without CTLs and at most `max_ext` bytes. Errors raise ProtocolError(`status`, `reason`).
    """

    __slots__ = ("_state", "_remaining", "_line", "_status", "_reason", "_max_line",
                 "_max_trailer", "_trailer_bytes")

    def __init__(self, status: int, reason: str, max_ext: int, max_trailer: int) -> None:
        self._state = _C_SIZE
        self._remaining = 0
        self._line = bytearray()
        self._status = status
        self._reason = reason
        self._max_line = max_ext + 20          # 16 hex digits, ';', CRLF and slack
        self._max_trailer = max_trailer
        self._trailer_bytes = 0

    @property
    def done(self) -> bool:
        return self._state == _C_DONE

    def _fail(self) -> ProtocolError:
        return ProtocolError(self._status, self._reason)

    def feed(self, data: bytes, pos: int, out: list[Event]) -> int:
        """Consume from `data[pos:]`; append Data events to `out`; return the new position.
        Stops right after the last CRLF of the message (then `done` is true)."""
        n = len(data)
        while pos < n:
            st = self._state
            if st == _C_DATA:
                take = self._remaining
                if take > n - pos:
                    take = n - pos
                if pos == 0 and take == n:
                    out.append(Data(data))
                else:
                    out.append(Data(data[pos:pos + take]))
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _C_DATA_END
                continue
            if st == _C_DONE:
                return pos
            lf = data.find(b"\n", pos)
            limit = self._max_trailer if st == _C_TRAILER else self._max_line
            if lf < 0:
                self._line += data[pos:]
                if len(self._line) > limit:
                    raise self._fail()
                return n
            if self._line:
                self._line += data[pos:lf + 1]
                line = bytes(self._line)
                self._line.clear()
            else:
                line = data[pos:lf + 1]
            pos = lf + 1
            if len(line) > limit or len(line) < 2 or line[-2] != 13:
                raise self._fail()
            if st == _C_DATA_END:
                if len(line) != 2:
                    raise self._fail()
                self._state = _C_SIZE
            elif st == _C_SIZE:
                self._size_line(line)
            else:  # trailer section
                if len(line) == 2:
                    self._state = _C_DONE
                    return pos
                self._trailer_line(line)
        return pos

    def _size_line(self, line: bytes) -> None:
        body = line[:-2]
        semi = body.find(b";")
        if semi >= 0:
            size = body[:semi]
            ext = body[semi + 1:]
            if len(ext) + 1 > self._max_line - 20 or ext.translate(None, _CTL_NO_TAB) != ext:
                raise self._fail()
        else:
            size = body
        if not size or size.strip(_HEX):
            raise self._fail()
        size = size.lstrip(b"0") or b"0"
        if len(size) > 16:
            raise self._fail()
        value = int(size, 16)
        if value > _MAX_CHUNK_SIZE:
            raise self._fail()
        if value:
            self._remaining = value
            self._state = _C_DATA
        else:
            self._state = _C_TRAILER

    def _trailer_line(self, line: bytes) -> None:
        self._trailer_bytes += len(line)
        if self._trailer_bytes > self._max_trailer:
            raise self._fail()
        colon = line.find(b":")
        if colon <= 0:
            raise self._fail()
        name = line[:colon]
        value = line[colon + 1:-2]
        if not is_token(name.decode("latin-1")) or value.translate(None, _CTL_NO_TAB) != value:
            raise self._fail()

    def has_partial(self) -> bool:
        return self._state != _C_DONE


# -- httptools glue -----------------------------------------------------------------------------

class _HeadCollector:
    """The httptools protocol object. No per-field callback: llhttp only validates, and the
    validated field section is split in `_build` (cheaper than one Python call per field)."""

    __slots__ = ("complete", "message_complete")

    def __init__(self) -> None:
        self.complete = False
        self.message_complete = False

    def on_headers_complete(self) -> None:
        self.complete = True

    def on_message_complete(self) -> None:
        self.message_complete = True


def _llhttp_request_parser(proto: _HeadCollector) -> httptools.HttpRequestParser:
    hp = httptools.HttpRequestParser(proto)
    # llhttp never frames a body here; truehop decides CL/TE itself (see module docstring)
    hp.set_dangerous_leniencies(lenient_chunked_length=True, lenient_transfer_encoding=True)
    return hp


# -- host ---------------------------------------------------------------------------------------

_IPVFUTURE: Final = re.compile(r"[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+")


# raw Host value -> parse_host's answer, for valid ones: a site sees the same few names over
# and over. Bounded in entries (emptied when full: a client sending many names only loses the
# cache) and in size (a name longer than a DNS name is parsed every time, never kept)
_HOSTS: Final[dict[str, str]] = {}
_HOSTS_MAX: Final = 1024
_HOST_KEPT_LEN: Final = 300


def parse_host(raw: str) -> str | None:
    """Validate a Host value or absolute-form authority: reg-name / IPv4 / [IPv6], optional
    port 0-65535. Returns it lower-cased (port kept, one trailing dot of the name removed), or
    None when invalid (userinfo, '/', '..', spaces, bad port, ...)."""
    hit = _HOSTS.get(raw)
    if hit is not None:
        return hit
    host = _parse_host(raw)
    if host is not None and len(raw) <= _HOST_KEPT_LEN:
        if len(_HOSTS) >= _HOSTS_MAX:
            _HOSTS.clear()
        _HOSTS[raw] = host
    return host


def _parse_host(raw: str) -> str | None:
    if not raw:
        return None
    if raw[0] == "[":
        end = raw.find("]")
        if end < 0:
            return None
        lit = raw[1:end]
        try:
            ipaddress.IPv6Address(lit)
        except ValueError:
            # IPvFuture (RFC 3986 §3.2.2), which nginx accepts: v1*HEXDIG "." then
            # unreserved / sub-delims / ":"
            if _IPVFUTURE.fullmatch(lit) is None or ".." in lit:
                return None
        name = "[" + lit.lower() + "]"
        rest = raw[end + 1:]
    else:
        colon = raw.find(":")
        if colon >= 0:
            name, rest = raw[:colon], raw[colon:]
        else:
            name, rest = raw, ""
        if not name or not _REGNAME_OK.issuperset(name) or ".." in name:
            return None
        if name[-1] == ".":
            name = name[:-1]
            if not name:
                return None
        name = name.lower()
    if rest:
        if rest[0] != ":":
            return None
        port = rest[1:]
        if port:
            if len(port) > 5 or not port.isdigit() or not port.isascii() or int(port) > 65535:
                return None
        return name + rest
    return name


def _above_root(path: bytes) -> bool:
    """True when dot-segments climb above '/' (nginx answers 400), also through %2e / %2f."""
    p = path
    if b"%" in p:
        p = (p.replace(b"%2e", b".").replace(b"%2E", b".")
             .replace(b"%2f", b"/").replace(b"%2F", b"/"))
    depth = 0
    for seg in p.split(b"/")[1:]:
        if seg == b"..":
            depth -= 1
            if depth < 0:
                return True
        elif seg and seg != b".":
            depth += 1
    return False


def _bad_escape(path: bytes) -> bool:
    parts = path.split(b"%")
    for p in parts[1:]:
        if len(p) < 2 or p[:2].strip(_HEX):
            return True
    return False


# -- the server parser --------------------------------------------------------------------------

class H1ServerParser:
    """Client bytes -> `Request` / `Data` / `EndOfMessage`. See the module docstring."""

    __slots__ = ("limits", "_state", "_hbuf", "_scan", "_line_ok", "_remaining", "_chunked",
                 "_held", "_error", "_eof", "_collector", "_hp")

    def __init__(self, limits: H1Limits | None = None) -> None:
        self.limits = limits or DEFAULT_LIMITS
        self._state = ST_HEAD
        self._hbuf = bytearray()          # partial head, from its first non-CR/LF byte
        self._scan = 0                    # where the next head-end search in _hbuf starts
        self._line_ok = False             # request line of the partial head already checked
        self._remaining = 0
        self._chunked: ChunkedDecoder | None = None
        self._held = b""                  # bytes after an upgrade request
        self._error: ProtocolError | None = None
        self._eof = False
        self._collector = _HeadCollector()
        self._hp: httptools.HttpRequestParser | None = None

    # -- public API ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Parse `data`; return the events it completes. Raises ProtocolError (then the parser
        is dead and raises the same error again). When complete requests precede the bad
        bytes in `data`, their events are returned and the error is raised by the next call
        (and shown by `pending_error` at once)."""
        if self._error is not None:
            raise self._error
        if self._state == ST_PAUSED:
            self._held += data
            return []
        if self._eof:
            raise self._die(400, "client sent data after closing")
        if type(data) is not bytes:
            data = bytes(data)
        events: list[Event] = []
        try:
            self._run(data, events)
        except ProtocolError as e:
            self._error = e
            self._state = ST_DEAD
            if events:
                # requests completed before the bad bytes are still answered (nginx: 200 then
                # 400); the error is raised by the next feed()/feed_eof(), see pending_error
                return events
            raise
        return events

    @property
    def pending_error(self) -> ProtocolError | None:
        """The error that ended parsing, if any: after `feed` returned the events that came
        before it, the caller answers them, then this status, then closes."""
        return self._error if self._state == ST_DEAD else None

    def feed_eof(self) -> list[Event]:
        """The client closed its side. Returns [] between requests (or after an upgrade);
        raises ProtocolError(400, "client prematurely closed connection") mid-message."""
        if self._error is not None:
            raise self._error
        if self._state == ST_PAUSED:
            return []
        self._eof = True
        if self._state == ST_HEAD and not self._hbuf:
            return []
        raise self._die(400, "client prematurely closed connection")

    def take_unparsed(self) -> bytes:
        """After an upgrade request: the bytes that followed its head. The parser is then dead."""
        held = self._held
        self._held = b""
        self._state = ST_DEAD
        self._error = ProtocolError(400, "connection was upgraded")
        return held

    def resume(self) -> list[Event]:
        """After an upgrade request that was *not* turned into a tunnel: go back to HTTP and
        parse the held bytes as the next requests."""
        if self._state != ST_PAUSED:
            return []
        held = self._held
        self._held = b""
        self._state = ST_HEAD
        return self.feed(held) if held else []

    def has_partial(self) -> bool:
        """True when part of a request has been received (a 408 is due on timeout)."""
        return (self._state == ST_HEAD and bool(self._hbuf)) or self._state in (ST_BODY_CL,
                                                                                 ST_BODY_CHUNKED)

    @property
    def paused(self) -> bool:
        return self._state == ST_PAUSED

    # -- internals -----------------------------------------------------------------------------

    def _die(self, status: int, reason: str) -> ProtocolError:
        e = ProtocolError(status, reason)
        self._error = e
        self._state = ST_DEAD
        return e

    def _run(self, data: bytes, events: list[Event]) -> None:
        pos = 0
        n = len(data)
        while pos < n:
            st = self._state
            if st == ST_HEAD:
                pos = self._head(data, pos, events)
            elif st == ST_BODY_CL:
                take = self._remaining
                if take > n - pos:
                    take = n - pos
                events.append(Data(data if (pos == 0 and take == n) else data[pos:pos + take]))
                pos += take
                self._remaining -= take
                if not self._remaining:
                    events.append(END)
                    self._state = ST_HEAD
            elif st == ST_BODY_CHUNKED:
                dec = self._chunked
                assert dec is not None
                pos = dec.feed(data, pos, events)
                if dec.done:
                    events.append(END)
                    self._chunked = None
                    self._state = ST_HEAD
            elif st == ST_PAUSED:
                self._held += data[pos:]
                return
            else:
                raise self._error or ProtocolError(400, "client sent invalid request")

    def _head(self, data: bytes, pos: int, events: list[Event]) -> int:
        n = len(data)
        hbuf = self._hbuf
        if not hbuf:
            # skip CR / LF before a request line (RFC 9112 §2.2, nginx does the same)
            while pos < n and (data[pos] == 13 or data[pos] == 10):
                pos += 1
            if pos == n:
                return n
            end = _head_end(data, pos)
            if end >= 0:
                self._complete_head(data, pos, end, events)
                return end
            # incomplete head: check what we have, keep it
            self._check_partial(data, pos, n)
            hbuf += memoryview(data)[pos:]
            self._scan = max(0, len(hbuf) - 3)
            return n
        old = len(hbuf)
        hbuf += data if pos == 0 else memoryview(data)[pos:]
        end = _head_end(hbuf, self._scan)
        if end < 0:
            self._check_partial(hbuf, 0, len(hbuf))
            self._scan = max(0, len(hbuf) - 3)
            return n
        head = bytes(hbuf[:end])
        consumed = end - old          # bytes of `data[pos:]` that belong to this head
        hbuf.clear()
        self._scan = 0
        self._line_ok = False
        self._complete_head(head, 0, end, events)
        return pos + consumed

    def _check_partial(self, buf: bytes | bytearray, start: int, end: int) -> None:
        """An incomplete head `buf[start:end]`: fail now if it can only end in an error that
        the complete head would also get (the same status, whatever the split)."""
        lim = self.limits
        lf = buf.find(b"\n", start, end)
        if lf < 0:
            self._check_method(buf, start, end, False)
            if end - start > lim.max_request_line:
                raise _bad(414, "client sent too long URI")
            return
        if not self._line_ok:
            self._request_line(bytes(buf[start:lf + 1]))
            self._line_ok = True
        if end - start > lim.max_headers_total:
            raise _bad(494, "client sent too large request")

    def _check_method(self, buf: bytes | bytearray, start: int, end: int, complete: bool) -> None:
        """The method part of `buf[start:end]` (a request line so far; `complete` when it holds
        the LF). The same verdict whatever the split: only the first `max_request_line` bytes
        count, an empty method is refused once a SP or the line end shows it is empty."""
        sp = buf.find(b" ", start, end)
        if sp >= 0:
            mend = sp
        else:
            mend = end - 1 if complete else end
        cap = start + self.limits.max_request_line
        if mend > cap:
            mend = cap
        if mend == start:
            if sp >= 0 or complete:
                raise _bad(400, "client sent invalid method")
            return
        if bytes(buf[start:mend]).translate(None, _METHOD_OK):
            raise _bad(400, "client sent invalid method")

    def _request_line(self, line: bytes) -> tuple[str, bytes, str, str | None, bytes | None]:
        """Check a request line (with its CRLF or bare LF). Returns (method, raw target, version,
        absolute-form scheme or None, absolute-form authority or None)."""
        lim = self.limits
        m = _PLAIN_LINE.fullmatch(line)
        if m is not None and len(line) <= lim.max_request_line:
            method_b, target_b, minor = m.groups()
            return _METHOD_STR[method_b], target_b, _MINOR[minor], None, None
        sp = line.find(b" ")
        method = line[:sp]
        if sp <= 0 or method not in _COMMON_METHODS:
            self._check_method(line, 0, len(line), True)
        if len(line) > lim.max_request_line:
            raise _bad(414, "client sent too long URI")
        if len(line) >= 2 and line[-2] != 13:
            line = line[:-1] + b"\r\n"  # bare LF ending: as CRLF (a lone CR stays, and fails)
        if len(line) < 2 or line[-2] != 13:
            raise _bad(400, "client sent invalid request")
        parts = line[:-2].split(b" ")
        if len(parts) != 3:
            if len(parts) == 2:
                raise _bad(400, "client sent HTTP/0.9 request")
            raise _bad(400, "client sent invalid request")
        target, proto = parts[1], parts[2]
        version = _VERSIONS.get(proto)
        if version is None:
            if len(proto) != 8 or proto[:5] != b"HTTP/" or proto[6] != 0x2E \
                    or not (0x30 <= proto[5] <= 0x39) or not (0x30 <= proto[7] <= 0x39):
                raise _bad(400, "client sent invalid request")
            major = proto[5] - 0x30
            if major > 1:
                raise _bad(505, "client sent invalid version")
            if major < 1:
                raise _bad(400, "client sent invalid version")
            version = "1.1"  # HTTP/1.2 .. 1.9: the highest minor we speak (RFC 9112 §2.3)
        hash_at = target.find(b"#")
        if hash_at >= 0:
            # a fragment is not part of the request (RFC 9112 §3.2): nginx 1.30 ignores it;
            # it is checked like the rest, then cut, so it is never routed on nor forwarded
            if target[hash_at + 1:].translate(None, _TARGET_BAD) != target[hash_at + 1:]:
                raise _bad(400, "client sent invalid request")
            target = target[:hash_at]
        if not target or target.translate(None, _TARGET_BAD) != target:
            raise _bad(400, "client sent invalid request")
        scheme: str | None = None
        authority: bytes | None = None
        if method == b"CONNECT":
            # nginx: authority-form host:port is a CONNECT it refuses (405, in _build);
            # any other target is a bad request
            host = parse_host(target.decode("latin-1"))
            if host is None or host.endswith(":") or ":" not in host.rpartition("]")[2]:
                raise _bad(400, "client sent invalid request")
            return "CONNECT", target, version, None, None
        if target[0] != 0x2F:  # not '/'
            i = target.find(b"://")
            if i <= 0:
                raise _bad(400, "client sent invalid request")
            sch = target[:i].lower()
            if sch != b"http" and sch != b"https":
                raise _bad(400, "client sent invalid request")
            scheme = sch.decode("ascii")
            rest = target[i + 3:]
            j = len(rest)
            k = rest.find(b"/")
            if 0 <= k < j:
                j = k
            k = rest.find(b"?")
            if 0 <= k < j:
                j = k
            authority = rest[:j]
            if not authority or b"@" in authority:
                raise _bad(400, "client sent invalid request")
            target = rest[j:]
            if not target:
                target = b"/"
            elif target[0] == 0x3F:
                target = b"/" + target
        q = target.find(b"?")
        path = target if q < 0 else target[:q]
        if b"%" in path:
            if b"%00" in path or _bad_escape(path):
                raise _bad(400, "client sent invalid request")
            if (b"%2" in path or b"/." in path) and _above_root(path):
                raise _bad(400, "client sent invalid request")
        elif b"/." in path and _above_root(path):
            raise _bad(400, "client sent invalid request")
        return _METHOD_STR.get(method) or method.decode("ascii"), target, version, scheme, \
            authority

    def _complete_head(self, buf: bytes, start: int, end: int, events: list[Event]) -> None:
        """A whole head is `buf[start:end]` (ending in an empty line, see `_head_end`)."""
        lim = self.limits
        lf = buf.find(b"\n", start, end)
        method, target, version, scheme, authority = self._request_line(buf[start:lf + 1])
        size = end - start
        if size > lim.max_headers_total:
            raise _bad(494, "client sent too large request")
        if size > lim.max_header_line:
            self._check_lines(buf, lf + 1, end)
        # the header section with its empty line, every line ending normalised to CRLF
        fields = buf[lf + 1:end]
        nl = fields.count(b"\n")
        if fields.count(b"\r\n") != nl or fields.count(b"\r") != nl:
            fields = fields.replace(b"\r\n", b"\n")
            if b"\r" in fields:
                raise _bad(400, "client sent invalid header line")  # a CR without its LF
            fields = fields.replace(b"\n", b"\r\n")
        # header fields: llhttp validates them (tokens, CTLs, obs-fold, CL syntax/duplicates)
        col = self._collector
        col.complete = False
        col.message_complete = False
        hp = self._hp
        if hp is None:
            hp = _llhttp_request_parser(col)
        self._hp = None
        try:
            hp.feed_data(_CANON_REQUEST_LINE)
            hp.feed_data(fields)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError as e:
            if "Duplicate Content-Length" in str(e):
                raise _bad(400, "client sent duplicate header line: \"Content-Length\"") from None
            raise _bad(400, "client sent invalid header line") from None
        if not col.complete:
            raise _bad(400, "client sent invalid header line")
        if col.message_complete:
            self._hp = hp  # llhttp is back at a message start: reuse it for the next head
        section = fields[:-4]
        nfields = section.count(b"\n") + 1 if section else 0
        if nfields > lim.max_header_count:
            raise _bad(494, "client sent too many header lines")
        events.append(Request(self._build(method, target, version, scheme, authority,
                                          section.decode("latin-1"), size)))
        if self._state == ST_HEAD or self._state == ST_PAUSED:
            events.append(END)

    def _check_lines(self, buf: bytes, start: int, end: int) -> None:
        maxl = self.limits.max_header_line
        pos = start
        while pos < end:
            lf = buf.find(b"\n", pos, end)
            if lf < 0:
                lf = end - 1
            if lf + 1 - pos > maxl:
                raise _bad(494, "client sent too long header line")
            pos = lf + 1

    def _build(self, method: str, target: bytes, version: str, scheme: str | None,
               authority: bytes | None, section: str, size: int) -> RequestHead:
        lim = self.limits
        drop_invalid = lim.ignore_invalid_headers
        under = lim.underscores_in_headers
        headers: list[tuple[str, str]] = []
        host_raw: str | None = None
        cl_raw: str | None = None
        te_raw: str | None = None
        conn: list[str] = []
        upgrade_raw: list[str] = []
        expect = False
        cache = _NAME_KIND[under]
        for line in section.split("\r\n") if section else ():
            name, _, value = line.partition(":")
            value = value.strip(" \t")
            kind = cache.get(name)
            if kind is None:
                kind = _name_kind(name, under)
            if kind == _INVALID_NAME:
                if not drop_invalid:
                    headers.append((name, value))  # kept as sent; never a special field
                continue  # nginx: ignore_invalid_headers / underscores_in_headers
            headers.append((name, value))
            if kind == _ORDINARY:
                continue
            if kind == 1:
                if host_raw is not None:
                    raise _bad(400, "client sent duplicate host header")
                host_raw = value
            elif kind == 2:
                if cl_raw is not None:
                    raise _bad(400, "client sent duplicate header line: \"Content-Length\"")
                cl_raw = value
            elif kind == 3:
                if te_raw is not None:
                    raise _bad(400, "client sent duplicate header line: \"Transfer-Encoding\"")
                te_raw = value
            elif kind == 4:
                conn.append(value)
            elif kind == 5:
                upgrade_raw.append(value)
            else:
                expect = value.lower() == "100-continue"

        # nginx's order (ngx_http_process_request_header)
        host = ""
        if host_raw is not None:
            h = parse_host(host_raw)
            if h is None:
                raise _bad(400, "client sent invalid host header")
            host = h
        if authority is not None:
            h = parse_host(authority.decode("latin-1"))
            if h is None:
                raise _bad(400, "client sent invalid host in request line")
            host = h
        if host_raw is None and version == "1.1":
            raise _bad(400, "client sent HTTP/1.1 request without \"Host\" header")
        content_length: int | None = None
        if cl_raw is not None:
            # 1*DIGIT only (never int() on unchecked text: it takes "+5", " 5", "5_0")
            if not cl_raw.isdigit() or not cl_raw.isascii() or len(cl_raw.lstrip("0")) > 18:
                raise _bad(400, "client sent invalid \"Content-Length\" header")
            content_length = int(cl_raw)
        chunked = False
        if te_raw is not None:
            if version == "1.0":
                raise _bad(400, "client sent HTTP/1.0 request with \"Transfer-Encoding\" "
                                "header")
            if len(te_raw) == 7 and te_raw.lower() == "chunked":
                if cl_raw is not None:
                    raise _bad(400, "client sent \"Content-Length\" and \"Transfer-Encoding\" "
                                    "headers at the same time")
                chunked = True
            else:
                raise _bad(501, "client sent unknown \"Transfer-Encoding\"")
        if method == "CONNECT":
            raise _bad(405, "client sent CONNECT method")
        if method == "TRACE":
            raise _bad(405, "client sent TRACE method")
        if target == b"*":
            raise _bad(400, "client sent invalid request")

        tokens: set[str] = set()
        for c in conn:
            for t in c.split(","):
                t = t.strip(" \t").lower()
                if t:
                    tokens.add(t)
        if version == "1.1":
            keep_alive = "close" not in tokens
        else:
            keep_alive = "keep-alive" in tokens
            expect = False
        has_body = chunked or bool(content_length)
        upgrade: str | None = None
        if (upgrade_raw and version == "1.1" and "upgrade" in tokens and not has_body):
            upgrade = ", ".join(upgrade_raw).strip(" \t").lower() or None

        starget = target.decode("latin-1")
        q = starget.find("?")
        if q < 0:
            path, query = starget, None
        else:
            path, query = starget[:q], starget[q + 1:]
        head = RequestHead(method, starget, path, query, version, headers, host,
                           None if chunked else content_length, chunked, keep_alive,
                           upgrade, expect, scheme, size,
                           frozenset(tokens) if tokens else _NO_TOKENS)

        if chunked:
            self._chunked = ChunkedDecoder(400, "client sent invalid chunked body",
                                           lim.max_chunk_ext, lim.max_headers_total)
            self._state = ST_BODY_CHUNKED
        elif content_length:
            self._remaining = content_length
            self._state = ST_BODY_CL
        elif upgrade is not None:
            self._state = ST_PAUSED
        return head


_NO_TOKENS: frozenset[str] = frozenset()


# -- writing our answers ------------------------------------------------------------------------

_STATUS_LINES: dict[tuple[str, int], bytes] = {
    (v, code): f"HTTP/{v} {code} {reason}\r\n".encode("latin-1")
    for v in ("1.1", "1.0") for code, reason in REASONS.items()
}

_HEADER_BAD: Final = bytes(b for b in range(256) if (b < 0x20 and b != 0x09) or b == 0x7F)


def status_line(status: int, version: str = "1.1", reason: str | None = None) -> bytes:
    """`HTTP/1.1 200 OK\r\n`. An unknown status gets nginx's form, `HTTP/1.1 299 \r\n`.
    A given `reason` (e.g. the upstream's) is used when it is safe to write."""
    if status >= 494:           # nginx's internal codes, all in 494..499
        status = SENT_AS.get(status, status)
    if reason is not None and reason != REASONS.get(status):
        raw = reason.encode("latin-1", "replace")
        if raw.translate(None, _HEADER_BAD) == raw:
            return b"HTTP/%s %03d %s\r\n" % (version.encode("ascii"), status, raw)
    line = _STATUS_LINES.get((version, status))
    if line is None:
        line = b"HTTP/%s %03d \r\n" % (version.encode("ascii"), status)
    return line


def join_fields(headers: list[tuple[str, str]]) -> str:
    """`name: value CRLF` for each field, as one string. One join over a flat list: an
    f-string per field builds (and frees) a string per field first."""
    parts: list[str] = []
    for k, v in headers:
        parts.append(k)
        parts.append(": ")
        parts.append(v)
        parts.append("\r\n")
    return "".join(parts)


def response_head_bytes(status: int, headers: list[tuple[str, str]], version: str = "1.1",
                        reason: str | None = None) -> bytes:
    """Status line + header lines + CRLF. A header whose name is not a token is left out;
    a value is cut at a CR, LF or NUL (never raising: these are our own answers)."""
    line = status_line(status, version, reason)
    if not headers:
        return line + b"\r\n"
    # the common case: each line holds exactly its own CR and LF (counted in C over the
    # joined text, so no value holds CR, LF or NUL) and every name is a known token
    fields = join_fields(headers)
    n = len(headers)
    if fields.count("\n") == n and fields.count("\r") == n and "\0" not in fields:
        known = known_tokens
        for k, _ in headers:
            if not (known.get(k) or is_token(k)):
                break
        else:
            try:
                return line + (fields + "\r\n").encode("latin-1")
            except UnicodeEncodeError:
                pass
    # careful path: a name that is not a token is left out; a value is cut at its first CR,
    # LF or NUL (a config value such as "a\n" must never start a new line) and otherwise
    # written as it is, other CTLs included, as nginx writes it
    parts = [line]
    for k, v in headers:
        if not is_token(k):
            continue
        cut = _VALUE_END.search(v)
        if cut is not None:
            v = v[:cut.start()]
        try:
            raw = v.encode("latin-1")   # values read off the wire round-trip
        except UnicodeEncodeError:
            raw = v.encode("utf-8")     # text from the config: its bytes, as nginx sends them
        parts.append(k.encode("latin-1") + b": " + raw + b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


_VALUE_END: Final = re.compile(r"[\r\n\x00]")


LAST_CHUNK: Final = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (b"" for empty data: an empty chunk would end the body)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)
