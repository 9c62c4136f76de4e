"""`rewrite` and its arguments, `return` under error_page, and nginx's status lines, end to
end, checked against what nginx 1.30 answers (nginx-tests rewrite.t and the sources:
ngx_http_script_regex_end_code, ngx_http_send_response, ngx_http_send_error_page)."""

from __future__ import annotations

import pytest
from harness import free_port, parse_responses, raw_request

CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    server_name localhost;

    location /rw2 {
        rewrite ^ https://example.com$request_uri? permanent;
    }
    location /rw-noq {
        rewrite ^ https://example.com$request_uri permanent;
    }
    location /add {
        rewrite ^ http://example.com/?c=d redirect;
    }
    location /no {
        rewrite ^ http://example.com/?c=d? redirect;
    }
    location /plain {
        rewrite ^ http://example.com/p redirect;
    }
    location /rel {
        rewrite ^/rel(.*)$ /target$1 redirect;
    }
    location /relq {
        rewrite ^/relq(.*)$ /target$1?x=$1 redirect;
    }
    location /capture {
        rewrite ^(.*) $1?c=d;
        return 200 "uri:$uri args:$args";
    }
    location /capturedup {
        rewrite ^(.*) $1?c=$1;
        return 200 "uri:$uri args:$args";
    }
    location /dropargs {
        rewrite ^ /shown?;
    }
    location /keepargs {
        rewrite ^ /shown;
    }
    location /shown {
        return 200 "uri:$uri args:$args";
    }

    location /ep204 {
        error_page 405 /r204;
        return 405;
    }
    location /ep200 {
        error_page 405 /r200;
        return 405;
    }
    location /ep200text {
        error_page 405 /r200text;
        return 405;
    }
    location /ep302text {
        error_page 302 /r200text;
        return 302 "text";
    }
    location /ep405to302 {
        error_page 405 /r302text;
        return 405;
    }
    location /epeq {
        error_page 405 = /r200text;
        return 405;
    }
    location = /r204 { return 204; }
    location = /r200 { return 200; }
    location = /r200text { return 200 "text"; }
    location = /r302text { return 302 "text"; }
    location = /r306 { return 306; }
    location = /r203 { return 203 "x"; }
    location = /r302 { return 302 /somewhere; }
    location = /r401 { return 401; }
}
"""


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    # one server for the whole module: every test only reads
    from harness import TruehopProcess, render
    p = free_port()
    proc = TruehopProcess(render(CONF, PORT=p), tmp_path_factory.mktemp("rw"))
    proc.start()
    yield p
    proc.stop(check=True)


def get(port: int, target: str):
    raw, _ = raw_request(port, f"GET {target} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
    resp = parse_responses(raw)
    assert resp, raw
    return raw, resp[0]


@pytest.mark.parametrize("target,location", [
    # the http -> https idiom: the trailing '?' of the template drops the arguments, and is
    # itself dropped; the '?' inside $request_uri does not count
    ("/rw2?a=b", "https://example.com/rw2?a=b"),
    ("/rw2", "https://example.com/rw2"),
    # without it the arguments are added again (nginx does that too)
    ("/rw-noq?a=b", "https://example.com/rw-noq?a=b?a=b"),
    # a literal '?' in the template: the request's arguments follow after '&'
    ("/add?a=b", "http://example.com/?c=d&a=b"),
    ("/add", "http://example.com/?c=d"),
    ("/no?a=b", "http://example.com/?c=d"),
    ("/plain?a=b", "http://example.com/p?a=b"),
    # a redirect is unescaped up to its '?' (NGX_UNESCAPE_REDIRECT): %41 is "A", a "%25"
    # stays escaped; the capture of an escaped URI is escaped first
    ("/rel/%41%25x?q=1", "/target/A%25x?q=1"),
    ("/relq/a%26b", "/target/a&b?x=/a%26b"),
])
def test_rewrite_redirect_arguments(port, target, location):
    raw, r = get(port, target)
    assert r.status in (301, 302), raw
    want = location if not location.startswith("/") else f"http://localhost:{port}{location}"
    assert r.header("Location") == want


@pytest.mark.parametrize("target,body", [
    # captures in the argument part are escaped when the request's URI was (rewrite.t #21/#22)
    ("/capture/%25?a=b", "uri:/capture/% args:c=d&a=b"),
    ("/capturedup/%25?a=b", "uri:/capturedup/% args:c=/capturedup/%25&a=b"),
    ("/capturedup/x?a=b", "uri:/capturedup/x args:c=/capturedup/x&a=b"),
    ("/capturedup/a+b", "uri:/capturedup/a+b args:c=/capturedup/a%2Bb"),
    ("/dropargs?a=b", "uri:/shown args:"),
    ("/keepargs?a=b", "uri:/shown args:a=b"),
])
def test_rewrite_internal_arguments(port, target, body):
    raw, r = get(port, target)
    assert r.status == 200, raw
    assert r.body.decode() == body


def test_error_page_keeps_status_over_return_without_text(port):
    # the redirected request's `return 204` is sent with the error's status (and, no longer
    # a 204, with a length); `return 200` the same, with an empty body
    raw, r = get(port, "/ep204")
    assert raw.startswith(b"HTTP/1.1 405 Not Allowed\r\n"), raw
    assert r.header("Content-Length") == "0"
    raw, r = get(port, "/ep200")
    assert r.status == 405 and r.body == b"", raw
    raw, r = get(port, "/ep200text")
    assert r.status == 405 and r.body == b"text", raw
    # `=` alone: the redirected request's own status
    raw, r = get(port, "/epeq")
    assert r.status == 200 and r.body == b"text", raw


def test_error_page_keeps_location_of_return_302_text(port):
    raw, r = get(port, "/ep302text")
    assert r.status == 302, raw
    assert r.header("Location") == "text"
    assert r.body == b"text"


def test_error_page_target_redirecting_sends_its_own_status(port):
    raw, r = get(port, "/ep405to302")
    assert r.status == 302 and r.header("Location") == "text", raw


def test_plain_return_statuses(port):
    raw, r = get(port, "/r204")
    assert raw.startswith(b"HTTP/1.1 204 No Content\r\n"), raw
    assert r.header("Content-Type") is None and r.header("Content-Length") is None
    raw, r = get(port, "/r200")
    assert r.status == 200 and r.header("Content-Length") == "0"


@pytest.mark.parametrize("target,line,title", [
    ("/r302", b"HTTP/1.1 302 Moved Temporarily\r\n", b"<title>302 Found</title>"),
    ("/r401", b"HTTP/1.1 401 Unauthorized\r\n", b"<title>401 Authorization Required</title>"),
    ("/r306", b"HTTP/1.1 306 \r\n", None),
    ("/r203", b"HTTP/1.1 203 \r\n", None),
])
def test_status_lines_are_nginx_s(port, target, line, title):
    raw, r = get(port, target)
    assert raw.startswith(line), raw
    if title is not None:
        assert title in r.body
    elif target == "/r306":
        assert r.body == b""
