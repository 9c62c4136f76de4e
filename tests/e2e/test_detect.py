"""Live detection: each quiet failure, triggered for real, is named in the error log once."""

from __future__ import annotations

import httpx
from harness import free_port, raw_request

NO_UPGRADE = """
server {
    listen 127.0.0.1:@@PORT@@;
    location / {
        proxy_pass http://127.0.0.1:@@UP@@;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_read_timeout 1s;
    }
}
"""


def test_upgrade_not_forwarded(truehop, upstream):
    port = free_port()
    tp = truehop(NO_UPGRADE, port=port, up=upstream.port)
    raw_request(port, b"GET /__ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 13\r\n\r\n", timeout=1.0)
    line = tp.wait_for_log("[upgrade-not-forwarded]")
    assert "[warn]" in line and "proxy_set_header Upgrade" in line
    assert upstream.records[-1].header("upgrade") is None


def test_redirect_loop(truehop, upstream):
    port = free_port()
    tp = truehop(NO_UPGRADE, port=port, up=upstream.port)
    with httpx.Client() as c:
        for _ in range(6):
            r = c.get(f"http://127.0.0.1:{port}/__redirect?to=/same&code=302")
            assert r.status_code == 302
    assert "[redirect-loop]" in tp.wait_for_log("[redirect-loop]")
    # said once, not once per request
    assert tp.error_log().count("[redirect-loop]") == 1


def test_sse_with_buffering_on(truehop, upstream):
    port = free_port()
    tp = truehop(NO_UPGRADE, port=port, up=upstream.port)
    httpx.get(f"http://127.0.0.1:{port}/__sse?n=1&interval_ms=10")
    assert "proxy_buffering off" in tp.wait_for_log("[sse-buffered]")


def test_read_timeout_504(truehop, upstream):
    port = free_port()
    tp = truehop(NO_UPGRADE, port=port, up=upstream.port)
    assert httpx.get(f"http://127.0.0.1:{port}/__slow?ms=2000", timeout=5).status_code == 504
    assert "proxy_read_timeout" in tp.wait_for_log("[read-timeout]")


def test_every_request_from_one_untrusted_proxy(truehop, upstream):
    port = free_port()
    tp = truehop(NO_UPGRADE, port=port, up=upstream.port)
    with httpx.Client() as c:
        for i in range(55):
            c.get(f"http://127.0.0.1:{port}/x", headers={"X-Forwarded-For": f"203.0.113.{i}"})
    assert "set_real_ip_from 127.0.0.1" in tp.wait_for_log("[all-from-one-address]")


def test_status_lists_live_findings(truehop, upstream, tmp_path):
    import json
    import time

    from harness import run_truehop
    port = free_port()
    tp = truehop(NO_UPGRADE, port=port, up=upstream.port)
    httpx.get(f"http://127.0.0.1:{port}/__sse?n=1&interval_ms=10")
    tp.wait_for_log("[sse-buffered]")
    deadline = time.monotonic() + 5
    while True:
        out = run_truehop("status", "-p", str(tmp_path) + "/", "--format", "json")
        rules = [f["rule"] for f in json.loads(out.stdout)["findings"]]
        if "sse-buffered" in rules or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "sse-buffered" in rules


def test_https_request_redirected_to_http_by_the_app(truehop, upstream, tmp_path):
    """TLS ends at truehop and the app is never told: its http->https check answers with a
    redirect to http://same-host/ -- the classic loop. The detector names it."""
    import ssl

    import trustme
    ca = trustme.CA()
    cert = ca.issue_cert("app.example.test")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "site.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    port = free_port()
    tp = truehop("""
server {
    listen 127.0.0.1:@@PORT@@ ssl;
    server_name app.example.test;
    ssl_certificate site.pem;
    ssl_certificate_key site.pem;
    location / {
        proxy_pass http://127.0.0.1:@@UP@@;
        proxy_set_header Host $host;
    }
}""", port=port, up=upstream.port)
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with httpx.Client(verify=ctx) as c:
        r = c.get(f"https://127.0.0.1:{port}/__redirect?to=http://app.example.test/x",
                  extensions={"sni_hostname": "app.example.test"},
                  headers={"Host": "app.example.test"})
        assert r.status_code == 302
    line = tp.wait_for_log("[https-downgrade-redirect]")
    assert "X-Forwarded-Proto $scheme" in line
