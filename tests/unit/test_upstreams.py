"""proxy.upstreams: the live upstreams of one runtime, kept out of the frozen model; and the
proxy_next_upstream limits as the merged settings give them (0: no limit), without sockets."""

from __future__ import annotations

import ast
from pathlib import Path

from truehop.conf.compile import load
from truehop.conf.model import Config
from truehop.http.events import RequestHead
from truehop.http.exchange import Exchange
from truehop.log import ErrorLog
from truehop.process.runtime import Runtime
from truehop.proxy.attempts import Attempt
from truehop.proxy.pipeline import start_request
from truehop.proxy.target import choose_target
from truehop.proxy.upstream_request import RequestPlan, build_request
from truehop.route.state import ConnectionInfo

SRC = Path(__file__).resolve().parents[2] / "src" / "truehop"


def _runtime(tmp_path: Path, text: str) -> tuple[Config, Runtime]:
    p = tmp_path / "site.conf"
    p.write_text(text)
    cfg = load(str(p), str(tmp_path))
    return cfg, Runtime(cfg, ErrorLog([("stderr", "emerg")]))


def test_dynamic_upstreams_stay_out_of_the_model(tmp_path: Path) -> None:
    cfg, rt = _runtime(tmp_path, "upstream app { server 127.0.0.1:3000; keepalive 8; }\n"
                                 "server { listen 127.0.0.1:8080; location / { "
                                 "proxy_pass http://$arg_to; } }\n")
    before = dict(cfg.http.upstreams)
    ups = rt.upstreams
    made = ups.dynamic("localhost:3001", "http")
    assert made is not None and made.implicit and made.name == "127.0.0.1:3001"
    assert [(p.host, p.port) for p in made.peers] == [("127.0.0.1", 3001)]
    # the same address names the same upstream (its balancer state goes on)...
    assert ups.dynamic("127.0.0.1:3001", "http") is made
    v6 = ups.dynamic("[::1]", "https")
    assert v6 is not None and [(p.host, p.port) for p in v6.peers] == [("::1", 443)]
    # ...a named upstream is itself, a name for the resolver is none...
    assert ups.dynamic("app", "http") is cfg.http.upstreams["app"]
    assert ups.dynamic("backend.example", "http") is None
    # ...and the model did not change
    assert cfg.http.upstreams == before
    assert "127.0.0.1:3001" in ups.made


def test_live_upstreams_keep_a_pool_only_where_keepalive_is(tmp_path: Path) -> None:
    cfg, rt = _runtime(tmp_path, "upstream app { server 127.0.0.1:3000; keepalive 8; }\n"
                                 "server { listen 127.0.0.1:8080; location / { "
                                 "proxy_pass http://app; } location /x { "
                                 "proxy_pass http://127.0.0.1:3002; } }\n")
    ups = rt.upstreams
    app = ups.get(cfg.http.upstreams["app"])
    assert app is ups.get(cfg.http.upstreams["app"])
    assert app.pool is not None
    implicit = ups.get(cfg.http.upstreams["127.0.0.1:3002"])
    assert implicit.conf.implicit and implicit.pool is None
    made = ups.dynamic("127.0.0.1:3003", "http")
    assert made is not None and ups.get(made).pool is None


def test_upstream_tls_contexts_are_shared_by_settings(tmp_path: Path) -> None:
    cfg, rt = _runtime(tmp_path, "server { listen 127.0.0.1:8080; location / { "
                                 "proxy_pass https://127.0.0.1:3000; } location /v { "
                                 "proxy_pass https://127.0.0.1:3000; proxy_ssl_protocols "
                                 "TLSv1.3; } }\n")
    srv = cfg.http.servers[0]
    plain, v13 = (srv.tree.match(p)[0].settings for p in ("/", "/v"))
    assert rt.upstreams.ssl_context(plain) is rt.upstreams.ssl_context(srv.settings)
    ctx = rt.upstreams.ssl_context(v13)
    assert ctx is not rt.upstreams.ssl_context(plain)
    assert ctx.minimum_version.name == "TLSv1_3"


def test_no_code_outside_conf_writes_the_models_upstreams() -> None:
    """The model is frozen after compile: outside conf/, nothing stores into, deletes from
    or calls a mutating method on an `.upstreams` that belongs to the model's `http`."""
    mutating = {"update", "setdefault", "pop", "popitem", "clear", "__setitem__",
                "__delitem__"}
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("conf/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            targets: list[ast.expr] = []
            if isinstance(node, (ast.Assign, ast.Delete)):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in mutating:
                targets = [node.func.value]
            for t in targets:
                if isinstance(t, ast.Subscript):
                    t = t.value
                text = ast.unparse(t)
                if text.endswith("http.upstreams"):
                    found.append((rel, node.lineno, ast.unparse(node)))
    assert not found, found


def _attempt(tmp_path: Path, lines: str) -> Attempt:
    _cfg, rt = _runtime(tmp_path, "upstream app { server 127.0.0.1:1; server 127.0.0.1:2; }\n"
                                  "server { listen 127.0.0.1:8080; location / { "
                                  f"proxy_pass http://app; {lines} }} }}\n")
    lst = next(iter(rt.listeners.values()))
    head = RequestHead("GET", "/", "/", None, "1.1", [("Host", "a")], "a", None, False, True)
    r = start_request(ConnectionInfo("192.0.2.7", 50000, "127.0.0.1", 8080, "http", 1), head,
                      lst)
    r.uri = "/"
    loc = r.server.tree.match("/")[0]
    r.loc = loc
    up, scheme, uri = choose_target(rt.proxy_rt, r, loc)
    req = build_request(r, loc.settings, RequestPlan(loc.settings), uri, False, False, None)
    return Attempt(rt.proxy_rt, r, Exchange(), loc, rt.upstreams.get(up), up, scheme, req, 0.0)


def test_next_upstream_tries_zero_is_no_limit(tmp_path: Path) -> None:
    # nginx's default and `proxy_next_upstream_tries 0`: tries are bounded only by the peers
    att = _attempt(tmp_path, "proxy_next_upstream_tries 0; proxy_next_upstream_timeout 0;")
    assert att.deadline == 0.0
    assert all(att.may_retry("error", "GET") for _ in range(100))


def test_next_upstream_tries_count_the_first_try(tmp_path: Path) -> None:
    att = _attempt(tmp_path, "proxy_next_upstream_tries 3;")
    assert [att.may_retry("error", "GET") for _ in range(3)] == [True, True, False]
    assert not _attempt(tmp_path, "proxy_next_upstream off;").may_retry("error", "GET")
