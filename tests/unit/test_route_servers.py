"""Server selection by name (nginx 1.30's virtual-server rules)."""

from __future__ import annotations

import pytest

from truehop.route.servers import ServerNameIndex, check_server_name

ENTRIES: list[tuple[list[str], str]] = [
    (["~^mail\\."], "regex"),
    (["www.example.*"], "trail"),
    (["*.example.com"], "lead"),
    (["example.com"], "exact"),
    (["*.deep.example.com"], "lead-deep"),
    ([".dot.org"], "dot"),
    (["www.*"], "trail-short"),
    (["~^(?<sub>[a-z]+)\\.app\\.test$", "~^(\\d+)\\.num\\.test$"], "regex2"),
    (["_"], "underscore"),
]
IDX = ServerNameIndex.build(ENTRIES, "default")


@pytest.mark.parametrize("host,want", [
    ("example.com", "exact"),
    ("www.example.com", "lead"),            # leading wildcard beats trailing
    ("a.b.example.com", "lead"),
    ("x.deep.example.com", "lead-deep"),    # the most specific leading wildcard
    ("deep.example.com", "lead"),           # "*.deep..." needs a subdomain
    ("dot.org", "dot"),                     # ".dot.org" matches the bare name...
    ("a.b.dot.org", "dot"),                 # ...and subdomains
    ("www.example.org", "trail"),
    ("www.example.co.uk", "trail"),
    ("www.other.org", "trail-short"),       # the most specific trailing wildcard
    ("www", "default"),                     # "www.*" needs a dot after www
    ("mail.test", "regex"),
    ("web.app.test", "regex2"),
    ("7.num.test", "regex2"),
    ("other", "default"),
    ("_", "underscore"),                    # "_" is an ordinary name
    ("", "default"),
])
def test_order(host, want):
    assert IDX.find(host) == want
    assert IDX.find_with_captures(host)[0] == want


def test_empty_host_takes_the_empty_name():
    # a server without server_name has the name "": it gets requests without Host
    idx = ServerNameIndex.build([(["a.test"], "a"), ([""], "noname")], "a")
    assert idx.find("") == "noname"
    assert idx.find("zzz") == "a"


def test_regex_not_tried_for_empty_host():
    idx = ServerNameIndex.build([(["~.*"], "any")], "default")
    assert idx.find("") == "default"
    assert idx.find("x") == "any"


def test_captures():
    srv, m = IDX.find_with_captures("web.app.test")
    assert srv == "regex2" and m is not None
    assert m.group(1) == "web" and m.group("sub") == "web"
    srv, m = IDX.find_with_captures("42.num.test")
    assert m is not None and m.group(1) == "42" and m.groupdict() == {}
    assert IDX.find_with_captures("example.com")[1] is None
    # cached lookups give the same answer
    assert IDX.find_with_captures("web.app.test")[1] is not None


def test_regex_caseless_when_pattern_has_upper_case():
    idx = ServerNameIndex.build([(["~^WWW\\.x$"], "up"), (["~^api\\.x$"], "low")], "d")
    assert idx.find("www.x") == "up"          # hosts arrive lower-cased; nginx goes caseless
    assert idx.find("api.x") == "low"


def test_regex_file_order():
    idx = ServerNameIndex.build([(["~b"], "first"), (["~^ab"], "second")], "d")
    assert idx.find("ab") == "first"


def test_names_lower_cased():
    idx = ServerNameIndex.build([(["Example.COM", "*.Foo.Test"], "s")], "d")
    assert idx.find("example.com") == "s"
    assert idx.find("a.foo.test") == "s"


def test_hostname_variable():
    idx = ServerNameIndex.build([(["$hostname"], "me")], "d", hostname="box1")
    assert idx.find("box1") == "me"


@pytest.mark.parametrize("entries,host,want,warning", [
    ([(["a.test"], "1"), (["a.test"], "2")], "a.test", "1",
     'conflicting server name "a.test" on 0.0.0.0:80, ignored'),
    ([(["a.test"], "1"), ([".a.test"], "2")], "x.a.test", "d",     # whole ".a.test" ignored
     'conflicting server name ".a.test" on 0.0.0.0:80, ignored'),
    ([([".a.test"], "1"), (["a.test"], "2")], "a.test", "1",
     'conflicting server name "a.test" on 0.0.0.0:80, ignored'),
    ([(["*.a.test"], "1"), ([".a.test"], "2")], "a.test", "d",
     'conflicting server name ".a.test" on 0.0.0.0:80, ignored'),
    ([(["w.*"], "1"), (["w.*"], "2")], "w.x", "1",
     'conflicting server name "w.*" on 0.0.0.0:80, ignored'),
    ([([""], "1"), ([""], "2")], "", "1",
     'conflicting server name "" on 0.0.0.0:80, ignored'),
])
def test_conflicts(entries, host, want, warning):
    idx = ServerNameIndex.build(entries, "d", addr_text="0.0.0.0:80")
    assert idx.find(host) == want
    assert idx.warnings == [warning]


def test_star_and_exact_do_not_conflict():
    idx = ServerNameIndex.build([(["a.test"], "1"), (["*.a.test"], "2")], "d")
    assert idx.warnings == []
    assert idx.find("a.test") == "1" and idx.find("b.a.test") == "2"


@pytest.mark.parametrize("name", ["www.*.com", "*.a.*", "a..b", "a*.test", "*a.test.*"])
def test_invalid_wildcards(name):
    with pytest.raises(ValueError) as ei:
        ServerNameIndex.build([([name], "s")], "d", addr_text="0.0.0.0:80")
    assert str(ei.value) == f'invalid server name or wildcard "{name}" on 0.0.0.0:80'


@pytest.mark.parametrize("name,warnings", [
    ("example.com", []),
    ("_", []),
    ("", []),
    ("*.example.com", []),
    (".example.com", []),
    ("www.example.*", []),
    ("xx/yy", ['server name "xx/yy" has suspicious symbols']),
    ("~^(?<n>.+)\\.test$", []),
])
def test_check_server_name_ok(name, warnings):
    assert check_server_name(name) == warnings


@pytest.mark.parametrize("name,msg", [
    ("*", 'server name "*" is invalid'),
    ("*x", 'server name "*x" is invalid'),
    ("*.", 'server name "*." is invalid'),
    (".", 'server name "." is invalid'),
    ("~", 'empty regex in server name "~"'),
    ("~(", 'pcre2_compile() failed: missing closing parenthesis in "(" at ""'),
])
def test_check_server_name_errors(name, msg):
    with pytest.raises(ValueError) as ei:
        check_server_name(name)
    assert str(ei.value) == msg


def test_cache_is_bounded():
    idx = ServerNameIndex.build([(["~^r"], "r")], "d")
    for i in range(3000):
        idx.find(f"h{i}")
    assert len(idx._cache) <= 1024
    assert idx.find("rx") == "r"
