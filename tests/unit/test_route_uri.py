"""normalize_path / escape_uri / split_target against nginx's ngx_http_parse_complex_uri."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from truehop.route.uri import BadRequest, escape_uri, normalize_path, split_target


@pytest.mark.parametrize("raw,want", [
    ("/", "/"),
    ("", "/"),
    ("/index.html", "/index.html"),
    ("/a/../b", "/b"),
    ("/a/./b", "/a/b"),
    ("//a", "/a"),
    ("/a//b///c", "/a/b/c"),
    ("/a/.", "/a/"),
    ("/a/..", "/"),
    ("/a/b/..", "/a/"),
    ("/a/b/../../c/", "/c/"),
    ("/x/%2e%2e/y", "/y"),              # decoded dots are dots
    ("/a/%2e%2E", "/"),
    ("/a/%2F", "/a/"),                  # a decoded slash is a slash, and merged
    ("/a%2Fb", "/a/b"),
    ("/a/%2F%2F../b", "/b"),
    ("/foo/..;/", "/foo/..;/"),         # "..;" is not a dot segment
    ("/...", "/..."),
    ("/a/.b/..b/", "/a/.b/..b/"),
    ("/.well-known/x", "/.well-known/x"),
    ("/%41%42c", "/ABc"),
    ("/%25", "/%"),                     # decoded '%' is literal, never decoded again
    ("/%2541", "/%41"),
    ("/a%25/..", "/"),
    ("/.%3F", "/.?"),                   # decoded '?' is literal: ".?" is an ordinary segment
    ("/a%3Fb", "/a?b"),
    ("/a%23b", "/a#b"),
    ("/a#frag/../..", "/a"),            # a raw '#' ends the path
    ("/a/..#x", "/"),
    ("/a?x=/..", "/a"),                 # a raw '?' ends it too
    ("/caf%C3%A9", "/caf\xc3\xa9"),     # bytes, one char per byte
    ("/caf\xc3\xa9/./", "/caf\xc3\xa9/"),
    ("/a b", "/a b"),                   # nginx accepts a space in an HTTP/1.x URI
    ("/%0A", "/\n"),                    # decoded controls other than NUL are kept
    ("/a+b", "/a+b"),
])
def test_normalize(raw, want):
    assert normalize_path(raw) == want


@pytest.mark.parametrize("raw", [
    "/..", "/../", "/../a", "/a/../..", "/a/../../b", "/%2e%2e/", "/%2e%2e", "/.%2e",
    "/a/..%2f..", "/%00", "/a%00b", "/%zz", "/%4", "/%", "/a%g0", "/a\x00", "/a\x01b",
    "/a\x7f", "a/b", "*",
])
def test_bad_request(raw):
    with pytest.raises(BadRequest) as ei:
        normalize_path(raw)
    assert ei.value.status == 400


@pytest.mark.parametrize("raw,want", [
    ("/a//b", "/a//b"),
    ("//", "//"),
    ("/a//", "/a//"),
    ("/a//..", "/a/"),                  # '..' removes the empty segment
    ("/a//b/..", "/a//"),
    ("//..", "/"),
    ("//../a", "/a"),
    ("/a/./b", "/a/b"),
    ("/a/%2F", "/a//"),
])
def test_no_merge_slashes(raw, want):
    assert normalize_path(raw, merge_slashes=False) == want


def test_no_merge_still_climbs():
    with pytest.raises(BadRequest):
        normalize_path("/..", merge_slashes=False)


@pytest.mark.parametrize("target,want", [
    ("/a", ("/a", None)),
    ("/a?", ("/a", "")),
    ("/a?x=1&y", ("/a", "x=1&y")),
    ("/a?x=1?y", ("/a", "x=1?y")),
    ("/a?x#frag", ("/a", "x")),
    ("/a#frag?x", ("/a", None)),
    ("/a%3Fb?c", ("/a%3Fb", "c")),
])
def test_split_target(target, want):
    assert split_target(target) == want


@pytest.mark.parametrize("uri,want", [
    ("/plain/path-._~!$&'()*+,;=:@", "/plain/path-._~!$&'()*+,;=:@"),
    ("/a b", "/a%20b"),
    ("/a?b#c%d", "/a%3Fb%23c%25d"),
    ('/"<>\\^`{|}', "/%22%3C%3E%5C%5E%60%7B%7C%7D"),
    ("/\x00\x1f\x7f\x80\xff", "/%00%1F%7F%80%FF"),
    ("/caf\xc3\xa9", "/caf%C3%A9"),
])
def test_escape_uri(uri, want):
    assert escape_uri(uri) == want


def test_escape_roundtrip():
    for raw in ["/caf%C3%A9", "/a%20b", "/x%3Fy", "/%25"]:
        assert escape_uri(normalize_path(raw)) == raw


# -- properties -------------------------------------------------------------------------------

_segment = st.sampled_from(["", ".", "..", "a", "b", "..a", ".a", "%2e", "%2E%2e", "%2F",
                            "%41", "x y", "%25", "\xe9"])
_paths = st.lists(_segment, max_size=12).map(lambda segs: "/" + "/".join(segs))
_plain = st.lists(st.sampled_from(["", ".", "..", "a", "bc", "..a", ".a", "\xe9", "x y"]),
                  max_size=12).map(lambda segs: "/" + "/".join(segs))


@given(_paths, st.booleans())
def test_normalized_shape(raw, merge):
    try:
        out = normalize_path(raw, merge)
    except BadRequest:
        return
    assert out.startswith("/")
    assert "/../" not in out and "/./" not in out
    assert not out.endswith("/..") and not out.endswith("/.")
    if merge:
        assert "//" not in out


@given(_plain, st.booleans())
def test_idempotent_without_escapes(raw, merge):
    try:
        out = normalize_path(raw, merge)
    except BadRequest:
        return
    assert normalize_path(out, merge) == out


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=40))
def test_any_input_gives_a_path_or_bad_request(raw):
    try:
        out = normalize_path("/" + raw)
    except BadRequest:
        return
    assert out.startswith("/")
    assert all(ord(c) < 256 for c in out)
