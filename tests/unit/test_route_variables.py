"""Built-in variables read from the request state (route.variables)."""

from __future__ import annotations

import pytest

from truehop.http.events import RequestHead
from truehop.route.state import ConnectionInfo, RequestState, UpstreamTry
from truehop.route.variables import VariableScope


def _req(version: str = "1.1", scheme: str = "http") -> RequestState:
    head = RequestHead("GET", "/", "/", None, version, [], "localhost", None, False, True)
    conn = ConnectionInfo("127.0.0.1", 1, "127.0.0.1", 8080, scheme, 1)
    return RequestState(conn, head, None)


def _var(name: str, r: RequestState) -> str:
    return VariableScope().getter(name)(r)


def test_upstream_byte_counts_per_attempt() -> None:
    r = _req()
    assert [_var(n, r) for n in ("upstream_bytes_sent", "upstream_bytes_received",
                                 "upstream_response_length")] == ["", "", ""]
    a, b = UpstreamTry("127.0.0.1:1", "", 0.0), UpstreamTry("127.0.0.1:2", "", 0.0)
    a.bytes_sent = 40
    b.bytes_sent, b.bytes_received, b.response_length = 40, 68, 23
    r.upstream_tries = [a, b]
    assert _var("upstream_bytes_sent", r) == "40, 40"
    assert _var("upstream_bytes_received", r) == "0, 68"
    assert _var("upstream_response_length", r) == "0, 23"


@pytest.mark.parametrize("version,scheme,expected", [
    ("1.1", "http", ""), ("1.0", "https", ""), ("2.0", "http", "h2c"), ("2.0", "https", "h2"),
])
def test_http2(version: str, scheme: str, expected: str) -> None:
    assert _var("http2", _req(version, scheme)) == expected


def test_pipe_and_ssl_session_reused() -> None:
    r = _req()
    assert (_var("pipe", r), _var("ssl_session_reused", r)) == (".", ".")
    # $pipe is the request's own: the connection's flag as it was when the request started
    # (the next request may already have started when this one is logged)
    r.conn.pipelined = True
    r.conn.ssl_session_reused = True
    assert (_var("pipe", r), _var("ssl_session_reused", r)) == (".", "r")
    r2 = _req()
    r2.conn.pipelined = True
    r2 = type(r)(r2.conn, r2.head, r2.server)
    assert _var("pipe", r2) == "p"


def test_prefixed_variables_with_an_empty_name() -> None:
    r = _req()
    r.args = "l=42"
    assert (_var("arg_l", r), _var("arg_", r), _var("http_", r)) == ("42", "", "")


def test_cookies_ignore_case_and_upstream_cookies() -> None:
    r = _req()
    r.head.headers.append(("Cookie", "Sid=1; b=2"))
    assert (_var("cookie_sid", r), _var("cookie_B", r)) == ("1", "2")
    r.upstream_headers = [("Set-Cookie", "a=1; Path=/"), ("set-cookie", " C = 3 ;x=y"),
                          ("Set-Cookie", "x=4")]
    assert [_var(f"upstream_cookie_{n}", r) for n in ("a", "c", "x", "path", "y")] == [
        "1", "3", "4", "", ""]


def test_connection_time() -> None:
    r = _req()
    r.conn.start -= 1.5
    assert 1.5 <= float(_var("connection_time", r)) < 3
