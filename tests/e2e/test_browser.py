"""A real browser through the reference site: headless Chromium (Debian's ``chromium``, driven
by Playwright) loads a page over HTTPS + HTTP/2, the page opens a WebSocket through the proxy
and shows the echo, and its stylesheet comes from disk with the ``expires 30d`` headers.

Skips (with the reason) only when /usr/bin/chromium or the ``playwright`` package is missing;
``make test`` installs both. Playwright never downloads a browser here: it launches the system
binary via ``executable_path``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trustme
from harness import free_port

pytestmark = pytest.mark.timeout(90)

HOST = "app.example.test"

# reference.conf (conf.d-style) wrapped in a stock nginx.conf-like http block (mime.types: truehop
# bundles nginx's when the file is absent): same map/upstream/servers, free ports,
# trustme certificates, and the static alias pointing at tmp_path, which also serves the page.
CONF = """
error_log error.log info;
events { }
http {
    include mime.types;
    default_type application/octet-stream;
    access_log access.log;

    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      '';
    }

    upstream app_backend {
        server 127.0.0.1:@@APP_A@@;
        server 127.0.0.1:@@APP_B@@;
        keepalive 32;
    }

    server {
        listen 127.0.0.1:@@HTTP@@;
        server_name app.example.test;
        return 301 https://$host$request_uri;
    }

    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        http2 on;
        server_name app.example.test;

        ssl_certificate     @@CERT@@;
        ssl_certificate_key @@KEY@@;

        location /static/ {
            alias @@STATIC@@/;
            access_log off;
            expires 30d;
        }

        location / {
            proxy_pass http://app_backend;

            proxy_set_header Host              $host;
            proxy_set_header X-Real-IP         $remote_addr;
            proxy_set_header X-Forwarded-For   $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host  $host;

            proxy_set_header Upgrade           $http_upgrade;
            proxy_set_header Connection        $connection_upgrade;
            proxy_http_version 1.1;

            proxy_buffering       on;
            proxy_connect_timeout 5s;
            proxy_send_timeout    60s;
            proxy_read_timeout    60s;
        }
    }
}
"""

INDEX_HTML = """<!doctype html>
<html>
<head>
  <meta charset="utf-8">
  <title>truehop browser test</title>
  <link rel="stylesheet" href="/static/app.css">
</head>
<body>
  <h1 id="title">truehop</h1>
  <div id="echo">waiting</div>
  <script>
    const out = document.getElementById("echo");
    const ws = new WebSocket("wss://" + location.host + "/__ws");
    ws.onopen = () => ws.send("ping");
    ws.onmessage = (ev) => { out.textContent = "echo:" + ev.data; ws.close(); };
    ws.onerror = () => { out.textContent = "ws-error"; };
  </script>
</body>
</html>
"""

APP_CSS = "#title { color: rgb(1, 2, 3); }\n"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--ignore-certificate-errors",
    f"--host-resolver-rules=MAP {HOST} 127.0.0.1",
]


def _playwright() -> Any:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package 'chromium'; `make sysdeps`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the 'playwright' Python package is not installed (pip install playwright)")
    return sync_playwright


def test_chromium_h2_websocket_and_static(truehop: Any, upstreams: Any, tmp_path: Path) -> None:
    sync_playwright = _playwright()

    static = tmp_path / "public" / "static"
    static.mkdir(parents=True)
    (static / "index.html").write_text(INDEX_HTML, encoding="utf-8")
    (static / "app.css").write_text(APP_CSS, encoding="utf-8")

    ca = trustme.CA()
    cert = ca.issue_cert(HOST, "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(tmp_path / "cert.pem"), append=True)
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))

    a, b = upstreams(2)
    tls = free_port()
    truehop(CONF, HTTP=free_port(), TLS=tls, APP_A=a.port, APP_B=b.port, STATIC=static,
            CERT=tmp_path / "cert.pem", KEY=tmp_path / "key.pem", ready_port=tls)

    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    url = f"https://{HOST}:{tls}/static/index.html"
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            ignore_https_errors=True, timeout=30_000)
        try:
            page = browser.new_page()
            css: dict[str, Any] = {}
            page.on("response", lambda r: css.setdefault("resp", r)
                    if r.url.endswith("/static/app.css") else None)
            resp = page.goto(url, wait_until="load", timeout=20_000)
            assert resp is not None and resp.status == 200, resp
            page.wait_for_function(
                "document.getElementById('echo').textContent !== 'waiting'", timeout=10_000)
            echo = page.text_content("#echo")
            proto = page.evaluate(
                "performance.getEntriesByType('navigation')[0].nextHopProtocol")
            css_proto = page.evaluate(
                "performance.getEntriesByType('resource')"
                ".filter(e => e.name.endsWith('/static/app.css'))"
                ".map(e => e.nextHopProtocol)[0]")
            color = page.evaluate(
                "getComputedStyle(document.getElementById('title')).color")
            css_resp = css.get("resp")
            css_headers = css_resp.all_headers() if css_resp is not None else {}
            css_status = css_resp.status if css_resp is not None else None
            css_body = css_resp.text() if css_resp is not None else None
        finally:
            browser.close()

    assert proto == "h2", f"page loaded over {proto!r}, not HTTP/2"
    assert css_proto == "h2", f"stylesheet loaded over {css_proto!r}, not HTTP/2"
    assert echo == "echo:ping", f"WebSocket echo did not arrive: {echo!r}"
    assert color == "rgb(1, 2, 3)", f"stylesheet not applied: {color!r} {css_headers}"
    assert css_headers.get("content-type") == "text/css", css_headers

    assert css_status == 200, f"stylesheet response: {css_status}"
    assert css_body == APP_CSS
    assert css_headers.get("cache-control") == "max-age=2592000", css_headers
    assert css_headers.get("expires", "").endswith(" GMT"), css_headers

    ws_reqs = [r for app in (a, b) for r in app.records if r.path == "/__ws"]
    assert ws_reqs, "no upstream saw the WebSocket handshake"
    assert ws_reqs[0].header("Host") == HOST
    assert ws_reqs[0].header("X-Forwarded-Proto") == "https"
    assert (ws_reqs[0].header("Upgrade") or "").lower() == "websocket"
    for app in (a, b):
        seen = [r.path for r in app.records]
        assert not any(p.startswith("/static/") for p in seen), (app.name, seen)
