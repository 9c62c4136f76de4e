"""The response filter chain end to end (proxy.filters): every response head goes through
the same header filters, with the status it is sent with, as nginx's ngx_http_send_header
runs them; the 101 of an upgrade too."""

from __future__ import annotations

import httpx
import websockets.sync.client as ws_client
from harness import free_port

CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    location / {
        proxy_pass http://127.0.0.1:@@A@@;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        add_header X-Always yes always;
        add_header X-Ok yes;
    }
    location /missing/ {
        root @@ROOT@@;
        error_page 404 /fallback;
    }
    location = /fallback {
        proxy_pass http://127.0.0.1:@@A@@;
        add_header X-Always yes always;
        add_header X-Ok yes;
    }
}
"""


def test_a_101_goes_through_the_header_filters(truehop, upstream, tmp_path):
    port = free_port()
    truehop(CONF, port=port, a=upstream.port, root=str(tmp_path))
    with ws_client.connect(f"ws://127.0.0.1:{port}/__ws") as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
        assert ws.response is not None
        h = ws.response.headers
        assert ws.response.status_code == 101
        # nginx sends the 101 through ngx_http_send_header: only `always` applies to it
        assert h.get("X-Always") == "yes" and "X-Ok" not in h
        assert h.get("Server", "").startswith("truehop")


def test_header_filters_see_the_status_an_error_page_sends(truehop, upstream, tmp_path):
    """error_page 404 to a proxied page that answers 200: the response goes out as 404
    (nginx's r->err_status), and add_header without `always` does not apply to a 404."""
    port = free_port()
    truehop(CONF, port=port, a=upstream.port, root=str(tmp_path))
    r = httpx.get(f"http://127.0.0.1:{port}/missing/nothing.txt")
    assert r.status_code == 404
    assert r.json()["target"] == "/fallback"
    assert r.headers.get("X-Always") == "yes" and "X-Ok" not in r.headers
    ok = httpx.get(f"http://127.0.0.1:{port}/fallback")
    assert ok.status_code == 200 and ok.headers.get("X-Ok") == "yes"
