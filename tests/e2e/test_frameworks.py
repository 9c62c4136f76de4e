"""Real application frameworks behind truehop, configured as their deployment guides say, and
checked by what each framework concluded (not only the raw headers it received):

* Django with SECURE_SSL_REDIRECT + SECURE_PROXY_SSL_HEADER: no redirect loop behind TLS,
  `request.is_secure()`, HTTPS absolute URLs, plain HTTP sent to HTTPS by Django itself;
* Flask behind werkzeug's ProxyFix: `request.remote_addr`, scheme, external URLs;
* Starlette under uvicorn --proxy-headers --forwarded-allow-ips: `request.client`, scheme;
* Express with `trust proxy` and a `ws` WebSocket server (npm): `req.ip`, `req.secure`, and a
  WebSocket through the proxy.

truehop runs the config a deployment guide gives for each: TLS + HTTP/2 on one port, plain
HTTP on another, the forwarding headers, the WebSocket map. The apps install with `make test`
(Python packages from the test extra; the Express app's node_modules with `npm ci`)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import websockets
from harness import free_port, free_ports, wait_port

pytestmark = pytest.mark.timeout(90)

HERE = Path(__file__).parent / "frameworks"
EXPRESS = HERE / "express"

CONF = """
events {}
http {
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      '';
    }
    upstream app {
        server 127.0.0.1:@@APP@@;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:@@HTTP@@;
        listen 127.0.0.1:@@TLS@@ ssl;
        http2 on;
        server_name localhost;
        ssl_certificate     @@CERT@@;
        ssl_certificate_key @@KEY@@;

        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Host              $host;
            proxy_set_header X-Real-IP         $remote_addr;
            proxy_set_header X-Forwarded-For   $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host  $host;
            proxy_set_header Upgrade           $http_upgrade;
            proxy_set_header Connection        $connection_upgrade;
        }
    }
}
"""


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ssl.SSLContext]:
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    leaf.private_key_pem.write_to_path(str(d / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return d / "cert.pem", d / "key.pem", ctx


def _start(cmd: list[str], port: int, cwd: Path) -> Iterator[None]:
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=30, proc=proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def behind(truehop: Any, tls: tuple[Path, Path, ssl.SSLContext]) -> Any:
    """behind(cmd, port) starts the app and truehop in front; returns (http, https) bases."""
    stack: list[Iterator[None]] = []

    def make(cmd: list[str], port: int, cwd: Path = HERE) -> tuple[str, str]:
        it = _start(cmd, port, cwd)
        next(it)
        stack.append(it)
        http, https = free_ports(2)
        truehop(CONF, APP=port, HTTP=http, TLS=https, CERT=tls[0], KEY=tls[1])
        return f"http://localhost:{http}", f"https://localhost:{https}"

    yield make
    for it in stack:
        next(it, None)


def _need(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is in the test extra (`make test` installs it)")


def test_django_secure_redirect_and_proxy_ssl_header(behind: Any, tls: Any) -> None:
    _need("django")
    port = free_port()
    http, https = behind([sys.executable, "django_site.py", str(port)], port)
    with httpx.Client(verify=tls[2], http2=True) as c:
        r = c.get(https + "/account/?next=1")
        assert r.status_code == 200, r.text      # no redirect: Django knows it was HTTPS
        assert r.http_version == "HTTP/2"
        got = r.json()
        assert got["is_secure"] is True and got["scheme"] == "https"
        assert got["host"] == "localhost"
        assert got["absolute_uri"] == "https://localhost/account/?next=1"
        assert got["real_ip"] == "127.0.0.1"
    # plain HTTP reaches Django as http: Django itself redirects to HTTPS (once, not a loop)
    r = httpx.get(http + "/account/")
    assert r.status_code == 301 and r.headers["location"] == "https://localhost/account/"


def test_flask_proxyfix(behind: Any, tls: Any) -> None:
    _need("flask")
    port = free_port()
    http, https = behind([sys.executable, "flask_app.py", str(port)], port)
    got = httpx.get(https + "/a/b", verify=tls[2]).json()
    assert got == {"framework": "flask", "remote_addr": "127.0.0.1", "scheme": "https",
                   "is_secure": True, "host": "localhost",
                   "external_url": "https://localhost/a/b"}
    # a client's own X-Forwarded-For is kept in the chain, but ProxyFix(x_for=1) trusts only
    # the address the one proxy added: the client cannot choose its address
    got = httpx.get(http + "/a", headers={"X-Forwarded-For": "198.51.100.1"}).json()
    assert got["remote_addr"] == "127.0.0.1" and got["scheme"] == "http"


def test_starlette_uvicorn_proxy_headers(behind: Any, tls: Any) -> None:
    _need("starlette")
    _need("uvicorn")
    port = free_port()
    http, https = behind([sys.executable, "starlette_app.py", str(port)], port)
    got = httpx.get(https + "/x?y=1", verify=tls[2]).json()
    assert got["client"] == "127.0.0.1" and got["scheme"] == "https"
    assert got["url"] == "https://localhost/x?y=1"
    assert httpx.get(http + "/x").json()["scheme"] == "http"


def test_express_trust_proxy_and_ws(behind: Any, tls: Any) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (Debian packages nodejs, npm; `make sysdeps`)")
    if not (EXPRESS / "node_modules" / "express").is_dir():
        pytest.fail("the Express app's packages are missing: `make test` runs npm ci in "
                    f"{EXPRESS}")
    port = free_port()
    http, https = behind([node, "app.js", str(port)], port, cwd=EXPRESS)
    got = httpx.get(https + "/p", verify=tls[2]).json()
    assert got["ip"] == "127.0.0.1" and got["protocol"] == "https" and got["secure"] is True
    assert got["hostname"] == "localhost"
    got = httpx.get(http + "/p").json()
    assert got["protocol"] == "http" and got["secure"] is False

    async def ws() -> dict[str, Any]:
        url = https.replace("https://", "wss://") + "/ws"
        async with websockets.connect(url, ssl=tls[2]) as w:
            await w.send("hi")
            return dict(json.loads(await w.recv()))

    answer = asyncio.run(ws())
    assert answer["echo"] == "hi" and answer["forwardedFor"] == "127.0.0.1"


def test_express_packages_are_locked() -> None:
    """`npm ci` needs the lock file; the installed tree matches it."""
    lock = json.loads((EXPRESS / "package-lock.json").read_text())
    assert "node_modules/express" in lock["packages"] and "node_modules/ws" in lock["packages"]
    assert os.path.exists(EXPRESS / "package.json")
