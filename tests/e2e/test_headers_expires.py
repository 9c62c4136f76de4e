"""`expires` (every form nginx accepts, with variables too) and `add_header` of ETag and
Last-Modified, which replace the response's own field (nginx's headers filter)."""

from __future__ import annotations

import httpx
import pytest
from harness import free_port

CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    root html;
    add_header ETag foo always;
    add_header ETag '' always;
    expires epoch;

    location /t1 { }
    location /max { expires max; }
    location /off { expires off; }
    location /access { expires 1h30m; }
    location /negative { expires -2048; }
    location /daily { expires @15h30m33s; }
    location /modified {
        expires modified 2048;
        location /modified/proxy { proxy_pass http://127.0.0.1:@@BACK@@/modified; }
    }
    location /var {
        expires $arg_e;
        location /var_modified { expires modified $arg_e; }
    }
}
server {
    listen 127.0.0.1:@@BACK@@;
    root html;
    add_header Last-Modified "Mon, 28 Sep 1970 06:00:00 GMT";
}
"""

NAMES = ("t1", "max", "off", "access", "negative", "daily", "modified", "var", "var_modified")


@pytest.fixture
def get(truehop, tmp_path):
    html = tmp_path / "html"
    html.mkdir()
    for n in NAMES:
        (html / n).write_text("")
    port = free_port()
    truehop(CONF, port=port, back=free_port())

    def get(path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{port}{path}")
    return get


@pytest.mark.parametrize("path,expires,cache_control", [
    ("/t1", "Thu, 01 Jan 1970 00:00:01 GMT", "no-cache"),
    ("/max", "Thu, 31 Dec 2037 23:55:55 GMT", "max-age=315360000"),
    ("/off", None, None),
    ("/access", "*", "max-age=5400"),
    ("/negative", "*", "no-cache"),
    ("/daily", "*:33 GMT", "*"),
    ("/modified", "*", "max-age=204*"),
    ("/modified/proxy", "Mon, 28 Sep 1970 06:34:08 GMT", "no-cache"),
    ("/var?e=epoch", "Thu, 01 Jan 1970 00:00:01 GMT", "no-cache"),
    ("/var?e=-2048", "*", "no-cache"),
    ("/var?e=@33s", "*:33 GMT", "*"),
    ("/var?e=off", None, None),
    ("/var", None, None),                       # empty: no headers
    ("/var?e=bad", None, None),
    ("/var_modified?e=2048", "*", "max-age=204*"),
    ("/var_modified?e=epoch", None, None),      # not a value after "modified"
])
def test_expires_forms(get, path: str, expires: str | None, cache_control: str | None) -> None:
    r = get(path)
    assert r.status_code == 200

    def like(value: str | None, pattern: str | None) -> bool:
        if pattern is None or value is None:
            return pattern is value
        if pattern.startswith("*"):
            return value.endswith(pattern[1:])
        if pattern.endswith("*"):
            return value.startswith(pattern[:-1])
        return value == pattern
    assert like(r.headers.get("expires"), expires), r.headers
    assert like(r.headers.get("cache-control"), cache_control), r.headers


def test_add_header_etag_replaces_and_empty_removes(get) -> None:
    assert "etag" not in get("/t1").headers           # file's ETag -> foo -> removed
    r = get("/nx")
    assert r.status_code == 404 and "etag" not in r.headers
