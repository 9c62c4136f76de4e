"""HPACK (RFC 7541), sans-IO: header blocks <-> lists of (name, value) byte pairs.

Theory of operation. `Decoder` reads one complete header block at a time (`decode`), keeping
the dynamic table between blocks as the connection must. It applies nginx's limits while it
reads (ngx_http_v2_state_header_block, _field_len, ngx_http_v2_parse_int), so every caller
gets the same answers as nginx: an integer longer than NGX_HTTP_V2_INT_OCTETS (4 octets) is
COMPRESSION_ERROR, a string (as sent, Huffman-coded or not) longer than `max_field` is
ENHANCE_YOUR_CALM, an empty literal name PROTOCOL_ERROR, a field or integer running past the
end of the block FRAME_SIZE_ERROR ("header block with incorrect length"); every other
decoding failure (index 0 or beyond both tables, bad Huffman code or padding, a table size
update above our SETTINGS or not at the start of the block) is COMPRESSION_ERROR. `walk`
follows the same representations over a block that has only partly arrived, without decoding
(nginx's streaming parser answers those limits as soon as the bytes are in).

`Encoder` writes response blocks: fields of the static table and fields already in its
dynamic table as one index; others as literals with incremental indexing (a name index where
one exists), except fields that change on every response or must not be kept
(`_NOT_INDEXED`), which stay literal; strings are Huffman-coded when that is shorter. The
peer's SETTINGS_HEADER_TABLE_SIZE bounds its table (`set_max_size`; the next block starts
with the size update RFC 7541 §4.2 asks for).

Huffman decoding is table-driven: `_FSM` is built at import from the code table (RFC 7541
Appendix B) as a state machine over 4-bit nibbles (256 states, one per inner node of the code
tree): each entry packs the next state, the symbol emitted (at most one per nibble: the
shortest code is 5 bits), whether EOS was met (an error) and whether the state may end the
string (padding: at most 7 one-bits, RFC 7541 §5.2).

Errors are `HPACKError`, which carries the HTTP/2 error code to end the connection with.
"""

from __future__ import annotations

from typing import Final

# HTTP/2 error codes an HPACK failure maps to (RFC 9113 §7)
PROTOCOL_ERROR: Final = 0x1
FRAME_SIZE_ERROR: Final = 0x6
COMPRESSION_ERROR: Final = 0x9
ENHANCE_YOUR_CALM: Final = 0xB

DEFAULT_TABLE_SIZE: Final = 4096     # SETTINGS_HEADER_TABLE_SIZE's initial value
ENTRY_OVERHEAD: Final = 32           # RFC 7541 §4.1
INT_OCTETS: Final = 4                # nginx's NGX_HTTP_V2_INT_OCTETS: longest integer

_INCORRECT_LENGTH: Final = "client sent header block with incorrect length"


class HPACKError(Exception):
    """A header block that cannot be taken; `code`: the HTTP/2 error code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


STATIC_TABLE: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b":authority", b""), (b":method", b"GET"), (b":method", b"POST"), (b":path", b"/"),
    (b":path", b"/index.html"), (b":scheme", b"http"), (b":scheme", b"https"),
    (b":status", b"200"), (b":status", b"204"), (b":status", b"206"), (b":status", b"304"),
    (b":status", b"400"), (b":status", b"404"), (b":status", b"500"),
    (b"accept-charset", b""), (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""), (b"accept-ranges", b""), (b"accept", b""),
    (b"access-control-allow-origin", b""), (b"age", b""), (b"allow", b""),
    (b"authorization", b""), (b"cache-control", b""), (b"content-disposition", b""),
    (b"content-encoding", b""), (b"content-language", b""), (b"content-length", b""),
    (b"content-location", b""), (b"content-range", b""), (b"content-type", b""),
    (b"cookie", b""), (b"date", b""), (b"etag", b""), (b"expect", b""), (b"expires", b""),
    (b"from", b""), (b"host", b""), (b"if-match", b""), (b"if-modified-since", b""),
    (b"if-none-match", b""), (b"if-range", b""), (b"if-unmodified-since", b""),
    (b"last-modified", b""), (b"link", b""), (b"location", b""), (b"max-forwards", b""),
    (b"proxy-authenticate", b""), (b"proxy-authorization", b""), (b"range", b""),
    (b"referer", b""), (b"refresh", b""), (b"retry-after", b""), (b"server", b""),
    (b"set-cookie", b""), (b"strict-transport-security", b""), (b"transfer-encoding", b""),
    (b"user-agent", b""), (b"vary", b""), (b"via", b""), (b"www-authenticate", b""),
)
STATIC_LEN: Final = 61


def _static_fields() -> dict[tuple[bytes, bytes], int]:
    fields: dict[tuple[bytes, bytes], int] = {}
    for i, (name, value) in enumerate(STATIC_TABLE):
        if value:
            fields.setdefault((name, value), i + 1)
    return fields


def _static_names() -> dict[bytes, int]:
    names: dict[bytes, int] = {}
    for i, (name, _) in enumerate(STATIC_TABLE):
        names.setdefault(name, i + 1)
    return names


# module constants are Final: mypyc keeps them in C statics, not in the module's dict
_STATIC_FIELDS: Final = _static_fields()
_STATIC_NAMES: Final = _static_names()

# RFC 7541 Appendix B: (code, length in bits) for each byte value, then EOS (256)
HUFFMAN_CODES: Final[tuple[tuple[int, int], ...]] = (
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28), (0xfffffe4, 28),
    (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28), (0xfffffe8, 28), (0xffffea, 24),
    (0x3ffffffc, 30), (0xfffffe9, 28), (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28),
    (0xfffffec, 28), (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28), (0xffffff4, 28),
    (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28), (0xffffff8, 28), (0xffffff9, 28),
    (0xffffffa, 28), (0xffffffb, 28), (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11), (0x3fa, 10), (0x3fb, 10), (0xf9, 8),
    (0x7fb, 11), (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6), (0x0, 5), (0x1, 5), (0x2, 5),
    (0x19, 6), (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6), (0x1e, 6), (0x1f, 6), (0x5c, 7),
    (0xfb, 8), (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10), (0x1ffa, 13), (0x21, 6),
    (0x5d, 7), (0x5e, 7), (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7), (0x63, 7), (0x64, 7),
    (0x65, 7), (0x66, 7), (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7), (0x6b, 7), (0x6c, 7),
    (0x6d, 7), (0x6e, 7), (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7), (0xfc, 8), (0x73, 7),
    (0xfd, 8), (0x1ffb, 13), (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5), (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7), (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5), (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15), (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13),
    (0xffffffc, 28), (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23), (0x3fffd6, 22),
    (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23), (0x7fffdd, 23), (0x7fffde, 23),
    (0xffffeb, 24), (0x7fffdf, 23), (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22),
    (0x7fffe0, 23), (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23), (0x3fffd9, 22),
    (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24), (0x3fffda, 22), (0x1fffdd, 21),
    (0xfffe9, 20), (0x3fffdb, 22), (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23),
    (0x1fffde, 21), (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23), (0x1fffe0, 21),
    (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21), (0x7fffed, 23), (0x3fffe1, 22),
    (0x7fffee, 23), (0x7fffef, 23), (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22),
    (0x3fffe4, 22), (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19), (0x3fffe7, 22),
    (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25), (0x3ffffe2, 26), (0x3ffffe3, 26),
    (0x3ffffe4, 26), (0x7ffffde, 27), (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24),
    (0x1ffffed, 25), (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24), (0x1fffe4, 21),
    (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26), (0xffffffd, 28), (0x7ffffe3, 27),
    (0x7ffffe4, 27), (0x7ffffe5, 27), (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20),
    (0x1fffe6, 21), (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25), (0xfffff4, 24),
    (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23), (0x3ffffeb, 26), (0x7ffffe6, 27),
    (0x3ffffec, 26), (0x3ffffed, 26), (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27),
    (0x7ffffea, 27), (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26), (0x3fffffff, 30),
)

_EOS: Final = 256
# `_FSM` entry bits: next state (8 bits), then these flags, then the emitted symbol
_F_EMIT: Final = 0x100
_F_FAIL: Final = 0x200
_F_ACCEPT: Final = 0x400
_SYM_SHIFT: Final = 11


def _build_fsm() -> list[int]:
    """The nibble state machine (module docstring): states are the inner nodes of the code
    tree (the root is 0), a leaf is stored as -1 - symbol."""
    kids: list[int] = [0, 0]          # two children per inner node; 0 = not yet made
    for sym in range(len(HUFFMAN_CODES)):
        code, length = HUFFMAN_CODES[sym]
        node = 0
        for i in range(length - 1, -1, -1):
            bit = (code >> i) & 1
            if i == 0:
                kids[2 * node + bit] = -1 - sym
            else:
                nxt = kids[2 * node + bit]
                if nxt == 0:
                    nxt = len(kids) // 2
                    kids.append(0)
                    kids.append(0)
                    kids[2 * node + bit] = nxt
                node = nxt
    # padding states: reached from the root by one-bits only, fewer than 8 of them
    accepting = {0}
    node = 0
    for _ in range(7):
        node = kids[2 * node + 1]
        accepting.add(node)
    states = len(kids) // 2
    fsm = [0] * (states * 16)
    for state in range(states):
        for nib in range(16):
            node = state
            entry = 0
            for i in range(3, -1, -1):
                child = kids[2 * node + ((nib >> i) & 1)]
                if child < 0:
                    sym = -1 - child
                    if sym == _EOS:
                        entry |= _F_FAIL
                    else:
                        entry |= _F_EMIT | (sym << _SYM_SHIFT)
                    node = 0
                else:
                    node = child
            if node in accepting:
                entry |= _F_ACCEPT
            fsm[state * 16 + nib] = entry | node
    return fsm


_FSM: Final = _build_fsm()
_ENC_CODE: Final = [HUFFMAN_CODES[i][0] for i in range(256)]
_ENC_LEN: Final = [HUFFMAN_CODES[i][1] for i in range(256)]


def huffman_decode(data: bytes, pos: int, end: int) -> bytes:
    """The Huffman-coded string data[pos:end]; HPACKError(COMPRESSION_ERROR) when it is not
    one (EOS inside, padding longer than 7 bits or not all ones)."""
    fsm = _FSM
    out = bytearray()
    state = 0
    entry = _F_ACCEPT
    while pos < end:
        b = data[pos]
        pos += 1
        entry = fsm[(state << 4) | (b >> 4)]
        if entry & _F_EMIT:
            out.append(entry >> _SYM_SHIFT)
        elif entry & _F_FAIL:
            raise HPACKError(COMPRESSION_ERROR, "client sent invalid Huffman code")
        entry = fsm[((entry & 0xFF) << 4) | (b & 0xF)]
        if entry & _F_EMIT:
            out.append(entry >> _SYM_SHIFT)
        elif entry & _F_FAIL:
            raise HPACKError(COMPRESSION_ERROR, "client sent invalid Huffman code")
        state = entry & 0xFF
    if not entry & _F_ACCEPT:
        raise HPACKError(COMPRESSION_ERROR, "client sent invalid Huffman padding")
    return bytes(out)


def huffman_length(s: bytes) -> int:
    """Bytes the Huffman coding of `s` takes."""
    lens = _ENC_LEN
    bits = 0
    for b in s:
        bits += lens[b]
    return (bits + 7) >> 3


def huffman_encode(s: bytes) -> bytes:
    codes = _ENC_CODE
    lens = _ENC_LEN
    out = bytearray()
    acc = 0
    bits = 0
    for b in s:
        n = lens[b]
        acc = (acc << n) | codes[b]
        bits += n
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
        acc &= (1 << bits) - 1
    if bits:
        # the padding is the most significant bits of EOS: ones
        out.append(((acc << (8 - bits)) | (0xFF >> bits)) & 0xFF)
    return bytes(out)


# -- integers and strings -------------------------------------------------------------------


def decode_int(data: bytes, pos: int, end: int, mask: int) -> tuple[int, int]:
    """(value, position after it) of the integer whose prefix byte is data[pos], as
    ngx_http_v2_parse_int reads it: at most INT_OCTETS octets in all."""
    v = data[pos] & mask
    pos += 1
    if v < mask:
        return v, pos
    shift = 0
    for _ in range(INT_OCTETS - 1):
        if pos >= end:
            raise HPACKError(FRAME_SIZE_ERROR, _INCORRECT_LENGTH)
        b = data[pos]
        pos += 1
        v += (b & 0x7F) << shift
        if b < 0x80:
            return v, pos
        shift += 7
    if pos >= end:
        raise HPACKError(FRAME_SIZE_ERROR, _INCORRECT_LENGTH)
    raise HPACKError(COMPRESSION_ERROR, "client sent header block with too long value")


def encode_int(out: bytearray, first: int, mask: int, v: int) -> None:
    """The integer `v` with `first` (the representation's flag bits) in its prefix byte."""
    if v < mask:
        out.append(first | v)
        return
    out.append(first | mask)
    v -= mask
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def encode_str(out: bytearray, s: bytes, huffman: bool = True) -> None:
    """A string literal: Huffman-coded when that is shorter (and asked for)."""
    n = len(s)
    if huffman and n > 2:
        hn = huffman_length(s)
        if hn < n:
            encode_int(out, 0x80, 0x7F, hn)
            out += huffman_encode(s)
            return
    encode_int(out, 0, 0x7F, n)
    out += s


# -- decoding -------------------------------------------------------------------------------


class Decoder:
    """The receiving side of one connection's HPACK context (module docstring).

    `max_field`: the longest string as sent (large_client_header_buffers' size);
    `max_list`: the largest decoded list (names and values, RFC 7541's 32 bytes per field
    counted too), checked as fields are decoded so that an indexed-field bomb stops early."""

    def __init__(self, max_field: int = 8192, max_list: int = 65536,
                 max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self.max_field = max_field
        self.max_list = max_list
        self.max_table_size = max_table_size     # what our SETTINGS allow
        self.table_size = max_table_size         # the limit the peer chose (size update)
        self.size = 0
        self.entries: list[tuple[bytes, bytes]] = []   # oldest first
        self.list_size = 0       # names + values of the last block decoded

    def _add(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + ENTRY_OVERHEAD
        entries = self.entries
        if size > self.table_size:
            entries.clear()          # RFC 7541 §4.4: not an error, the table empties
            self.size = 0
            return
        total = self.size + size
        if total > self.table_size:
            drop = 0
            while total > self.table_size:
                n, v = entries[drop]
                total -= len(n) + len(v) + ENTRY_OVERHEAD
                drop += 1
            del entries[:drop]
        entries.append((name, value))
        self.size = total

    def _resize(self, size: int) -> None:
        self.table_size = size
        entries = self.entries
        total = self.size
        drop = 0
        while total > size:
            n, v = entries[drop]
            total -= len(n) + len(v) + ENTRY_OVERHEAD
            drop += 1
        if drop:
            del entries[:drop]
        self.size = total

    def _field(self, index: int) -> tuple[bytes, bytes]:
        if index <= 0:
            raise HPACKError(COMPRESSION_ERROR, "client sent invalid table index 0")
        if index <= STATIC_LEN:
            return STATIC_TABLE[index - 1]
        entries = self.entries
        d = index - STATIC_LEN
        if d > len(entries):
            raise HPACKError(COMPRESSION_ERROR, f"client sent invalid table index {index}")
        return entries[len(entries) - d]

    def _string(self, data: bytes, pos: int, end: int, name: bool) -> tuple[bytes, int]:
        huff = data[pos] & 0x80
        n, pos = decode_int(data, pos, end, 0x7F)
        if n > self.max_field:
            raise HPACKError(ENHANCE_YOUR_CALM, "client sent too large header field")
        if name and n == 0:
            raise HPACKError(PROTOCOL_ERROR, "client sent zero header name length")
        stop = pos + n
        if stop > end:
            raise HPACKError(FRAME_SIZE_ERROR, _INCORRECT_LENGTH)
        if huff:
            return huffman_decode(data, pos, stop), stop
        return data[pos:stop], stop

    def decode(self, data: bytes, pos: int = 0, end: int = -1) -> list[tuple[bytes, bytes]]:
        """The fields of the complete header block data[pos:end], in order."""
        if end < 0:
            end = len(data)
        out: list[tuple[bytes, bytes]] = []
        listed = 0
        weighed = 0
        updates = True           # table size updates are allowed until the first field
        max_list = self.max_list
        while pos < end:
            b = data[pos]
            if b & 0x80:                                    # indexed field
                index, pos = decode_int(data, pos, end, 0x7F)
                field = self._field(index)
                name = field[0]
                value = field[1]
            elif b & 0x40:                                  # literal, incremental indexing
                index, pos = decode_int(data, pos, end, 0x3F)
                if pos >= end:
                    raise HPACKError(FRAME_SIZE_ERROR, _INCORRECT_LENGTH)
                if index:
                    name = self._field(index)[0]
                else:
                    name, pos = self._string(data, pos, end, True)
                    if pos >= end:
                        raise HPACKError(FRAME_SIZE_ERROR, _INCORRECT_LENGTH)
                value, pos = self._string(data, pos, end, False)
                self._add(name, value)
            elif b & 0x20:                                  # dynamic table size update
                size, pos = decode_int(data, pos, end, 0x1F)
                if not updates:
                    raise HPACKError(COMPRESSION_ERROR, "client sent table size update "
                                                        "after a header field")
                if size > self.max_table_size:
                    raise HPACKError(COMPRESSION_ERROR, f"client sent invalid table size "
                                                        f"update: {size}")
                self._resize(size)
                continue
            else:                                           # literal, not / never indexed
                index, pos = decode_int(data, pos, end, 0x0F)
                if pos >= end:
                    raise HPACKError(FRAME_SIZE_ERROR, _INCORRECT_LENGTH)
                if index:
                    name = self._field(index)[0]
                else:
                    name, pos = self._string(data, pos, end, True)
                    if pos >= end:
                        raise HPACKError(FRAME_SIZE_ERROR, _INCORRECT_LENGTH)
                value, pos = self._string(data, pos, end, False)
            updates = False
            n = len(name) + len(value)
            listed += n
            weighed += n + ENTRY_OVERHEAD
            if weighed > max_list:
                self.list_size = listed
                raise HPACKError(ENHANCE_YOUR_CALM, "client sent too large header")
            out.append((name, value))
        self.list_size = listed
        return out


def walk(data: bytes, pos: int, end: int, max_field: int) -> int:
    """Follow the field representations of the start data[pos:end] of a header block whose
    rest has not arrived, without decoding (the dynamic table is not touched), and raise
    what `Decoder.decode` would for what is there: a string too long, an empty name, an
    integer too long (its octets are all in, so more follow: COMPRESSION_ERROR). Returns the
    position where the last representation not complete starts (where a later walk over
    more bytes resumes)."""
    while pos < end:
        start = pos
        b = data[pos]
        if b & 0x80:
            mask = 0x7F
            literal = False
        elif b & 0x40:
            mask = 0x3F
            literal = True
        elif b & 0x20:
            mask = 0x1F
            literal = False
        else:
            mask = 0x0F
            literal = True
        r = _walk_int(data, pos, end, mask)
        if r < 0:
            return start
        pos = r
        if not literal:
            continue
        if (b & mask) == 0:
            # a new name: its length, then the name
            if pos >= end:
                return start
            r = _walk_int(data, pos, end, 0x7F)
            if r < 0:
                return start
            n = _int_value(data, pos, 0x7F)
            if n > max_field:
                raise HPACKError(ENHANCE_YOUR_CALM, "client sent too large header field")
            if n == 0:
                raise HPACKError(PROTOCOL_ERROR, "client sent zero header name length")
            pos = r + n
        if pos >= end:
            return start
        r = _walk_int(data, pos, end, 0x7F)
        if r < 0:
            return start
        n = _int_value(data, pos, 0x7F)
        if n > max_field:
            raise HPACKError(ENHANCE_YOUR_CALM, "client sent too large header field")
        pos = r + n
        if pos > end:
            return start
    return pos


def _walk_int(data: bytes, pos: int, end: int, mask: int) -> int:
    """The position after the integer at `pos`, or -1 when its end has not arrived."""
    if data[pos] & mask < mask:
        return pos + 1
    pos += 1
    for _ in range(INT_OCTETS - 1):
        if pos >= end:
            return -1
        b = data[pos]
        pos += 1
        if b < 0x80:
            return pos
    # four octets and not ended, in a block that goes on: nginx's "too long" value
    raise HPACKError(COMPRESSION_ERROR, "client sent header block with too long value")


def _int_value(data: bytes, pos: int, mask: int) -> int:
    v = data[pos] & mask
    if v < mask:
        return v
    shift = 0
    while True:
        pos += 1
        b = data[pos]
        v += (b & 0x7F) << shift
        if b < 0x80:
            return v
        shift += 7


# -- encoding -------------------------------------------------------------------------------

# fields that change on (almost) every response or should not stay in a table (cookies):
# literal without indexing, so the table keeps what repeats (server, content-type, date...)
_NOT_INDEXED: Final = frozenset({b"content-length", b"etag", b"last-modified", b"location",
                                 b"content-range", b"set-cookie", b"age", b"expires"})


class Encoder:
    """The sending side of one connection's HPACK context (module docstring)."""

    def __init__(self, max_size: int = DEFAULT_TABLE_SIZE) -> None:
        self.max_size = max_size
        self.size = 0
        self.inserted = 0        # entries ever added: entry k's index is 61 + inserted - k
        self.entries: list[tuple[bytes, bytes, int]] = []   # (name, value, k), oldest first
        self.fields: dict[tuple[bytes, bytes], int] = {}
        self.names: dict[bytes, int] = {}
        self.update_min = -1     # a size update to send first: the smallest since the last
        self.huffman = True

    def set_max_size(self, size: int) -> None:
        """The peer's SETTINGS_HEADER_TABLE_SIZE (never above the 4096 we start with)."""
        size = min(size, DEFAULT_TABLE_SIZE)
        if size == self.max_size and self.update_min < 0:
            return
        self.update_min = size if self.update_min < 0 else min(self.update_min, size)
        self.max_size = size
        self._evict(0)

    def _evict(self, room: int) -> None:
        entries = self.entries
        drop = 0
        total = self.size
        while entries and total + room > self.max_size and drop < len(entries):
            name, value, k = entries[drop]
            total -= len(name) + len(value) + ENTRY_OVERHEAD
            if self.fields.get((name, value)) == k:
                del self.fields[(name, value)]
            if self.names.get(name) == k:
                del self.names[name]
            drop += 1
        if drop:
            del entries[:drop]
        self.size = total

    def encode(self, fields: list[tuple[bytes, bytes]], out: bytearray) -> None:
        """Append the header block for `fields` to `out`."""
        if self.update_min >= 0:
            if self.update_min < self.max_size:
                encode_int(out, 0x20, 0x1F, self.update_min)
            encode_int(out, 0x20, 0x1F, self.max_size)
            self.update_min = -1
        huff = self.huffman
        for name, value in fields:
            key = (name, value)
            k = self.fields.get(key, -1)        # most fields repeat: the dynamic table first
            if k >= 0:
                encode_int(out, 0x80, 0x7F, STATIC_LEN + self.inserted - k)
                continue
            index = _STATIC_FIELDS.get(key, 0)
            if index:
                encode_int(out, 0x80, 0x7F, index)
                continue
            index = _STATIC_NAMES.get(name, 0)
            if not index:
                k = self.names.get(name, -1)
                if k >= 0:
                    index = STATIC_LEN + self.inserted - k
            size = len(name) + len(value) + ENTRY_OVERHEAD
            if name in _NOT_INDEXED or size > self.max_size:
                # literal without indexing (0000), never the never-indexed form (0001): it
                # gives a proxy's client nothing, and some decoders (nginx's test client)
                # do not read it
                encode_int(out, 0, 0x0F, index)
            else:
                encode_int(out, 0x40, 0x3F, index)
                self._evict(size)
                k = self.inserted
                self.inserted = k + 1
                self.entries.append((name, value, k))
                self.fields[key] = k
                self.names[name] = k
                self.size += size
            if not index:
                encode_str(out, name, huff)
            encode_str(out, value, huff)
