"""The compiler: values, inheritance, variables and references, with nginx's error wording."""

from __future__ import annotations

from pathlib import Path

import pytest

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load


def compile_text(tmp_path: Path, text: str):
    p = tmp_path / "site.conf"
    p.write_text(text)
    return load(str(p), str(tmp_path))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        compile_text(tmp_path, text)
    return str(e.value).replace(str(tmp_path), "DIR")


@pytest.mark.parametrize("text,message", [
    ("server { location / { proxy_pass http://127.0.0.1:1; proxy_set_header X $nope; } }",
     'unknown "nope" variable in DIR/site.conf:1'),
    ("server { listen 127.0.0.1:99999; }",
     'invalid port in "127.0.0.1:99999" of the "listen" directive in DIR/site.conf:1'),
    ("server { location / { proxy_pass ftp://x; } }",
     'invalid URL prefix in "ftp://x" in DIR/site.conf:1'),
    ("server { location ~ \\.php$ { proxy_pass http://127.0.0.1:1/x/; } }",
     '"proxy_pass" cannot have URI part in location given by regular expression, or inside '
     'named location, or inside "if" statement, or inside "limit_except" block in DIR/site.conf:1'),
    # nginx -t refuses these two as well (checked with Debian's nginx 1.22)
    ("server { location @x { proxy_pass http://127.0.0.1:1/x/; } }",
     '"proxy_pass" cannot have URI part in location given by regular expression, or inside '
     'named location, or inside "if" statement, or inside "limit_except" block in DIR/site.conf:1'),
    ("server { location / { if ($arg_a) { proxy_pass http://127.0.0.1:1/; } } }",
     '"proxy_pass" cannot have URI part in location given by regular expression, or inside '
     'named location, or inside "if" statement, or inside "limit_except" block in DIR/site.conf:1'),
    ("server { location / { proxy_buffering maybe; } }",
     'invalid value "maybe" in "proxy_buffering" directive, it must be "on" or "off" in '
     'DIR/site.conf:1'),
    ("upstream a { server 127.0.0.1:1; }\nupstream a { server 127.0.0.1:2; }",
     'duplicate upstream "a" in DIR/site.conf:2'),
    ("server { location / { proxy_http_version 2.0; } }",
     'invalid value "2.0" in "proxy_http_version" directive, it must be "1.0" or "1.1" in '
     'DIR/site.conf:1'),
    ("server { location / { root /a; alias /b/; } }",
     '"alias" directive is duplicate, "root" directive was specified earlier in DIR/site.conf:1'),
    ("server { location / { return abc; } }", 'invalid return code "abc" in DIR/site.conf:1'),
    ("server { access_log x.log nosuch; }", 'unknown log format "nosuch" in DIR/site.conf:1'),
    ("server { location ~ ( { } }", 'pcre2_compile() failed'),
    ("upstream u { server 127.0.0.1:1 weight=0; }", 'invalid parameter "weight=0" in DIR/site.conf:1'),
    ("upstream u { server app.internal:3000 resolve; }",
     'resolving names at run time requires upstream "u" in shared memory in DIR/site.conf:1'),
    ("upstream u { zone u 64k; server app.internal:3000 resolve; }",
     'no resolver defined to resolve names at run time in upstream "u" in DIR/site.conf:1'),
    ("upstream u { zone u 1x; server a:1; }", 'invalid zone size "1x" in DIR/site.conf:1'),
    ("server { listen 8080 proxy_protocol; }",
     'the "proxy_protocol" parameter of "listen" is not supported by truehop in DIR/site.conf:1'),
    ("server { listen 8080 so_keepalive=1:2; }",
     'invalid so_keepalive value: "1:2" in DIR/site.conf:1'),
    ("server { listen 8080 rcvbuf=lots; }", 'invalid rcvbuf "lots" in DIR/site.conf:1'),
    ("server { location / { proxy_pass http://127.0.0.1:1; proxy_redirect a b; "
     "proxy_redirect off; } }", '"proxy_redirect" directive is duplicate in DIR/site.conf:1'),
])
def test_errors(tmp_path, text, message):
    assert message in error_of(tmp_path, text)


def test_proxy_set_header_inheritance_replaces_whole_list(tmp_path):
    cfg = compile_text(tmp_path, """
server {
    listen 127.0.0.1:8080;
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    location / { proxy_pass http://127.0.0.1:1; }
    location /api/ { proxy_pass http://127.0.0.1:1; proxy_set_header X-Api 1; }
}""")
    srv = cfg.http.servers[0]
    root, api = srv.locations
    assert [h.name for h in root.settings.proxy_set_header] == ["Host", "X-Real-IP"]
    assert [h.name for h in api.settings.proxy_set_header] == ["X-Api"]


def test_scalar_inheritance_and_nginx_130_defaults(tmp_path):
    cfg = compile_text(tmp_path, """
proxy_read_timeout 90s;
upstream u { server 127.0.0.1:1; }
server {
    listen 127.0.0.1:8080;
    location / { proxy_pass http://u; }
    location /slow/ { proxy_pass http://127.0.0.1:2; proxy_read_timeout 3m; }
}""")
    root, slow = cfg.http.servers[0].locations
    assert root.settings.proxy_read_timeout == 90
    assert slow.settings.proxy_read_timeout == 180
    assert root.settings.proxy_http_version == "1.1"
    assert root.settings.proxy_connect_timeout == 60
    up = cfg.http.upstreams["u"]
    assert up.keepalive == 32 and not up.implicit          # 1.30: keepalive on for upstream{}
    implicit = slow.proxy.upstream
    assert implicit is not None and implicit.implicit and implicit.keepalive == 0


def test_map_and_set_variables_resolve_regardless_of_order(tmp_path):
    cfg = compile_text(tmp_path, """
server {
    listen 127.0.0.1:8080;
    location / { return 200 "$mapped $later"; set $later x; }
}
map $http_upgrade $mapped { default upgrade; '' ''; ~^(?<proto>h2c)$ bad-$proto; }
""")
    assert "mapped" in cfg.http.scope.lazy


def test_listen_forms(tmp_path):
    cfg = compile_text(tmp_path, """
server { listen 8081; listen [::1]:8082 ssl http2 default_server; listen 127.0.0.1:8083 reuseport backlog=64; }
""")
    ls = cfg.http.servers[0].listens
    assert (ls[0].addr, ls[0].port) == ("*", 8081)
    assert (ls[1].addr, ls[1].port, ls[1].ssl, ls[1].http2, ls[1].default_server) == (
        "::1", 8082, True, True, True)
    assert (ls[2].reuseport, ls[2].backlog) == (True, 64)


def test_listen_socket_options(tmp_path):
    cfg = compile_text(tmp_path, "server { listen 127.0.0.1:8181-8182 rcvbuf=8k sndbuf=1m "
                                 "so_keepalive=2m::5 deferred fastopen=16; }")
    for ls in cfg.http.servers[0].listens:
        assert (ls.rcvbuf, ls.sndbuf, ls.so_keepalive, ls.deferred, ls.fastopen) == (
            8192, 1 << 20, (True, 120, 0, 5), True, 16)


def test_keepalive_timeout_header_and_keepalive_time(tmp_path):
    cfg = compile_text(tmp_path, "keepalive_timeout 30s 20s; keepalive_time 10m; "
                                 "server { location / { keepalive_timeout 5s; } }")
    srv = cfg.http.servers[0]
    assert (srv.settings.keepalive_timeout, srv.settings.keepalive_header,
            srv.settings.keepalive_time) == (30.0, 20.0, 600.0)
    loc = srv.locations[0].settings
    assert (loc.keepalive_timeout, loc.keepalive_header) == (5.0, 0.0)


def test_resolver(tmp_path):
    cfg = compile_text(tmp_path, "resolver 127.0.0.11 [::1]:5353 valid=10s ipv6=off; "
                                 "server { location / { resolver_timeout 5s; } }")
    s = cfg.http.servers[0].locations[0].settings
    assert s.resolver is not None
    assert s.resolver.servers == (("127.0.0.11", 53), ("::1", 5353))
    assert (s.resolver.valid, s.resolver.ipv4, s.resolver.ipv6) == (10.0, True, False)
    assert s.resolver_timeout == 5.0
    assert "cannot both be" in error_of(tmp_path, "resolver 127.0.0.1 ipv4=off ipv6=off;")


def test_upstream_max_conns(tmp_path):
    cfg = compile_text(tmp_path, "upstream u { server 127.0.0.1:1 max_conns=3; "
                                 "server 127.0.0.1:2; }")
    assert [p.max_conns for p in cfg.http.upstreams["u"].peers] == [3, 0]


def test_listen_port_range(tmp_path):
    cfg = compile_text(tmp_path, "server { listen 127.0.0.1:8182-8184 default_server; }")
    ls = cfg.http.servers[0].listens
    assert [(x.addr, x.port, x.default_server) for x in ls] == [
        ("127.0.0.1", p, True) for p in (8182, 8183, 8184)]


def test_shared_reference_configs_compile(tmp_path):
    shared = Path(__file__).resolve().parents[3] / "shared" / "configs"
    if not shared.is_dir():
        pytest.skip("../shared not present")
    for name in ("full-nginx.conf", "behind-load-balancer.conf", "reference.conf"):
        cfg = load(str(shared / name), str(tmp_path))
        assert cfg.http.servers


@pytest.mark.parametrize("names,expected", [
    ("", ""), ('""', ""), ("_", "_"), ("Example.COM www.x", "example.com"),
    ("*.wc.example.com", "*.wc.example.com"), (".dot.example.com", "dot.example.com"),
    (r"~^EXAMPLE\.COM$", r"~^EXAMPLE\.COM$"), ("wc2.example.*", "wc2.example.*"),
])
def test_server_name_variable_is_the_first_name(tmp_path, names, expected):
    sn = f"server_name {names};" if names else ""
    cfg = compile_text(tmp_path, f"server {{ listen 127.0.0.1:8080; {sn} }}")
    assert cfg.http.servers[0].server_name == expected


def test_server_name_named_captures_are_variables(tmp_path):
    cfg = compile_text(tmp_path, r"""
server { listen 127.0.0.1:8080; server_name "~^(?P<name>www\p{N}+)\.example\.com$";
         location / { add_header X-Match $name; return 204; } }""")
    assert cfg.http.scope.known("name")
