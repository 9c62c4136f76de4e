"""Lint rules: for every rule a config that shows it (with the line it must point at) and one
that does not. Configs are small conf.d-style texts compiled with the real `load()`."""

from __future__ import annotations

import glob
import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from truehop.conf.compile import load
from truehop.lint import Finding, run
from truehop.lint.rules import RULES, for_location

SHARED = Path("/work/shared/configs")
UP = "upstream app { server 127.0.0.1:3000; }\n"
UP_KA = "upstream app { server 127.0.0.1:3000; keepalive 16; }\n"
MAP = "map $http_upgrade $connection_upgrade { default upgrade; '' ''; }\n"
GOOD = """
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;"""


def lint(tmp_path: Path, text: str) -> list[Finding]:
    os.makedirs(tmp_path / "public" / "static", exist_ok=True)
    conf = tmp_path / "site.conf"
    conf.write_text(textwrap.dedent(text))
    return run(load(str(conf), str(tmp_path)))


def loc(body: str, head: str = UP, listen: str = "listen 127.0.0.1:8080;") -> str:
    return f"{head}server {{\n    {listen}\n    location / {{\n{body}\n    }}\n}}\n"


# (case id, config text, rule, severity, fires?). A firing case marks the line the finding
# must point at with "#!".
CASES: list[tuple[str, str, str, str, bool]] = [
    # missing-forwarded-proto
    ("proto-tls", loc("proxy_pass http://app; #!\nproxy_set_header Host $host;\n"
                      "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                      listen="listen 127.0.0.1:8443 ssl;"),
     "missing-forwarded-proto", "warn", True),
    ("proto-tls-ok", loc("proxy_pass http://app;" + GOOD, listen="listen 127.0.0.1:8443 ssl;"),
     "missing-forwarded-proto", "warn", False),
    ("proto-forwarded-ok", loc("proxy_pass http://app;\nproxy_set_header Host $host;\n"
                               "proxy_set_header Forwarded \"for=$remote_addr;proto=$scheme\";",
                               listen="listen 127.0.0.1:8443 ssl;"),
     "missing-forwarded-proto", "warn", False),
    ("proto-balancer", "set_real_ip_from 10.0.0.0/8;\n" + loc(
        "proxy_pass http://app; #!\nproxy_set_header Host $host;\n"
        "proxy_set_header X-Real-IP $remote_addr;"),
     "missing-forwarded-proto", "warn", True),
    ("proto-plain-ok", loc("proxy_pass http://app;\nproxy_set_header Host $host;\n"
                           "proxy_set_header X-Real-IP $remote_addr;"),
     "missing-forwarded-proto", "warn", False),
    # missing-client-ip
    ("client-ip", loc("proxy_pass http://app; #!\nproxy_set_header Host $host;"),
     "missing-client-ip", "warn", True),
    ("client-ip-xff-ok", loc("proxy_pass http://app;\nproxy_set_header Host $host;\n"
                             "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"),
     "missing-client-ip", "warn", False),
    ("client-ip-empty", loc("proxy_pass http://app; #!\nproxy_set_header Host $host;\n"
                            "proxy_set_header X-Real-IP \"\";"),
     "missing-client-ip", "warn", True),
    # missing-host
    ("host-upstream", loc("proxy_pass http://app; #!\nproxy_set_header X-Real-IP $remote_addr;"),
     "missing-host", "warn", True),
    ("host-set-ok", loc("proxy_pass http://app;" + GOOD), "missing-host", "warn", False),
    ("host-address-ok", loc("proxy_pass http://127.0.0.1:3000;\n"
                            "proxy_set_header X-Real-IP $remote_addr;", head=""),
     "missing-host", "warn", False),
    # http-host
    ("http-host", loc("proxy_pass http://app;\nproxy_set_header Host $http_host; #!\n"
                      "proxy_set_header X-Real-IP $remote_addr;"),
     "http-host", "warn", True),
    ("http-host-ok", loc("proxy_pass http://app;" + GOOD), "http-host", "warn", False),
    # duplicate-header
    ("dup", loc("proxy_pass http://app;" + GOOD + "\nproxy_set_header x-real-ip $remote_addr; #!"),
     "duplicate-header", "warn", True),
    ("dup-levels-ok", UP + "server {\n listen 127.0.0.1:8080;\n"
     " proxy_set_header Host $host;\n location / {\n  proxy_pass http://app;\n"
     "  proxy_set_header Host $host;\n  proxy_set_header X-Real-IP $remote_addr;\n }\n}\n",
     "duplicate-header", "warn", False),
    # header-inheritance
    ("inherit", UP + "server {\n listen 127.0.0.1:8080;\n proxy_set_header Host $host;\n"
     " proxy_set_header X-Real-IP $remote_addr;\n location / {\n  proxy_pass http://app;\n"
     "  proxy_set_header X-Request-Start t=$msec; #!\n }\n}\n",
     "header-inheritance", "warn", True),
    ("inherit-http-level", UP + "proxy_set_header X-Real-IP $remote_addr;\n"
     "server {\n listen 127.0.0.1:8080;\n proxy_set_header Host $host; #!\n"
     " location / { proxy_pass http://app; }\n}\n",
     "header-inheritance", "warn", True),
    ("inherit-ok", UP + "server {\n listen 127.0.0.1:8080;\n proxy_set_header Host $host;\n"
     " proxy_set_header X-Real-IP $remote_addr;\n location / { proxy_pass http://app; }\n}\n",
     "header-inheritance", "warn", False),
    ("inherit-repeated-ok", UP + "server {\n listen 127.0.0.1:8080;\n"
     " proxy_set_header Host $host;\n location / {\n  proxy_pass http://app;\n"
     "  proxy_set_header Host $host;\n  proxy_set_header X-Real-IP $remote_addr;\n }\n}\n",
     "header-inheritance", "warn", False),
    ("inherit-add-header", "server {\n listen 127.0.0.1:8080;\n"
     " add_header X-Content-Type-Options nosniff always;\n"
     " location /a/ {\n  add_header Cache-Control no-store; #!\n }\n}\n",
     "header-inheritance", "warn", True),
    ("inherit-add-header-ok", "server {\n listen 127.0.0.1:8080;\n"
     " add_header X-Content-Type-Options nosniff always;\n"
     " location /a/ {\n  add_header X-Content-Type-Options nosniff always;\n"
     "  add_header Cache-Control no-store;\n }\n}\n",
     "header-inheritance", "warn", False),
    # keepalive-defeated
    ("ka-map-close", "map $http_upgrade $c { default upgrade; \n '' close; #!\n}\n" + loc(
        "proxy_pass http://app;" + GOOD + "\nproxy_set_header Upgrade $http_upgrade;\n"
        "proxy_set_header Connection $c;", head=UP_KA),
     "keepalive-defeated", "warn", True),
    ("ka-literal-close", loc("proxy_pass http://app;" + GOOD +
                             "\nproxy_set_header Connection close; #!", head=UP_KA),
     "keepalive-defeated", "warn", True),
    ("ka-http10", loc("proxy_pass http://app;\nproxy_http_version 1.0; #!" + GOOD, head=UP_KA),
     "keepalive-defeated", "warn", True),
    ("ka-http10-default-keepalive", loc("proxy_pass http://app;\nproxy_http_version 1.0; #!" +
                                        GOOD),
     "keepalive-defeated", "note", True),
    ("ka-map-empty-ok", MAP + loc(
        "proxy_pass http://app;" + GOOD + "\nproxy_set_header Upgrade $http_upgrade;\n"
        "proxy_set_header Connection $connection_upgrade;", head=UP_KA),
     "keepalive-defeated", "warn", False),
    # upgrade-needs-http11
    ("ws-http10", MAP + loc("proxy_pass http://app;\nproxy_http_version 1.0; #!" + GOOD +
                            "\nproxy_set_header Upgrade $http_upgrade;\n"
                            "proxy_set_header Connection $connection_upgrade;"),
     "upgrade-needs-http11", "warn", True),
    ("ws-http11-ok", MAP + loc("proxy_pass http://app;\nproxy_http_version 1.1;" + GOOD +
                               "\nproxy_set_header Upgrade $http_upgrade;\n"
                               "proxy_set_header Connection $connection_upgrade;"),
     "upgrade-needs-http11", "warn", False),
    # upgrade-without-connection
    ("ws-no-connection", loc("proxy_pass http://app;" + GOOD +
                             "\nproxy_set_header Upgrade $http_upgrade; #!"),
     "upgrade-without-connection", "warn", True),
    ("ws-connection-ok", MAP + loc("proxy_pass http://app;" + GOOD +
                                   "\nproxy_set_header Upgrade $http_upgrade;\n"
                                   "proxy_set_header Connection $connection_upgrade;"),
     "upgrade-without-connection", "warn", False),
    # connection-upgrade-hardcoded
    ("conn-hardcoded", loc("proxy_pass http://app;" + GOOD +
                           "\nproxy_set_header Upgrade $http_upgrade;\n"
                           "proxy_set_header Connection \"upgrade\"; #!"),
     "connection-upgrade-hardcoded", "warn", True),
    ("conn-map-ok", MAP + loc("proxy_pass http://app;" + GOOD +
                              "\nproxy_set_header Upgrade $http_upgrade;\n"
                              "proxy_set_header Connection $connection_upgrade;"),
     "connection-upgrade-hardcoded", "warn", False),
    # websocket-read-timeout
    ("ws-timeout", MAP + loc("proxy_pass http://app;" + GOOD +
                             "\nproxy_set_header Upgrade $http_upgrade;\n"
                             "proxy_set_header Connection $connection_upgrade;\n"
                             "proxy_read_timeout 30s; #!"),
     "websocket-read-timeout", "note", True),
    ("ws-timeout-ok", MAP + loc("proxy_pass http://app;" + GOOD +
                                "\nproxy_set_header Upgrade $http_upgrade;\n"
                                "proxy_set_header Connection $connection_upgrade;\n"
                                "proxy_read_timeout 1h;"),
     "websocket-read-timeout", "note", False),
    # sse-buffering
    ("sse", UP + "server {\n listen 127.0.0.1:8080;\n location /events/ {\n"
     "  proxy_pass http://app; #!" + GOOD + "\n }\n}\n", "sse-buffering", "note", True),
    ("sse-ok", UP + "server {\n listen 127.0.0.1:8080;\n location /events/ {\n"
     "  proxy_pass http://app;\n  proxy_buffering off;" + GOOD + "\n }\n}\n",
     "sse-buffering", "note", False),
    # implicit-upstream-no-keepalive
    ("implicit", loc("proxy_pass http://127.0.0.1:3000; #!" + GOOD, head=""),
     "implicit-upstream-no-keepalive", "note", True),
    ("implicit-block-ok", loc("proxy_pass http://app;" + GOOD),
     "implicit-upstream-no-keepalive", "note", False),
    # static-shadowed
    ("shadowed", UP + "server {\n listen 127.0.0.1:8080;\n"
     " location /static/ { alias public/static/; } #!\n"
     " location ~* \\.(css|js)$ { proxy_pass http://app;" + GOOD + " }\n}\n",
     "static-shadowed", "warn", True),
    ("shadowed-caret-ok", UP + "server {\n listen 127.0.0.1:8080;\n"
     " location ^~ /static/ { alias public/static/; }\n"
     " location ~* \\.(css|js)$ { proxy_pass http://app;" + GOOD + " }\n}\n",
     "static-shadowed", "warn", False),
    ("shadowed-same-root-ok", "server {\n listen 127.0.0.1:8080;\n root public;\n"
     " location /static/ { root public; }\n"
     " location ~* \\.(css|js)$ { expires 7d; }\n}\n",
     "static-shadowed", "warn", False),
    ("shadowed-anchored-ok", UP + "server {\n listen 127.0.0.1:8080;\n"
     " location /static/ { alias public/static/; }\n"
     " location ~ ^/api/.*\\.json$ { proxy_pass http://app;" + GOOD + " }\n}\n",
     "static-shadowed", "warn", False),
    # alias-traversal
    ("alias", "server {\n listen 127.0.0.1:8080;\n"
     " location /static { alias public/static/; } #!\n}\n",
     "alias-traversal", "warn", True),
    ("alias-ok", "server {\n listen 127.0.0.1:8080;\n"
     " location /static/ { alias public/static/; }\n}\n", "alias-traversal", "warn", False),
    # realip-trust-all
    ("realip-all", "set_real_ip_from 10.0.0.0/8;\nset_real_ip_from 0.0.0.0/0; #!\n" + loc(
        "proxy_pass http://app;" + GOOD), "realip-trust-all", "warn", True),
    ("realip-v6", "set_real_ip_from ::/0; #!\n" + loc("proxy_pass http://app;" + GOOD),
     "realip-trust-all", "warn", True),
    ("realip-lb-ok", "set_real_ip_from 10.0.0.0/8;\nset_real_ip_from 127.0.0.3;\n" + loc(
        "proxy_pass http://app;" + GOOD), "realip-trust-all", "warn", False),
    # dynamic-proxy-no-resolver
    ("dyn-literal-name", loc("proxy_pass http://backend.internal:8080$request_uri; #!" + GOOD),
     "dynamic-proxy-no-resolver", "warn", True),
    ("dyn-var-host", loc("proxy_pass http://$arg_h:3000; #!" + GOOD),
     "dynamic-proxy-no-resolver", "warn", True),
    ("dyn-map-to-upstreams-ok", "map $http_x_env $be { default app; beta 10.0.0.5:3000; }\n"
     + loc("proxy_pass http://$be;" + GOOD), "dynamic-proxy-no-resolver", "warn", False),
    ("dyn-address-ok", loc("proxy_pass http://127.0.0.1:3000$request_uri;" + GOOD),
     "dynamic-proxy-no-resolver", "warn", False),
    ("dyn-resolver-ok", loc("resolver 127.0.0.11;\nproxy_pass http://$arg_h:3000;" + GOOD),
     "dynamic-proxy-no-resolver", "warn", False),
]


def marked_line(text: str) -> int:
    lines = [i for i, ln in enumerate(textwrap.dedent(text).splitlines(), 1) if "#!" in ln]
    assert len(lines) == 1, "a firing case marks exactly one line"
    return lines[0]


@pytest.mark.parametrize("case,text,rule,severity,fires", CASES, ids=[c[0] for c in CASES])
def test_rule(tmp_path: Path, case: str, text: str, rule: str, severity: str,
              fires: bool) -> None:
    found = [f for f in lint(tmp_path, text) if f.rule == rule]
    if not fires:
        assert [f for f in found if f.severity == severity] == [], \
            "\n".join(f.render() for f in found)
        return
    assert found, f"{rule} not reported; got: {[f.rule for f in lint(tmp_path, text)]}"
    line = marked_line(text)
    assert [(f.severity, f.line) for f in found] == [(severity, line)], \
        "\n".join(f.render() for f in found)
    f = found[0]
    assert f.file == str(tmp_path / "site.conf")
    assert f.message and f.fix


def test_every_rule_has_cases() -> None:
    covered = {c[2] for c in CASES}
    assert set(RULES) <= covered
    for rule in RULES:
        assert any(c[2] == rule and c[4] for c in CASES), rule
        assert any(c[2] == rule and not c[4] for c in CASES), rule


def test_header_inheritance_folds_missing_headers(tmp_path: Path) -> None:
    text = (UP + "server {\n listen 127.0.0.1:8443 ssl;\n ssl_certificate c.pem;\n"
            " ssl_certificate_key k.pem;\n" + GOOD + "\n"
            " location /api/ {\n  proxy_pass http://app;\n  proxy_set_header X-Id 1;\n }\n}\n")
    rules = sorted(f.rule for f in lint(tmp_path, text) if f.loud)
    assert rules == ["header-inheritance"]


def test_upgrade_http10_folds_keepalive(tmp_path: Path) -> None:
    text = MAP + loc("proxy_pass http://app;\nproxy_http_version 1.0;" + GOOD +
                     "\nproxy_set_header Upgrade $http_upgrade;\n"
                     "proxy_set_header Connection $connection_upgrade;", head=UP_KA)
    rules = sorted(f.rule for f in lint(tmp_path, text) if f.loud)
    assert rules == ["upgrade-needs-http11"]


def test_finding_shape() -> None:
    f = Finding("missing-forwarded-proto", "warn", "/x.conf", 12,
                "TLS ends here but the app is never told the scheme",
                "proxy_set_header X-Forwarded-Proto $scheme;")
    assert f.render() == ("truehop: [warn] [missing-forwarded-proto] TLS ends here but the app "
                          "is never told the scheme in /x.conf:12; fix: proxy_set_header "
                          "X-Forwarded-Proto $scheme;")
    assert f.render(prefix=False).startswith("[missing-forwarded-proto] TLS")
    d = f.as_dict()
    assert list(d) == ["rule", "severity", "file", "line", "message", "fix"]
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(ValueError):
        Finding("x", "fatal", "f", 1, "m")


def test_for_location(tmp_path: Path) -> None:
    text = (UP + "server {\n listen 127.0.0.1:8080;\n"
            " location /a/ { proxy_pass http://app; }\n"
            " location /b/ { proxy_pass http://app;" + GOOD + " }\n}\n")
    conf = tmp_path / "site.conf"
    conf.write_text(text)
    cfg = load(str(conf), str(tmp_path))
    srv = cfg.http.servers[0]
    a, b = srv.locations
    assert {f.rule for f in for_location(cfg, srv, a)} >= {"missing-host", "missing-client-ip"}
    assert [f for f in for_location(cfg, srv, b) if f.loud] == []


# --- the shared pitfall configs: exactly the expected loud findings ----------------------

def _expectations(path: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    must: set[tuple[str, str]] = set()
    may: set[tuple[str, str]] = set()
    for line in open(path):
        if line.startswith("# expect:") and "nothing" not in line:
            rule, sev = line.split(":", 1)[1].split()[:2]
            must.add((rule, sev))
        elif line.startswith("# may:"):
            rule, sev = line.split(":", 1)[1].split()[:2]
            may.add((rule, sev))
    return must, may


PITFALLS = sorted(glob.glob(str(SHARED / "pitfalls" / "*.conf")))
REFERENCE = [str(SHARED / n) for n in ("reference.conf", "full-nginx.conf",
                                        "behind-load-balancer.conf")]


@pytest.mark.skipif(not PITFALLS, reason="shared pitfall configs not present")
@pytest.mark.parametrize("path", PITFALLS + REFERENCE, ids=os.path.basename)
def test_shared_configs(tmp_path: Path, path: str) -> None:
    if not os.path.exists(path):
        pytest.skip("missing")
    must, may = _expectations(path)
    if must == {("map-context", "error")}:
        pytest.skip("a config error, reported by the CLI")
    target = tmp_path / os.path.basename(path)
    shutil.copy(path, target)
    os.makedirs(tmp_path / "public" / "static", exist_ok=True)
    got = {(f.rule, f.severity) for f in run(load(str(target), str(tmp_path))) if f.loud}
    assert must <= got
    assert got - must - may == set()
