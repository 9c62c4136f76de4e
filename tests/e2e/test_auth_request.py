"""auth_request and auth_request_set end to end, with a real authorization server
(auth_app.AuthApp, oauth2-proxy's shape) and the configuration oauth2-proxy documents:
an internal /oauth2/auth location, `error_page 401 = /oauth2/sign_in`, the user's name
handed to the app through auth_request_set and proxy_set_header."""

from __future__ import annotations

import base64
import concurrent.futures

import httpx
import pytest
from auth_app import AuthApp, worker_readable_dir
from harness import free_port


@pytest.fixture
def files():
    """Where the password files go (auth_app.worker_readable_dir)."""
    with worker_readable_dir() as d:
        yield d


OAUTH2_CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    location / {
        auth_request /oauth2/auth;
        error_page 401 = /oauth2/sign_in;
        auth_request_set $user $upstream_http_x_auth_request_user;
        auth_request_set $email $upstream_http_x_auth_request_email;
        auth_request_set $auth_status $upstream_status;
        proxy_set_header X-User $user;
        proxy_set_header X-Email $email;
        proxy_set_header X-Auth-Status $auth_status;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location = /oauth2/auth {
        internal;
        proxy_pass http://127.0.0.1:@@AUTH@@;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Real-IP $remote_addr;
    }
    location /oauth2/ {
        proxy_pass http://127.0.0.1:@@AUTH@@;
    }
    location /plain/ {
        auth_request /oauth2/auth;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /slow/ {
        auth_request /slow-auth;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location = /slow-auth { internal; proxy_pass http://127.0.0.1:@@AUTH@@; }
    location /down/ {
        auth_request /auth-down;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location = /auth-down { internal; proxy_pass http://127.0.0.1:@@DOWN@@; }
    location /returns/ {
        auth_request /auth-return;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location = /auth-return { internal; return 204; }
    location /returns-401/ {
        auth_request /auth-return-401;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location = /auth-return-401 { internal; return 401; }
    location /off/ {
        auth_request /oauth2/auth;
        location /off/inner/ { auth_request off; proxy_pass http://127.0.0.1:@@UP@@; }
    }
    location /any/ {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        auth_request /oauth2/auth;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /any-v6/ {
        satisfy any;
        allow ::1;
        deny all;
        auth_request /oauth2/auth;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /with-basic/ {
        auth_basic "b";
        auth_basic_user_file @@FILE@@;
        auth_request /oauth2/auth;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
}
"""


@pytest.fixture
def auth_app():
    with AuthApp() as app:
        yield app


@pytest.fixture
def site(truehop, upstream, auth_app, files):
    pwfile = files / "htpasswd"
    pwfile.write_text("u:{PLAIN}p\n")
    port = free_port()
    tp = truehop(OAUTH2_CONF, port=port, up=upstream.port, auth=auth_app.port, file=pwfile,
                 down=free_port())
    return tp, f"http://127.0.0.1:{port}"


def headers_of(resp: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in resp.json()["headers"]}


def test_allowed_request_reaches_the_app_with_the_user(site, upstream, auth_app):
    tp, base = site
    r = httpx.post(f"{base}/app/x?y=1", content=b"the body", headers={
        "Authorization": "Bearer good", "Content-Type": "text/plain"})
    assert r.status_code == 200
    seen = headers_of(r)
    assert seen["x-user"] == "alice"
    assert seen["x-email"] == "alice@example.test"
    assert seen["x-auth-status"] == "200"
    assert r.json()["method"] == "POST" and r.json()["body_len"] == 8
    # what the authorization server got: a GET to its location, the client's headers, the
    # main request's URI and method, no body and no framing for one
    auth = auth_app.seen[-1]
    assert (auth.method, auth.path) == ("GET", "/oauth2/auth")
    assert auth.header("X-Original-URI") == "/app/x?y=1"
    assert auth.header("X-Original-Method") == "POST"
    assert auth.header("Authorization") == "Bearer good"
    assert auth.header("Content-Type") == "text/plain"
    assert auth.header("X-Real-IP") == "127.0.0.1"
    assert auth.header("Content-Length") is None and auth.header("Transfer-Encoding") is None
    assert auth.body == b""
    # the auth response's body is not sent to the client
    assert b"auth body ignored" not in r.content


def test_refusals(site, auth_app):
    tp, base = site
    r = httpx.get(f"{base}/plain/x")
    assert r.status_code == 401
    assert r.headers.get_list("www-authenticate") == ['Bearer realm="test"']
    assert httpx.get(f"{base}/plain/x", headers={"Authorization": "Bearer deny"}).status_code == 403
    r = httpx.get(f"{base}/plain/x", headers={"Authorization": "Bearer boom"})
    assert r.status_code == 500
    assert "auth request unexpected status: 500" in tp.error_log()
    r = httpx.get(f"{base}/plain/x", headers={"Authorization": "Bearer teapot"})
    assert r.status_code == 500
    assert "auth request unexpected status: 418" in tp.error_log()
    # the auth server down: the subrequest's 502 is unexpected
    assert httpx.get(f"{base}/down/x").status_code == 500
    log = tp.error_log()
    assert "auth request unexpected status: 502" in log
    assert "connect() failed (111: Connection refused) while connecting to upstream" in log
    # the internal location cannot be asked for directly
    assert httpx.get(f"{base}/oauth2/auth").status_code == 404


def test_error_page_401_sends_to_sign_in(site, auth_app, upstream):
    tp, base = site
    upstream.clear()
    r = httpx.get(f"{base}/app/page")
    # `error_page 401 = /oauth2/sign_in`: the sign-in page's own status (200)
    assert r.status_code == 200
    assert r.text == "sign in page"
    assert r.headers.get("www-authenticate") == 'Bearer realm="test"'
    assert [s.path for s in auth_app.seen[-2:]] == ["/oauth2/auth", "/oauth2/sign_in"]
    assert upstream.records == []
    # a session cookie is enough
    r = httpx.get(f"{base}/app/page", headers={"Cookie": "session=good"})
    assert r.status_code == 200 and headers_of(r)["x-user"] == "alice"


def test_subrequest_without_proxy_and_off(site, auth_app):
    tp, base = site
    n = len(auth_app.seen)
    assert httpx.get(f"{base}/returns/x").status_code == 200
    r = httpx.get(f"{base}/returns-401/x")
    assert r.status_code == 401 and "www-authenticate" not in r.headers
    assert httpx.get(f"{base}/off/inner/x").status_code == 200
    assert len(auth_app.seen) == n


def test_satisfy_any_skips_the_subrequest_for_allowed_addresses(site, auth_app):
    tp, base = site
    n = len(auth_app.seen)
    assert httpx.get(f"{base}/any/x").status_code == 200
    assert len(auth_app.seen) == n                  # allowed by address: no subrequest
    r = httpx.get(f"{base}/any-v6/x")               # 127.0.0.1 is not ::1: auth decides
    assert r.status_code == 401
    assert len(auth_app.seen) == n + 1
    assert httpx.get(f"{base}/any-v6/x", headers={"Authorization": "Bearer good"}
                     ).status_code == 200
    # the subrequest's 403 is "access forbidden by rule" once the phase is over
    before = tp.error_log().count("access forbidden by rule")
    assert httpx.get(f"{base}/any-v6/x", headers={"Authorization": "Bearer deny"}
                     ).status_code == 403
    assert tp.error_log().count("access forbidden by rule") == before + 1


def test_basic_then_auth_request_both_must_allow(site, auth_app):
    tp, base = site
    good_basic = "Basic " + base64.b64encode(b"u:p").decode()
    # satisfy all: auth_basic runs first; its 401 is the answer and no subrequest is made
    n = len(auth_app.seen)
    r = httpx.get(f"{base}/with-basic/x")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="b"'
    assert len(auth_app.seen) == n
    # basic passes; the authorization server sees Basic credentials, not a Bearer: 401
    r = httpx.get(f"{base}/with-basic/x", headers={"Authorization": good_basic})
    assert r.status_code == 401
    assert r.headers.get_list("www-authenticate") == ['Bearer realm="test"']
    assert len(auth_app.seen) == n + 1


def test_concurrent_subrequests(site, auth_app):
    tp, base = site


    def one(i: int) -> int:
        tok = "good" if i % 2 else "deny"
        return httpx.get(f"{base}/slow/{i}", headers={"Authorization": f"Bearer {tok}"},
                         timeout=10).status_code
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, range(8)))
    assert got == [403, 200] * 4


def test_http2_client(truehop, upstream, auth_app):
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    http2 on;
    location / {
        auth_request /auth;
        auth_request_set $user $upstream_http_x_auth_request_user;
        proxy_set_header X-User $user;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location = /auth { internal; proxy_pass http://127.0.0.1:@@AUTH@@; }
}""", port=port, up=upstream.port, auth=auth_app.port)
    with httpx.Client(http1=False, http2=True) as c:
        r = c.post(f"http://127.0.0.1:{port}/x", content=b"abc",
                   headers={"Authorization": "Bearer good"})
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200 and headers_of(r)["x-user"] == "alice"
        assert r.json()["body_len"] == 3
        assert c.get(f"http://127.0.0.1:{port}/x").status_code == 401


def test_server_level_auth_request_is_not_run_for_its_own_subrequest(truehop, upstream,
                                                                     auth_app):
    # the auth location inherits auth_request: a subrequest skips the access phase, so it
    # does not ask itself (nginx: r != r->main)
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    auth_request /auth;
    auth_request_set $user $upstream_http_x_auth_request_user;
    proxy_set_header X-User $user;
    location / { proxy_pass http://127.0.0.1:@@UP@@; }
    location = /auth { internal; proxy_pass http://127.0.0.1:@@AUTH@@/oauth2/auth; }
    location /oauth2/ { auth_request off; proxy_pass http://127.0.0.1:@@AUTH@@; }
}""", port=port, up=upstream.port, auth=auth_app.port)
    base = f"http://127.0.0.1:{port}"
    n = len(auth_app.seen)
    r = httpx.get(f"{base}/x", headers={"Authorization": "Bearer good"})
    assert r.status_code == 200 and headers_of(r)["x-user"] == "alice"
    assert len(auth_app.seen) == n + 1
    assert httpx.get(f"{base}/x").status_code == 401
    assert httpx.get(f"{base}/oauth2/sign_in").text == "sign in page"
