"""HTTP/2 frames (RFC 9113 §4, §6), sans-IO: the wire constants, and the frames a server
writes, appended to an output buffer (no frame objects: one `bytearray` per connection).

Reading frames is the connection's (`http.h2.H2Server.feed`): it reads each frame header
where the bytes are and acts on the payload in place, so that a read carrying a whole
request is parsed once, without a frame object or a copy per frame.
"""

from __future__ import annotations

from typing import Final

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER: Final = 9

# frame types
DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9

# flags
END_STREAM: Final = 0x1
ACK: Final = 0x1
END_HEADERS: Final = 0x4
PADDED: Final = 0x8
PRIORITY_FLAG: Final = 0x20

# error codes (RFC 9113 §7)
NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
FLOW_CONTROL_ERROR: Final = 0x3
SETTINGS_TIMEOUT: Final = 0x4
STREAM_CLOSED: Final = 0x5
FRAME_SIZE_ERROR: Final = 0x6
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
COMPRESSION_ERROR: Final = 0x9
CONNECT_ERROR: Final = 0xA
ENHANCE_YOUR_CALM: Final = 0xB
INADEQUATE_SECURITY: Final = 0xC
HTTP_1_1_REQUIRED: Final = 0xD

# settings (RFC 9113 §6.5.2, RFC 8441)
SETTINGS_HEADER_TABLE_SIZE: Final = 0x1
SETTINGS_ENABLE_PUSH: Final = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS: Final = 0x3
SETTINGS_INITIAL_WINDOW_SIZE: Final = 0x4
SETTINGS_MAX_FRAME_SIZE: Final = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE: Final = 0x6
SETTINGS_ENABLE_CONNECT_PROTOCOL: Final = 0x8

DEFAULT_WINDOW: Final = 65535
DEFAULT_FRAME_SIZE: Final = 16384
MAX_WINDOW: Final = (1 << 31) - 1
MAX_FRAME_SIZE: Final = (1 << 24) - 1


def frame_header(out: bytearray, length: int, ftype: int, flags: int, sid: int) -> None:
    out += (((length << 8 | ftype) << 8 | flags) << 32 | sid).to_bytes(9, "big")


def read_header(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """(length, type, flags, stream id) of the frame header at data[pos:pos + 9]; the
    reserved bit of the stream id is ignored (RFC 9113 §4.1)."""
    length = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
    sid = ((data[pos + 5] & 0x7F) << 24) | (data[pos + 6] << 16) | (data[pos + 7] << 8) | \
        data[pos + 8]
    return length, data[pos + 3], data[pos + 4], sid


def u32(data: bytes, pos: int) -> int:
    return (data[pos] << 24) | (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]


def settings_frame(out: bytearray, settings: list[tuple[int, int]]) -> None:
    frame_header(out, 6 * len(settings), SETTINGS, 0, 0)
    for ident, value in settings:
        out += ((ident << 32) | value).to_bytes(6, "big")


def settings_ack(out: bytearray) -> None:
    frame_header(out, 0, SETTINGS, ACK, 0)


def ping_frame(out: bytearray, opaque: bytes, ack: bool) -> None:
    frame_header(out, 8, PING, ACK if ack else 0, 0)
    out += opaque


def goaway_frame(out: bytearray, last_sid: int, code: int, debug: bytes = b"") -> None:
    frame_header(out, 8 + len(debug), GOAWAY, 0, 0)
    out += ((last_sid << 32) | code).to_bytes(8, "big")
    out += debug


def rst_stream_frame(out: bytearray, sid: int, code: int) -> None:
    frame_header(out, 4, RST_STREAM, 0, sid)
    out += code.to_bytes(4, "big")


def window_update_frame(out: bytearray, sid: int, increment: int) -> None:
    frame_header(out, 4, WINDOW_UPDATE, 0, sid)
    out += increment.to_bytes(4, "big")


def data_frame(out: bytearray, sid: int, data: bytes, end_stream: bool) -> None:
    frame_header(out, len(data), DATA, END_STREAM if end_stream else 0, sid)
    out += data


def headers_frames(out: bytearray, sid: int, block: bytes | bytearray, end_stream: bool,
                   max_frame: int) -> None:
    """A header block as HEADERS, then CONTINUATION frames when it is larger than the
    peer's SETTINGS_MAX_FRAME_SIZE."""
    n = len(block)
    flags = END_STREAM if end_stream else 0
    if n <= max_frame:
        frame_header(out, n, HEADERS, flags | END_HEADERS, sid)
        out += block
        return
    frame_header(out, max_frame, HEADERS, flags, sid)
    out += block[:max_frame]
    pos = max_frame
    while pos < n:
        piece = min(max_frame, n - pos)
        frame_header(out, piece, CONTINUATION, END_HEADERS if pos + piece == n else 0, sid)
        out += block[pos:pos + piece]
        pos += piece
