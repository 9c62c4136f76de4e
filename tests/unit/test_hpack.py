"""truehop's HPACK (truehop.http.hpack) against RFC 7541 Appendix C and, as an oracle, the
`hpack` package (python-hyper): the examples decoded with their dynamic table states,
Huffman round trips on random bytes, our encoder read by hpack's decoder, every malformed
block answered with HPACKError and the HTTP/2 error code nginx answers it with."""

from __future__ import annotations

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truehop.http.hpack import (
    COMPRESSION_ERROR,
    ENHANCE_YOUR_CALM,
    FRAME_SIZE_ERROR,
    PROTOCOL_ERROR,
    STATIC_TABLE,
    Decoder,
    Encoder,
    HPACKError,
    huffman_decode,
    huffman_encode,
    huffman_length,
    walk,
)

Fields = list[tuple[bytes, bytes]]


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


def table(d: Decoder) -> list[tuple[bytes, bytes]]:
    """The dynamic table, newest first (the order RFC 7541's examples print it in)."""
    return list(reversed(d.entries))


def test_static_table_is_the_rfcs() -> None:
    from hpack.table import HeaderTable
    assert list(STATIC_TABLE) == list(HeaderTable.STATIC_TABLE)


# -- RFC 7541 C.2: one representation each ----------------------------------------------------


def test_c2_1_literal_with_indexing() -> None:
    d = Decoder()
    assert d.decode(h("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")) == \
        [(b"custom-key", b"custom-header")]
    assert table(d) == [(b"custom-key", b"custom-header")] and d.size == 55


def test_c2_2_literal_without_indexing() -> None:
    d = Decoder()
    assert d.decode(h("040c 2f73 616d 706c 652f 7061 7468")) == [(b":path", b"/sample/path")]
    assert table(d) == [] and d.size == 0


def test_c2_3_literal_never_indexed() -> None:
    d = Decoder()
    assert d.decode(h("1008 7061 7373 776f 7264 0673 6563 7265 74")) == \
        [(b"password", b"secret")]
    assert table(d) == []


def test_c2_4_indexed() -> None:
    d = Decoder()
    assert d.decode(h("82")) == [(b":method", b"GET")]
    assert table(d) == []


# -- C.3 / C.4: requests, without and with Huffman ---------------------------------------------

REQ1 = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
        (b":authority", b"www.example.com")]
REQ2 = REQ1 + [(b"cache-control", b"no-cache")]
REQ3 = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
        (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")]
REQ_TABLES = [
    ([(b":authority", b"www.example.com")], 57),
    ([(b"cache-control", b"no-cache"), (b":authority", b"www.example.com")], 110),
    ([(b"custom-key", b"custom-value"), (b"cache-control", b"no-cache"),
      (b":authority", b"www.example.com")], 164),
]
C3 = ["8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
      "8286 84be 5808 6e6f 2d63 6163 6865",
      "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"]
C4 = ["8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
      "8286 84be 5886 a8eb 1064 9cbf",
      "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"]


@pytest.mark.parametrize("blocks", [C3, C4], ids=["C.3", "C.4"])
def test_c3_c4_requests(blocks: list[str]) -> None:
    d = Decoder()
    oracle = hpack.Decoder()
    for block, want, (tab, size) in zip(blocks, [REQ1, REQ2, REQ3], REQ_TABLES, strict=True):
        assert d.decode(h(block)) == want
        assert oracle.decode(h(block), raw=True) == want     # the fixture itself is right
        assert table(d) == tab and d.size == size


# -- C.5 / C.6: responses, table size 256, evictions --------------------------------------------

DATE1 = b"Mon, 21 Oct 2013 20:13:21 GMT"
DATE2 = b"Mon, 21 Oct 2013 20:13:22 GMT"
LOC = b"https://www.example.com"
COOKIE = b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
RESP1 = [(b":status", b"302"), (b"cache-control", b"private"), (b"date", DATE1),
         (b"location", LOC)]
RESP2 = [(b":status", b"307"), (b"cache-control", b"private"), (b"date", DATE1),
         (b"location", LOC)]
RESP3 = [(b":status", b"200"), (b"cache-control", b"private"), (b"date", DATE2),
         (b"location", LOC), (b"content-encoding", b"gzip"), (b"set-cookie", COOKIE)]
RESP_TABLES = [
    ([(b"location", LOC), (b"date", DATE1), (b"cache-control", b"private"),
      (b":status", b"302")], 222),
    ([(b":status", b"307"), (b"location", LOC), (b"date", DATE1),
      (b"cache-control", b"private")], 222),
    ([(b"set-cookie", COOKIE), (b"content-encoding", b"gzip"), (b"date", DATE2)], 215),
]
C5 = ["""4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d""",
      "4803 3330 37c1 c0bf",
      """88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31"""]
C6 = ["""4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3""",
      "4883 640e ffc1 c0bf",
      """88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07"""]


@pytest.mark.parametrize("blocks", [C5, C6], ids=["C.5", "C.6"])
def test_c5_c6_responses_with_evictions(blocks: list[str]) -> None:
    d = Decoder(max_table_size=256)
    oracle = hpack.Decoder()
    oracle.header_table_size = 256
    for block, want, (tab, size) in zip(blocks, [RESP1, RESP2, RESP3], RESP_TABLES,
                                        strict=True):
        raw = h(block.replace("\n", " "))
        assert oracle.decode(raw, raw=True) == want
        assert d.decode(raw) == want
        assert table(d) == tab and d.size == size


# -- Huffman ---------------------------------------------------------------------------------


def test_huffman_rfc_strings() -> None:
    assert huffman_encode(b"www.example.com") == h("f1e3 c2e5 f23a 6ba0 ab90 f4ff")
    assert huffman_encode(b"no-cache") == h("a8eb 1064 9cbf")
    assert huffman_encode(b"custom-key") == h("25a8 49e9 5ba9 7d7f")
    assert huffman_length(b"www.example.com") == 12


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_huffman_round_trip_against_hpack(data: bytes) -> None:
    ours = huffman_encode(data)
    theirs = hpack.huffman.HuffmanEncoder(hpack.huffman_constants.REQUEST_CODES,
                                          hpack.huffman_constants.REQUEST_CODES_LENGTH
                                          ).encode(data)
    assert ours == theirs and len(ours) == huffman_length(data)
    assert huffman_decode(ours, 0, len(ours)) == data
    assert hpack.huffman_table.decode_huffman(ours) == data


@pytest.mark.parametrize("coded", [
    h("ff"),                     # 8 one-bits of padding: longer than 7
    h("fe"),                     # a code that does not end, and padding with a zero bit
    h("ffff ffff"),              # EOS (30 ones) inside the string
    h("1f"),                     # "0" (00000), then 3 bits of padding: valid
])
def test_huffman_bad_padding_or_eos(coded: bytes) -> None:
    try:
        out = huffman_decode(coded, 0, len(coded))
    except HPACKError as e:
        assert e.code == COMPRESSION_ERROR
        with pytest.raises(hpack.HPACKDecodingError):
            hpack.huffman_table.decode_huffman(coded)
    else:
        assert hpack.huffman_table.decode_huffman(coded) == out


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40))
def test_huffman_decode_agrees_with_hpack_on_any_bytes(data: bytes) -> None:
    try:
        ours: bytes | None = huffman_decode(data, 0, len(data))
    except HPACKError:
        ours = None
    try:
        theirs: bytes | None = hpack.huffman_table.decode_huffman(data)
    except Exception:
        theirs = None
    assert ours == theirs


# -- our encoder, read by hpack's decoder ------------------------------------------------------

header_lists = st.lists(st.tuples(
    st.sampled_from([b"server", b"date", b"content-type", b"x-a", b"content-length",
                     b"set-cookie", b":status", b"cache-control", b"vary"]),
    st.binary(max_size=60)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(header_lists, min_size=1, max_size=8),
       st.lists(st.integers(0, 5000), max_size=3))
def test_encoder_read_by_hpack(lists: list[Fields], sizes: list[int]) -> None:
    enc = Encoder()
    oracle = hpack.Decoder()
    for i, fields in enumerate(lists):
        if i < len(sizes):
            # the peer's SETTINGS_HEADER_TABLE_SIZE changed: the next block says so first
            enc.set_max_size(sizes[i])
            oracle.max_allowed_table_size = min(sizes[i], 4096)
        out = bytearray()
        enc.encode(fields, out)
        assert oracle.decode(bytes(out), raw=True) == fields
        assert enc.size <= enc.max_size


def test_encoder_indexes_what_repeats() -> None:
    enc = Encoder()
    fields = [(b":status", b"200"), (b"server", b"truehop"), (b"content-type", b"text/html"),
              (b"content-length", b"13")]
    first = bytearray()
    enc.encode(fields, first)
    second = bytearray()
    enc.encode(fields, second)
    # :status 200 static; server and content-type from the dynamic table: one byte each;
    # content-length (changes every response) stays literal with its static name
    assert second[:3] == b"\x88\xbf\xbe" and len(second) < len(first)
    assert hpack.Decoder().decode(bytes(first + second), raw=True) == fields + fields


# -- malformed blocks --------------------------------------------------------------------------


@pytest.mark.parametrize("block, code", [
    (h("80"), COMPRESSION_ERROR),                # index 0
    (h("be"), COMPRESSION_ERROR),                # index 62, empty dynamic table
    (h("ff80 80"), FRAME_SIZE_ERROR),             # index running past the end
    (h("ffff ffff 00"), COMPRESSION_ERROR),      # integer of more than 4 octets
    (h("ffff ffff"), FRAME_SIZE_ERROR),          # 4 octets, not ended, at the end: truncated
    (h("3fe2 1f"), COMPRESSION_ERROR),           # table size update to 4097 (> SETTINGS)
    (h("82 20"), COMPRESSION_ERROR),             # table size update after a field
    (h("4005 6162"), FRAME_SIZE_ERROR),          # name running past the end
    (h("00"), FRAME_SIZE_ERROR),                 # literal with no name
    (h("0000 0176"), PROTOCOL_ERROR),            # empty name
    (h("0001 6181 ff"), COMPRESSION_ERROR),      # Huffman value: 8 bits of padding
    (h("4003 6162 63"), FRAME_SIZE_ERROR),       # a name and no value
])
def test_malformed_blocks(block: bytes, code: int) -> None:
    with pytest.raises(HPACKError) as e:
        Decoder().decode(block)
    assert e.value.code == code


def test_string_limit_is_the_length_as_sent() -> None:
    d = Decoder(max_field=10)
    assert d.decode(h("000a") + b"x" * 10 + h("01") + b"v") == [(b"x" * 10, b"v")]
    with pytest.raises(HPACKError) as e:
        d.decode(h("000b") + b"x" * 11 + h("01") + b"v")
    assert e.value.code == ENHANCE_YOUR_CALM


def test_list_limit_counts_as_it_decodes() -> None:
    # a bomb: one entry, referenced over and over
    d = Decoder(max_list=4096)
    d.decode(h("4003 6162 6378") + b"v" * 120)
    with pytest.raises(HPACKError) as e:
        d.decode(b"\xbe" * 100)
    assert e.value.code == ENHANCE_YOUR_CALM


def test_table_size_update_and_eviction() -> None:
    d = Decoder()
    d.decode(h("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))
    assert d.size == 55
    d.decode(h("20"))                 # size 0: the table empties
    assert table(d) == [] and d.size == 0
    d.decode(h("3fe1 1f"))            # back to 4096, allowed
    assert d.table_size == 4096
    # an entry larger than the table empties it and is not added (RFC 7541 §4.4)
    d = Decoder(max_table_size=64)
    d.decode(h("4003 6162 63") + h("7f00") + b"v" * 127)
    assert table(d) == []


# -- walking a block that has partly arrived ---------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(header_lists, st.integers(0, 400))
def test_walk_over_any_prefix_of_a_valid_block(fields: Fields, cut: int) -> None:
    block = hpack.Encoder().encode([(n or b"x", v) for n, v in fields])
    cut = min(cut, len(block))
    r = walk(block, 0, cut, 1 << 20)
    assert 0 <= r <= cut
    # resuming there walks the rest to the end
    assert walk(block, r, len(block), 1 << 20) == len(block)


def test_walk_refuses_what_decode_would() -> None:
    with pytest.raises(HPACKError) as e:
        walk(h("0064") + b"x" * 10, 0, 12, 50)          # name of 100 > 50, before its bytes
    assert e.value.code == ENHANCE_YOUR_CALM
    with pytest.raises(HPACKError) as e:
        walk(h("ffff ffff"), 0, 4, 8192)
    assert e.value.code == COMPRESSION_ERROR
    with pytest.raises(HPACKError) as e:
        walk(h("0000"), 0, 2, 8192)
    assert e.value.code == PROTOCOL_ERROR


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_decode_or_hpack_error(data: bytes) -> None:
    d = Decoder(max_field=32, max_list=512)
    try:
        d.decode(data)
    except HPACKError as e:
        assert e.code in (COMPRESSION_ERROR, FRAME_SIZE_ERROR, PROTOCOL_ERROR,
                          ENHANCE_YOUR_CALM)
    try:
        walk(data, 0, len(data), 32)
    except HPACKError:
        pass
