"""Variables as nginx 1.30 gives them, seen through the real truehop process: "not found" in
the access log ("-" with the default escaping, nothing with escape=json/none, "" everywhere
else), repeated fields joined, `$http_x_foo` for an `x_foo` field, and `$request_body`.

The expected lines are nginx's (ngx_http_log_module.c, ngx_http_variables.c; nginx-tests
http_variables.t checks the first two)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from harness import free_port, parse_responses, raw_request

LOG_CONF = """
log_format cc "$uri: [$sent_http_cache_control] [$http_referer] [$remote_user] [$arg_a]";
log_format js escape=json "$uri: [$sent_http_cache_control] [$http_referer] [$remote_user]";
log_format raw escape=none "$uri: [$sent_http_cache_control] [$http_referer] [$remote_user]";
server {
    listen 127.0.0.1:@@PORT@@;
    access_log @@DIR@@/cc.log cc;
    access_log @@DIR@@/js.log js;
    access_log @@DIR@@/raw.log raw;
    access_log @@DIR@@/combined.log;
    location / { return 200 OK; }
    location /set {
        add_header Cache-Control max-age=3600;
        add_header Cache-Control private;
        add_header X-Seen "[$remote_user][$http_referer]";
        return 200 OK;
    }
}
"""


def _lines(log: Path, n: int) -> list[str]:
    """The log's first lines once it has `n` (split on "\n" only: str.splitlines would
    also split on the \x1c of an unescaped line)."""
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while time.monotonic() < deadline:
        if log.exists():
            lines = log.read_text().split("\n")[:-1]
            if len(lines) >= n:
                break
        time.sleep(0.05)
    return lines


def _get(port: int, path: str, extra: str = "") -> bytes:
    data, _ = raw_request(port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}"
                                f"Connection: close\r\n\r\n".encode("latin-1"), timeout=5)
    return data


def test_not_found_variables_in_the_access_log(truehop, tmp_path):
    port = free_port()
    truehop(LOG_CONF, port=port, dir=tmp_path)
    cred = base64.b64encode(b'us"er:secret').decode()
    assert _get(port, "/").endswith(b"OK")
    out = _get(port, "/set?a=", f"Referer: \r\nAuthorization: Basic {cred}\r\n")
    # a found variable is the same in a header as in the log; a not-found one is "" there
    assert b'\r\nX-Seen: [us"er][]\r\n' in out
    assert b"\r\nX-Seen: [][]\r\n" in _get(port, "/set")
    raw_request(port, b"GET /../bad_uri HTTP/1.0\r\n\r\n", timeout=5)

    cc = _lines(tmp_path / "cc.log", 4)
    assert cc[0] == "/: [-] [-] [-] [-]"
    # found but empty (an empty Referer, `a=`) is written empty, escaping applies
    assert cc[1] == "/set: [max-age=3600, private] [] [us\\x22er] []"
    assert cc[2] == "/set: [max-age=3600, private] [-] [-] [-]"
    assert cc[3] == ": [-] [-] [-] [-]"          # no URI could be parsed: $uri is empty
    # escape=json and escape=none write nothing for a not-found variable
    js = _lines(tmp_path / "js.log", 4)
    assert js == ["/: [] [] []", '/set: [max-age=3600, private] [] [us\\"er]',
                  "/set: [max-age=3600, private] [] []", ": [] [] []"]
    raw = _lines(tmp_path / "raw.log", 4)
    assert raw == ["/: [] [] []", '/set: [max-age=3600, private] [] [us"er]',
                   "/set: [max-age=3600, private] [] []", ": [] [] []"]

    combined = _lines(tmp_path / "combined.log", 4)
    assert combined[0].startswith("127.0.0.1 - - [")
    assert combined[0].endswith('] "GET / HTTP/1.1" 200 2 "-" "-"')
    assert combined[1].startswith("127.0.0.1 - us\\x22er [")
    assert combined[1].endswith('] "GET /set?a= HTTP/1.1" 200 2 "" "-"')
    assert " 400 " in combined[3] and combined[3].endswith(' "-" "-"')


HEADERS_CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    underscores_in_headers on;
    location / {
        add_header X-A "[$http_x_a]";
        add_header X-Cookie "[$http_cookie]";
        add_header X-Foo "[$http_x_foo]";
        add_header X-UA "[$http_user_agent]";
        add_header X-Sent "[$sent_http_x_s]";
        add_header X-S one;
        add_header X-S two;
        return 200 OK;
    }
}
"""


def test_repeated_and_underscored_request_fields(truehop):
    port = free_port()
    truehop(HEADERS_CONF, port=port)
    out = _get(port, "/", "X-A: 1\r\nCookie: a=1\r\nx-a: 2\r\nCookie: b=2\r\nx_foo: u\r\n"
                          "User-Agent: ua1\r\nUser-Agent: ua2\r\n")
    (resp,) = parse_responses(out)
    assert resp.status == 200
    assert resp.header("X-A") == "[1, 2]"                # nginx >= 1.23 joins repeated fields
    assert resp.header("X-Cookie") == "[a=1; b=2]"       # ...Cookie with "; "
    assert resp.header("X-Foo") == "[u]"                 # x_foo read as $http_x_foo
    assert resp.header("X-UA") == "[ua1, ua2]"
    # add_header runs before its own fields are out: $sent_http_x_s is not there yet
    assert resp.header("X-Sent") == "[]"


SENT_CONF = """
log_format sent "[$sent_http_x_s] [$upstream_http_x_up] [$upstream_addr]";
server {
    listen 127.0.0.1:@@PORT@@;
    access_log @@DIR@@/sent.log sent;
    location / { add_header X-S one; add_header X-S two; return 200 OK; }
}
"""


def test_repeated_response_fields_in_the_access_log(truehop, tmp_path):
    port = free_port()
    truehop(SENT_CONF, port=port, dir=tmp_path)
    assert _get(port, "/").endswith(b"OK")
    assert _lines(tmp_path / "sent.log", 1) == ["[one, two] [-] [-]"]


BODY_CONF = """
log_format body "$uri [$request_body]";
server {
    listen 127.0.0.1:@@PORT@@;
    access_log @@DIR@@/body.log body;
    location /buffered { proxy_pass http://127.0.0.1:@@UP@@; }
    location /streamed {
        proxy_pass http://127.0.0.1:@@UP@@;
        proxy_request_buffering off;
    }
    location /returned { return 200 OK; }
}
"""


def _post(port: int, path: str, body: bytes) -> bytes:
    data, _ = raw_request(port, f"POST {path} HTTP/1.1\r\nHost: localhost\r\n"
                                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                                .encode() + body, timeout=5)
    return data


def test_request_body_variable(truehop, upstream, tmp_path):
    port = free_port()
    truehop(BODY_CONF, port=port, up=upstream.port, dir=tmp_path)
    assert _post(port, "/buffered", b'a=1&b="\xe9"').startswith(b"HTTP/1.1 200")
    assert _post(port, "/streamed", b"a=2").startswith(b"HTTP/1.1 200")
    assert _post(port, "/returned", b"a=3").startswith(b"HTTP/1.1 200")
    assert _post(port, "/buffered", b"").startswith(b"HTTP/1.1 200")
    assert _post(port, "/streamed", b"x" * 20000).startswith(b"HTTP/1.1 200")
    # the body read into memory, streamed ones too while they fit client_body_buffer_size
    # (nginx-tests proxy_request_buffering.t); not found when larger, not read, or empty
    assert _lines(tmp_path / "body.log", 5) == [
        "/buffered [a=1&b=\\x22\\xE9\\x22]", "/streamed [a=2]", "/returned [-]",
        "/buffered [-]", "/streamed [-]"]


ESCAPE_CONF = """
log_format default escape=default $uri$arg_b$arg_c;
log_format none escape=none $uri$arg_b$arg_c;
log_format json escape=json $uri$arg_b$arg_c;
server {
    listen 127.0.0.1:@@PORT@@;
    access_log @@DIR@@/default.log default;
    access_log @@DIR@@/none.log none;
    access_log @@DIR@@/json.log json;
    location / { return 200 OK; }
}
"""


def test_escaping_as_nginx(truehop, tmp_path):
    # nginx-tests access_log.t's escape check (that file is skipped here: it needs gzip)
    port = free_port()
    truehop(ESCAPE_CONF, port=port, dir=tmp_path)
    assert _get(port, "/escape/%221%20%1B%1C%20%22?c=2").startswith(b"HTTP/1.1 200")
    assert _get(port, "/ctl/a%09b%08%0C%7F").startswith(b"HTTP/1.1 200")
    assert _lines(tmp_path / "default.log", 2) == [
        "/escape/\\x221 \\x1B\\x1C \\x22-2", "/ctl/a\\x09b\\x08\\x0C\\x7F--"]
    assert _lines(tmp_path / "none.log", 2)[0] == '/escape/"1 \x1b\x1c "2'
    # ngx_escape_json: upper-case \u00XX, the short forms of \t \b \f, DEL as it is
    assert _lines(tmp_path / "json.log", 2) == [
        '/escape/\\"1 \\u001B\\u001C \\"2', "/ctl/a\\tb\\b\\f\x7f"]
