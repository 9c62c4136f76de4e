"""Regenerate docs/demo.png, the README's picture of the demo page: `truehop demo` on free
ports, headless Chromium (Debian's `chromium`, driven by Playwright) on its HTTPS + HTTP/2 page
once the WebSocket echo, the SSE events and the pitfall checks are in.

    .venv/bin/python docs/screenshot_demo.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    http, https, a, b = (free_port() for _ in range(4))
    data = tempfile.mkdtemp(prefix="truehop-shot-")
    env = dict(os.environ, TRUEHOP_DATA_DIR=data)
    proc = subprocess.Popen([sys.executable, "-m", "truehop", "demo", "--listen",
                             f"127.0.0.1:{http}", "--tls-listen", f"127.0.0.1:{https}",
                             "--app-ports", f"{a},{b}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", https), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("truehop demo did not start") from None
                time.sleep(0.1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", "--ignore-certificate-errors",
                                               "--disable-quic"])
            page = browser.new_page(viewport={"width": 900, "height": 1400},
                                    ignore_https_errors=True)
            page.goto(f"https://localhost:{https}/", wait_until="load")
            page.click("#again")
            page.wait_for_function(
                "document.getElementById('events').textContent.split('\\n').length > 5"
                " && document.getElementById('wrong-redirect').textContent.includes('loop')"
                " && document.getElementById('history').textContent.split('\\n').length > 4",
                timeout=30_000)
            page.screenshot(path=str(HERE / "demo.png"), full_page=True)
            browser.close()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(10)
    print(HERE / "demo.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
