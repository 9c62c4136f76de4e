"""gzip end to end: the real truehop, static files and a proxied demo app, over HTTP/1.1,
HTTP/1.0 and HTTP/2 (h2c); and, where nginx is installed, the same requests through nginx,
comparing which responses are compressed and the fields gzip touches.

Bodies are read raw (http.client does not decode) and decompressed here, so a test sees
what a client receives on the wire."""

from __future__ import annotations

import gzip as gzip_lib
import http.client
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import free_port, nginx_binary, run_truehop

CONF = """
log_format gz '$request_uri $status $gzip_ratio';
server {
    listen 127.0.0.1:@@PORT@@;
    #H2
    root @@ROOT@@;
    access_log @@ROOT@@/../gz.log gz;
    types { text/html html; text/css css; image/png png; text/plain txt; }
    default_type application/octet-stream;
    gzip on;
    gzip_vary on;
    gzip_types text/css application/json text/event-stream;
    location / { }
    location /min/ { gzip_min_length 10000; }
    location /old/ { gzip_http_version 1.0; }
    location /off/ { gzip off; }
    location /st/ { gzip_static on; }
    location /always/ { gzip_static always; gzip off; }
    location /novary/ { gzip_static on; gzip_vary off; }
    location /up/ { proxy_pass http://127.0.0.1:@@UP@@/; }
    location /any/ { proxy_pass http://127.0.0.1:@@UP@@/; gzip_proxied any; }
    location /expired/ { proxy_pass http://127.0.0.1:@@UP@@/; gzip_proxied expired no_etag; }
    location /sse/ { proxy_pass http://127.0.0.1:@@UP@@/; proxy_buffering off; }
    location /buffered/ { proxy_pass http://127.0.0.1:@@UP@@/; }
    location /nope/ { return 404; }
    #GUNZIP
}
"""

HTML = b"<p>Hello, compressed world.</p>\n" * 200
CSS = b"body { color: #333; margin: 0 auto; }\n" * 100
TXT = b"plain text is not in gzip_types\n" * 100
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20


def make_root(tmp: Path) -> Path:
    root = tmp / "html"
    for d in ("", "min", "old", "off", "st", "always", "novary"):
        (root / d).mkdir(parents=True, exist_ok=True)
        (root / d / "a.html").write_bytes(HTML)
        (root / d / "s.css").write_bytes(CSS)
    (root / "t.txt").write_bytes(TXT)
    (root / "i.png").write_bytes(PNG)
    for d in ("st", "always", "novary"):
        (root / d / "s.css.gz").write_bytes(gzip_lib.compress(CSS, 9))
        (root / d / "only.css.gz").write_bytes(gzip_lib.compress(b"only compressed\n" * 10))
    return root


class Resp:
    def __init__(self, status: int, headers: list[tuple[str, str]], raw: bytes) -> None:
        self.status = status
        self.headers = headers
        self.raw = raw

    def get(self, name: str) -> str | None:
        n = name.lower()
        return next((v for k, v in self.headers if k.lower() == n), None)

    def all(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    @property
    def body(self) -> bytes:
        if self.get("content-encoding") == "gzip":
            return gzip_lib.decompress(self.raw)
        return self.raw


def fetch(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
          version: str = "1.1") -> Resp:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    if version == "1.0":
        c._http_vsn = 10               # type: ignore[attr-defined]
        c._http_vsn_str = "HTTP/1.0"   # type: ignore[attr-defined]
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        return Resp(r.status, r.getheaders(), raw)
    finally:
        c.close()


GZ = {"Accept-Encoding": "gzip, deflate, br"}


@pytest.fixture
def docs() -> Iterator[Path]:
    """A directory for the served files outside pytest's base directory: another pytest
    session on the machine starting as the same user makes that base 0700 again, and
    truehop's workers (nobody, when started as root) would then meet EACCES."""
    d = Path(tempfile.mkdtemp(prefix="truehop-gzip-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def site(truehop: Any, upstream: Any, docs: Path) -> Any:
    tmp_path = docs
    root = make_root(tmp_path)
    port = free_port()
    tp = truehop(CONF.replace("#H2", "http2 on;"), port=port, up=upstream.port, root=str(root))
    tp.port = port
    tp.root = root
    tp.log_path = tmp_path / "gz.log"
    return tp


def test_static_file_is_compressed_with_nginx_headers(site: Any) -> None:
    r = fetch(site.port, "/a.html", GZ)
    assert r.status == 200
    assert r.get("content-encoding") == "gzip"
    assert r.get("vary") == "Accept-Encoding"
    assert r.get("transfer-encoding") == "chunked" and r.get("content-length") is None
    assert r.get("accept-ranges") is None
    etag = r.get("etag")
    assert etag is not None and etag.startswith('W/"')       # weakened
    assert r.body == HTML and len(r.raw) < len(HTML) // 10
    # no Accept-Encoding: the file as it is, with Vary (a cache must keep both)
    plain = fetch(site.port, "/a.html")
    assert plain.get("content-encoding") is None and plain.raw == HTML
    assert plain.get("content-length") == str(len(HTML))
    assert plain.get("vary") == "Accept-Encoding"
    assert plain.get("etag") == etag[2:]
    # the weak ETag revalidates: 304, not compressed, no body
    nm = fetch(site.port, "/a.html", {**GZ, "If-None-Match": etag})
    assert nm.status == 304 and nm.raw == b"" and nm.get("content-encoding") is None


@pytest.mark.parametrize("path, headers, compressed, vary", [
    ("/t.txt", GZ, False, False),                 # not a gzip_types type
    ("/i.png", GZ, False, False),
    ("/s.css", GZ, True, True),
    ("/min/a.html", GZ, False, False),            # shorter than gzip_min_length
    ("/off/a.html", GZ, False, False),
    ("/a.html", {"Accept-Encoding": "gzip;q=0"}, False, True),
    ("/a.html", {"Accept-Encoding": "deflate, br"}, False, True),
    ("/a.html", {"Accept-Encoding": "br, GZIP;q=0.5"}, True, True),
    ("/a.html", {**GZ, "Via": "1.1 cache"}, False, True),      # gzip_proxied off
    ("/nope/x", GZ, True, True),                  # nginx's own 404 page (text/html)
    ("/missing.html", GZ, True, True),
])
def test_what_is_compressed(site: Any, path: str, headers: dict[str, str], compressed: bool,
                            vary: bool) -> None:
    r = fetch(site.port, path, headers)
    assert (r.get("content-encoding") == "gzip") is compressed
    assert (r.get("vary") == "Accept-Encoding") is vary
    if compressed:
        assert r.get("content-length") is None
        assert r.body.startswith(b"<") or path == "/s.css"


def test_http10_needs_gzip_http_version_10(site: Any) -> None:
    r = fetch(site.port, "/a.html", GZ, version="1.0")
    assert r.get("content-encoding") is None and r.raw == HTML
    assert r.get("vary") == "Accept-Encoding"
    r = fetch(site.port, "/old/a.html", GZ, version="1.0")
    # compressed, and with no length and no chunked coding in HTTP/1.0: the close ends it
    assert r.get("content-encoding") == "gzip" and r.get("content-length") is None
    assert r.get("transfer-encoding") is None and r.body == HTML


def test_a_range_of_a_compressed_file_is_the_whole_file_compressed(site: Any) -> None:
    # nginx's range filter runs after gzip and finds the length cleared: 200, everything
    r = fetch(site.port, "/a.html", {**GZ, "Range": "bytes=0-9"})
    assert r.status == 200 and r.get("content-encoding") == "gzip" and r.body == HTML
    assert r.get("content-range") is None
    # without gzip, or for a type gzip leaves alone, the range as usual
    r = fetch(site.port, "/a.html", {"Range": "bytes=0-9"})
    assert r.status == 206 and r.raw == HTML[:10]
    r = fetch(site.port, "/i.png", {**GZ, "Range": "bytes=0-9"})
    assert r.status == 206 and r.raw == PNG[:10] and r.get("content-encoding") is None


def test_head_has_the_compressed_head(site: Any) -> None:
    r = fetch(site.port, "/a.html", GZ, method="HEAD")
    assert r.status == 200 and r.raw == b""
    assert r.get("content-encoding") == "gzip" and r.get("content-length") is None
    etag = r.get("etag")
    assert etag is not None and etag.startswith('W/"')


def test_proxied_responses(site: Any, upstream: Any) -> None:
    r = fetch(site.port, "/up/json", GZ)
    assert r.status == 200 and r.get("content-encoding") == "gzip"
    assert b'"target"' in r.body and r.get("content-length") is None
    # the upstream's own strong ETag is weakened, its Accept-Ranges dropped
    r = fetch(site.port, "/up/__headers?ETag=%22v1%22&Accept-Ranges=bytes", GZ)
    assert r.get("etag") == 'W/"v1"' and r.get("accept-ranges") is None
    # already encoded: passed as is
    r = fetch(site.port, "/up/__headers?Content-Encoding=br", GZ)
    assert r.get("content-encoding") == "br" and r.get("vary") is None
    # a 206 (or any status but 200/403/404) from the upstream is not compressed
    for code in (206, 500, 201):
        r = fetch(site.port, f"/up/__headers?__code={code}", GZ)
        assert r.status == code and r.get("content-encoding") is None
    for code in (403, 404):
        r = fetch(site.port, f"/up/__headers?__code={code}", GZ)
        assert r.status == code and r.get("content-encoding") == "gzip"
    # the upstream asked for the identity it got: truehop never forwards a coding choice
    # for the client (Accept-Encoding goes upstream unchanged, as nginx)
    assert upstream.records[-1].header("Accept-Encoding") == GZ["Accept-Encoding"]


@pytest.mark.parametrize("path, compressed", [
    ("/up/json", False),                                                # off
    ("/any/json", True),
    ("/expired/json", True),                                            # no caching fields
    ("/expired/__headers?Expires=Thu,%2001%20Jan%201970%2000:00:00%20GMT", True),
    ("/expired/__headers?Expires=Thu,%2001%20Jan%202099%2000:00:00%20GMT", False),
    ("/expired/__headers?Cache-Control=no-cache", False),              # not listed
    ("/expired/__headers?ETag=%22x%22", False),                         # no_etag
])
def test_requests_via_a_proxy_follow_gzip_proxied(site: Any, path: str,
                                                  compressed: bool) -> None:
    r = fetch(site.port, path, {**GZ, "Via": "1.1 squid"})
    assert (r.get("content-encoding") == "gzip") is compressed
    assert r.get("vary") == "Accept-Encoding"


@pytest.mark.parametrize("prefix", ["/sse/", "/buffered/"])
def test_sse_streams_through_gzip(site: Any, prefix: str) -> None:
    """Each event reaches the client decodable before the next is sent: the relay's flush
    becomes a zlib sync flush (proxy_buffering off; truehop relays buffered responses as
    they come too)."""
    n, interval = 4, 0.4
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    text = b""
    arrivals: list[float] = []
    start = time.monotonic()
    with httpx.Client(timeout=10) as c, c.stream(
            "GET", f"http://127.0.0.1:{site.port}{prefix}__sse?n={n}&interval_ms={int(interval * 1000)}",
            headers=GZ) as r:
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["content-type"] == "text/event-stream"
        for raw in r.iter_raw():
            text += d.decompress(raw)
            while text.count(b"\n\n") > len(arrivals):
                arrivals.append(time.monotonic() - start)
    text += d.flush()
    assert text.count(b"data: ") == n and d.eof
    assert len(arrivals) == n
    # the first event was readable long before the last one was sent
    assert arrivals[-1] - arrivals[0] >= (n - 1) * interval * 0.6, arrivals


def test_gzip_static(site: Any) -> None:
    gz = (site.root / "st" / "s.css.gz").read_bytes()
    r = fetch(site.port, "/st/s.css", GZ)
    assert r.status == 200 and r.raw == gz                   # the .gz itself, not recompressed
    assert r.get("content-encoding") == "gzip" and r.get("content-length") == str(len(gz))
    assert r.get("content-type") == "text/css" and r.get("vary") == "Accept-Encoding"
    etag = r.get("etag")
    assert etag is not None and not etag.startswith("W/")     # the .gz's own, strong
    assert r.get("accept-ranges") == "bytes"                  # nginx 1.23.4+
    # a range of the .gz
    rr = fetch(site.port, "/st/s.css", {**GZ, "Range": "bytes=0-9"})
    assert rr.status == 206 and rr.raw == gz[:10] and rr.get("content-encoding") == "gzip"
    # a client without gzip: the file itself (gzip would compress it: it cannot either)
    r = fetch(site.port, "/st/s.css")
    assert r.raw == CSS and r.get("content-encoding") is None
    assert r.get("vary") == "Accept-Encoding"
    # only the .gz exists: served to gzip clients, 404 to the others
    r = fetch(site.port, "/st/only.css", GZ)
    assert r.status == 200 and r.body == b"only compressed\n" * 10
    assert fetch(site.port, "/st/only.css").status == 404
    # no .gz: the gzip filter compresses the file
    r = fetch(site.port, "/st/a.html", GZ)
    assert r.get("content-encoding") == "gzip" and r.body == HTML
    # HEAD: the .gz's length
    r = fetch(site.port, "/st/s.css", GZ, method="HEAD")
    assert r.get("content-length") == str(len(gz)) and r.get("content-encoding") == "gzip"
    # revalidation against the .gz's ETag
    r = fetch(site.port, "/st/s.css", {**GZ, "If-None-Match": etag})
    assert r.status == 304


def test_gzip_static_always_and_without_vary(site: Any) -> None:
    gz = (site.root / "always" / "s.css.gz").read_bytes()
    r = fetch(site.port, "/always/s.css")                    # no Accept-Encoding at all
    assert r.raw == gz and r.get("content-encoding") == "gzip"
    assert r.get("vary") is None                              # `always` sets no Vary
    r = fetch(site.port, "/novary/s.css")
    assert r.raw == CSS and r.get("vary") is None
    r = fetch(site.port, "/novary/s.css", GZ)
    assert r.get("content-encoding") == "gzip" and r.get("vary") is None


def test_http2(site: Any) -> None:
    with httpx.Client(http1=False, http2=True, timeout=10) as c:
        with c.stream("GET", f"http://127.0.0.1:{site.port}/a.html", headers=GZ) as r:
            assert r.http_version == "HTTP/2"
            assert r.headers["content-encoding"] == "gzip"
            assert "content-length" not in r.headers
            assert r.headers["vary"] == "Accept-Encoding"
            raw = b"".join(r.iter_raw())
        assert gzip_lib.decompress(raw) == HTML
        r = c.get(f"http://127.0.0.1:{site.port}/up/json", headers=GZ)
        assert r.headers["content-encoding"] == "gzip" and r.json()["target"] == "/json"
        r = c.get(f"http://127.0.0.1:{site.port}/st/s.css", headers=GZ)
        assert r.headers["content-length"] == str((site.root / "st" / "s.css.gz").stat().st_size)
        assert r.content == CSS                                # httpx decodes it


def test_gzip_ratio_in_the_access_log(site: Any) -> None:
    r = fetch(site.port, "/a.html", GZ)
    fetch(site.port, "/a.html")
    fetch(site.port, "/a.html", GZ, method="HEAD")
    lines: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = site.log_path.read_text().splitlines() if site.log_path.exists() else []
        if len(lines) >= 3:
            break
        time.sleep(0.05)
    first, second, third = lines[:3]
    zout = len(r.raw) - 8          # nginx counts the gzip header and deflate stream
    uri, status, ratio = first.split()
    assert (uri, status) == ("/a.html", "200")
    assert abs(float(ratio) - len(HTML) / zout) <= 0.005 and len(ratio.split(".")[1]) == 2
    assert second == "/a.html 200 -" and third == "/a.html 200 -"


def test_config_errors_name_the_line(tmp_path: Path) -> None:
    conf = tmp_path / "t.conf"
    conf.write_text("server {\n    listen 127.0.0.1:1;\n    gzip_comp_level 11;\n}\n")
    out = run_truehop("-t", "-c", str(conf))
    assert out.returncode == 1
    assert f'"gzip_comp_level" directive must be between 1 and 9 in {conf}:3' in out.stderr


# -- differential ------------------------------------------------------------------------------

# (path, request headers): what each server answers is compared on the fields gzip decides
MATRIX: list[tuple[str, dict[str, str]]] = [
    ("/a.html", GZ),
    ("/a.html", {}),
    ("/a.html", {"Accept-Encoding": "gzip;q=0"}),
    ("/a.html", {"Accept-Encoding": "gzip; q=0.5"}),
    ("/a.html", {"Accept-Encoding": "x-gzip"}),
    ("/a.html", {"Accept-Encoding": "deflate,gzip"}),
    ("/a.html", {**GZ, "Range": "bytes=0-9"}),
    ("/a.html", {**GZ, "Via": "1.1 cache"}),
    ("/a.html", {**GZ, "User-Agent": "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"}),
    ("/s.css", GZ),
    ("/t.txt", GZ),
    ("/i.png", {**GZ, "Range": "bytes=0-9"}),
    ("/min/a.html", GZ),
    ("/off/a.html", GZ),
    ("/nope/x", GZ),
    ("/missing.html", GZ),
    ("/st/s.css", GZ),
    ("/st/s.css", {}),
    ("/st/only.css", GZ),
    ("/st/only.css", {}),
    ("/st/a.html", GZ),
    ("/always/s.css", {}),
    ("/novary/s.css", {}),
    ("/up/json", GZ),
    ("/up/json", {**GZ, "Via": "x"}),
    ("/any/json", {**GZ, "Via": "x"}),
    ("/expired/__headers?Expires=Thu,%2001%20Jan%201970%2000:00:00%20GMT", {**GZ, "Via": "x"}),
    ("/expired/__headers?ETag=%22x%22", {**GZ, "Via": "x"}),
    ("/up/__headers?ETag=%22v1%22", GZ),
    ("/up/__headers?ETag=v1", GZ),
    ("/up/__headers?Content-Encoding=identity", GZ),
    ("/up/__headers?__code=206", GZ),
    ("/up/__headers?__code=404", GZ),
    ("/up/__headers?__code=500", GZ),
    ("/up/__chunked", GZ),
    ("/sse/__sse?n=2&interval_ms=10", GZ),
    # HEAD (nginx compresses the head too), HTTP/1.0, a revalidation
    ("HEAD /a.html", GZ),
    ("HEAD /st/s.css", GZ),
    ("HEAD /up/json", GZ),
    ("1.0 /a.html", GZ),
    ("1.0 /old/a.html", GZ),
    ("/a.html", {**GZ, "If-Modified-Since": "Thu, 01 Jan 2099 00:00:00 GMT"}),
    ("/gunzip/s.css", GZ),
    ("/gunzip/s.css", {}),
    ("HEAD /gunzip/s.css", {}),
    ("/gunzip-up/s.css", {}),
    ("/gunzip-up/s.css", {**GZ, "Via": "x"}),
]

# the fields compared; the body is compared decompressed (static files only: the demo app
# echoes the request, which differs between the two)
FIELDS = ("content-encoding", "vary", "etag", "content-type")


def shape(r: Resp, path: str) -> tuple[Any, ...]:
    etag = r.get("etag")
    # the same ETag shape (weak or strong, quoted or not, present or not): the values
    # differ with the file's mtime between runs
    etag_shape = None if etag is None else (etag.startswith("W/"), etag.lstrip("W/")[:1])
    return (r.status, r.get("content-encoding"), r.all("vary"), etag_shape, r.get("content-type"),
            r.get("content-length") is not None, r.get("content-range"),
            r.body if r.status < 400 and not path.startswith(("/up/", "/any/", "/expired/"))
            else None)


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
def test_same_as_nginx(truehop: Any, nginx: Any, upstream: Any, docs: Path) -> None:
    root = make_root(docs)
    tport, nport = free_port(), free_port()
    conf = CONF.replace("#GUNZIP", GUNZIP)
    truehop(conf, port=tport, up=upstream.port, root=str(root))
    nginx(conf, port=nport, up=upstream.port, root=str(root))
    diffs = []
    for line, headers in MATRIX:
        method, version, path = "GET", "1.1", line
        if line.startswith("HEAD "):
            method, path = "HEAD", line[5:]
        elif line.startswith("1.0 "):
            version, path = "1.0", line[4:]
        want = shape(fetch(nport, path, headers, method, version), path)
        got = shape(fetch(tport, path, headers, method, version), path)
        if want != got:
            diffs.append((line, headers, want, got))
    assert not diffs, "\n".join(map(repr, diffs))


# -- gunzip ----------------------------------------------------------------------------------

GUNZIP = """
    location /gunzip/ { alias @@ROOT@@/always/; gzip_static always; gunzip on; }
    location /gunzip-up/ { proxy_pass http://127.0.0.1:@@PORT@@/always/; gunzip on; }
    location /gunzip-bad/ { proxy_pass http://127.0.0.1:@@UP@@/; gunzip on; }
"""


def test_gunzip_decodes_for_clients_without_gzip(truehop: Any, upstream: Any,
                                                 docs: Path) -> None:
    root = make_root(docs)
    port = free_port()
    truehop(CONF.replace("#GUNZIP", GUNZIP), port=port, up=upstream.port, root=str(root))
    gz = (root / "always" / "s.css.gz").read_bytes()
    for prefix in ("/gunzip/", "/gunzip-up/"):
        # a gzip client gets the .gz as it is
        r = fetch(port, prefix + "s.css", GZ)
        assert r.raw == gz and r.get("content-encoding") == "gzip"
        assert r.get("vary") == "Accept-Encoding"
        # the others get it decoded, without a length, with a weak ETag and Vary
        r = fetch(port, prefix + "s.css")
        assert r.status == 200 and r.raw == CSS and r.get("content-encoding") is None
        assert r.get("content-length") is None and r.get("vary") == "Accept-Encoding"
        assert (r.get("etag") or "").startswith('W/"')
        assert r.get("accept-ranges") is None
        r = fetch(port, prefix + "s.css", version="1.0")      # gzip_http_version 1.1
        assert r.raw == CSS
    # a body that claims gzip and is not: the connection is cut (here before the corked
    # head leaves), never a garbled body passed on as complete
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/gunzip-bad/__headers?Content-Encoding=gzip")
    with pytest.raises((http.client.RemoteDisconnected, http.client.IncompleteRead)):
        c.getresponse().read()
    c.close()
