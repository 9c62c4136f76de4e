"""Location and server selection, URI normalisation: nginx's documented examples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from truehop.route.locations import LocationTree
from truehop.route.servers import ServerNameIndex
from truehop.route.uri import BadRequest, escape_uri, normalize_path


@dataclass(eq=False)
class Loc:
    modifier: str
    pattern: str
    children: list[Any] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"{self.modifier}{self.pattern}"


A = Loc("=", "/")
B = Loc("", "/")
C = Loc("", "/documents/")
D = Loc("^~", "/images/")
E = Loc("~*", r"\.(gif|jpg|jpeg)$")
DOC_TREE = LocationTree.build([A, B, C, D, E])


@pytest.mark.parametrize("uri,want", [
    ("/", A), ("/index.html", B), ("/documents/document.html", C),
    ("/images/1.gif", D), ("/documents/1.jpg", E), ("/x.JPG", E),
])
def test_nginx_documentation_example(uri, want):
    assert DOC_TREE.match(uri)[0] is want


def test_nested_regex_inside_prefix_wins_over_outer_regex():
    inner = Loc("~", r"\.php$")
    outer_rx = Loc("~", r"\.php$")
    api = Loc("", "/api/", [inner])
    t = LocationTree.build([api, outer_rx])
    assert t.match("/api/x.php")[0] is inner
    assert t.match("/other/x.php")[0] is outer_rx
    assert t.match("/api/x.html")[0] is api


def test_regex_captures_returned():
    rx = Loc("~", r"^/u/(?<id>\d+)$")
    from truehop.route.locations import compile_nginx_regex
    rx.regex = compile_nginx_regex(rx.pattern, False)  # type: ignore[attr-defined]
    t = LocationTree.build([rx])
    loc, m = t.match("/u/42")
    assert loc is rx and m is not None and m.group("id") == "42" and m.group(1) == "42"


def test_no_match_gives_none():
    assert LocationTree.build([Loc("", "/a/")]).match("/b")[0] is None


def test_duplicate_location():
    with pytest.raises(ValueError, match='duplicate location "/a/"'):
        LocationTree.build([Loc("", "/a/"), Loc("", "/a/")])


@pytest.mark.parametrize("host,want", [
    ("example.com", "exact"), ("www.example.com", "lead"), ("a.b.example.com", "lead"),
    ("www.example.org", "trail"), ("mail.test", "regex"), ("other", "default"), ("", "default"),
])
def test_server_name_order(host, want):
    idx = ServerNameIndex.build([
        (["~^mail\\."], "regex"), (["www.example.*"], "trail"), (["*.example.com"], "lead"),
        (["example.com"], "exact")], "default")
    assert idx.find(host) == want


@pytest.mark.parametrize("raw,want", [
    ("/a/../b", "/b"), ("/a/./b", "/a/b"), ("//a", "/a"), ("/a/%2F", "/a/"),
    ("/x%20y", "/x y"), ("/a/b/..", "/a/"), ("/%2e/x", "/x"),
])
def test_normalize(raw, want):
    assert normalize_path(raw) == want


@pytest.mark.parametrize("raw", ["/..", "/%2e%2e/", "/a/../../b", "/%zz", "/%4"])
def test_normalize_rejects(raw):
    with pytest.raises(BadRequest):
        normalize_path(raw)


def test_escape_uri():
    assert escape_uri("/a b?#%") == "/a%20b%3F%23%25"
    assert escape_uri("/plain/path") == "/plain/path"
