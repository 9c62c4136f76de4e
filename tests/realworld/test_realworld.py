"""Real-world configurations (tests/realworld/configs/*.conf), written here in the shapes
the projects they are named after ship or document: each is checked with `truehop -t`,
then run, and requests go through it to a small real upstream (the demo app) that
records what it received.

A configuration that uses a directive truehop does not implement yet (gzip, allow/deny,
auth_basic, auth_request, limit_req, proxy_cache: other work under way) is skipped with
the refusal `truehop -t` prints, so it turns on by itself once the directive is accepted.
Anything else `-t` refuses fails the test.

Placeholders: @@PORT@@ / @@TLS@@ / @@FED@@ listen ports (plain, TLS, another), @@UP@@ and
@@UP2@@ the upstream apps, @@ROOT@@ a document root with a few files, @@DIR@@ a scratch
directory, @@CERT@@ / @@KEY@@ a certificate and its key, @@HTPASSWD@@ a password file
(user "admin", password "s3cret").
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
from harness import TruehopProcess, free_port, render, run_truehop  # noqa: E402

from truehop.demo.app import BackgroundApp  # noqa: E402

pytestmark = [pytest.mark.timeout(60), pytest.mark.e2e]

CONFIGS = Path(__file__).resolve().parent / "configs"
NAMES = sorted(p.stem for p in CONFIGS.glob("*.conf"))
_PLACEHOLDER = re.compile(r"@@([A-Z0-9_]+)@@")
_REFUSAL = re.compile(r'"[^"]+" (?:directive|variable) is not supported by truehop[^\n]*')
AUTH = "Basic " + base64.b64encode(b"admin:s3cret").decode()


class Site:
    """A running configuration: its ports, its upstream apps, and request helpers."""

    def __init__(self, tp: TruehopProcess, ports: dict[str, int], apps: dict[str, BackgroundApp],
                 root: Path) -> None:
        self.tp = tp
        self.ports = ports
        self.apps = apps
        self.root = root
        self.client = httpx.Client(verify=False, timeout=10)

    @property
    def app(self) -> BackgroundApp:
        return self.apps["UP"]

    def get(self, path: str, host: str, port: str = "PORT", method: str = "GET",
            **kw: Any) -> httpx.Response:
        scheme = "https" if port == "TLS" else "http"
        headers = {"Host": host, **kw.pop("headers", {})}
        return self.client.request(method, f"{scheme}://127.0.0.1:{self.ports[port]}{path}",
                                   headers=headers, **kw)

    def upgrade(self, path: str, host: str, port: str = "PORT") -> str:
        """A WebSocket handshake through the proxy; returns the response's status line."""
        raw = socket.create_connection(("127.0.0.1", self.ports[port]), timeout=5)
        s: socket.socket = raw
        if port == "TLS":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(raw, server_hostname=host)
        with s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
        return head.split(b"\r\n", 1)[0].decode()


def _root(d: Path) -> Path:
    root = d / "www"
    (root / "assets").mkdir(parents=True)
    (root / "secure").mkdir()
    (root / "index.html").write_text("<h1>home</h1>\n")
    (root / "500.html").write_text("<h1>something went wrong</h1>\n")
    (root / "favicon.ico").write_bytes(b"\0\0\1\0")
    (root / "hello.txt").write_text("hello\n")
    (root / "secure" / "index.html").write_text("secret\n")
    (root / "assets" / "app.css").write_text("body{}\n" * 100)
    (root / "movie.bin").write_bytes(bytes(range(256)) * 4096)
    for dirpath, _dirs, files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    return root


def _refusal(conf: Path, cwd: Path) -> str | None:
    """What `truehop -t` refuses for lack of a directive other work adds (None: accepted);
    any other error fails the test."""
    res = run_truehop("-t", "-c", str(conf), cwd=cwd)
    if res.returncode == 0:
        return None
    m = _REFUSAL.search(res.stderr)
    if m is None:
        pytest.fail(f"truehop -t refused {conf.name}:\n{res.stderr}")
    return m.group(0)


@pytest.fixture(params=NAMES)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    name: str = request.param
    text = (CONFIGS / f"{name}.conf").read_text()
    wanted = set(_PLACEHOLDER.findall(text))
    values: dict[str, object] = {}
    ports: dict[str, int] = {}
    apps: dict[str, BackgroundApp] = {}
    root = _root(tmp_path)
    for key in sorted(wanted):
        if key in ("PORT", "TLS", "FED"):
            ports[key] = free_port()
            values[key] = ports[key]
        elif key in ("UP", "UP2"):
            apps[key] = BackgroundApp(name="app" if key == "UP" else "second").start()
            values[key] = apps[key].port
        elif key == "ROOT":
            values[key] = root
        elif key == "DIR":
            values[key] = tmp_path
        elif key in ("CERT", "KEY"):
            pem = tmp_path / "site.pem"
            if not pem.exists():
                trustme.CA().issue_cert("example.test", "*.example.test") \
                    .private_key_and_cert_chain_pem.write_to_path(str(pem))
            values[key] = pem
        elif key == "HTPASSWD":
            sha = base64.b64encode(hashlib.sha1(b"s3cret").digest()).decode()
            (tmp_path / "htpasswd").write_text(f"admin:{{SHA}}{sha}\n")
            values[key] = tmp_path / "htpasswd"
        else:
            raise KeyError(f"{name}.conf: unknown placeholder @@{key}@@")
    tp = TruehopProcess(render(text, **values), tmp_path)
    try:
        tp.write_config()
        refused = _refusal(tp.conf_path, tmp_path)
        if refused is not None:
            pytest.skip(f"{name}: {refused}")
        tp.start()
        s = Site(tp, ports, apps, root)
        s.name = name  # type: ignore[attr-defined]
        yield s
        s.client.close()
        tp.stop(check=True)
    finally:
        if tp.proc is not None and tp.proc.poll() is None:
            tp.stop(check=False)
        for app in apps.values():
            app.stop()


# --- what each configuration must do ---------------------------------------------------------

Check = Callable[[Site], None]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def deco(f: Check) -> Check:
        CHECKS[name] = f
        return f
    return deco


def _forwarded(site: Site, proto: str) -> None:
    up = site.app.last()
    assert up.header("X-Forwarded-Proto") == proto
    assert up.header("X-Forwarded-For") == "127.0.0.1"


@check("mastodon")
def _mastodon(site: Site) -> None:
    h = "social.example.test"
    r = site.get("/about?x=1", h)
    assert r.status_code == 301 and r.headers["location"] == "https://social.example.test/about?x=1"
    (site.root / ".well-known" / "acme-challenge").mkdir(parents=True)
    (site.root / ".well-known" / "acme-challenge" / "tok").write_text("tok.key\n")
    os.chmod(site.root / ".well-known", 0o755)
    os.chmod(site.root / ".well-known" / "acme-challenge", 0o755)
    os.chmod(site.root / ".well-known" / "acme-challenge" / "tok", 0o644)
    assert site.get("/.well-known/acme-challenge/tok", h).text == "tok.key\n"
    r = site.get("/@alice", h, "TLS", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and site.app.last().path == "/@alice"
    _forwarded(site, "https")
    assert "x-cached" in r.headers
    r = site.get("/assets/app.css", h, "TLS", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.text == "body{}\n" * 100
    assert r.headers["cache-control"] == "public, max-age=2419200, must-revalidate"
    assert site.get("/system/missing.png", h, "TLS").status_code == 404
    assert site.upgrade("/api/v1/streaming/__ws", h, "TLS") == "HTTP/1.1 101 Switching Protocols"
    assert site.apps["UP2"].last().header("Upgrade") == "websocket"


@check("gitea")
def _gitea(site: Site) -> None:
    r = site.get("/user/login?redirect_to=%2F", "git.example.test")
    assert r.status_code == 200
    up = site.app.last()
    assert up.target == "/user/login?redirect_to=%2F" and up.header("Host") == "git.example.test"
    _forwarded(site, "http")
    # the sub-path: "%2F" kept as sent, the prefix cut, the query kept once
    site.get("/git/owner/repo/src/branch/feat%2Fx/README.md?display=source", "www.example.test")
    assert site.app.last().target == "/owner/repo/src/branch/feat%2Fx/README.md?display=source"
    assert site.upgrade("/user/events/__ws", "git.example.test") == \
        "HTTP/1.1 101 Switching Protocols"


@check("nextcloud")
def _nextcloud(site: Site) -> None:
    h = "cloud.example.test"
    r = site.get("/index.php/login", h)
    assert r.status_code == 301 and r.headers["location"] == "https://cloud.example.test/index.php/login"
    r = site.get("/remote.php/dav/files/u/a%20b.txt?x=1", h, "TLS", method="PROPFIND",
                 headers={"Accept-Encoding": "gzip, br", "Depth": "1"})
    assert r.status_code == 200
    up = site.app.last()
    assert up.method == "PROPFIND" and up.target == "/remote.php/dav/files/u/a%20b.txt?x=1"
    assert up.header("Accept-Encoding") is None           # "" removes it
    assert up.header("X-Forwarded-Port") == str(site.ports["TLS"])
    assert up.header("X-Forwarded-Scheme") == "https"
    big = b"x" * (3 << 20)                                  # client_max_body_size 0
    assert site.get("/upload", h, "TLS", method="PUT", content=big).status_code == 200
    assert site.app.last().body == big
    r = site.get("/.well-known/carddav", h, "TLS")
    assert r.status_code == 301 and r.headers["location"] == "https://cloud.example.test/remote.php/dav"
    assert site.upgrade("/push/ws/__ws", h, "TLS") == "HTTP/1.1 101 Switching Protocols"


@check("grafana-subpath")
def _grafana(site: Site) -> None:
    r = site.get("/grafana/d/abc/overview?orgId=1", "grafana.example.test")
    assert r.status_code == 200
    up = site.app.last()
    assert up.target == "/d/abc/overview?orgId=1" and up.header("Host") == "grafana.example.test"
    assert site.upgrade("/grafana/api/live/ws/__ws", "grafana.example.test") == \
        "HTTP/1.1 101 Switching Protocols"
    assert site.app.last().path == "/api/live/ws/__ws"
    assert site.get("/", "grafana.example.test").text == "<h1>home</h1>\n"


@check("prometheus-subpath")
def _prometheus(site: Site) -> None:
    h = "monitor.example.test"
    r = site.get("/prometheus/graph", h)
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="Prometheus"'
    r = site.get("/prometheus/api/v1/query?query=up", h, headers={"Authorization": AUTH})
    assert r.status_code == 200 and site.app.last().target == "/api/v1/query?query=up"
    assert site.get("/-/healthy", h).status_code == 200


@check("jellyfin")
def _jellyfin(site: Site) -> None:
    h = "media.example.test"
    r = site.get("/web/index.html", h, headers={"Range": "bytes=0-99"})
    assert r.status_code == 200 and site.app.last().header("Range") == "bytes=0-99"
    up = site.app.last()
    assert up.header("X-Forwarded-Host") == h and up.header("X-Forwarded-Protocol") == "http"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert site.upgrade("/socket/__ws", h) == "HTTP/1.1 101 Switching Protocols"
    data = (site.root / "movie.bin").read_bytes()
    r = site.get("/library/movie.bin", h, headers={"Range": "bytes=1000-600000"})
    assert r.status_code == 206 and r.content == data[1000:600001]
    assert r.headers["content-range"] == f"bytes 1000-600000/{len(data)}"
    r = site.get("/library/movie.bin", h, headers={"Range": "bytes=0-1,5-6"})
    assert r.status_code == 200 and r.content == data             # max_ranges 1
    assert site.get("/library/movie.bin", h).content == data


@check("home-assistant")
def _home_assistant(site: Site) -> None:
    h = "home.example.test"
    r = site.get("/lovelace/0", h)
    assert r.status_code == 301 and r.headers["location"] == "https://home.example.test/lovelace/0"
    r = site.get("/auth/__redirect?to=http://home.example.test/auth/authorize", h, "TLS")
    assert r.status_code == 302
    assert r.headers["location"] == "https://home.example.test/auth/authorize"
    assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubdomains"
    assert site.upgrade("/api/websocket/__ws", h, "TLS") == "HTTP/1.1 101 Switching Protocols"
    assert site.app.last().header("Connection") == "upgrade"


@check("django-gunicorn")
def _django(site: Site) -> None:
    h = "example.test"
    assert site.get("/hello.txt", h).text == "hello\n"            # from disk
    r = site.get("/accounts/login/?next=/", h)
    assert r.status_code == 200
    up = site.app.last()
    assert up.target == "/accounts/login/?next=/" and up.header("Host") == h
    _forwarded(site, "http")
    r = site.get("/__redirect?to=/done/", h)
    assert r.headers["location"] == "/done/"                      # proxy_redirect off
    r = site.get("/__status?code=502", h)
    assert r.status_code == 502 and r.text.startswith("{")        # not intercepted
    with pytest.raises(httpx.RemoteProtocolError):
        site.get("/", "unknown.test")                             # return 444


@check("node-express")
def _node(site: Site) -> None:
    r = site.get("/api/items", "www.example.test")
    assert r.status_code == 200
    up = site.app.last()
    assert up.header("Host") == "www.example.test"
    # the hard-coded `Connection 'upgrade'` is left off a plain request (README: where
    # truehop differs; nginx would send it, with no Upgrade header)
    assert up.header("Connection") is None
    assert site.upgrade("/socket.io/__ws", "example.test") == "HTTP/1.1 101 Switching Protocols"


@check("keycloak")
def _keycloak(site: Site) -> None:
    h = "auth.example.test"
    assert site.get("/realms/master", h).status_code == 301
    big = "x" * 20000                                              # a large token cookie
    r = site.get("/realms/acme/protocol/openid-connect/auth?client_id=app", h, "TLS",
                 headers={"Cookie": f"KC={big}"})
    assert r.status_code == 200
    up = site.app.last()
    assert up.header("X-Forwarded-Host") == h and up.header("X-Forwarded-Port") == str(site.ports["TLS"])
    assert up.header("Cookie") == f"KC={big}"
    _forwarded(site, "https")
    assert site.get("/admin/master/console/", h, "TLS").status_code == 404
    assert site.get("/robots.txt", h, "TLS").text == "User-agent: *\nDisallow: /\n"


@check("docker-registry")
def _registry(site: Site) -> None:
    h = "registry.example.test"
    r = site.get("/v2/", h, "TLS")
    assert r.status_code == 401
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    r = site.get("/v2/", h, "TLS", headers={"Authorization": AUTH, "User-Agent": "docker/1.4.1"})
    assert r.status_code == 404
    blob = os.urandom(2 << 20)
    r = site.get("/v2/app/blobs/uploads/x?digest=sha256:1", h, "TLS", method="PUT",
                 content=blob, headers={"Authorization": AUTH, "User-Agent": "docker/27.0"})
    assert r.status_code == 200 and site.app.last().body == blob
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"


@check("synapse")
def _synapse(site: Site) -> None:
    h = "matrix.example.test"
    r = site.get("/_matrix/client/versions", h)
    assert r.status_code == 200
    up = site.app.last()
    assert up.header("Host") == f"{h}:{site.ports['PORT']}"
    assert up.header("X-Forwarded-For") == "127.0.0.1"
    # federation, on its own port, keeps the URI exactly as signed
    site.get("/_matrix/federation/v1/event/%24abc%3Aexample.test", h, "FED")
    assert site.app.last().target == "/_matrix/federation/v1/event/%24abc%3Aexample.test"
    r = site.get("/.well-known/matrix/server", h)
    assert r.json() == {"m.server": "matrix.example.test:443"}
    assert r.headers["content-type"] == "application/json"
    assert r.headers["access-control-allow-origin"] == "*"
    assert site.get("/", h).status_code == 404


@check("discourse")
def _discourse(site: Site) -> None:
    h = "forum.example.test"
    assert site.get("/latest", h).headers["location"] == "https://forum.example.test/latest"
    r = site.get("/t/welcome/1.json", h, "TLS")
    assert r.status_code == 200
    up = site.app.last()
    assert up.header("X-Forwarded-Proto") == "https" and up.header("Host") == h


@check("plausible")
def _plausible(site: Site) -> None:
    r = site.get("/api/event", "plausible.example.test", method="POST",
                 json={"n": "pageview", "u": "https://blog.example.test/"})
    assert r.status_code == 200
    up = site.app.last()
    assert up.header("Host") == "127.0.0.1:" + str(site.app.port)   # $proxy_host
    assert up.header("X-Forwarded-For") == "127.0.0.1"
    assert b"pageview" in up.body


@check("plausible-proxy")
def _plausible_proxy(site: Site) -> None:
    h = "blog.example.test"
    r = site.get("/js/script.js", h)
    assert r.status_code == 200 and site.app.last().path == "/js/script.js"
    assert r.headers["x-cache"] == "MISS"
    assert site.get("/js/script.js", h).headers["x-cache"] == "HIT"
    site.get("/api/event", h, method="POST", json={"n": "pageview"})
    up = site.app.last()
    assert up.header("Host") == "plausible.example.test" and up.header("X-Forwarded-Host") == h


@check("uptime-kuma")
def _uptime_kuma(site: Site) -> None:
    h = "status.example.test"
    site.get("/dashboard/1", h)
    assert site.app.last().path == "/dashboard/1"
    assert site.upgrade("/socket.io/__ws?EIO=4&transport=websocket", h) == \
        "HTTP/1.1 101 Switching Protocols"


@check("vaultwarden")
def _vaultwarden(site: Site) -> None:
    h = "vault.example.test"
    r = site.get("/#/login", h)
    assert r.status_code == 301 and r.headers["location"].startswith("https://vault.example.test/")
    assert site.get("/", "other.test").status_code == 404
    r = site.get("/api/config", h, "TLS")
    assert r.status_code == 200
    up = site.app.last()
    assert up.header("Connection") is None or up.header("Connection") == ""  # "" for keep-alive
    assert up.header("Early-Data") is None                  # $ssl_early_data is empty
    site.get("/api/sync", h, "TLS")
    assert site.app.connections_opened == 1                 # keepalive 2 holds the connection
    assert site.upgrade("/notifications/hub/__ws", h, "TLS") == "HTTP/1.1 101 Switching Protocols"
    res = run_truehop("-t", "-c", str(site.tp.conf_path), cwd=site.tp.tmp_path)
    assert "ssl-early-data-ignored" in res.stderr


@check("minio")
def _minio(site: Site) -> None:
    h = "minio.example.test"
    body = os.urandom(1 << 20)
    r = site.get("/bucket/key%20with%20space", h, method="PUT", content=iter([body]))
    assert r.status_code == 200 and site.app.last().body == body
    up = site.app.last()
    assert up.header("Host") == h and up.header("Transfer-Encoding") == "chunked"
    site.get("/minio/ui/browser/bucket", h)
    up2 = site.apps["UP2"].last()
    assert up2.path == "/browser/bucket" and up2.header("X-NginX-Proxy") == "true"
    assert site.upgrade("/minio/ui/ws/objectManager/__ws", h) == "HTTP/1.1 101 Switching Protocols"
    r = site.get("/big/__big?kb=512", h)
    assert len(r.content) == 512 * 1024


@check("portainer")
def _portainer(site: Site) -> None:
    h = "ops.example.test"
    site.get("/portainer/api/endpoints?x=1", h)
    up = site.app.last()
    assert up.target == "/api/endpoints?x=1" and up.header("Connection") is None
    assert site.upgrade("/portainer/api/websocket/exec/__ws?id=1", h) == \
        "HTTP/1.1 101 Switching Protocols"
    assert site.app.last().path == "/api/websocket/exec/__ws"


@check("code-server")
def _code_server(site: Site) -> None:
    h = "code.example.test"
    site.get("/?folder=/home/coder", h, headers={"Accept-Encoding": "br"})
    up = site.app.last()
    assert up.target == "/?folder=/home/coder" and up.header("Accept-Encoding") == "gzip"
    assert site.upgrade("/stable-123/__ws", h) == "HTTP/1.1 101 Switching Protocols"


@check("outline")
def _outline(site: Site) -> None:
    h = "docs.example.test"
    r = site.get("/doc/welcome-abc", h, "TLS")
    assert r.status_code == 200
    up = site.app.last()
    assert up.header("X-Scheme") == "https" and up.header("Connection") == "close"
    assert site.upgrade("/realtime/__ws", h, "TLS") == "HTTP/1.1 101 Switching Protocols"
    res = run_truehop("-t", "-c", str(site.tp.conf_path), cwd=site.tp.tmp_path)
    assert "ssl-ecdh-curve-list" in res.stderr and "ssl-conf-command-ignored" in res.stderr


@check("rails-puma")
def _rails(site: Site) -> None:
    h = "shop.example.test"
    assert site.get("/", h).text == "<h1>home</h1>\n"             # $uri/index.html
    assert site.get("/hello.txt", h).text == "hello\n"
    site.get("/products/1", h)
    assert site.app.last().path == "/products/1"
    _forwarded(site, "http")
    r = site.get("/assets/app.css", h)
    assert r.headers["cache-control"] == "max-age=315360000, public" or \
        "public" in r.headers.get_list("cache-control")
    assert site.upgrade("/cable/__ws", h) == "HTTP/1.1 101 Switching Protocols"


@check("oauth2-proxy")
def _oauth2(site: Site) -> None:
    h = "app.example.test"
    # the auth app (UP2) answers 200 to /oauth2/auth: the request goes on to the app
    r = site.get("/dashboard", h)
    assert r.status_code == 200 and site.app.last().path == "/dashboard"
    assert site.apps["UP2"].last().path == "/oauth2/auth"
    assert site.apps["UP2"].last().header("X-Forwarded-Uri") == "/dashboard"


@check("api-rate-limited")
def _api(site: Site) -> None:
    h = "api.example.test"
    codes = [site.get(f"/api/items/{i}", h).status_code for i in range(40)]
    assert codes[:21] == [200] * 21 and 429 in codes
    assert site.app.last().header("Connection") is None


@check("static-app")
def _static_app(site: Site) -> None:
    h = "anything.test"
    r = site.get("/hello.txt", h)
    assert r.text == "hello\n" and r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["x-file"] == f"{site.root}/hello.txt"
    assert r.headers["x-root"] == str(site.root)
    assert r.headers["server"] == "truehop"
    r = site.get("/index.html", h)
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    # not a file: to the app
    assert site.get("/users/7", h).status_code == 200 and site.app.last().path == "/users/7"
    r = site.get("/secure/", h)
    assert r.status_code == 301 and r.headers["location"] == "https://anything.test/secure/"
    r = site.get("/api/__headers?Set-Cookie=sid%3D1%3B%20Path%3D%2F", h)
    assert r.headers["set-cookie"] == "sid=1; Path=/; Secure; HttpOnly; SameSite=Lax"
    assert r.headers["content-type"] == "application/json; charset=utf-8"


def test_every_config_has_checks() -> None:
    assert len(NAMES) >= 20
    assert sorted(CHECKS) == NAMES


def test_config(site: Site) -> None:
    CHECKS[site.name](site)  # type: ignore[attr-defined]
