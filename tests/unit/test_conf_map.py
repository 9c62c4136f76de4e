"""`map`: nginx's matching order (ngx_http_map_find) and its config-time errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.conf.model import LevelSettings, ServerConf, Settings, SslConf
from truehop.http.events import RequestHead
from truehop.route.state import ConnectionInfo, RequestState

# a server with nothing set: these tests read the request, never its server's settings
SERVER = ServerConf([], ["localhost"], [], {}, Settings(), LevelSettings(), (), SslConf())


def _cfg(tmp_path: Path, maps: str):
    p = tmp_path / "site.conf"
    p.write_text(maps + "\nserver { listen 127.0.0.1:8080; server_name localhost; }\n")
    return load(str(p), str(tmp_path))


def _req(query: str, path: str = "/") -> RequestState:
    head = RequestHead("GET", f"{path}?{query}", path, query, "1.1", [], "localhost", None,
                       False, True)
    conn = ConnectionInfo("127.0.0.1", 1, "127.0.0.1", 8080, "http", 1)
    r = RequestState(conn, head, SERVER)
    r.server_name = "localhost"
    return r


HOSTNAMES = r"""
map $args $y {
    hostnames;
    default                     0;
    example.com                 foo;
    example.*                   right-wildcard;
    *.example.com               left-wildcard;
    .dot.example.com            special-wildcard;
    ~^REGEX.EXAMPLE\.ORG$       regex-sensitive;
    ~*^www.regex.example\.org$  regex-insensitive;
    \include                    include;
    server                      $server_name;
}
map $args $x { default 0; foo bar; Foo2 bar2; }
"""


@pytest.mark.parametrize("args,var,expected", [
    ("1", "x", "0"),
    ("foo", "x", "bar"),
    ("FOO", "x", "bar"),                          # strings are matched ignoring the case
    ("foo2", "x", "bar2"),
    ("example.com", "y", "foo"),
    ("EXAMPLE.COM", "y", "foo"),
    ("example.com.", "y", "foo"),                 # one trailing dot dropped (hostnames)
    ("example.org", "y", "right-wildcard"),
    ("foo.example.com", "y", "left-wildcard"),
    ("foo.example.com.", "y", "left-wildcard"),
    ("dot.example.com", "y", "special-wildcard"),       # the longest mask wins
    ("www.dot.example.com", "y", "special-wildcard"),
    ("REGEX.EXAMPLE.ORG", "y", "regex-sensitive"),       # regexes see the value as it is
    ("regex.example.org", "y", "0"),
    ("www.regex.example.org", "y", "regex-insensitive"),
    ("WWW.REGEX.EXAMPLE.ORG", "y", "regex-insensitive"),
    ("include", "y", "include"),
    ("server", "y", "localhost"),
])
def test_map_matching_order(tmp_path: Path, args: str, var: str, expected: str) -> None:
    cfg = _cfg(tmp_path, HOSTNAMES)
    get = cfg.http.scope.getter(var)
    assert get(_req(args)) == expected


def test_map_volatile_is_not_cached(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "map $uri $c { /a 1; /b 2; }\nmap $uri $v { volatile; /a 1; /b 2; }")
    c, v = cfg.http.scope.getter("c"), cfg.http.scope.getter("v")
    r = _req("", "/a")
    assert (c(r), v(r)) == ("1", "1")
    r.uri = "/b"
    assert (c(r), v(r)) == ("1", "2")


@pytest.mark.parametrize("body,message", [
    ("a 1; A 2;", 'conflicting parameter "a"'),
    ("hostnames; *.a.com 1; .a.com 2;", 'conflicting parameter ".a.com"'),
    ("hostnames; a.com 1; .a.com 2;", 'conflicting parameter ".a.com"'),
    ("hostnames; .a.com 1; a.com 2;", 'conflicting parameter "a.com"'),
    ("hostnames; a.*.com 1;", 'invalid hostname or wildcard "a.*.com"'),
])
def test_map_errors(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        _cfg(tmp_path, f"map $args $m {{ {body} }}")
    assert message in str(e.value)


def test_map_without_hostnames_masks_are_strings(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "map $args $m { default 0; .a.com 1; a.com 2; *.b.com 3; }")
    get = cfg.http.scope.getter("m")
    assert [get(_req(a)) for a in (".a.com", "a.com", "x.b.com", "*.b.com")] == ["1", "2", "0", "3"]
