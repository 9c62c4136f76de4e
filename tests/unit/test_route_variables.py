"""Built-in variables read from the request state (route.variables)."""

from __future__ import annotations

import pytest

from truehop.conf.model import LevelSettings, ServerConf, Settings, SslConf
from truehop.http.events import RequestHead
from truehop.route.state import ConnectionInfo, RequestState, UpstreamTry
from truehop.route.template import log_getter
from truehop.route.variables import COMBINED, VariableScope

# a server with nothing set: these tests read the request, never its server's settings
SERVER = ServerConf([], ["localhost"], [], {}, Settings(), LevelSettings(), (), SslConf())


def _req(version: str = "1.1", scheme: str = "http",
         headers: list[tuple[str, str]] | None = None) -> RequestState:
    head = RequestHead("GET", "/", "/", None, version, headers or [], "localhost", None, False,
                       True)
    conn = ConnectionInfo("127.0.0.1", 1, "127.0.0.1", 8080, scheme, 1)
    return RequestState(conn, head, SERVER)


def _var(name: str, r: RequestState) -> str:
    return VariableScope().getter(name)(r)


def _log(name: str, r: RequestState) -> str | None:
    """The access log's view: None for nginx's "not found"."""
    return log_getter(VariableScope().getter(name))(r)


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
    r = _req(scheme="https")
    assert (_var("pipe", r), _var("ssl_session_reused", r)) == (".", ".")
    # $pipe is the request's own: the connection's flag as it was when the request started
    # (the next request may already have started when this one is logged)
    r.conn.pipelined = True
    r.conn.ssl_session_reused = True
    assert (_var("pipe", r), _var("ssl_session_reused", r)) == (".", "r")
    # without TLS nginx's $ssl_* are not found: "" outside the access log, "-" in it
    plain = _req()
    assert (_var("ssl_session_reused", plain), _log("ssl_session_reused", plain)) == ("", None)
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


@pytest.mark.parametrize("name", [
    "http_referer", "http_x_missing", "sent_http_cache_control", "upstream_http_x_a",
    "cookie_sid", "arg_a", "arg_", "remote_user", "request_body", "upstream_addr",
    "upstream_status", "upstream_response_time", "upstream_bytes_sent", "upstream_cookie_a",
    "args", "query_string", "content_length", "content_type", "ssl_protocol",
    "ssl_server_name",
])
def test_not_found_is_empty_everywhere_but_the_access_log(name: str) -> None:
    r = _req()
    assert _var(name, r) == ""
    assert _log(name, r) is None


@pytest.mark.parametrize("name", ["uri", "is_args", "https", "http2", "host", "status"])
def test_always_found(name: str) -> None:
    assert _log(name, _req()) is not None


def test_found_but_empty_is_not_not_found() -> None:
    r = _req(headers=[("Referer", ""), ("Cookie", "a=; b=1")])
    r.args = "x=&y"
    assert [_log(n, r) for n in ("http_referer", "cookie_a", "arg_x")] == ["", "", ""]
    # a name without '=' is no argument (ngx_http_arg) and no cookie
    r.head.headers.append(("Cookie", "c"))
    assert (_log("arg_y", r), _log("cookie_c", r)) == (None, None)


def test_repeated_fields_are_joined() -> None:
    r = _req(headers=[("X-A", "1"), ("Cookie", "a=1"), ("x-a", "2"), ("cookie", "b=2"),
                      ("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-For", "10.0.0.2")])
    assert _var("http_x_a", r) == "1, 2"
    assert _var("http_cookie", r) == "a=1; b=2"
    assert _var("http_x_forwarded_for", r) == "10.0.0.1, 10.0.0.2"
    assert _var("proxy_add_x_forwarded_for", r) == "10.0.0.1, 10.0.0.2, 127.0.0.1"
    r.sent_headers = [("Cache-Control", "max-age=3600"), ("Cache-Control", "private")]
    r.upstream_headers = [("X-U", "a"), ("Set-Cookie", "s=1"), ("X-U", "b")]
    assert _var("sent_http_cache_control", r) == "max-age=3600, private"
    assert _var("upstream_http_x_u", r) == "a, b"


def test_underscored_field_names() -> None:
    # a field kept by underscores_in_headers: nginx compares the name with '-' read as '_'
    r = _req(headers=[("x_foo", "u"), ("X-Foo", "d"), ("user_agent", "no")])
    assert _var("http_x_foo", r) == "u, d"
    assert _var("http_X_FOO", r) == "u, d"
    # $http_user_agent & co. are nginx's own headers_in fields: User-Agent only
    assert _log("http_user_agent", r) is None
    r.sent_headers = [("x_s", "1")]
    assert _var("sent_http_x_s", r) == "1"


def test_request_body_when_read_into_memory() -> None:
    r = _req()
    assert (_var("request_body", r), _log("request_body", r)) == ("", None)
    r.request_body = b"a=1&b=\xe9"
    assert _var("request_body", r) == _log("request_body", r) == "a=1&b=\xe9"
    r.request_body = b""    # nginx keeps no buffer for an empty body: not found
    assert _log("request_body", r) is None


@pytest.mark.parametrize("auth,user", [
    ("Basic dXNlcjpwYXNz", "user"),                     # user:pass
    ("basic   dXNlcjpwYXNz", "user"),
    ("Basic dXNlcjo=", "user"),                         # user:
    ("Basic dXNlcjo", "user"),                          # no padding
    ("Basic OnBhc3M=", None),                           # :pass, an empty user
    ("Basic dXNlcg==", None),                           # no ':'
    ("Basic !!!!", None),
    ("Bearer dXNlcjpwYXNz", None),
    ("Basic ", None),
])
def test_remote_user_from_basic_credentials(auth: str, user: str | None) -> None:
    r = _req(headers=[("Authorization", auth)])
    assert _log("remote_user", r) == user
    assert _var("remote_user", r) == (user or "")


def test_unparsed_request() -> None:
    # what the runtime builds for a request it could not parse: nginx's $uri is empty,
    # $request, $request_method and $request_uri are not found
    head = RequestHead("", "", "/", None, "1.1", [], "", None, False, False)
    r = RequestState(ConnectionInfo("127.0.0.1", 1, "127.0.0.1", 8080, "http", 1), head,
                     SERVER)
    assert [_log(n, r) for n in ("uri", "request", "request_method", "request_uri")] == [
        "", None, None, None]
    assert _var("request", r) == ""
    assert COMBINED.request(r) is None


def test_upstream_variables_once_tried() -> None:
    r = _req()
    t = UpstreamTry("127.0.0.1:1", "", 0.0)
    t.status = 502
    r.upstream_tries = [t]
    assert (_log("upstream_addr", r), _log("upstream_status", r)) == ("127.0.0.1:1", "502")
    assert _log("upstream_header_time", r) == "-"
