"""`truehop demo` (what `make run` starts), run as a person runs it: the real command, its
two demo apps, and real clients, including headless Chromium reading the page over HTTPS +
HTTP/2 as a visitor would."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from harness import _ServerProcess, free_ports
from test_browser import CHROMIUM, _playwright

pytestmark = pytest.mark.timeout(90)


class DemoProcess(_ServerProcess):
    """`python -m truehop demo` on free ports, with a private data directory (local CA)."""

    name = "truehop-demo"

    def __init__(self, tmp_path: Path) -> None:
        self.http, self.https, self.app_a, self.app_b = free_ports(4)
        super().__init__("", tmp_path, ready_port=self.https)

    def write_config(self, config_text: str | None = None) -> None:
        pass

    def command(self) -> list[str]:
        return [sys.executable, "-m", "truehop", "demo", "--listen", f"127.0.0.1:{self.http}",
                "--tls-listen", f"127.0.0.1:{self.https}",
                "--app-ports", f"{self.app_a},{self.app_b}"]

    def start(self) -> DemoProcess:
        os.environ["TRUEHOP_DATA_DIR"] = str(self.tmp_path / "data")
        try:
            super().start()
        finally:
            del os.environ["TRUEHOP_DATA_DIR"]
        return self

    def ca(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tmp_path / "data" / "ca.pem"))


@pytest.fixture
def demo(tmp_path: Path) -> Any:
    with DemoProcess(tmp_path) as d:
        yield d


def test_demo_serves_https_h2_and_http(demo: DemoProcess) -> None:
    err = demo.stderr()
    assert f"https://localhost:{demo.https}/" in err and f"http://127.0.0.1:{demo.http}/" in err
    assert "update-ca-certificates" in err
    # the start-up lint names the two pitfall locations, with their lines
    assert "[missing-host]" in err and '"/pitfalls/no-headers/"' in err
    assert "[missing-forwarded-proto]" in err and '"/pitfalls/no-proto/"' in err
    with httpx.Client(verify=demo.ca(), http2=True) as c:
        page = c.get(f"https://localhost:{demo.https}/")
        assert page.http_version == "HTTP/2"
        assert page.headers["content-type"].startswith("text/html")
        assert "truehop demo" in page.text
        apps = set()
        for _ in range(4):
            r = c.get(f"https://localhost:{demo.https}/api/whoami")
            rec = r.json()
            apps.add(rec["app"])
            headers = {k.lower(): v for k, v in rec["headers"]}
            assert headers["x-forwarded-proto"] == "https"
            assert headers["x-real-ip"] == "127.0.0.1"
            assert headers["host"] == "localhost"
            assert r.headers["x-client-protocol"] == "HTTP/2.0"
        assert apps == {"app-a", "app-b"}
        css = c.get(f"https://localhost:{demo.https}/static/style.css")
        assert css.headers["cache-control"] == "max-age=3600"
        # the wrong location on purpose: over HTTPS, the app redirects to the same URL forever
        loop = c.get(f"https://localhost:{demo.https}/pitfalls/no-proto/__https_redirect")
        assert loop.status_code == 301
        assert loop.headers["location"] == \
            "https://localhost/pitfalls/no-proto/__https_redirect"
        right = c.get(f"https://localhost:{demo.https}/__https_redirect")
        assert right.status_code == 200
    plain = httpx.get(f"http://127.0.0.1:{demo.http}/api/x").json()
    assert {k.lower(): v for k, v in plain["headers"]}["x-forwarded-proto"] == "http"

    async def echo() -> str:
        async with websockets.connect(f"wss://localhost:{demo.https}/__ws",
                                      ssl=demo.ca()) as w:
            await w.send("through truehop")
            return str(await w.recv())

    assert asyncio.run(echo()) == "through truehop"


def test_demo_page_in_chromium(demo: DemoProcess, tmp_path: Path) -> None:
    sync_playwright = _playwright()
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "--ignore-certificate-errors"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=args,
            ignore_https_errors=True, timeout=30_000)
        try:
            page = browser.new_page()
            resp = page.goto(f"https://localhost:{demo.https}/", wait_until="load",
                             timeout=20_000)
            assert resp is not None and resp.status == 200
            assert page.evaluate(
                "performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
            page.wait_for_function("document.getElementById('ws').textContent.includes('echo')",
                                   timeout=15_000)
            page.wait_for_function(
                "document.getElementById('events').textContent.split('\\n').length > 5",
                timeout=15_000)
            page.wait_for_function(
                "document.getElementById('wrong-redirect').textContent.includes('loop')",
                timeout=20_000)
            assert page.text_content("#client-addr") == "127.0.0.1"
            assert page.text_content("#scheme") == "https"
            assert page.text_content("#protocol") == "HTTP/2.0 over TLS"
            assert "echo: hello through truehop" in (page.text_content("#ws") or "")
            events = (page.text_content("#events") or "").strip().split("\n")
            assert len(events) == 5
            # each event arrived on its own, about 500 ms after the one before: streamed
            gaps = [int(e.rsplit("+", 1)[1].split()[0]) for e in events[1:]]
            assert all(g >= 200 for g in gaps), gaps
            assert page.text_content("#wrong-host") == "demo_app"
            assert page.text_content("#right-host") == "localhost"
            assert page.text_content("#right-redirect") == "200 after no redirect"
            assert "max-age=3600" in (page.text_content("#static") or "")
        finally:
            browser.close()
