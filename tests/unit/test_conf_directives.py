"""The directive table: names, contexts, blocks, arity, nginx's wording."""

from __future__ import annotations

from pathlib import Path

import pytest

from truehop.conf import directives as dt
from truehop.conf.ast import ConfigError
from truehop.conf.parser import parse_file, parse_string

SHARED = Path("/work/shared/configs")

# The directives the issue asks truehop to accept.
ISSUE_LIST = """
worker_processes pid error_log daemon worker_shutdown_timeout user include events http
worker_rlimit_nofile pcre_jit worker_connections use multi_accept upstream server keepalive
keepalive_timeout keepalive_requests keepalive_time least_conn ip_hash hash map listen
server_name location root alias index try_files expires add_header access_log log_format return
error_page proxy_pass proxy_set_header proxy_http_version proxy_buffering proxy_buffer_size
proxy_buffers proxy_busy_buffers_size proxy_request_buffering proxy_connect_timeout
proxy_read_timeout proxy_send_timeout proxy_next_upstream proxy_next_upstream_tries
proxy_next_upstream_timeout proxy_redirect proxy_pass_request_headers proxy_pass_request_body
proxy_hide_header proxy_pass_header proxy_intercept_errors proxy_ssl_server_name proxy_ssl_verify
proxy_ssl_trusted_certificate proxy_ssl_name proxy_ssl_protocols proxy_ignore_headers
proxy_max_temp_file_size proxy_cookie_domain proxy_cookie_path client_max_body_size
client_body_buffer_size client_header_buffer_size client_header_timeout client_body_timeout
send_timeout large_client_header_buffers server_tokens default_type types sendfile tcp_nopush
tcp_nodelay ssl_certificate ssl_certificate_key ssl_protocols ssl_ciphers
ssl_prefer_server_ciphers ssl_session_cache ssl_session_timeout ssl_session_tickets ssl_dhparam
ssl_stapling ssl_stapling_verify ssl_trusted_certificate http2 http2_max_concurrent_streams
set_real_ip_from real_ip_header real_ip_recursive absolute_redirect server_name_in_redirect
port_in_redirect merge_slashes underscores_in_headers ignore_invalid_headers resolver
resolver_timeout set if rewrite break internal log_not_found chunked_transfer_encoding etag
if_modified_since max_ranges open_file_cache autoindex server_names_hash_bucket_size
server_names_hash_max_size types_hash_max_size variables_hash_max_size map_hash_bucket_size
disable_symlinks limit_rate
""".split()


def check(text: str, top: str = "http") -> None:
    dt.check_tree(parse_string(text, "t.conf"), top)


def check_err(text: str, top: str = "http") -> str:
    with pytest.raises(ConfigError) as ei:
        check(text, top)
    return str(ei.value)


# --- the table itself --------------------------------------------------------------------

def test_issue_list_is_accepted() -> None:
    missing = [n for n in ISSUE_LIST if not any(s.supported for s in dt.lookup(n))]
    assert missing == []


def test_specs_are_well_formed() -> None:
    for s in dt.SPECS:
        assert s.arity in dt.ARITIES, s
        assert s.contexts and s.contexts <= set(dt.CONTEXTS), s
        assert s.module.startswith("ngx_"), s
        assert s.doc and "\n" not in s.doc, s
        assert s.block == (s.name == "if" or s.child_context is not None), s


def test_same_name_specs_do_not_overlap() -> None:
    for name, specs in dt.BY_NAME.items():
        seen: set[str] = set()
        for s in specs:
            assert not (s.contexts & seen), name
            seen |= s.contexts


def test_unsupported_table_is_large_and_disjoint() -> None:
    assert len(dt.UNSUPPORTED) >= 120
    assert not set(dt.UNSUPPORTED) & set(dt.BY_NAME)
    for name in ("gzip_no_buffer", "postpone_gzipping", "fastcgi_pass", "uwsgi_pass",
                 "scgi_pass", "grpc_pass", "uwsgi_cache", "proxy_cache_purge", "ssi",
                 "sub_filter", "geo", "split_clients", "mirror", "stub_status",
                 "stream", "more_set_headers", "content_by_lua_block"):
        assert name in dt.UNSUPPORTED, name


@pytest.mark.parametrize("name, module", [
    ("postpone_gzipping", "ngx_http_gzip_module"),
    ("sub_filter", "ngx_http_sub_module"),
    ("ssi", "ngx_http_ssi_module"),
    ("memcached_pass", "ngx_http_memcached_module"),
    ("proxy_store", "ngx_http_proxy_module"),
    ("proxy_cache_purge", "ngx_http_proxy_module (NGINX Plus)"),
    ("grpc_pass", "ngx_http_grpc_module"),
    ("more_set_headers", "headers-more-nginx-module"),
    ("stream", "ngx_stream_core_module"),
])
def test_unsupported_modules(name: str, module: str) -> None:
    assert dt.UNSUPPORTED[name] == module


@pytest.mark.parametrize("arity, ok, bad", [
    ("NOARGS", [0], [1, 2]),
    ("TAKE1", [1], [0, 2]),
    ("TAKE2", [2], [1, 3]),
    ("TAKE12", [1, 2], [0, 3]),
    ("TAKE13", [1, 3], [0, 2, 4]),
    ("TAKE23", [2, 3], [1, 4]),
    ("TAKE123", [1, 2, 3], [0, 4]),
    ("TAKE1234", [1, 2, 3, 4], [0, 5]),
    ("FLAG", [1], [0, 2]),
    ("1MORE", [1, 2, 9], [0]),
    ("2MORE", [2, 3, 20], [0, 1]),
])
def test_arities(arity: str, ok: list[int], bad: list[int]) -> None:
    s = dt.Spec("x", frozenset({"http"}), arity, "ngx_x", "x")
    assert all(s.takes(n) for n in ok)
    assert not any(s.takes(n) for n in bad)


# --- contexts ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, top", [
    ("worker_processes auto; pid x.pid; error_log stderr warn; daemon off; user nobody nogroup;"
     "worker_rlimit_nofile 1024; pcre_jit on; worker_shutdown_timeout 10s;"
     "events { worker_connections 10; use epoll; multi_accept on; } http { }", "main"),
    ("upstream u { server a:1 weight=2 max_fails=1 fail_timeout=5s; server b backup; keepalive 16;"
     " keepalive 8 local; keepalive_timeout 60s; keepalive_requests 100; keepalive_time 1h;"
     " least_conn; ip_hash; hash $uri consistent; }", "http"),
    ("map $a $b { default 1; hostnames; ~^a$ 2; }", "http"),
    ("types { text/html html; }  server { types { } location / { types { } } }", "http"),
    ("server { listen 80; server_name a b; location / { location /x { } } location = /y { } }",
     "http"),
    ("server { if ($a) { return 404; set $x 1; rewrite ^ /x; break; } }", "http"),
    ("server { location / { if ($a) { proxy_pass http://u; root /x; add_header A b always;"
     " expires 1d; access_log off; error_page 404 /x; sendfile on; limit_rate 1k;"
     " return 200; set $a b; rewrite ^ / last; break; } } }", "http"),
    ("server { location / { alias /x/; internal; proxy_pass http://u; try_files $uri =404; } }",
     "http"),
    ("log_format main '$a' '$b'; access_log /x main; server_names_hash_bucket_size 64;"
     " variables_hash_max_size 1024; map_hash_bucket_size 64; server { error_log x debug; }",
     "http"),
    ("server { ssl_certificate a; ssl_certificate_key b; ssl_protocols TLSv1.2 TLSv1.3;"
     " http2 on; http2_max_concurrent_streams 128; large_client_header_buffers 4 8k;"
     " client_header_buffer_size 1k; merge_slashes off; }", "http"),
    ("add_header A b; add_header C d always; keepalive_timeout 65 60; proxy_buffers 8 4k;"
     " proxy_redirect off; proxy_redirect a b; proxy_next_upstream error timeout http_502;"
     " open_file_cache max=10 inactive=1m; disable_symlinks if_not_owner from=$document_root;",
     "http"),
])
def test_valid_trees(text: str, top: str) -> None:
    check(text, top)


@pytest.mark.parametrize("text, top, message", [
    # the pitfall from the shared corpus
    ("server {\n map $a $b { }\n}", "http", '"map" directive is not allowed here in t.conf:2'),
    ("map $a $b { }", "main", '"map" directive is not allowed here in t.conf:1'),
    ("server { location / { map $a $b { } } }", "http", '"map" directive is not allowed here'),
    ("location / { }", "http", '"location" directive is not allowed here'),
    ("server { listen 80; } listen 80;", "http", '"listen" directive is not allowed here'),
    ("server { alias /x; }", "http", '"alias" directive is not allowed here'),
    ("proxy_pass http://u;", "http", '"proxy_pass" directive is not allowed here'),
    ("server { proxy_pass http://u; }", "http", '"proxy_pass" directive is not allowed here'),
    ("server { if ($a) { proxy_pass http://u; } }", "http",
     '"proxy_pass" directive is not allowed here'),
    ("server { location / { if ($a) { proxy_set_header A b; } } }", "http",
     '"proxy_set_header" directive is not allowed here'),
    ("server { location / { if ($a) { if ($b) { } } } }", "http",
     '"if" directive is not allowed here'),
    ("server { if ($a) { add_header A b; } }", "http", '"add_header" directive is not allowed here'),
    ("worker_processes 2;", "http", '"worker_processes" directive is not allowed here'),
    ("http { }", "http", '"http" directive is not allowed here'),
    ("events { }", "http", '"events" directive is not allowed here'),
    ("server { }", "main", '"server" directive is not allowed here'),
    ("events { server { } }", "main", '"server" directive is not allowed here'),
    ("upstream u { listen 80; }", "http", '"listen" directive is not allowed here'),
    ("upstream u { upstream v { } }", "http", '"upstream" directive is not allowed here'),
    ("server { server_names_hash_bucket_size 64; }", "http",
     '"server_names_hash_bucket_size" directive is not allowed here'),
    ("server { log_format x y; }", "http", '"log_format" directive is not allowed here'),
    ("keepalive 16;", "http", '"keepalive" directive is not allowed here'),
    # unknown and unsupported
    ("server { location / { proxy_pas http://u; } }", "http",
     'unknown directive "proxy_pas" in t.conf:1'),
    ("ssl on;", "http", 'unknown directive "ssl"'),
    ("postpone_gzipping 1k;", "http", '"postpone_gzipping" directive is not supported by truehop (ngx_http_gzip_module)'),
    ("server { location / { if ($x) { allow 10.0.0.0/8; } } }", "http",
     '"allow" directive is not allowed here'),
    ("stream { }", "main", '"stream" directive is not supported by truehop (ngx_stream_core_module)'),
    ("upstream u { server a; sticky cookie srv_id; }", "http",
     '"sticky" directive is not supported by truehop (ngx_http_upstream_sticky_module)'),
    ("server { location / { limit_except GET { proxy_pass http://u; } } }", "http",
     '"proxy_pass" directive is not supported by truehop in "limit_except" (ngx_http_proxy_module)'),
    ("server { location / { limit_except GET { root /x; } } }", "http",
     '"root" directive is not allowed here'),
    ("server { limit_except GET { deny all; } }", "http",
     '"limit_except" directive is not allowed here'),
    ("server { location / { limit_except GET { } limit_except POST { } } }", "http",
     '"limit_except" directive is duplicate'),
    ("server { auth_basic a; auth_basic b; }", "http", '"auth_basic" directive is duplicate'),
    # blocks
    ("server;", "http", 'directive "server" has no opening "{" in t.conf:1'),
    ("server { location /; }", "http", 'directive "location" has no opening "{"'),
    ("server { listen 80 { } }", "http", 'directive "listen" is not terminated by ";"'),
    ("upstream u { server a { } }", "http", 'directive "server" is not terminated by ";"'),
    # arity
    ("server { listen; }", "http", 'invalid number of arguments in "listen" directive'),
    ("server { location { } }", "http", 'invalid number of arguments in "location" directive'),
    ("server { location = /a b { } }", "http",
     'invalid number of arguments in "location" directive'),
    ("map $a { }", "http", 'invalid number of arguments in "map" directive'),
    ("server x { }", "http", 'invalid number of arguments in "server" directive'),
    ("add_header A;", "http", 'invalid number of arguments in "add_header" directive'),
    ("add_header A b always x;", "http", 'invalid number of arguments in "add_header" directive'),
    ("proxy_set_header A;", "http", 'invalid number of arguments in "proxy_set_header" directive'),
    ("sendfile;", "http", 'invalid number of arguments in "sendfile" directive'),
    ("sendfile on off;", "http", 'invalid number of arguments in "sendfile" directive'),
    ("upstream u { ip_hash x; }", "http", 'invalid number of arguments in "ip_hash" directive'),
    ("try_files $uri;", "http", '"try_files" directive is not allowed here'),
    ("server { try_files $uri; }", "http", 'invalid number of arguments in "try_files" directive'),
    ("server { if { } }", "http", 'invalid number of arguments in "if" directive'),
    ("events { } http { } events { }", "main", '"events" directive is duplicate'),
    ("http { }\nhttp { }", "main", '"http" directive is duplicate in t.conf:2'),
])
def test_errors(text: str, top: str, message: str) -> None:
    assert message in check_err(text, top)


def test_errors_point_at_the_directive_in_its_file(tmp_path: Path) -> None:
    (tmp_path / "site.conf").write_text("server {\n    listen 80;\n\n    postpone_gzipping 1k;\n}\n")
    (tmp_path / "nginx.conf").write_text("events {}\nhttp {\n    include site.conf;\n}\n")
    tree = parse_file(str(tmp_path / "nginx.conf"))
    with pytest.raises(ConfigError) as ei:
        dt.check_tree(tree, dt.detect_top(tree))
    assert str(ei.value) == (f'"postpone_gzipping" directive is not supported by truehop (ngx_http_gzip_module)'
                             f' in {tmp_path / "site.conf"}:4')


def test_map_and_types_bodies_are_not_checked() -> None:
    check("map $a $b { proxy_pass 1; gzip 2; '' 3; }")
    check("types { gzip/x gz; }")


def test_command_line_errors_have_no_line() -> None:
    tree = parse_string("postpone_gzipping 1k;", "command line")
    with pytest.raises(ConfigError) as ei:
        dt.check_tree(tree, "main")
    assert str(ei.value) == (
        '"postpone_gzipping" directive is not supported by truehop (ngx_http_gzip_module) in command line')


def test_check_tree_rejects_bad_top() -> None:
    with pytest.raises(ValueError):
        dt.check_tree((), "server")


@pytest.mark.parametrize("text, top", [
    ("", "http"),
    ("server { }", "http"),
    ("upstream u { server a; } map $a $b { } server { }", "http"),
    ("error_log x; server { }", "http"),
    ("http { }", "main"),
    ("events { }", "main"),
    ("worker_processes 1;", "main"),
    ("pid x.pid; server { }", "main"),
    ("daemon off;", "main"),
    ("load_module x.so;", "main"),
    ("stream { }", "main"),
])
def test_detect_top(text: str, top: str) -> None:
    assert dt.detect_top(parse_string(text, "t")) == top


@pytest.mark.parametrize("name, parent, child", [
    ("if", "server", "if_server"),
    ("if", "location", "if_location"),
    ("location", "server", "location"),
    ("location", "location", "location"),
    ("server", "http", "server"),
    ("upstream", "http", "upstream"),
    ("map", "http", "map"),
    ("types", "location", "types"),
    ("events", "main", "events"),
    ("http", "main", "http"),
])
def test_child_context(name: str, parent: str, child: str) -> None:
    assert dt.child_context_of(name, parent) == child


# --- the shared configs ------------------------------------------------------------------

@pytest.mark.parametrize("name, top", [
    ("reference.conf", "http"),
    ("full-nginx.conf", "main"),
    ("behind-load-balancer.conf", "http"),
])
def test_shared_configs_pass(name: str, top: str) -> None:
    path = SHARED / name
    if not path.exists():
        pytest.skip("shared configs not present")
    tree = parse_file(str(path))
    assert dt.detect_top(tree) == top
    dt.check_tree(tree, top)


def test_shared_pitfalls_except_map_pass() -> None:
    pitfalls = SHARED / "pitfalls"
    if not pitfalls.exists():
        pytest.skip("shared configs not present")
    for path in sorted(pitfalls.glob("*.conf")):
        if path.name == "map-in-server.conf":
            continue
        tree = parse_file(str(path))
        dt.check_tree(tree, dt.detect_top(tree))


def test_map_in_server_pitfall() -> None:
    path = SHARED / "pitfalls" / "map-in-server.conf"
    if not path.exists():
        pytest.skip("shared configs not present")
    tree = parse_file(str(path))
    with pytest.raises(ConfigError) as ei:
        dt.check_tree(tree, dt.detect_top(tree))
    assert str(ei.value) == f'"map" directive is not allowed here in {path}:6'
