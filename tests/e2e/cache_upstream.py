"""The upstream of the proxy cache tests: a real HTTP/1.1 server (threads) that counts the
requests each path gets and answers with the caching fields the query asks for.

    ?cc=max-age%3D60      Cache-Control          ?expires=60 | past   Expires (from now)
    ?xae=10               X-Accel-Expires        ?cookie=1            Set-Cookie: a=1
    ?vary=Accept-Language Vary                   ?status=404          the status
    ?etag=v1              ETag: "v1" (answers 304 to If-None-Match: "v1")
    ?lm=1                 Last-Modified, fixed (answers 304 to the same If-Modified-Since)
    ?delay=300            wait that many ms first        ?size=100000   that many body bytes
    ?trunc=1              a body cut short (Content-Length 100 more than sent, then close)

The body is `<path> n=<count>`, so a test sees which upstream answer it got. `fail` maps a
path to a status to answer instead (or "close": close without answering).
"""

from __future__ import annotations

import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


class CacheUpstream:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.records: list[tuple[str, str, dict[str, str]]] = []
        self.fail: dict[str, Any] = {}
        self.lock = threading.Lock()
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                up.handle(self)

            def do_HEAD(self) -> None:
                up.handle(self)

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                up.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CacheUpstream:
        self.thread.start()
        return self

    def __exit__(self, *a: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, path: str) -> int:
        with self.lock:
            return self.counts.get(path, 0)

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        u = urlsplit(h.path)
        q = {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        with self.lock:
            n = self.counts[u.path] = self.counts.get(u.path, 0) + 1
            self.records.append((h.command, h.path, {k.lower(): v for k, v in h.headers.items()}))
        fail = self.fail.get(u.path)
        if fail == "close":
            h.close_connection = True
            h.wfile.flush()
            h.connection.close()
            return
        if "delay" in q:
            time.sleep(int(q["delay"]) / 1000)
        status = int(fail) if fail else int(q.get("status", "200"))
        headers: list[tuple[str, str]] = []
        if "cc" in q:
            headers.append(("Cache-Control", q["cc"]))
        if "expires" in q:
            when = time.time() - 3600 if q["expires"] == "past" else time.time() + int(q["expires"])
            headers.append(("Expires", formatdate(when, usegmt=True)))
        if "xae" in q:
            headers.append(("X-Accel-Expires", q["xae"]))
        if "cookie" in q:
            headers.append(("Set-Cookie", "a=1"))
        if "vary" in q:
            headers.append(("Vary", q["vary"]))
        etag = f'"{q["etag"]}"' if "etag" in q else None
        if etag:
            headers.append(("ETag", etag))
        if "lm" in q:
            headers.append(("Last-Modified", LAST_MODIFIED))
        if "ar" in q:
            headers.append(("Accept-Ranges", "bytes"))
        inm = h.headers.get("If-None-Match")
        ims = h.headers.get("If-Modified-Since")
        if not fail and ((etag and inm == etag) or ("lm" in q and ims == LAST_MODIFIED)):
            status = 304
        if status == 304:
            body = b""
        elif "size" in q:
            body = (b"x" * int(q["size"]))
        else:
            body = f"{u.path} n={n} lang={h.headers.get('Accept-Language', '')}".encode()
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        if status != 304:
            h.send_header("Content-Type", "text/plain")
            if "trunc" not in q:
                h.send_header("Content-Length", str(len(body)))
        if "trunc" in q:
            # a Content-Length the body never reaches: the connection closes after 10 bytes
            h.send_header("Content-Length", str(len(body) + 100))
            h.end_headers()
            h.wfile.write(body[:10])
            h.wfile.flush()
            h.close_connection = True
            return
        h.end_headers()
        if h.command != "HEAD" and status != 304:
            h.wfile.write(body)
