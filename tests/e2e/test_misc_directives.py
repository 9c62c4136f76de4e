"""Issue 15, end to end: charset, proxy_cookie_flags, proxy_ignore_client_abort,
reset_timedout_connection, sendfile_max_chunk, the SSL tuning directives and the directives
accepted as no-ops, each by its behaviour (and compared with nginx where installed)."""

from __future__ import annotations

import os
import select
import socket
import ssl
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest
import trustme
from harness import free_port, run_truehop

from truehop.conf.parser import bundled_mime_types

MIME = bundled_mime_types()


def readable(root: Path) -> Path:
    """Started as root, the workers run as nobody: let them read the files a test made."""
    for d, _dirs, files in os.walk(root):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    return root


pytestmark = pytest.mark.timeout(60)

CHARSET = """
include @@MIME@@;
server {
    listen 127.0.0.1:@@PORT@@;
    root @@ROOT@@;
    charset utf-8;
    location /static/ { }
    location /text { return 200 "plain text\\n"; }
    location /css/ { charset_types text/css; }
    location /off/ { charset off; }
    location /any/ { charset_types *; }
    location /up/ { proxy_pass http://127.0.0.1:@@BACK@@/; }
    location /over/ { override_charset on; proxy_pass http://127.0.0.1:@@BACK@@/; }
    location /same/ { source_charset UTF-8; return 200 "same\\n"; }
}
# the upstream: answers with the Content-Type its location names
server {
    listen 127.0.0.1:@@BACK@@;
    location /html { default_type text/html; return 200 "<p>x</p>\\n"; }
    location /koi { default_type "text/html; charset=koi8-r"; return 200 "x\\n"; }
    location /UTF { default_type "text/html; charset=UTF-8"; return 200 "x\\n"; }
    location /json { default_type application/json; return 200 "{}\\n"; }
}
"""


@pytest.fixture
def charset_site(truehop, tmp_path):
    root = tmp_path / "www"
    for d in ("static", "css", "off", "any"):
        (root / d).mkdir(parents=True)
        (root / d / "a.html").write_text("<p>é</p>\n")
        (root / d / "s.css").write_text("p{}\n")
        (root / d / "i.png").write_bytes(b"\x89PNG")
    port = free_port()
    tp = truehop(CHARSET, port=port, root=readable(root), back=free_port(), mime=MIME)
    return tp, port


def _ctype(port: int, path: str) -> str:
    r = httpx.get(f"http://127.0.0.1:{port}{path}")
    assert r.status_code == 200, (path, r.status_code)
    return r.headers.get("content-type", "")


def test_charset_on_static_return_and_proxied(charset_site):
    _, port = charset_site
    assert _ctype(port, "/static/a.html") == "text/html; charset=utf-8"
    assert _ctype(port, "/static/s.css") == "text/css"              # not in charset_types
    assert _ctype(port, "/static/i.png") == "image/png"
    assert _ctype(port, "/text") == "text/plain; charset=utf-8"      # return's default_type
    assert _ctype(port, "/css/s.css") == "text/css; charset=utf-8"
    assert _ctype(port, "/css/a.html") == "text/html; charset=utf-8"  # text/html always
    assert _ctype(port, "/off/a.html") == "text/html"
    assert _ctype(port, "/any/i.png") == "image/png; charset=utf-8"
    assert _ctype(port, "/same/") == "text/plain; charset=utf-8"
    # an upstream's type without a charset gets one; one with a charset keeps it...
    assert _ctype(port, "/up/html") == "text/html; charset=utf-8"
    assert _ctype(port, "/up/koi") == "text/html; charset=koi8-r"
    assert _ctype(port, "/up/json") == "application/json"
    # ...unless override_charset: the same charset is rewritten, another one (that would
    # need a charset_map) passes as it came
    assert _ctype(port, "/over/UTF") == "text/html; charset=utf-8"
    assert _ctype(port, "/over/koi") == "text/html; charset=koi8-r"


def test_charset_as_nginx(truehop, nginx, tmp_path):
    root = tmp_path / "www"
    for d in ("static", "css", "off", "any"):
        (root / d).mkdir(parents=True)
        (root / d / "a.html").write_text("<p>x</p>\n")
        (root / d / "s.css").write_text("p{}\n")
    p1, p2 = free_port(), free_port()
    truehop(CHARSET, port=p1, root=readable(root), back=free_port(), mime=MIME)
    nginx(CHARSET, port=p2, root=root, back=free_port(), mime=MIME)
    paths = ["/static/a.html", "/static/s.css", "/text", "/css/s.css", "/off/a.html",
             "/any/s.css", "/same/", "/up/html", "/up/koi", "/up/json", "/over/UTF",
             "/over/koi"]
    for p in paths:
        assert _ctype(p1, p) == _ctype(p2, p), p


def test_charset_pair_without_map_is_refused(tmp_path):
    conf = tmp_path / "site.conf"
    conf.write_text("server { listen 127.0.0.1:1; charset utf-8; source_charset koi8-r; }\n")
    res = run_truehop("-t", "-c", str(conf), cwd=tmp_path)
    assert res.returncode == 1
    assert 'no "charset_map" between the charsets "koi8-r" and "utf-8"' in res.stderr


COOKIES = """
server {
    listen 127.0.0.1:@@PORT@@;
    location / {
        proxy_pass http://127.0.0.1:@@UP@@;
        proxy_cookie_flags session secure httponly samesite=strict;
        proxy_cookie_flags ~^pref_ nosecure nohttponly nosamesite;
        proxy_cookie_flags $arg_c samesite=lax;
        proxy_cookie_flags other $arg_flag;
    }
    location /path/ {
        proxy_pass http://127.0.0.1:@@UP@@;
        proxy_cookie_path / /app/;
        proxy_cookie_flags ~ secure;
    }
    location /off/ {
        proxy_pass http://127.0.0.1:@@UP@@;
        proxy_cookie_flags off;
    }
}
"""

COOKIE_CASES = [
    ("/", "session=1"),
    ("/", "SESSION=2; Path=/; Secure"),
    ("/", "session=3; SameSite=None; HttpOnly"),
    ("/", "session=4; samesite=strict"),
    ("/", "pref_x=5; Secure; HttpOnly; SameSite=Lax; Path=/"),
    ("/?c=theme", "theme=dark"),
    ("/?flag=secure", "other=1"),
    ("/?flag=bogus", "other=2"),
    ("/", "plain"),
    ("/", "unlisted=1;  Path=/x"),
    ("/path/", "a=1; Path=/"),
    ("/off/", "a=1"),
]


def _set_cookies(port: int, path: str, cookie: str) -> list[str]:
    sep = "&" if "?" in path else "?"
    q = urllib.parse.urlencode({"Set-Cookie": cookie})
    base, _, query = path.partition("?")
    url = f"http://127.0.0.1:{port}{base}__headers?{q}" + (f"&{query}" if query else "")
    del sep
    r = httpx.get(url)
    return r.headers.get_list("set-cookie")


def test_proxy_cookie_flags(truehop, upstream):
    port = free_port()
    truehop(COOKIES, port=port, up=upstream.port)
    got = {c: _set_cookies(port, p, c) for p, c in COOKIE_CASES}
    assert got["session=1"] == ["session=1; Secure; HttpOnly; SameSite=Strict"]
    assert got["SESSION=2; Path=/; Secure"] == [
        "SESSION=2; Path=/; Secure; HttpOnly; SameSite=Strict"]
    assert got["session=3; SameSite=None; HttpOnly"] == [
        "session=3; SameSite=Strict; HttpOnly; Secure"]
    assert got["session=4; samesite=strict"] == ["session=4; samesite=strict; Secure; HttpOnly"]
    assert got["pref_x=5; Secure; HttpOnly; SameSite=Lax; Path=/"] == ["pref_x=5; Path=/"]
    assert got["theme=dark"] == ["theme=dark; SameSite=Lax"]
    assert got["other=1"] == ["other=1; Secure"]
    assert got["other=2"] == ["other=2"]          # an unknown flag is skipped
    assert got["plain"] == ["plain"]              # no value: not a cookie nginx edits
    assert got["unlisted=1;  Path=/x"] == ["unlisted=1;  Path=/x"]   # untouched, spacing kept
    assert got["a=1; Path=/"] == ["a=1; Path=/app/; Secure"]
    assert got["a=1"] == ["a=1"]


def test_proxy_cookie_flags_as_nginx(truehop, nginx, upstream):
    p1, p2 = free_port(), free_port()
    truehop(COOKIES, port=p1, up=upstream.port)
    nginx(COOKIES, port=p2, up=upstream.port)
    for path, cookie in COOKIE_CASES:
        assert _set_cookies(p1, path, cookie) == _set_cookies(p2, path, cookie), cookie


def test_proxy_cookie_flags_errors(tmp_path):
    conf = tmp_path / "site.conf"
    for line, msg in [("proxy_cookie_flags one;", 'invalid parameter "one"'),
                      ("proxy_cookie_flags off; proxy_cookie_flags a secure;",
                       '"proxy_cookie_flags" directive is duplicate'),
                      ("proxy_cookie_flags off; proxy_cookie_flags off;",
                       '"proxy_cookie_flags" directive is duplicate')]:
        conf.write_text("server { listen 127.0.0.1:1; location / { %s } }\n" % line)  # noqa: UP031
        res = run_truehop("-t", "-c", str(conf), cwd=tmp_path)
        assert res.returncode == 1 and msg in res.stderr, (line, res.stderr)


ABORT = """
log_format st '$request_uri $status';
access_log @@DIR@@/access.log st;
server {
    listen 127.0.0.1:@@PORT@@;
    location /keep/ { proxy_pass http://127.0.0.1:@@UP@@; proxy_ignore_client_abort on; }
    location /drop/ { proxy_pass http://127.0.0.1:@@UP@@; }
}
"""


class SlowUpstream:
    """An upstream that takes 0.6 s to answer each connection's request and records, per
    request path, whether the proxy closed the connection while it was still working."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: dict[str, str] = {}
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c: socket.socket) -> None:
        with c:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = c.recv(4096)
                if not chunk:
                    return
                head += chunk
            path = head.split(b" ", 2)[1].decode()
            ready, _, _ = select.select([c], [], [], 0.6)
            if ready and c.recv(1) == b"":
                self.seen[path] = "closed by the proxy"
                return
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            self.seen[path] = "answered"

    def close(self) -> None:
        self.sock.close()


def _abandon(port: int, path: str) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(0.2)         # the request has reached the upstream


def _wait_for(d: dict[str, str], key: str, timeout: float = 3.0) -> str:
    deadline = time.monotonic() + timeout
    while key not in d and time.monotonic() < deadline:
        time.sleep(0.02)
    return d.get(key, "")


def _log_line(path: Path, uri: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                if line.startswith(uri + " "):
                    return line
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {uri}")


def test_proxy_ignore_client_abort(truehop, tmp_path):
    up = SlowUpstream()
    try:
        port = free_port()
        truehop(ABORT, port=port, up=up.port, dir=tmp_path)
        log = tmp_path / "access.log"
        # off (nginx's default): the client going away stops the upstream request (499)
        _abandon(port, "/drop/x")
        assert _wait_for(up.seen, "/drop/x") == "closed by the proxy"
        assert _log_line(log, "/drop/x").endswith(" 499")
        # on: the upstream request runs to its end; the response goes nowhere
        _abandon(port, "/keep/x")
        assert _wait_for(up.seen, "/keep/x") == "answered"
        _log_line(log, "/keep/x")
    finally:
        up.close()


RESET = """
server {
    listen 127.0.0.1:@@PORT@@;
    root @@ROOT@@;
    send_timeout 300ms;
    location /big/ { }
    location /reset/ { alias @@ROOT@@/big/; reset_timedout_connection on; }
    location = /nothing { return 444; }
    location = /nothing-reset { reset_timedout_connection on; return 444; }
}
"""


def _stalled_read(port: int, path: str) -> str:
    """Ask for a big file, read nothing until the proxy gives up, then read: "reset" or
    "fin"."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(1.5)
        s.settimeout(3)
        try:
            while s.recv(1 << 20):
                pass
        except ConnectionResetError:
            return "reset"
        return "fin"


def test_reset_timedout_connection(truehop, tmp_path):
    root = tmp_path / "www"
    (root / "big").mkdir(parents=True)
    (root / "big" / "f.bin").write_bytes(b"x" * (32 << 20))
    port = free_port()
    truehop(RESET, port=port, root=readable(root))
    assert _stalled_read(port, "/big/f.bin") == "fin"
    assert _stalled_read(port, "/reset/f.bin") == "reset"

    def after_444(path: str) -> str:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            s.settimeout(3)
            try:
                return "fin" if s.recv(100) == b"" else "data"
            except ConnectionResetError:
                return "reset"
    assert after_444("/nothing") == "fin"
    assert after_444("/nothing-reset") == "reset"


CHUNK = """
server {
    listen 127.0.0.1:@@PORT@@;
    root @@ROOT@@;
    sendfile on;
    sendfile_max_chunk 64k;
    location / { }
    location /nolimit/ { alias @@ROOT@@/; sendfile_max_chunk 0; }
}
"""


def test_sendfile_max_chunk(truehop, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    data = bytes(range(256)) * 4096 * 3          # 3 MiB
    (root / "f.bin").write_bytes(data)
    port = free_port()
    truehop(CHUNK, port=port, root=readable(root))
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(base + "/f.bin").content == data
    assert httpx.get(base + "/nolimit/f.bin").content == data
    r = httpx.get(base + "/f.bin", headers={"Range": "bytes=100000-2000000"})
    assert r.status_code == 206 and r.content == data[100000:2000001]
    # a client reading a big file slowly does not hold the worker: others are answered
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(b"GET /f.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        assert httpx.get(base + "/f.bin", headers={"Range": "bytes=0-9"}).content == data[:10]
        assert time.monotonic() - t0 < 2


ACCEPTED = """
events { accept_mutex on; accept_mutex_delay 100ms; }
http {
    aio threads;
    aio_write on;
    output_buffers 2 32k;
    upstream app { zone app 64k; server 127.0.0.1:@@UP@@; }
    server {
        listen 127.0.0.1:@@PORT@@;
        location / { aio on; proxy_pass http://app; }
    }
}
"""


def test_accepted_no_op_directives_run(truehop, upstream):
    port = free_port()
    truehop(ACCEPTED, port=port, up=upstream.port)
    r = httpx.get(f"http://127.0.0.1:{port}/hello")
    assert r.status_code == 200 and upstream.last().path == "/hello"


# --- TLS ------------------------------------------------------------------------------------

TLS = """
server {
    listen 127.0.0.1:@@TLS@@ ssl;
    ssl_certificate @@CERT@@;
    ssl_certificate_key @@CERT@@;
    ssl_early_data on;
    ssl_ecdh_curve secp384r1:X25519;
    ssl_conf_command Options -SessionTicket;
    ssl_conf_command MaxProtocol TLSv1.2;
    location / { return 200 "early=[$ssl_early_data] $ssl_protocol\\n"; }
}
"""


def _tls_get(port: int, ca: str, curve: str | None = None, tls13: bool = False) -> str:
    ctx = ssl.create_default_context(cafile=ca)
    if curve:
        ctx.set_ecdh_curve(curve)
    if tls13:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="tls.test") as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: tls.test\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out.decode().split("\r\n\r\n", 1)[1]


def test_ssl_tuning(truehop, tmp_path):
    # an RSA certificate: an ECDSA one would tie TLS 1.2 to its own curve
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    pem = tmp_path / "site.pem"
    ca.issue_cert("tls.test", key_type=trustme.KeyType.RSA).private_key_and_cert_chain_pem \
        .write_to_path(str(pem))
    port = free_port()
    truehop(TLS, tls=port, cert=pem)
    cafile = str(tmp_path / "ca.pem")
    # MaxProtocol TLSv1.2 applied; no 0-RTT: $ssl_early_data is empty
    assert _tls_get(port, cafile) == "early=[] TLSv1.2\n"
    with pytest.raises(ssl.SSLError):
        _tls_get(port, cafile, tls13=True)
    # ssl_ecdh_curve: the first group of the list is the one set
    assert _tls_get(port, cafile, curve="secp384r1").startswith("early=[]")
    with pytest.raises(ssl.SSLError):
        _tls_get(port, cafile, curve="prime256v1")
    with pytest.raises(ssl.SSLError):
        _tls_get(port, cafile, curve="X25519")
    res = run_truehop("-t", "-c", str(tmp_path / "truehop.conf"), cwd=tmp_path)
    assert res.returncode == 0
    assert "ssl-early-data-ignored" in res.stderr and "ssl-ecdh-curve-list" in res.stderr
