"""The rewrite module, try_files, error pages and server selection, end to end."""

from __future__ import annotations

import httpx
import pytest
from harness import free_port, raw_request

CONF = """
include mime.types;
upstream api { server 127.0.0.1:@@UP@@; }
server {
    listen 127.0.0.1:@@PORT@@ default_server;
    server_name _;
    return 444;
}
server {
    listen 127.0.0.1:@@PORT@@;
    server_name www.example.test example.test *.wild.test;
    root html;
    index index.html;
    error_page 404 /404.html;

    location / {
        try_files $uri $uri/ @app;
    }
    location @app {
        proxy_pass http://api;
        proxy_set_header Host $host;
        proxy_set_header X-Named yes;
    }
    location /old/ {
        rewrite ^/old/(.*)$ /new/$1 permanent;
    }
    location /internal-rw/ {
        rewrite ^/internal-rw/(.*)$ /api/$1 last;
    }
    location /api/ {
        proxy_pass http://api/v1/;
    }
    location /cond/ {
        set $who "anon";
        if ($http_x_user) {
            set $who $http_x_user;
        }
        if ($arg_deny = "1") {
            return 403;
        }
        return 200 "who=$who uri=$uri args=$args\\n";
    }
    location ~ ^/users/(?<id>\\d+)$ {
        return 200 "user $id via $1\\n";
    }
    location = /404.html {
        internal;
    }
}
"""


@pytest.fixture
def site(truehop, upstream, tmp_path):
    html = tmp_path / "html"
    (html / "docs").mkdir(parents=True)
    (html / "index.html").write_text("<h1>home</h1>\n")
    (html / "docs" / "index.html").write_text("<h1>docs</h1>\n")
    (html / "404.html").write_text("custom not found\n")
    (html / "style.css").write_text("a{}\n")
    port = free_port()
    tp = truehop(CONF, up=upstream.port, port=port)

    def get(path: str, host: str = "www.example.test", **kw):
        return httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host, **kw.pop(
            "headers", {})}, **kw)
    return tp, upstream, port, get


def test_default_server_444_closes(site):
    tp, up, port, get = site
    raw, closed = raw_request(port, b"GET / HTTP/1.1\r\nHost: unknown.test\r\n\r\n")
    assert raw == b"" and closed


def test_wildcard_server_name(site):
    tp, up, port, get = site
    assert get("/", host="a.wild.test").text == "<h1>home</h1>\n"


def test_try_files_file_dir_and_named_location(site):
    tp, up, port, get = site
    r = get("/style.css")
    assert r.status_code == 200 and r.headers["content-type"] == "text/css"
    assert get("/").text == "<h1>home</h1>\n"
    assert get("/docs/").text == "<h1>docs</h1>\n"
    r = get("/app/thing?q=1")
    assert r.status_code == 200
    rec = up.records[-1]
    assert rec.target == "/app/thing?q=1"
    assert rec.header("x-named") == "yes"
    assert up.records and all(r.path.startswith("/app") for r in up.records)


def test_directory_without_slash_redirects(site):
    tp, up, port, get = site
    r = get("/docs", follow_redirects=False)
    # try_files: $uri/ exists as a directory -> index via the slash redirect of the static module
    assert r.status_code in (200, 301)


def test_rewrite_permanent_and_last(site):
    tp, up, port, get = site
    r = get("/old/page?x=1", follow_redirects=False)
    assert r.status_code == 301
    assert r.headers["location"] == f"http://www.example.test:{port}/new/page?x=1"
    r = get("/internal-rw/items?y=2")
    assert r.status_code == 200
    assert up.records[-1].target == "/v1/items?y=2"


def test_if_and_set(site):
    tp, up, port, get = site
    assert get("/cond/a?b=c").text == "who=anon uri=/cond/a args=b=c\n"
    assert get("/cond/a", headers={"X-User": "ann"}).text.startswith("who=ann ")
    assert get("/cond/a?deny=1").status_code == 403


def test_regex_named_captures(site):
    tp, up, port, get = site
    assert get("/users/42").text == "user 42 via 42\n"


def test_internal_location_and_error_page(site):
    tp, up, port, get = site
    r = get("/404.html")
    assert r.status_code == 404
    r = get("/docs/missing.txt")
    # try_files falls back to @app for missing files; error_page covers the static 404s
    assert r.status_code == 200


def test_error_page_for_static_404(truehop, tmp_path):
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "oops.html").write_text("oops page\n")
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    root html;
    error_page 404 /oops.html;
    location / { }
}""", port=port)
    r = httpx.get(f"http://127.0.0.1:{port}/nope")
    assert r.status_code == 404
    assert r.text == "oops page\n"
    r = httpx.get(f"http://127.0.0.1:{port}/nope2", headers={"Host": "x"})
    assert r.status_code == 404


def test_builtin_error_page_format(truehop, tmp_path):
    (tmp_path / "html").mkdir()
    port = free_port()
    truehop("server { listen 127.0.0.1:@@PORT@@; location / { } }", port=port)
    r = httpx.get(f"http://127.0.0.1:{port}/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "text/html"
    assert "<title>404 Not Found</title>" in r.text
    assert "<center><h1>404 Not Found</h1></center>" in r.text


def test_server_rewrite_runs_again_after_internal_redirect(truehop):
    """ngx_http_internal_redirect restarts at the server rewrite phase: the URI an
    error_page (or X-Accel-Redirect, try_files, index) redirects to goes through the
    server's rewrites; a named location and `rewrite ... last` do not (nginx-tests
    proxy_xar.t)."""
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    rewrite ^/errors/(.*)$ /pages/$1;
    location /pages/ { return 200 "page $uri\\n"; }
    location /named/ { error_page 404 @gone; return 404; }
    location @gone { return 200 "named $uri\\n"; }
    location / { error_page 404 /errors/404.txt; return 404; }
}""", port=port)
    r = httpx.get(f"http://127.0.0.1:{port}/missing")
    assert (r.status_code, r.text) == (404, "page /pages/404.txt\n")
    r = httpx.get(f"http://127.0.0.1:{port}/named/x")
    assert (r.status_code, r.text) == (404, "named /named/x\n")


def test_add_header_always_and_inheritance(truehop, upstream):
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    add_header X-Frame-Options DENY;
    add_header X-Always yes always;
    location / { proxy_pass http://127.0.0.1:@@UP@@; }
    location /own/ { proxy_pass http://127.0.0.1:@@UP@@; add_header X-Own 1; }
}""", port=port, up=upstream.port)
    r = httpx.get(f"http://127.0.0.1:{port}/x")
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-always"] == "yes"
    r = httpx.get(f"http://127.0.0.1:{port}/__status?code=500")
    assert "x-frame-options" not in r.headers and r.headers["x-always"] == "yes"
    r = httpx.get(f"http://127.0.0.1:{port}/own/x")
    assert r.headers["x-own"] == "1" and "x-frame-options" not in r.headers
