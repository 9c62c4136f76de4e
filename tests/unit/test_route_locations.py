"""Location matching and PCRE translation, table-driven, with nginx 1.30's rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from truehop.route.locations import (
    LocationError,
    LocationTree,
    compile_nginx_regex,
    translate_pcre,
)


@dataclass(eq=False)
class Loc:
    modifier: str
    pattern: str
    children: list[Any] = field(default_factory=list)
    auto_redirect: bool = False

    def __repr__(self) -> str:
        return f"location {self.modifier} {self.pattern}".replace("  ", " ")


def tree(*locs: Loc) -> LocationTree[Loc]:
    return LocationTree.build(list(locs))


# -- the nginx documentation example -------------------------------------------------------------

A = Loc("=", "/")
B = Loc("", "/")
C = Loc("", "/documents/")
D = Loc("^~", "/images/")
E = Loc("~*", r"\.(gif|jpg|jpeg)$")
DOC = tree(A, B, C, D, E)


@pytest.mark.parametrize("uri,want", [
    ("/", A),
    ("/index.html", B),
    ("/documents/document.html", C),
    ("/images/1.gif", D),
    ("/documents/1.jpg", E),
    ("/documents/1.JPG", E),
    ("/x/y.Jpeg", E),
    ("/images", B),
    ("/documents", B),
])
def test_documentation_example(uri, want):
    assert DOC.match(uri)[0] is want


# -- order rules -----------------------------------------------------------------------------

def test_longest_prefix_regardless_of_order():
    short, long_ = Loc("", "/a/"), Loc("", "/a/b/")
    for locs in ([short, long_], [long_, short]):
        t = LocationTree.build(locs)
        assert t.match("/a/b/c")[0] is long_
        assert t.match("/a/c")[0] is short
        assert t.match("/a/b")[0] is short
        assert t.match("/b")[0] is None


def test_first_regex_in_file_order_wins():
    r1, r2 = Loc("~", r"\.php$"), Loc("~", r"^/a/")
    assert tree(r1, r2).match("/a/x.php")[0] is r1
    assert tree(r2, r1).match("/a/x.php")[0] is r2


def test_regex_beats_longest_prefix_unless_caret_tilde():
    p, rx = Loc("", "/static/"), Loc("~", r"\.css$")
    assert tree(p, rx).match("/static/a.css")[0] is rx
    stop = Loc("^~", "/static/")
    assert tree(stop, rx).match("/static/a.css")[0] is stop
    assert tree(stop, rx).match("/other/a.css")[0] is rx


def test_caret_tilde_only_counts_when_it_is_the_longest():
    stop, longer, rx = Loc("^~", "/s/"), Loc("", "/s/deep/"), Loc("~", r"\.css$")
    t = tree(stop, longer, rx)
    assert t.match("/s/deep/a.css")[0] is rx
    assert t.match("/s/a.css")[0] is stop


def test_exact_wins_over_everything():
    ex, rx, stop = Loc("=", "/a.css"), Loc("~", r"\.css$"), Loc("^~", "/")
    t = tree(stop, rx, ex)
    assert t.match("/a.css")[0] is ex
    assert t.match("/b.css")[0] is stop


def test_exact_is_not_a_prefix():
    ex = Loc("=", "/api")
    t = tree(ex)
    assert t.match("/api")[0] is ex
    assert t.match("/api/x")[0] is None
    assert t.match("/ap")[0] is None


def test_exact_and_prefix_of_the_same_name():
    ex, pre = Loc("=", "/a"), Loc("", "/a")
    t = tree(pre, ex)
    assert t.match("/a")[0] is ex
    assert t.match("/ab")[0] is pre


def test_case_sensitivity():
    cs, ci = Loc("~", r"^/Admin"), Loc("~*", r"^/admin")
    assert tree(cs).match("/admin")[0] is None
    assert tree(cs).match("/Admin")[0] is cs
    assert tree(ci).match("/ADMIN/x")[0] is ci
    assert tree(Loc("", "/Doc")).match("/doc")[0] is None   # prefixes are case-sensitive


def test_caseless_is_ascii_only_as_pcre_without_utf():
    ci = Loc("~*", "^/\xe9")                 # latin-1 'é' vs 'É' differ in nginx
    assert tree(ci).match("/\xc9")[0] is None


def test_non_ascii_pattern_matches_utf8_bytes():
    pre, rx = Loc("", "/café/"), Loc("~", "^/naïve$")
    t = tree(pre, rx)
    assert t.match("/caf\xc3\xa9/x")[0] is pre
    assert t.match("/na\xc3\xafve")[0] is rx


def test_many_prefixes_use_the_tree():
    locs = [Loc("", f"/p{i:03d}/") for i in range(300)] + [Loc("", "/")]
    t = LocationTree.build(locs)
    for i in (0, 1, 150, 299):
        assert t.match(f"/p{i:03d}/x")[0] is locs[i]
    assert t.match("/p300/x")[0] is locs[-1]
    assert t.match("/p1")[0] is locs[-1]


def test_tree_with_sibling_prefixes_and_exacts():
    names = ["/", "/a", "/a/", "/a/b", "/a-b/", "/a.b", "/ab/", "/b/", "/b/c/d/", "/b/c/"]
    locs = [Loc("", n) for n in names] + [Loc("=", "/a/b/c"), Loc("=", "/b/c")]
    t = LocationTree.build(locs)
    by = {(x.modifier, x.pattern): x for x in locs}
    cases = {
        "/": ("", "/"), "/x": ("", "/"), "/a": ("", "/a"), "/a/": ("", "/a/"),
        "/a/x": ("", "/a/"), "/a/b": ("", "/a/b"), "/a/bc": ("", "/a/b"),
        "/a/b/c": ("=", "/a/b/c"), "/a/b/cd": ("", "/a/b"), "/a-b/1": ("", "/a-b/"),
        "/a-": ("", "/a"), "/a.b": ("", "/a.b"), "/ab/x": ("", "/ab/"), "/ab": ("", "/a"),
        "/b/c": ("=", "/b/c"), "/b/c/": ("", "/b/c/"), "/b/c/d/e": ("", "/b/c/d/"),
        "/b/cd": ("", "/b/"),
    }
    for uri, key in cases.items():
        assert t.match(uri)[0] is by[key], uri


# -- nested locations -------------------------------------------------------------------------

def test_nested_regex_checked_before_outer_regexes():
    inner = Loc("~", r"\.php$")
    outer_rx = Loc("~", r"\.php$")
    api = Loc("", "/api/", [inner])
    t = tree(api, outer_rx)
    assert t.match("/api/x.php")[0] is inner
    assert t.match("/other/x.php")[0] is outer_rx
    assert t.match("/api/x.html")[0] is api


def test_nested_prefix_then_outer_regex():
    deep = Loc("", "/api/v1/")
    api = Loc("", "/api/", [deep])
    rx = Loc("~", r"\.json$")
    t = tree(api, rx)
    assert t.match("/api/v1/x")[0] is deep
    assert t.match("/api/v1/x.json")[0] is rx      # outer regexes still apply
    assert t.match("/api/x")[0] is api


def test_nested_caret_tilde_does_not_stop_outer_regexes():
    # nginx: the ^~ of a nested location only skips the regexes nested beside it
    inner_rx = Loc("~", r"\.png$")
    stop = Loc("^~", "/a/b/")
    a = Loc("", "/a/", [stop, inner_rx])
    outer_rx = Loc("~", r"\.png$")
    t = tree(a, outer_rx)
    assert t.match("/a/b/x.png")[0] is outer_rx
    assert t.match("/a/c/x.png")[0] is inner_rx


def test_regexes_nested_in_caret_tilde_are_checked():
    inner_rx = Loc("~", r"\.gif$")
    images = Loc("^~", "/images/", [inner_rx])
    outer_rx = Loc("~", r"\.gif$")
    t = tree(images, outer_rx)
    assert t.match("/images/a.gif")[0] is inner_rx
    assert t.match("/images/a.png")[0] is images


def test_nested_exact():
    ex = Loc("=", "/a/x")
    a = Loc("", "/a/", [ex])
    t = tree(a, Loc("~", "x$"))
    assert t.match("/a/x")[0] is ex


def test_locations_nested_in_a_regex_location():
    inner = Loc("~", r"/admin/")
    php = Loc("~", r"\.php$", [inner])
    t = tree(php)
    assert t.match("/admin/a.php")[0] is inner
    assert t.match("/a.php")[0] is php


def test_three_levels():
    c = Loc("", "/a/b/c/")
    b = Loc("", "/a/b/", [c])
    a = Loc("", "/a/", [b])
    t = tree(a, Loc("", "/"))
    assert t.match("/a/b/c/d")[0] is c
    assert t.match("/a/b/x")[0] is b
    assert t.match("/a/x")[0] is a


# -- captures -----------------------------------------------------------------------------------

def test_captures_positional_and_named():
    rx = Loc("~", r"^/u/(?<id>\d+)/(\w+)$")
    loc, m = tree(rx).match("/u/42/edit")
    assert loc is rx and m is not None
    assert m.group(1) == "42" and m.group("id") == "42" and m.group(2) == "edit"
    assert m.groupdict() == {"id": "42"}


def test_no_captures_for_prefix_or_groupless_regex():
    assert tree(Loc("", "/")).match("/x")[1] is None
    assert tree(Loc("~", r"\.css$")).match("/a.css")[1] is None


def test_groupless_nested_regex_keeps_outer_captures():
    inner = Loc("~", r"\.php$")
    outer = Loc("~", r"^/(\w+)/", [inner])
    loc, m = tree(outer).match("/app/x.php")
    assert loc is inner and m is not None and m.group(1) == "app"


def test_precompiled_regex_is_reused():
    rx = Loc("~", r"^/(a)")
    rx.regex = re.compile(r"^/(b)")  # type: ignore[attr-defined]
    assert tree(rx).match("/b")[0] is rx


# -- auto redirect --------------------------------------------------------------------------------

def test_auto_redirect():
    proxied = Loc("", "/app/", auto_redirect=True)
    rx = Loc("~", r"^/app$")
    t = tree(Loc("", "/"), proxied, rx)
    location, captures, redirect = t.lookup("/app")
    assert redirect and location is proxied and captures is None
    assert t.needs_slash_redirect("/app")      # regexes are not consulted
    assert not t.needs_slash_redirect("/app/")
    assert not t.needs_slash_redirect("/ap")
    assert t.lookup("/app/x") == (proxied, None, False)


def test_auto_redirect_not_when_a_location_has_that_name():
    proxied = Loc("", "/app/", auto_redirect=True)
    for other in (Loc("", "/app"), Loc("=", "/app")):
        location, _, redirect = tree(proxied, other).lookup("/app")
        assert not redirect and location is other


def test_auto_redirect_for_exact_location():
    ex = Loc("=", "/app/", auto_redirect=True)
    assert tree(ex).needs_slash_redirect("/app")


def test_auto_redirect_nested():
    inner = Loc("", "/a/b/", auto_redirect=True)
    t = tree(Loc("", "/a/", [inner]))
    assert t.needs_slash_redirect("/a/b")


def test_no_auto_redirect_without_flag():
    t = tree(Loc("", "/app/"), Loc("", "/"))
    assert not t.needs_slash_redirect("/app")


def test_auto_redirect_found_when_siblings_sort_around_the_slash():
    # ngx_filename_cmp sorts '/' lowest: "/x/" < "/x-a/" < "/x.php", so the walk from the
    # middle node goes left to "/x/" and answers 301 (byte order would put "/x/" last)
    proxied = Loc("", "/x/", auto_redirect=True)
    t = tree(Loc("", "/x-a/"), proxied, Loc("", "/x.php"))
    assert t.needs_slash_redirect("/x")


def test_auto_redirect_nginx_tests_location_auto():
    # http_location_auto.t: with "-" < "/" in byte order the tree is "/a-b" over "/a-a" and
    # "/a/", and a request for "/a" used to miss the redirect (nginx before 1.5.4)
    proxied = Loc("", "/a/", auto_redirect=True)
    aa, ab = Loc("", "/a-a"), Loc("", "/a-b")
    t = tree(proxied, aa, ab)
    location, _, redirect = t.lookup("/a")
    assert redirect and location is proxied
    assert t.match("/a/")[0] is proxied
    assert t.match("/a-a")[0] is aa
    assert t.match("/a-b")[0] is ab


@pytest.mark.parametrize("uri,want", [
    ("/a/x", "/a/"), ("/a-x", "/a-"), ("/a.x", "/a"), ("/a", "/a"), ("/a/", "/a/"),
    ("/a-b/c", "/a-b/"), ("/a-", "/a-"), ("/b", "/"), ("/a0", "/a"), ("/a.c/d", "/a.c"),
])
def test_longest_prefix_with_slash_ordering(uri, want):
    locs = {p: Loc("", p) for p in ("/", "/a", "/a/", "/a-b/", "/a.c", "/a-")}
    t = tree(*locs.values())
    assert t.match(uri)[0] is locs[want]


# -- named --------------------------------------------------------------------------------------

def test_named_locations_only_by_name():
    fallback = Loc("@", "@fallback")
    t = tree(Loc("", "/a/"), fallback)
    assert t.named("@fallback") is fallback
    assert t.named("fallback") is fallback
    assert t.named("@nope") is None
    assert t.match("@fallback")[0] is None


# -- configuration errors -------------------------------------------------------------------------

@pytest.mark.parametrize("locs,msg", [
    ([Loc("", "/a/"), Loc("", "/a/")], 'duplicate location "/a/"'),
    ([Loc("^~", "/a/"), Loc("", "/a/")], 'duplicate location "/a/"'),
    ([Loc("=", "/a"), Loc("=", "/a")], 'duplicate location "/a"'),
    ([Loc("", "/x/", [Loc("", "/x/a"), Loc("", "/x/a")])], 'duplicate location "/x/a"'),
    ([Loc("", "/y/", [Loc("", "/x/")])], 'location "/x/" is outside location "/y/"'),
    ([Loc("", "/y/", [Loc("=", "/y")])], 'location "/y" is outside location "/y/"'),
    ([Loc("~", r"\.php$", [Loc("", "/x")])], 'location "/x" is outside location "\\.php$"'),
    ([Loc("=", "/y", [Loc("", "/y")])],
     'location "/y" cannot be inside the exact location "/y"'),
    ([Loc("@", "@n", [Loc("", "/y")])],
     'location "/y" cannot be inside the named location "@n"'),
    ([Loc("", "/y/", [Loc("@", "@n")])], 'named location "@n" can be on the server level only'),
    ([Loc("~", "(")], 'pcre2_compile() failed: missing closing parenthesis in "(" at ""'),
])
def test_config_errors(locs, msg):
    with pytest.raises(LocationError) as ei:
        LocationTree.build(locs)
    assert str(ei.value) == msg
    assert ei.value.location is not None


def test_duplicate_error_names_the_later_location():
    first, second = Loc("", "/a/"), Loc("", "/a/")
    with pytest.raises(LocationError) as ei:
        tree(first, second)
    assert ei.value.location is second


def test_same_regex_twice_is_allowed():
    r1, r2 = Loc("~", "a"), Loc("~", "a")
    assert tree(r1, r2).match("/a")[0] is r1


def test_exact_map_kept_for_callers():
    ex = Loc("=", "/x")
    assert tree(ex, Loc("", "/")).exact == {"/x": ex}


# -- PCRE translation -----------------------------------------------------------------------------

@pytest.mark.parametrize("pcre,subject,groups", [
    (r"^/(?<user>\w+)$", "/bob", {"user": "bob"}),
    (r"^/(?'user'\w+)$", "/bob", {"user": "bob"}),
    (r"^/(?P<user>\w+)$", "/bob", {"user": "bob"}),
    (r"^/(?<a>x)\k<a>$", "/xx", {"a": "x"}),
    (r"^/(?<a>x)\k{a}$", "/xx", {"a": "x"}),
])
def test_named_groups(pcre, subject, groups):
    m = compile_nginx_regex(pcre, False).search(subject)
    assert m is not None and m.groupdict() == groups


@pytest.mark.parametrize("pcre,caseless,yes,no", [
    (r"^[[:alpha:]]+$", False, ["abc"], ["ab1", "a["]),
    (r"^[[:digit:][:upper:]]+$", False, ["A1"], ["a1"]),
    (r"^[^[:space:]]+$", False, ["ab"], ["a b"]),
    (r"a\z", False, ["a"], ["a\n"]),
    (r"a\Z", False, ["a", "a\n"], ["a\nb"]),
    (r"a$", False, ["a", "a\n"], ["ab"]),
    (r"^\w+$", False, ["ab_9"], ["\xe9"]),              # ASCII \w, as PCRE without UTF
    (r"^\d$", False, ["7"], ["\u0663"]),
    (r"^a(?i)b|c$", False, ["aB", "C"], ["AB"]),        # flag reaches the next alternative
    (r"^(a(?i)b)c$", False, ["aBc"], ["aBC"]),           # ... but not past its group
    (r"(?i)^abc$", False, ["ABC"], []),
    (r"^\Qa.b\E$", False, ["a.b"], ["axb"]),
    (r"^a\h+b$", False, ["a \tb"], ["a\nb"]),
    (r"^a\x{41}$", False, ["aA"], []),
    (r"^[\]a]+$", False, ["]a"], ["b"]),
    (r"^[]a]+$", False, ["]a"], ["b"]),
    (r"^[a|b]$", False, ["|"], ["c"]),
    (r"\(?<x>", False, ["<x>", "(<x>"], []),            # an escaped paren is no group
    (r"^abc$", True, ["ABC"], ["ABD"]),
    (r"^/(?#comment)x$", False, ["/x"], []),
    (r"^/a\/b$", False, ["/a/b"], []),
])
def test_pcre_semantics(pcre, caseless, yes, no):
    rx = compile_nginx_regex(pcre, caseless)
    for s in yes:
        assert rx.search(s), (pcre, s)
    for s in no:
        assert not rx.search(s), (pcre, s)


@pytest.mark.parametrize("pcre,msg", [
    ("(", 'pcre2_compile() failed: missing closing parenthesis in "(" at ""'),
    ("a)", 'pcre2_compile() failed: unmatched closing parenthesis in "a)" at ")"'),
    ("[a", 'pcre2_compile() failed: missing terminating ] for character class in "[a" at ""'),
    ("*a", 'pcre2_compile() failed: quantifier does not follow a repeatable item in "*a" '
           'at "*a"'),
    ("a\\", 'pcre2_compile() failed: \\ at end of pattern in "a\\" at ""'),
    ("(?<n>a", 'pcre2_compile() failed: missing closing parenthesis in "(?<n>a" at ""'),
])
def test_pcre_errors(pcre, msg):
    with pytest.raises(ValueError) as ei:
        compile_nginx_regex(pcre, False)
    assert str(ei.value) == msg


def test_translate_leaves_plain_patterns_alone():
    for p in [r"\.php$", r"^/api/(v\d+)/", r"^/(?P<x>a)(?=b)(?<=a)(?!c)(?<!d)"]:
        assert translate_pcre(p) == p


@pytest.mark.parametrize("pattern,text,matches", [
    (r"^www\p{N}+$", "www01", True),
    (r"^www\p{N}+$", "www\xb2", True),            # bytes 0-255 of the category (no UTF)
    (r"^www\p{N}+$", "wwwx", False),
    (r"^\pL+$", "ab\xe9", True),
    (r"^[\p{Lu}\d]+$", "AB1", True),
    (r"^[\p{Lu}\d]+$", "Ab1", False),
    (r"^\P{N}$", "1", False),
    (r"^\p{^N}$", "a", True),
])
def test_pcre_unicode_properties(pattern: str, text: str, matches: bool) -> None:
    from truehop.route.locations import compile_nginx_regex
    assert (compile_nginx_regex(pattern, False).search(text) is not None) is matches


def test_pcre_unknown_property() -> None:
    from truehop.route.locations import compile_nginx_regex
    with pytest.raises(ValueError, match="unknown property name"):
        compile_nginx_regex(r"\p{Greek}", False)
