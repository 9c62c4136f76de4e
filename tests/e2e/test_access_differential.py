"""Differential: the access phase of nginx and truehop on the same configuration and the
same requests (status, WWW-Authenticate, and what the auth_request server receives).
Skipped where nginx is not installed. Debian's nginx 1.22 and nginx 1.30 agree on all of it.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from auth_app import AuthApp, worker_readable_dir
from harness import free_port, nginx_binary
from test_access_auth import make_users, write_htpasswd

pytestmark = pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")


@pytest.fixture
def files():
    """Where the password files go (auth_app.worker_readable_dir)."""
    with worker_readable_dir() as d:
        yield d


CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    listen [::1]:@@PORT@@;
    location /open { proxy_pass http://127.0.0.1:@@UP@@; }
    location /deny { deny all; proxy_pass http://127.0.0.1:@@UP@@; }
    location /v4 { allow 127.0.0.1; deny all; proxy_pass http://127.0.0.1:@@UP@@; }
    location /v6 { allow ::1; deny all; proxy_pass http://127.0.0.1:@@UP@@; }
    location /mixed { deny 127.0.0.1; allow 127.0.0.0/8; allow ::/0; deny all; proxy_pass http://127.0.0.1:@@UP@@; }
    location /return { deny all; return 200 "rewrite first"; }
    location /rip {
        set_real_ip_from 127.0.0.1;
        set_real_ip_from ::1;
        real_ip_header X-Real-IP;
        allow 192.0.2.1; allow 2001:db8::1; deny all;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /basic {
        auth_basic "Basic area";
        auth_basic_user_file @@FILE@@;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /all {
        allow 127.0.0.1; deny all;
        auth_basic "all"; auth_basic_user_file @@FILE@@;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /any {
        satisfy any;
        allow 127.0.0.1; deny all;
        auth_basic "any"; auth_basic_user_file @@FILE@@;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /any-req {
        satisfy any;
        allow 10.0.0.0/8; deny all;
        auth_basic "any-req"; auth_basic_user_file @@FILE@@;
        auth_request /auth;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /le {
        limit_except GET { allow ::1; deny all; }
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /le-basic {
        limit_except GET POST { auth_basic "writers"; auth_basic_user_file @@FILE@@; }
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /req {
        auth_request /auth;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /sso {
        auth_request /auth;
        error_page 401 = /oauth2/sign_in;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location = /auth {
        internal;
        proxy_pass http://127.0.0.1:@@AUTH@@/oauth2/auth;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header X-Original-Method $request_method;
    }
    location /oauth2/ { proxy_pass http://127.0.0.1:@@AUTH@@; }
}
"""


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def requests_matrix(users: dict[str, tuple[str, str]]) -> list[tuple[str, str, str, dict[str, str]]]:
    """(client host, method, path, headers)."""
    out: list[tuple[str, str, str, dict[str, str]]] = []
    for host in ("127.0.0.1", "[::1]"):
        for path in ("/open", "/deny", "/v4", "/v6", "/mixed", "/return", "/all", "/any",
                     "/le", "/basic"):
            out.append((host, "GET", path, {}))
        out.append((host, "POST", "/le", {}))
        out.append((host, "HEAD", "/le", {}))
        for ip in ("192.0.2.1", "192.0.2.2", "2001:db8::1", "::ffff:192.0.2.1"):
            out.append((host, "GET", "/rip", {"X-Real-IP": ip}))
        for method in ("GET", "POST", "PUT", "DELETE"):
            out.append((host, method, "/le-basic", {}))
            out.append((host, method, "/le-basic", {"Authorization": _basic("plain", "pl41n")}))
        for user, (password, _) in users.items():
            out.append((host, "GET", "/all", {"Authorization": _basic(user, password)}))
            out.append((host, "GET", "/any", {"Authorization": _basic(user, password + "!")}))
        out.append((host, "GET", "/basic", {"Authorization": _basic("nobody", "x")}))
        out.append((host, "GET", "/basic", {"Authorization": "Basic !!"}))
        for tok in ("good", "deny", "boom", "teapot", "none"):
            out.append((host, "GET", "/req", {"Authorization": f"Bearer {tok}"}))
            out.append((host, "GET", "/any-req", {"Authorization": f"Bearer {tok}"}))
        out.append((host, "GET", "/sso", {}))
        out.append((host, "POST", "/sso?a=1", {"Cookie": "session=good"}))
    return out


def answers(port: int, auth: AuthApp,
            matrix: list[tuple[str, str, str, dict[str, str]]]) -> list[tuple[object, ...]]:
    got: list[tuple[object, ...]] = []
    with httpx.Client(timeout=5) as c:
        for host, method, path, headers in matrix:
            n = len(auth.seen)
            r = c.request(method, f"http://{host}:{port}{path}", headers=headers,
                          content=b"body" if method in ("POST", "PUT") else None)
            seen = [(s.method, s.path, s.header("X-Original-URI"), s.header("X-Original-Method"),
                     s.header("Content-Length"), s.body) for s in auth.seen[n:]]
            got.append((host, method, path, r.status_code,
                        tuple(r.headers.get_list("www-authenticate")), tuple(seen)))
    return got


def test_access_phase_matches_nginx(truehop, nginx, upstream, files):
    users = make_users()
    pwfile = files / "htpasswd"
    write_htpasswd(pwfile, users)
    matrix = requests_matrix(users)
    with AuthApp() as auth:
        nport = free_port()
        nginx(CONF, port=nport, up=upstream.port, auth=auth.port, file=pwfile)
        want = answers(nport, auth, matrix)
        tport = free_port()
        truehop(CONF, port=tport, up=upstream.port, auth=auth.port, file=pwfile)
        got = answers(tport, auth, matrix)
    diffs = [(w, g) for w, g in zip(want, got, strict=True) if w != g]
    assert not diffs, "\n".join(f"nginx:   {w}\ntruehop: {g}" for w, g in diffs)
    # the matrix is not trivially uniform
    assert {w[3] for w in want} >= {200, 401, 403, 500}
