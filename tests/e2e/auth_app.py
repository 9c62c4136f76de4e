"""A small authorization server for auth_request tests, in the shape of oauth2-proxy's
`/oauth2/auth` and `/oauth2/sign_in` endpoints: it decides by the request's
`Authorization` (or `Cookie: session=`) and records every request it receives.

    Bearer good   200, X-Auth-Request-User: alice, X-Auth-Request-Email: alice@example.test
    Bearer deny   403
    Bearer boom   500
    Bearer teapot 418
    (anything else) 401, WWW-Authenticate: Bearer realm="test"

`/oauth2/sign_in` answers 200 with a body naming the page (oauth2-proxy's sign-in page is a
200 too); `/slow-auth` waits 300 ms, then decides as above.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Seen:
    def __init__(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.server.seen.append(Seen(self.command, self.path, list(self.headers.items()), body))
        if self.path.startswith("/oauth2/sign_in"):
            self._send(200, [("Content-Type", "text/plain")], b"sign in page")
            return
        if self.path.startswith("/slow-auth"):
            time.sleep(0.3)
        auth = self.headers.get("Authorization") or ""
        cookie = self.headers.get("Cookie") or ""
        if auth == "Bearer good" or "session=good" in cookie:
            self._send(202 if self.path.startswith("/accepted") else 200,
                       [("X-Auth-Request-User", "alice"),
                        ("X-Auth-Request-Email", "alice@example.test")], b"auth body ignored")
        elif auth == "Bearer deny":
            self._send(403, [], b"no")
        elif auth == "Bearer boom":
            self._send(500, [], b"boom")
        elif auth == "Bearer teapot":
            self._send(418, [], b"teapot")
        else:
            self._send(401, [("WWW-Authenticate", 'Bearer realm="test"')], b"who?")

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _answer


class AuthApp:
    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.seen = []  # type: ignore[attr-defined]
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def seen(self) -> list[Seen]:
        return self.httpd.seen  # type: ignore[attr-defined, no-any-return]

    def __enter__(self) -> AuthApp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def worker_readable_dir() -> Iterator[Path]:
    """A directory for files truehop's workers read while serving (password files): outside
    pytest's base directory, which any pytest run starting on the machine resets to 0700,
    so that workers running as nobody may lose their way to it in the middle of a test."""
    d = Path(tempfile.mkdtemp(prefix="truehop-test-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
