"""The pipeline's request-phase decisions, without sockets: which location a request ends in
and with which URI after the rewrite phases, the answers those phases decide (`return`,
redirecting rewrites, 413, 404 for an internal location, the rewrite cycle's 500), realip.

Each test compiles a real configuration and builds the real runtime (listeners, pipeline)
without binding anything, then drives the phases `Pipeline.process` runs before content.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from truehop.conf.compile import load
from truehop.conf.model import LocationConf
from truehop.http.events import RequestHead
from truehop.log import ErrorLog
from truehop.process.runtime import Runtime
from truehop.proxy.pipeline import Finish, InternalRedirect, compute_host
from truehop.route.state import ConnectionInfo, RequestState
from truehop.route.uri import normalize_path

CONF = """
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:8080;
        server_name app.test;
        client_max_body_size 1k;
        set_real_ip_from 10.0.0.0/8;
        real_ip_header X-Forwarded-For;
        real_ip_recursive on;

        rewrite ^/old/(.*)$ /new/$1 last;
        rewrite ^/moved$ https://$host/elsewhere permanent;

        location /new/ { }
        location /loop { rewrite ^ /loop last; }
        location /hidden { internal; }
        location /api/ { proxy_pass http://127.0.0.1:9; }
        location /uploads { client_max_body_size 10m; }
        location /guard {
            if ($http_x_block = "1") { return 403; }
        }
        location ~ \\.php$ { }
        location / { }
    }
}
"""


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "site.conf"
    conf.write_text(CONF)
    return Runtime(load(str(conf), str(tmp_path)), ErrorLog([("stderr", "emerg")]))


def request(rt: Runtime, target: str, headers: list[tuple[str, str]] | None = None,
            content_length: int | None = None, peer: str = "192.0.2.1") -> RequestState:
    """A request as Pipeline.handle starts it: server chosen, $host set, URI normalised."""
    path, _, query = target.partition("?")
    hdrs = [("Host", "app.test"), *(headers or [])]
    head = RequestHead("GET", target, path, query or None, "1.1", hdrs, "app.test",
                       content_length, False, True)
    lst = rt.listeners[("127.0.0.1", 8080)]
    info = ConnectionInfo(peer, 40000, "127.0.0.1", 8080, "http", 1, lst.key)
    host = compute_host(head.host, lst.default_server)
    server, _ = lst.find_server_match(info.server_addr, host)
    r = RequestState(info, head, server)
    r.host = host
    r.server_name = server.server_name
    r.uri = normalize_path(head.path, server.merge_slashes)
    return r


def decide(rt: Runtime, r: RequestState) -> LocationConf:
    """The server rewrite phase, then find-config and location rewrites (with the internal
    redirects they cause), as Pipeline.process runs them before the content phase."""
    p = rt.pipeline
    p.realip(r, r.server.settings)
    p.run_ops(r, r.server.ops, server_level=True)
    return p.route(r)


def test_server_rewrite_last_then_location(runtime: Runtime) -> None:
    r = request(runtime, "/old/a/b?x=1")
    loc = decide(runtime, r)
    assert loc.pattern == "/new/"
    assert (r.uri, r.args) == ("/new/a/b", "x=1")


def test_redirecting_rewrite_is_the_answer(runtime: Runtime) -> None:
    with pytest.raises(Finish) as e:
        decide(runtime, request(runtime, "/moved"))
    assert (e.value.status, e.value.location) == (301, "https://app.test/elsewhere")


def test_rewrite_cycle_is_a_500(runtime: Runtime) -> None:
    """nginx stops after 10 URI changes: 'rewrite or internal redirection cycle'."""
    with pytest.raises(Finish) as e:
        decide(runtime, request(runtime, "/loop"))
    assert e.value.status == 500


def test_internal_location_is_404_from_outside(runtime: Runtime) -> None:
    with pytest.raises(Finish) as e:
        decide(runtime, request(runtime, "/hidden"))
    assert e.value.status == 404


def test_proxied_prefix_without_slash_redirects(runtime: Runtime) -> None:
    """nginx's auto_redirect: `location /api/` with proxy_pass answers /api with a 301."""
    with pytest.raises(Finish) as e:
        decide(runtime, request(runtime, "/api?q=1"))
    assert (e.value.status, e.value.location) == (301, "/api/?q=1")


def test_body_size_is_judged_with_the_locations_limit(runtime: Runtime) -> None:
    with pytest.raises(Finish) as e:
        decide(runtime, request(runtime, "/", content_length=2048))
    assert e.value.status == 413
    assert decide(runtime, request(runtime, "/uploads", content_length=2048)).pattern == \
        "/uploads"


def test_if_in_location(runtime: Runtime) -> None:
    assert decide(runtime, request(runtime, "/guard")).pattern == "/guard"
    with pytest.raises(Finish) as e:
        decide(runtime, request(runtime, "/guard", [("X-Block", "1")]))
    assert e.value.status == 403


def test_regex_location_after_longest_prefix(runtime: Runtime) -> None:
    assert decide(runtime, request(runtime, "/x/index.php")).pattern == "\\.php$"
    assert decide(runtime, request(runtime, "/x/index.html")).pattern == "/"


@pytest.mark.parametrize("peer,xff,want", [
    ("10.1.2.3", "203.0.113.7, 10.9.9.9", "203.0.113.7"),   # recursive: skip trusted ones
    ("192.0.2.1", "203.0.113.7", "192.0.2.1"),               # untrusted peer: header ignored
    ("10.1.2.3", "not-an-address", "10.1.2.3"),              # invalid value: kept as is
])
def test_realip(runtime: Runtime, peer: str, xff: str, want: str) -> None:
    r = request(runtime, "/", [("X-Forwarded-For", xff)], peer=peer)
    decide(runtime, r)
    assert r.remote_addr == want
    assert r.realip_remote_addr == peer


def test_named_location_redirect_is_followed(runtime: Runtime) -> None:
    """An internal redirect to a URI restarts at find-config, with the URI changed."""
    r = request(runtime, "/")
    decide(runtime, r)
    named = runtime.pipeline.follow(r, InternalRedirect("/new/x", "a=1"))
    assert named is None
    assert runtime.pipeline.route(r).pattern == "/new/"
    assert (r.uri, r.args, r.internal) == ("/new/x", "a=1", True)
