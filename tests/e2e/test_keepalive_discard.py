"""Client keep-alive over HTTP/1: the location's keepalive_timeout / keepalive_requests /
keepalive_time decide (ngx_http_update_location_config, ngx_http_set_keepalive), the second
value of keepalive_timeout is sent as `Keep-Alive: timeout=N`, and a request body nobody reads
is read and thrown away so the connection stays usable (ngx_http_discard_request_body)."""

from __future__ import annotations

import socket
import time

import pytest
from harness import free_port, parse_responses, raw_request

CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    server_name localhost;
    keepalive_timeout 75 60;

    location / { return 200 "ok $request_method\\n"; }
    location /kr { keepalive_requests 2; return 200 "kr\\n"; }
    location /k0 { keepalive_timeout 0; return 200 "k0\\n"; }
    location /kt { keepalive_timeout 1s; return 200 "kt\\n"; }
    location /nohdr { keepalive_timeout 75; return 200 "nohdr\\n"; }
    location /small { client_max_body_size 10; return 200 "small\\n"; }
    location /nolimit { client_max_body_size 0; return 200 "ok $request_method\\n"; }
    location /ep { error_page 404 /kr; return 404; }
    location /safari { keepalive_disable safari; return 200 "s\n"; }
    location /none { keepalive_disable none; return 200 "n\n"; }
    location /lt { client_max_body_size 10; lingering_timeout 1s; return 200 "lt\n"; }
    location /lcoff { client_max_body_size 10; lingering_close off; return 200 "off\n"; }
}
server {
    listen 127.0.0.1:@@PORT2@@;
    server_name localhost;
    keepalive_time 1s;
    location / { return 200 "t\\n"; }
}
"""


@pytest.fixture(scope="module")
def ports(tmp_path_factory):
    from harness import TruehopProcess, render
    p, p2 = free_port(), free_port()
    proc = TruehopProcess(render(CONF, PORT=p, PORT2=p2), tmp_path_factory.mktemp("ka"))
    proc.start()
    yield p, p2
    proc.stop(check=True)


def read_until_closed(s: socket.socket) -> tuple[bytes, float]:
    """Everything `s` receives until the peer closes, and how long that took."""
    start = time.monotonic()
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data, time.monotonic() - start
        data += chunk


def req(path: str, extra: str = "", method: str = "GET", body: bytes = b"") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode() + body


LAST = "Connection: close\r\n"


def exchange(port: int, data: bytes, timeout: float = 2.0):
    raw, closed = raw_request(port, data, timeout=timeout)
    return parse_responses(raw), closed


# -- location-level keep-alive settings -----------------------------------------------------

def test_keepalive_requests_at_location(ports):
    p, _ = ports
    rs, closed = exchange(p, req("/kr") + req("/kr") + req("/kr"))
    assert [r.body for r in rs] == [b"kr\n", b"kr\n"]
    assert rs[0].header("Connection") == "keep-alive"
    assert rs[1].header("Connection") == "close" and closed


def test_keepalive_requests_of_error_page_target(ports):
    # the location the response comes from decides (nginx updates the location config on
    # the internal redirect)
    p, _ = ports
    rs, closed = exchange(p, req("/") + req("/ep") + req("/"))
    assert [r.status for r in rs] == [200, 404]
    assert rs[1].header("Connection") == "close" and closed


def test_keepalive_timeout_zero_at_location(ports):
    p, _ = ports
    rs, closed = exchange(p, req("/k0") + req("/"))
    assert len(rs) == 1 and rs[0].header("Connection") == "close" and closed


def test_keepalive_header_from_second_value(ports):
    p, _ = ports
    rs, _ = exchange(p, req("/", LAST))
    assert rs[0].header("Keep-Alive") is None          # not kept alive: no header
    rs, _ = exchange(p, req("/") + req("/", LAST))
    assert rs[0].header("Keep-Alive") == "timeout=60"
    rs, _ = exchange(p, req("/nohdr") + req("/", LAST))
    assert rs[0].header("Keep-Alive") is None          # `keepalive_timeout 75;` resets it


def test_keepalive_timeout_at_location_closes_idle_connection(ports):
    p, _ = ports
    with socket.create_connection(("127.0.0.1", p)) as s:
        s.settimeout(5)
        s.sendall(req("/kt"))
        data, waited = read_until_closed(s)
    assert b"kt\n" in data
    assert 0.5 < waited < 3.5            # the location's 1s, not the server's 75s


def test_keepalive_time_closes_old_connection(ports):
    _, p2 = ports
    with socket.create_connection(("127.0.0.1", p2)) as s:
        s.settimeout(5)
        s.sendall(req("/"))
        first = b""
        while b"t\n" not in first:
            first += s.recv(65536)
        assert b"Connection: keep-alive" in first
        time.sleep(1.3)
        s.sendall(req("/"))
        second, _ = read_until_closed(s)
    assert b"Connection: close" in second and b"t\n" in second


# -- discarding a body nobody reads ---------------------------------------------------------

def test_unread_body_is_discarded_and_connection_kept(ports):
    p, _ = ports
    rs, _ = exchange(p, req("/hdr", "Content-Length: 5\r\n", "POST", b"hello") +
                     req("/x", LAST))
    assert [r.body for r in rs] == [b"ok POST\n", b"ok GET\n"]
    assert rs[0].header("Connection") == "keep-alive"


def test_unread_chunked_body_is_discarded(ports):
    p, _ = ports
    body = b"5\r\nhello\r\n3\r\nGET\r\n0\r\n\r\n"
    rs, _ = exchange(p, req("/hdr", "Transfer-Encoding: chunked\r\n", "POST", body) +
                     req("/x", LAST))
    assert [r.body for r in rs] == [b"ok POST\n", b"ok GET\n"]


def test_body_arriving_after_the_response_is_not_a_request(ports):
    # the answer goes out before the body is sent; the body (which looks like a request)
    # is then read and dropped, and only the request after it is answered
    p, _ = ports
    fake = req("/fake", LAST)
    with socket.create_connection(("127.0.0.1", p)) as s:
        s.settimeout(5)
        s.sendall(req("/hdr", f"Content-Length: {len(fake)}\r\n", "POST"))
        first = b""
        while b"ok POST\n" not in first:
            first += s.recv(65536)
        assert b"keep-alive" in first
        time.sleep(0.2)
        s.sendall(fake[:10])
        time.sleep(0.2)
        s.sendall(fake[10:] + req("/real", LAST))
        rest, _ = read_until_closed(s)
    rs = parse_responses(rest)
    assert [r.body for r in rs] == [b"ok GET\n"]


def test_large_unread_body_is_read_through(ports):
    p, _ = ports
    big = b"x" * (3 * 1024 * 1024)
    rs, _ = exchange(p, req("/nolimit", f"Content-Length: {len(big)}\r\n", "POST", big) +
                     req("/after", LAST), timeout=5)
    assert [r.body for r in rs] == [b"ok POST\n", b"ok GET\n"]


def test_expect_continue_body_discarded(ports):
    p, _ = ports
    with socket.create_connection(("127.0.0.1", p)) as s:
        s.settimeout(5)
        s.sendall(req("/", "Content-Length: 5\r\nExpect: 100-continue\r\n", "POST"))
        got = b""
        while b"ok POST\n" not in got:
            got += s.recv(65536)
        # told to go on (nginx's discard tests Expect), then the answer
        assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
        s.sendall(b"hello" + req("/next", LAST))
        rest, _ = read_until_closed(s)
    assert [r.body for r in parse_responses(rest)] == [b"ok GET\n"]


def test_too_large_body_still_closes(ports):
    # checked when the location is found, before its `return` runs
    p, _ = ports
    rs, closed = exchange(p, req("/small", "Content-Length: 20\r\n", "POST", b"y" * 20) +
                          req("/", LAST))
    assert [r.status for r in rs] == [413] and closed
    assert rs[0].header("Connection") == "close"


def test_stalled_discard_is_closed(ports, monkeypatch):
    # a body that stops arriving is waited for LINGERING_TIMEOUT (5s), then the connection
    # closes; the response itself was already sent
    p, _ = ports
    with socket.create_connection(("127.0.0.1", p)) as s:
        s.settimeout(10)
        s.sendall(req("/", "Content-Length: 100\r\n", "POST", b"abc"))
        got, waited = read_until_closed(s)
    assert b"ok POST\n" in got
    assert 4 < waited < 8


def test_413_lingers_while_the_client_is_still_sending(ports):
    # the 413 goes out while the body is still coming: the connection is half-closed and the
    # rest of the body read and dropped (nginx's lingering close), so the client's next
    # writes do not meet a reset and the answer is read whole, then EOF
    p, _ = ports
    chunk = b"z" * 65536
    with socket.create_connection(("127.0.0.1", p)) as s:
        s.settimeout(5)
        s.sendall(req("/small", f"Content-Length: {40 * len(chunk)}\r\n", "POST") + chunk)
        time.sleep(0.3)
        for _ in range(20):
            s.sendall(chunk)
        got, _ = read_until_closed(s)
    rs = parse_responses(got)
    assert [r.status for r in rs] == [413]
    assert rs[0].header("Connection") == "close"


def _gone_after_413(port: int, path: str, wait: float) -> bool:
    """Whether truehop has closed its socket `wait` seconds after a 413 answered a request
    whose announced body the client stopped sending: while it lingers, the write side is
    shut (EOF) and more input is read and dropped; once closed, more input meets a reset."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        s.sendall(req(path, "Content-Length: 100000\r\n", "POST") + b"z" * 1000)
        got, _ = read_until_closed(s)           # the 413, then the shut write side
        assert got.startswith(b"HTTP/1.1 413")
        time.sleep(wait)
        s.settimeout(1.0)
        try:
            s.sendall(b"z" * 1000)
            s.recv(1)
            s.sendall(b"z" * 1000)
            s.recv(1)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False        # still lingering: the bytes were read and dropped
        return False


def test_lingering_timeout_and_lingering_close_off(ports):
    """lingering_timeout (was refused): how long a closing connection waits for more
    input (the default, 5 s, is still lingering after 2 s); lingering_close off: no
    lingering at all."""
    p, _ = ports
    assert _gone_after_413(p, "/lt", 2.0)
    assert not _gone_after_413(p, "/small", 2.0)
    assert _gone_after_413(p, "/lcoff", 0.2)


MSIE6 = "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\n"
SAFARI = ("User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.0 Safari/605.1.15\r\n")
CHROME = ("User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
          "(KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n")


@pytest.mark.parametrize(("path", "method", "ua", "kept"), [
    ("/", "POST", MSIE6, False),          # the default, msie6: a POST from MSIE 4-6
    ("/", "GET", MSIE6, True),
    ("/none", "POST", MSIE6, True),
    ("/safari", "GET", SAFARI, False),
    ("/safari", "GET", CHROME, True),
    ("/", "GET", SAFARI, True),
])
def test_keepalive_disable(ports, path, method, ua, kept):
    """keepalive_disable (was refused): the browsers nginx keeps from keep-alive."""
    p, _ = ports
    body = b"x" if method == "POST" else b""
    extra = ua + (f"Content-Length: {len(body)}\r\n" if body else "")
    rs, _closed = exchange(p, req(path, extra, method, body) + req("/", LAST))
    assert len(rs) == (2 if kept else 1)
    assert rs[0].header("connection") == ("keep-alive" if kept else "close")
