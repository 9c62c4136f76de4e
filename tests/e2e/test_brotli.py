"""ngx_brotli's directives end to end (with the `brotli` package, the test extra): brotli
before gzip, brotli_static before gzip_static, streaming, ranges, HEAD, $brotli_ratio."""

from __future__ import annotations

import gzip as gzip_lib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import free_port, run_truehop
from test_gzip import CSS, HTML, Resp, docs, fetch

brotli = pytest.importorskip("brotli")
__all__ = ["docs"]     # the fixture, shared with test_gzip

CONF = """
log_format br '$request_uri $status $brotli_ratio $gzip_ratio';
server {
    listen 127.0.0.1:@@PORT@@;
    http2 on;
    root @@ROOT@@;
    access_log @@ROOT@@/../br.log br;
    types { text/html html; text/css css; text/plain txt; }
    gzip on;
    gzip_vary on;
    brotli on;
    brotli_comp_level 5;
    brotli_types text/css application/json text/event-stream;
    location / { }
    location /pre/ { brotli_static on; gzip_static on; }
    location /always/ { brotli_static always; brotli off; gzip off; }
    location /sse/ { proxy_pass http://127.0.0.1:@@UP@@/; proxy_buffering off; }
    location /up/ { proxy_pass http://127.0.0.1:@@UP@@/; }
}
"""

BR = {"Accept-Encoding": "gzip, deflate, br"}


def decoded(r: Resp) -> bytes:
    enc = r.get("content-encoding")
    if enc == "br":
        return bytes(brotli.decompress(r.raw))
    if enc == "gzip":
        return gzip_lib.decompress(r.raw)
    return r.raw


@pytest.fixture
def site(truehop: Any, upstream: Any, docs: Path) -> Any:
    tmp_path = docs
    root = tmp_path / "html"
    for d in ("", "pre", "always"):
        (root / d).mkdir(parents=True, exist_ok=True)
        (root / d / "a.html").write_bytes(HTML)
        (root / d / "s.css").write_bytes(CSS)
    for d in ("pre", "always"):
        (root / d / "s.css.br").write_bytes(brotli.compress(CSS))
        (root / d / "s.css.gz").write_bytes(gzip_lib.compress(CSS))
    port = free_port()
    tp = truehop(CONF, port=port, up=upstream.port, root=str(root))
    tp.port = port
    tp.root = root
    tp.log_path = tmp_path / "br.log"
    return tp


@pytest.mark.parametrize("ae, enc", [
    ("gzip, deflate, br", "br"),
    ("br", "br"),
    ("gzip", "gzip"),
    ("br;q=0, gzip", "gzip"),
    ("br;q=0.000", None),
    ("BR; q=0.5", "br"),
    ("identity", None),
])
def test_brotli_comes_before_gzip(site: Any, ae: str, enc: str | None) -> None:
    r = fetch(site.port, "/a.html", {"Accept-Encoding": ae})
    assert r.status == 200 and r.get("content-encoding") == enc
    assert r.all("vary") == ["Accept-Encoding"]              # once, whoever asked for it
    assert decoded(r) == HTML
    if enc is not None:
        assert r.get("content-length") is None and r.get("accept-ranges") is None
        assert (r.get("etag") or "").startswith('W/"')


def test_head_range_and_proxied(site: Any) -> None:
    r = fetch(site.port, "/a.html", BR, method="HEAD")
    assert r.get("content-encoding") == "br" and r.raw == b""
    r = fetch(site.port, "/a.html", {"Accept-Encoding": "br", "Range": "bytes=0-9"})
    assert r.status == 200 and decoded(r) == HTML
    r = fetch(site.port, "/up/json", BR)
    assert r.get("content-encoding") == "br" and b'"target"' in decoded(r)
    r = fetch(site.port, "/up/__headers?__code=206", BR)
    assert r.get("content-encoding") is None


def test_brotli_static_before_gzip_static(site: Any) -> None:
    br = (site.root / "pre" / "s.css.br").read_bytes()
    gz = (site.root / "pre" / "s.css.gz").read_bytes()
    r = fetch(site.port, "/pre/s.css", BR)
    assert r.raw == br and r.get("content-encoding") == "br"
    assert r.get("content-length") == str(len(br)) and r.get("content-type") == "text/css"
    assert r.all("vary") == ["Accept-Encoding"]
    r = fetch(site.port, "/pre/s.css", {"Accept-Encoding": "gzip"})
    assert r.raw == gz and r.get("content-encoding") == "gzip"
    r = fetch(site.port, "/pre/s.css")
    assert r.raw == CSS and r.all("vary") == ["Accept-Encoding"]
    r = fetch(site.port, "/always/s.css")
    assert r.raw == br and r.get("content-encoding") == "br"


def test_sse_streams_through_brotli(site: Any) -> None:
    n, interval = 4, 0.4
    d = brotli.Decompressor()
    text = b""
    arrivals: list[float] = []
    start = time.monotonic()
    with httpx.Client(timeout=10) as c, c.stream(
            "GET", f"http://127.0.0.1:{site.port}/sse/__sse?n={n}&interval_ms={int(interval * 1000)}",
            headers={"Accept-Encoding": "br"}) as r:
        assert r.headers["content-encoding"] == "br"
        for raw in r.iter_raw():
            text += d.process(raw)
            while text.count(b"\n\n") > len(arrivals):
                arrivals.append(time.monotonic() - start)
    assert text.count(b"data: ") == n and d.is_finished()
    assert arrivals[-1] - arrivals[0] >= (n - 1) * interval * 0.6, arrivals


def test_http2_and_the_ratio(site: Any) -> None:
    with httpx.Client(http1=False, http2=True, timeout=10) as c:
        r = c.get(f"http://127.0.0.1:{site.port}/a.html", headers={"Accept-Encoding": "br"})
        assert r.http_version == "HTTP/2" and r.headers["content-encoding"] == "br"
        assert "content-length" not in r.headers and r.content == HTML
    fetch(site.port, "/a.html", {"Accept-Encoding": "gzip"})
    lines: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(lines) < 2:
        lines = site.log_path.read_text().splitlines() if site.log_path.exists() else []
        time.sleep(0.05)
    uri, status, br_ratio, gz_ratio = lines[0].split()
    assert (uri, status, gz_ratio) == ("/a.html", "200", "-") and float(br_ratio) > 10
    uri, status, br_ratio, gz_ratio = lines[1].split()
    assert br_ratio == "-" and float(gz_ratio) > 10


@pytest.mark.parametrize("line, message", [
    ("brotli_comp_level 12;", '"brotli_comp_level" directive must be between 0 and 11'),
    ("brotli_window 3k;", '"brotli_window" directive must be 1k, 2k, 4k'),
    ("brotli_static maybe;", 'invalid value "maybe"'),
])
def test_config_errors(tmp_path: Path, line: str, message: str) -> None:
    conf = tmp_path / "t.conf"
    conf.write_text(f"server {{\n    listen 127.0.0.1:1;\n    {line}\n}}\n")
    out = run_truehop("-t", "-c", str(conf))
    assert out.returncode == 1 and f"{message}" in out.stderr and f"{conf}:3" in out.stderr
