"""What truehop does with particular upstream answers, checked against a canned upstream that
writes exact bytes (the cases nginx-tests' proxy.t, proxy_duplicate_headers.t,
proxy_connection_headers.t and http_expect_100_continue.t check on nginx)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from harness import free_port, raw_request

# path -> (delay before answering, bytes)
ANSWERS: dict[str, tuple[float, bytes]] = {
    "/bare-lf": (0.0, b"HTTP/1.1 200 OK\nConnection: close\nX-A: 1\n\nTEST-OK-IF-YOU-SEE-THIS"),
    "/dup-expires": (0.0, b"HTTP/1.1 200 OK\r\nExpires: foo\r\nExpires: bar\r\n"
                          b"Content-Length: 0\r\n\r\n"),
    "/upgrade426": (0.0, b"HTTP/1.1 426 Upgrade Required\r\nConnection: Upgrade\r\n"
                         b"Upgrade: websocket\r\nContent-Length: 0\r\n\r\n"),
    "/slow-header": (1.1, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
    "/ok": (0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
}


class CannedUpstream:
    """Answers each connection's request with ANSWERS[path], then closes. `/silent-once`
    closes the first connection without a word (a failed try), then answers like `/ok`."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.silent_done = False
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c: socket.socket) -> None:
        with c:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = c.recv(65536)
                if not chunk:
                    return
                head += chunk
            self.requests.append(head)
            path = head.split(b" ", 2)[1].decode()
            if path == "/silent-once" and not self.silent_done:
                self.silent_done = True
                time.sleep(1.1)
                return
            delay, data = ANSWERS.get(path, ANSWERS["/ok"])
            time.sleep(delay)
            c.sendall(data)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def canned() -> Iterator[CannedUpstream]:
    up = CannedUpstream()
    yield up
    up.close()


CONF = """
log_format times '$upstream_connect_time|$upstream_header_time|$upstream_response_time|$upstream_status';
upstream two { server 127.0.0.1:@@UP@@; server 127.0.0.1:@@UP@@; }
server {
    listen 127.0.0.1:@@PORT@@;
    access_log @@LOG@@ times;
    location / { proxy_pass http://127.0.0.1:@@UP@@; proxy_read_timeout 3s; }
    location /next/ { proxy_pass http://two/; proxy_read_timeout 3s; }
}
"""


def start(truehop, canned, tmp_path):
    port = free_port()
    log = tmp_path / "times.log"
    tp = truehop(CONF, port=port, up=canned.port, log=log)
    return tp, port, log


def get(port: int, path: str, extra: bytes = b"") -> bytes:
    data, _ = raw_request(port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\n".encode() + extra
                          + b"Connection: close\r\n\r\n", timeout=5)
    return data


def test_bare_lf_upstream_head_is_relayed(truehop, canned, tmp_path):
    # nginx reads upstream heads with bare LF line ends; the client gets CRLF ones
    _, port, _ = start(truehop, canned, tmp_path)
    out = get(port, "/bare-lf")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nX-A: 1" in head and b"\n\n" not in head
    assert b"TEST-OK-IF-YOU-SEE-THIS" in body  # read until close: sent chunked


def test_duplicate_expires_keeps_the_first(truehop, canned, tmp_path):
    tp, port, _ = start(truehop, canned, tmp_path)
    out = get(port, "/dup-expires")
    assert b"Expires: foo" in out and b"bar" not in out
    tp.wait_for_log('upstream sent duplicate header line: "Expires: bar", previous value: '
                    '"Expires: foo", ignoring it')


def test_upgrade_in_a_426_reaches_an_http1_client(truehop, canned, tmp_path):
    # RFC 9110 §15.5.22: a 426 says which protocol in Upgrade; nginx relays it
    _, port, _ = start(truehop, canned, tmp_path)
    out = get(port, "/upgrade426")
    assert out.startswith(b"HTTP/1.1 426")
    assert re.search(rb"(?mi)^Upgrade: websocket\r$", out)


def test_expect_100_continue_answered_without_a_body(truehop, canned, tmp_path):
    # nginx answers the expectation when the proxy reads the body, even an empty one
    _, port, _ = start(truehop, canned, tmp_path)
    data, _ = raw_request(port, b"POST /ok HTTP/1.1\r\nHost: localhost\r\nExpect: 100-Continue"
                                b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", timeout=5)
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")
    data, _ = raw_request(port, b"POST /ok HTTP/1.0\r\nExpect: 100-continue\r\n"
                                b"Content-Length: 0\r\n\r\n", timeout=5)
    assert data.startswith(b"HTTP/1.1 200")  # never to an HTTP/1.0 client


def _times(log, n: int) -> list[str]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= n:
            break
        time.sleep(0.05)
    return log.read_text().strip().splitlines()


def test_upstream_time_variables(truehop, canned, tmp_path):
    tp, port, log = start(truehop, canned, tmp_path)
    assert get(port, "/slow-header").endswith(b"ok")
    assert get(port, "/next/silent-once").endswith(b"ok")
    lines = _times(log, 2)
    connect, header, response, status = lines[0].split("|")
    assert float(connect) < 1 <= float(header) <= float(response)
    assert status == "200"
    # two tries: the first got no header ("-"), its response time is the 1.1 s it waited
    connect, header, response, status = lines[1].split("|")
    c1, c2 = connect.split(", ")
    h1, h2 = header.split(", ")
    r1, r2 = response.split(", ")
    assert float(c1) < 1 and float(c2) < 1
    assert h1 == "-" and float(h2) < 1
    assert float(r1) >= 1 and float(r2) < 1
    assert status == "502, 200"


BYTES_CONF = """
log_format bytes '$upstream_bytes_sent|$upstream_bytes_received|$upstream_response_length|$pipe';
server {
    listen 127.0.0.1:@@PORT@@;
    access_log @@LOG@@ bytes;
    location / { proxy_pass http://127.0.0.1:@@UP@@; }
}
"""


def test_upstream_byte_counts_and_pipe(truehop, canned, tmp_path):
    port = free_port()
    log = tmp_path / "bytes.log"
    truehop(BYTES_CONF, port=port, up=canned.port, log=log)
    req = b"GET /ok HTTP/1.1\r\nHost: localhost\r\n\r\n"
    data, _ = raw_request(port, req + req.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
                          timeout=5)
    assert data.count(b"HTTP/1.1 200") == 2
    lines = _times(log, 2)
    answer = len(ANSWERS["/ok"][1])
    sent = [len(h) for h in canned.requests]
    assert lines == [f"{sent[0]}|{answer}|2|.", f"{sent[1]}|{answer}|2|p"]


def test_next_upstream_status_from_the_last_peer_is_relayed(truehop, upstreams):
    """proxy_next_upstream http_500/http_404 moves on only while another peer is left to try
    (nginx's ngx_http_upstream_test_next: u->peer.tries > 1): the last peer's own answer,
    status and body, reaches the client, not truehop's error page."""
    a, b = upstreams(2)
    port = free_port()
    truehop("""
upstream one { server 127.0.0.1:@@A@@; }
upstream two { server 127.0.0.1:@@A@@; server 127.0.0.1:@@B@@; }
server {
    listen 127.0.0.1:@@PORT@@;
    location /one/ { proxy_pass http://one/; proxy_next_upstream error timeout http_500; }
    location /two/ { proxy_pass http://two/; proxy_next_upstream error http_500 http_404; }
}""", port=port, a=a.port, b=b.port)
    r = httpx.get(f"http://127.0.0.1:{port}/one/__status?code=500")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"   # the app's body, not ours
    assert len(a.records) == 1
    before = len(a.records) + len(b.records)
    r = httpx.get(f"http://127.0.0.1:{port}/two/__status?code=404")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert len(a.records) + len(b.records) == before + 2      # both peers were asked


def test_proxy_redirect_rules_as_nginx(truehop, upstream):
    """proxy_redirect as nginx applies it: a regex is searched anywhere (~* caseless) and its
    replacement, captures rendered, replaces the whole value; a prefix rule may hold
    variables; `default` keeps working beside other rules; the first rule that applies wins."""
    port = free_port()
    up = upstream.port
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    location /rx/ {
        proxy_pass http://127.0.0.1:@@UP@@/;
        proxy_redirect ~*re+gexp? /rx/;
        proxy_redirect ~^(.+)/cap_([^/]+) $1/$2/x.html;
    }
    location /var/ {
        proxy_pass http://127.0.0.1:@@UP@@/;
        proxy_redirect http://127.0.0.1:$arg_p/ /replaced/;
    }
    location /both/ {
        proxy_pass http://127.0.0.1:@@UP@@/;
        proxy_redirect default;
        proxy_redirect http://elsewhere.test/ /other/;
    }
}""", port=port, up=up)

    def location(path: str, to: str) -> str:
        r = httpx.get(f"http://127.0.0.1:{port}{path}__redirect",
                      params={"to": to, "code": "302"})
        assert r.status_code == 302
        return r.headers["location"]

    base = f"http://127.0.0.1:{port}"
    assert location("/rx/", f"http://127.0.0.1:{up}/ReeegEX/t.html") == f"{base}/rx/"
    assert location("/rx/", "http://a.test/cap_tures/t.html") == "http://a.test/tures/x.html"
    assert location("/rx/", "http://a.test/plain") == "http://a.test/plain"
    r = httpx.get(f"{base}/var/__redirect",
                  params={"to": f"http://127.0.0.1:{up}/x/y", "p": str(up)})
    assert r.headers["location"] == f"{base}/replaced/x/y"
    assert location("/both/", f"http://127.0.0.1:{up}/in") == f"{base}/both/in"
    assert location("/both/", "http://elsewhere.test/t") == f"{base}/other/t"


def test_max_conns_holds_a_peer_for_the_whole_response(truehop, upstreams):
    """`server ... max_conns=1`: while one (slow) response is in flight the peer is full, so
    the next request goes to the backup; with no backup it is 502, no live upstreams."""
    a, b = upstreams(2)
    port = free_port()
    tp = truehop("""
upstream withbackup { server 127.0.0.1:@@A@@ max_conns=1; server 127.0.0.1:@@B@@ backup; }
upstream alone { server 127.0.0.1:@@A@@ max_conns=1; }
server {
    listen 127.0.0.1:@@PORT@@;
    location /wb/ { proxy_pass http://withbackup/; }
    location /alone/ { proxy_pass http://alone/; }
}""", port=port, a=a.port, b=b.port, allow_log=["no live upstreams"])
    for prefix, expect in (("/wb/", 200), ("/alone/", 502)):
        slow: list[int] = []
        url = f"http://127.0.0.1:{port}{prefix}__slow?ms=1500"

        def fetch(url: str = url, out: list[int] = slow) -> None:
            out.append(httpx.get(url, timeout=5).status_code)
        t = threading.Thread(target=fetch)
        t.start()
        deadline = time.monotonic() + 3
        while len(a.records) == 0 or (prefix == "/alone/" and len(a.records) < 2):
            assert time.monotonic() < deadline, "the slow request never reached the app"
            time.sleep(0.02)
        r = httpx.get(f"http://127.0.0.1:{port}{prefix}x", timeout=5)
        assert r.status_code == expect
        t.join()
        assert slow == [200]
    assert len(b.records) == 1
    assert "no live upstreams" in tp.error_log()


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_listen_socket_options_are_applied(truehop):
    """listen rcvbuf= / sndbuf= / so_keepalive= / deferred are set on the listening socket
    (they were accepted and ignored); `ss` shows the buffer sizes (the kernel doubles them)."""
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@ rcvbuf=64k sndbuf=96k so_keepalive=30s:10s:3 deferred;
    location / { return 200 "ok"; }
}""", port=port)
    out = subprocess.run(["ss", "-ltnm", f"sport = :{port}"], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"skmem:\(r\d+,rb(\d+),t\d+,tb(\d+)", out)
    assert m is not None, out
    assert (int(m[1]), int(m[2])) == (2 * 64 * 1024, 2 * 96 * 1024)
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "ok"


def test_proxy_cookie_domain_and_path(truehop, upstream):
    """proxy_cookie_domain / proxy_cookie_path rewrite Set-Cookie as nginx 1.30 does (they
    were accepted and ignored): domain compared without its leading dot and case, path by
    prefix, regexes with captures; a rewritten cookie is written back `a=b; c=d`, any other
    is left exactly as it came."""
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    location /c/ {
        proxy_pass http://127.0.0.1:@@UP@@/;
        proxy_cookie_domain backend.test $host;
        proxy_cookie_domain ~^(.+)\\.internal$ $1.example;
        proxy_cookie_path /app/ /c/;
        proxy_cookie_path ~*^/OLD(.*)$ /new$1;
    }
    location /off/ {
        proxy_pass http://127.0.0.1:@@UP@@/;
        proxy_cookie_domain off;
    }
}""", port=port, up=upstream.port)
    sent = ["a=1; Domain=.Backend.TEST; Path=/app/x; HttpOnly",
            "b=2;domain=api.internal ;path=/old/z",
            "c=3;  Path=/other"]
    r = httpx.get(f"http://127.0.0.1:{port}/c/__headers",
                  params=[("Set-Cookie", c) for c in sent], headers={"Host": "front.test"})
    assert r.headers.get_list("set-cookie") == [
        "a=1; Domain=.front.test; Path=/c/x; HttpOnly",
        "b=2; domain=api.example; path=/new/z",
        "c=3;  Path=/other"]
    r = httpx.get(f"http://127.0.0.1:{port}/off/__headers", params=[("Set-Cookie", sent[0])])
    assert r.headers.get_list("set-cookie") == [sent[0]]


def test_resolver_names_in_proxy_pass_variables(truehop, upstream):
    """`resolver` (was accepted and ignored): a name in proxy_pass with variables is looked
    up over DNS at run time, the Docker idiom `set $u app; proxy_pass http://$u:3000;`; a
    name that does not exist is 502 with nginx's error; without a resolver, nginx's
    `no resolver defined`."""
    from dns_server import DNSServer

    dns = DNSServer()
    dns.table["app.test"] = ["127.0.0.1"]
    port = free_port()
    try:
        tp = truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    resolver 127.0.0.1:@@DNS@@ valid=30s ipv6=off;
    resolver_timeout 2s;
    location /dyn/ {
        proxy_pass http://$arg_h:@@UP@@/;
    }
}""", port=port, dns=dns.port, up=upstream.port, allow_log=["could not be resolved"])
        with httpx.Client() as c:
            for _ in range(3):
                r = c.get(f"http://127.0.0.1:{port}/dyn/", params={"h": "app.test"})
                assert r.status_code == 200
            got = {k.lower(): v for k, v in upstream.records[-1].headers}
            assert got["host"] == f"app.test:{upstream.port}"
            assert [q[0] for q in dns.asked] == ["app.test"]     # cached: asked once
            r = c.get(f"http://127.0.0.1:{port}/dyn/", params={"h": "missing.test"})
            assert r.status_code == 502
        assert "missing.test could not be resolved (3: Host not found)" in tp.error_log()
    finally:
        dns.close()

    port2 = free_port()
    tp2 = truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    location /dyn/ { proxy_pass http://$arg_h:@@UP@@/; }
}""", port=port2, up=upstream.port, allow_log=["no resolver defined"])
    r = httpx.get(f"http://127.0.0.1:{port2}/dyn/", params={"h": "app.test"})
    assert r.status_code == 502
    assert "no resolver defined to resolve app.test" in tp2.error_log()


def test_proxy_method_and_proxy_set_body(truehop, upstream):
    """proxy_method and proxy_set_body (they were refused as unknown): the upstream request
    gets the configured method and body (variables rendered, Content-Length its own); the
    client's body is read and dropped."""
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    location /form/ {
        proxy_pass http://127.0.0.1:@@UP@@/;
        proxy_method POST;
        proxy_set_body "name=$arg_n&via=truehop";
        proxy_set_header Content-Type application/x-www-form-urlencoded;
    }
    location /head/ {
        proxy_pass http://127.0.0.1:@@UP@@/;
        proxy_method $arg_m;
    }
}""", port=port, up=upstream.port)
    with httpx.Client() as c:
        r = c.put(f"http://127.0.0.1:{port}/form/x", params={"n": "ab"}, content=b"dropped")
        assert r.status_code == 200
        rec = upstream.records[-1]
        assert (rec.method, rec.body) == ("POST", b"name=ab&via=truehop")
        got = {k.lower(): v for k, v in rec.headers}
        assert got["content-length"] == str(len(b"name=ab&via=truehop"))
        r = c.get(f"http://127.0.0.1:{port}/head/x", params={"m": "DELETE"})
        assert r.status_code == 200 and upstream.records[-1].method == "DELETE"


def test_unix_socket_upstreams(truehop, tmp_path):
    """proxy_pass http://unix:/path[:/uri] and `server unix:/path` (they were refused): the
    usual way to reach gunicorn/uvicorn. Host is `localhost`, $upstream_addr the socket."""
    sock = tmp_path / "app.sock"
    ready = free_port()
    truehop("""
server {
    listen unix:@@SOCK@@;
    listen 127.0.0.1:@@PORT@@;
    location / { return 200 "unix $request_uri host=$http_host\\n"; }
}""", port=ready, sock=sock)
    port = free_port()
    tp = truehop("""
upstream viaunix { server unix:@@SOCK@@; }
server {
    listen 127.0.0.1:@@PORT@@;
    location /u/ { proxy_pass http://unix:@@SOCK@@:/in/; }
    location /plain/ { proxy_pass http://unix:@@SOCK@@; }
    location /up/ { proxy_pass http://viaunix; add_header X-Up $upstream_addr; }
    location /gone/ { proxy_pass http://unix:@@GONE@@; }
}""", port=port, sock=sock, gone=tmp_path / "gone.sock", allow_log=["connect() to unix:"])
    with httpx.Client() as c:
        assert c.get(f"http://127.0.0.1:{port}/u/x?y=1").text == "unix /in/x?y=1 host=localhost\n"
        assert c.get(f"http://127.0.0.1:{port}/plain/z").text == "unix /plain/z host=localhost\n"
        r = c.get(f"http://127.0.0.1:{port}/up/")
        assert r.text == "unix /up/ host=viaunix\n" and r.headers["x-up"] == f"unix:{sock}"
        assert c.get(f"http://127.0.0.1:{port}/gone/").status_code == 502
    assert f"connect() to unix:{tmp_path / 'gone.sock'} failed (2: No such file or directory)" \
        in tp.error_log()


def test_x_accel_redirect(truehop, upstream, tmp_path):
    """X-Accel-Redirect from the app (was hidden and ignored): the response becomes an
    internal redirect, to an `internal` location (protected downloads) or a named one; the
    app's body is dropped; GET for a POST; an unsafe URI is 404; proxy_ignore_headers
    X-Accel-Redirect turns it off."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "report.txt").write_text("the protected file\n")
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    location /app/ { proxy_pass http://127.0.0.1:@@UP@@/; }
    location /raw/ {
        proxy_pass http://127.0.0.1:@@UP@@/;
        proxy_ignore_headers X-Accel-Redirect;
    }
    location /protected/ { internal; alias @@FILES@@/; }
    location @named { return 200 "named $request_method $uri\\n"; }
}""", port=port, up=upstream.port, files=files, allow_log=["unsafe URI"])

    def via(prefix: str, target: str, method: str = "GET") -> httpx.Response:
        return httpx.request(method, f"http://127.0.0.1:{port}{prefix}__headers",
                             params=[("X-Accel-Redirect", target)])
    r = via("/app/", "/protected/report.txt")
    assert (r.status_code, r.text) == (200, "the protected file\n")
    # the app's Content-Type (the demo app's is JSON), Content-Disposition... go with the
    # file, instead of the file's own type; others do not
    r = httpx.get(f"http://127.0.0.1:{port}/app/__headers", params=[
        ("X-Accel-Redirect", "/protected/report.txt"),
        ("Content-Disposition", 'attachment; filename="r.txt"'), ("X-Other", "no")])
    assert r.text == "the protected file\n"
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-disposition"] == 'attachment; filename="r.txt"'
    assert "x-other" not in r.headers
    r = via("/app/", "@named", method="POST")
    assert r.text == "named POST /app/__headers\n"       # a named location keeps the method
    assert via("/app/", "/protected/../../etc/passwd").status_code == 404
    assert via("/app/", "/protected/%2e%2e/x").status_code == 404
    assert httpx.get(f"http://127.0.0.1:{port}/protected/report.txt").status_code == 404
    r = via("/raw/", "/protected/report.txt")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert "the protected file" not in r.text and "x-accel-redirect" not in r.headers


def test_intercepted_401_keeps_www_authenticate(truehop, upstream):
    """proxy_intercept_errors + error_page 401: the error page answers, with the app's
    WWW-Authenticate challenges (ngx_http_upstream_intercept_errors copies them)."""
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    location / {
        proxy_pass http://127.0.0.1:@@UP@@;
        proxy_intercept_errors on;
        error_page 401 /denied;
    }
    location = /denied { return 200 "please log in\\n"; }
}""", port=port, up=upstream.port)
    r = httpx.get(f"http://127.0.0.1:{port}/__status?code=401")
    assert (r.status_code, r.text) == (401, "please log in\n")
    assert r.headers.get("www-authenticate") is None      # the app sent none: none added
    r = httpx.get(f"http://127.0.0.1:{port}/__headers", params=[
        ("WWW-Authenticate", 'Basic realm="a"'), ("WWW-Authenticate", "Bearer"),
        ("__code", "401")])
    assert (r.status_code, r.text) == (401, "please log in\n")
    assert r.headers.get_list("www-authenticate") == ['Basic realm="a"', "Bearer"]


@pytest.mark.parametrize("buffering", ["on", "off"])
def test_bad_chunked_body_is_400_and_never_complete(truehop, upstream, buffering):
    """A chunked request body that turns bad (a runaway chunk size) is the client's 400, as
    nginx answers it, whether the body is buffered first or streamed to the upstream (then
    the upstream's own answer must not be relayed as if the request were whole)."""
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    location / { proxy_pass http://127.0.0.1:@@UP@@; proxy_request_buffering @@BUF@@;
                 proxy_http_version 1.1; }
}""", port=port, up=upstream.port, buf=buffering)
    data, _ = raw_request(port, b"POST /__echo HTTP/1.1\r\nHost: t\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n"
                                b"5\r\nhello\r\nzzzzzzzzzzzzzzzzzzzz\r\n\r\n", timeout=5)
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
