"""`truehop explain`: the server, the location and the exact upstream request, on the real
reference config (golden text) and on small configs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from truehop import explain

REFERENCE = Path("/work/shared/configs/reference.conf")
GOLDEN = Path(__file__).parent.parent / "lint_cases" / "explain_reference_x.golden"


def make_certs(d: Path) -> None:
    os.makedirs(d / "certs", exist_ok=True)
    os.makedirs(d / "public" / "static", exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(d / "certs/privkey.pem"), "-out", str(d / "certs/fullchain.pem"),
                    "-subj", "/CN=app.example.test"], check=True, capture_output=True)


@pytest.fixture(scope="module")
def ref_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not REFERENCE.exists():
        pytest.skip("shared reference.conf not present")
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("ref")
    make_certs(d)
    shutil.copy(REFERENCE, d / "reference.conf")
    return d


def run(capsys: pytest.CaptureFixture[str], conf: Path, *rest: str, fmt: str = "text"
        ) -> tuple[int, str]:
    a = SimpleNamespace(conf=str(conf), prefix=str(conf.parent), format=fmt, globals=None,
                        rest=list(rest))
    code = explain.main(a, str(conf), str(conf.parent))   # as cli resolves -c, -p
    out = capsys.readouterr()
    return code, out.out if code == 0 else out.err


def test_reference_golden(ref_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, ref_dir / "reference.conf", "https://app.example.test/x",
                    "--from", "203.0.113.9")
    assert code == 0, out
    if os.environ.get("TRUEHOP_UPDATE_GOLDEN"):
        GOLDEN.write_text(out)
    assert out == GOLDEN.read_text()


def test_reference_json(ref_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, ref_dir / "reference.conf", "https://app.example.test/x",
                    "--from", "203.0.113.9", fmt="json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["server"]["name"] == "app.example.test"
    assert doc["server"]["line"] == 24
    assert "exact" in doc["server"]["why"]
    assert doc["location"]["name"] == "/"
    assert doc["location"]["line"] == 39
    assert "longest" in doc["location"]["why"]
    assert doc["action"]["kind"] == "proxy"
    assert doc["action"]["upstream"] == "app_backend"
    assert [p["address"] for p in doc["action"]["peers"]] == ["127.0.0.1:3000", "127.0.0.1:3001"]
    ur = doc["upstream_request"]
    assert ur["request_line"] == "GET /x HTTP/1.1"
    assert ur["version"] == "1.1"
    got = {h["name"]: (h["value"], h["source"]) for h in ur["headers"]}
    assert got["Host"] == ("app.example.test", "proxy_set_header at reference.conf:42")
    assert got["X-Real-IP"] == ("203.0.113.9", "proxy_set_header at reference.conf:43")
    assert got["X-Forwarded-For"] == ("203.0.113.9", "proxy_set_header at reference.conf:44")
    assert got["X-Forwarded-Proto"] == ("https", "proxy_set_header at reference.conf:45")
    assert "Upgrade" not in got and "Connection" not in got
    assert doc["reuse"]["reusable"] is True
    assert [f["rule"] for f in doc["findings"]] == ["websocket-read-timeout"]


def test_reference_client_headers(ref_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, ref_dir / "reference.conf", "https://app.example.test/x",
                    "--from", "203.0.113.9", "-H", "X-Forwarded-For: 198.51.100.1",
                    "-H", "Keep-Alive: 5", "-H", "Accept: */*", fmt="json")
    assert code == 0, out
    ur = json.loads(out)["upstream_request"]
    got = {h["name"]: (h["value"], h["source"]) for h in ur["headers"]}
    assert got["X-Forwarded-For"][0] == "198.51.100.1, 203.0.113.9"
    assert got["Accept"] == ("*/*", "from client")
    dropped = {h["name"]: h["source"] for h in ur["dropped"]}
    assert dropped["Keep-Alive"] == "dropped: hop-by-hop"


def test_reference_websocket(ref_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, ref_dir / "reference.conf", "https://app.example.test/ws",
                    "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
                    "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                    "-H", "Sec-WebSocket-Version: 13", fmt="json")
    assert code == 0, out
    ur = json.loads(out)["upstream_request"]
    got = {h["name"]: h["value"] for h in ur["headers"]}
    assert got["Upgrade"] == "websocket"
    assert got["Connection"] == "upgrade"
    assert ur["upgrade"] is True


def test_reference_redirect_and_static(ref_dir: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    code, out = run(capsys, ref_dir / "reference.conf", "http://app.example.test/a?b=1",
                    fmt="json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["server"]["line"] == 18
    assert doc["action"] == {"kind": "return", "code": 301,
                             "location": "https://app.example.test/a?b=1"}
    code, out = run(capsys, ref_dir / "reference.conf", "https://app.example.test/static/a.css",
                    fmt="json")
    doc = json.loads(out)
    assert doc["location"]["name"] == "/static/"
    assert doc["action"]["kind"] == "static"
    assert doc["action"]["path"] == str(ref_dir / "public/static/a.css")
    assert doc["action"]["exists"] is False


SMALL = """
    upstream app { server 127.0.0.1:3000; server 127.0.0.1:3001 backup; keepalive 8; }
    server {
        listen 127.0.0.1:8080;
        server_name a.test *.wild.test;
        location = /exact { return 204; }
        location /api/ { proxy_pass http://app; }
        location ~ \\.php$ { proxy_pass http://127.0.0.1:9000; proxy_http_version 1.0; }
    }
    server {
        listen 127.0.0.1:8080 default_server;
        server_name other.test;
        return 444;
    }
"""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    p = tmp_path / "small.conf"
    p.write_text(textwrap.dedent(SMALL))
    return p


def doc_for(capsys: pytest.CaptureFixture[str], conf: Path, *rest: str) -> dict[str, Any]:
    code, out = run(capsys, conf, *rest, fmt="json")
    assert code == 0, out
    result: dict[str, Any] = json.loads(out)
    return result


def test_server_choice(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = doc_for(capsys, small, "http://a.test:8080/exact")
    assert "exact server_name" in d["server"]["why"]
    assert d["location"]["why"] == "exact match (=)"
    assert d["action"]["code"] == 204
    d = doc_for(capsys, small, "http://x.wild.test:8080/exact")
    assert "wildcard" in d["server"]["why"]
    d = doc_for(capsys, small, "http://nobody.test:8080/")
    assert d["server"]["line"] == 10
    assert "default_server" in d["server"]["why"]
    assert d["action"]["code"] == 444


def test_upstream_defaults(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = doc_for(capsys, small, "http://a.test:8080/api/x", "--from", "192.0.2.7")
    assert d["action"]["peers"] == [{"address": "127.0.0.1:3000", "flags": []},
                                    {"address": "127.0.0.1:3001", "flags": ["backup"]}]
    hs = {h["name"]: (h["value"], h["source"]) for h in d["upstream_request"]["headers"]}
    assert hs["Host"] == ("app", "default: $proxy_host")
    assert d["reuse"]["reusable"] is True
    assert {"missing-host", "missing-client-ip"} <= {f["rule"] for f in d["findings"]}


def test_regex_http10_implicit(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = doc_for(capsys, small, "http://a.test:8080/api/index.php")
    assert d["location"]["name"] == "~ \\.php$"
    assert "regex" in d["location"]["why"]
    ur = d["upstream_request"]
    assert ur["request_line"] == "GET /api/index.php HTTP/1.0"
    hs = {h["name"]: (h["value"], h["source"]) for h in ur["headers"]}
    assert hs["Host"] == ("127.0.0.1:9000", "default: $proxy_host")
    assert hs["Connection"] == ("close", "default: proxy_http_version 1.0")
    assert d["reuse"]["reusable"] is False


def test_location_realip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """realip configured in a location applies once that location is chosen (as requests
    are served): the upstream request shows the real client, not the proxy in front."""
    p = tmp_path / "realip.conf"
    p.write_text(textwrap.dedent("""
        server {
            listen 127.0.0.1:8080;
            location /api/ {
                set_real_ip_from 10.0.0.0/8;
                real_ip_header X-Forwarded-For;
                proxy_pass http://127.0.0.1:3000;
                proxy_set_header X-Real-IP $remote_addr;
            }
            location / { proxy_pass http://127.0.0.1:3000; proxy_set_header X-Real-IP $remote_addr; }
        }
    """))
    d = doc_for(capsys, p, "http://a.test:8080/api/x", "--from", "10.1.2.3",
                "-H", "X-Forwarded-For: 203.0.113.9")
    assert d["request"]["remote_addr"] == "203.0.113.9"
    assert "set_real_ip_from trusts 10.1.2.3" in d["request"]["realip"]
    hs = {h["name"]: h["value"] for h in d["upstream_request"]["headers"]}
    assert hs["X-Real-IP"] == "203.0.113.9"
    d = doc_for(capsys, p, "http://a.test:8080/other", "--from", "10.1.2.3",
                "-H", "X-Forwarded-For: 203.0.113.9")
    assert d["request"]["remote_addr"] == "10.1.2.3"
    assert "realip" not in d["request"]
    hs = {h["name"]: h["value"] for h in d["upstream_request"]["headers"]}
    assert hs["X-Real-IP"] == "10.1.2.3"


def test_proxy_pass_with_variables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A host in proxy_pass variables: with a resolver the request is shown (the name is
    looked up at run time); without one, the 502 nginx would give (it used to crash)."""
    p = tmp_path / "dyn.conf"
    p.write_text("server {\n listen 127.0.0.1:8080;\n resolver 127.0.0.11;\n"
                 " location / { proxy_pass http://$arg_h:3000; }\n}\n")
    d = doc_for(capsys, p, "http://a.test:8080/x?h=app")
    assert d["action"]["kind"] == "proxy"
    assert d["upstream_request"]["request_line"] == "GET /x?h=app HTTP/1.1"
    p.write_text(p.read_text().replace(" resolver 127.0.0.11;\n", ""))
    d = doc_for(capsys, p, "http://a.test:8080/x?h=app")
    assert (d["action"]["kind"], d["action"]["code"]) == ("return", 502)
    assert "dynamic-proxy-no-resolver" in {f["rule"] for f in d["findings"]}


def test_bad_arguments(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, small)
    assert code == 1 and "no URL" in err
    code, err = run(capsys, small, "http://a.test/", "-H", "nocolon")
    assert code == 1 and "invalid header" in err


def test_parse_rest() -> None:
    q = explain.parse_rest(["-X", "post", "https://h/x", "-H", "A: b", "--from", "1.2.3.4"])
    assert (q.url, q.method, q.headers, q.remote) == ("https://h/x", "POST", [("A", "b")],
                                                       "1.2.3.4")


def test_server_name_and_captures_as_the_pipeline_sets_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """$server_name is the first server_name as written (the pipeline's), not the first
    plain name; a regex server_name's captures are variables. explain used to show
    primary_name and drop the captures: it said what the proxy does not send."""
    p = tmp_path / "names.conf"
    p.write_text("server {\n listen 127.0.0.1:8080;\n"
                 r" server_name ~^(?<sub>[a-z]+)\.example\.test$ www.example.test;" "\n"
                 " location / { proxy_pass http://127.0.0.1:3000;\n"
                 "  proxy_set_header X-Server $server_name;\n"
                 "  proxy_set_header X-Sub $sub; }\n}\n")
    d = doc_for(capsys, p, "http://api.example.test:8080/x")
    hs = {h["name"]: h["value"] for h in d["upstream_request"]["headers"]}
    assert hs["X-Server"] == r"~^(?<sub>[a-z]+)\.example\.test$"
    assert hs["X-Sub"] == "api"


def test_the_request_line_has_proxy_method(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The request line is the builder's: proxy_method applies (explain used to print the
    client's method)."""
    p = tmp_path / "method.conf"
    p.write_text("server {\n listen 127.0.0.1:8080;\n"
                 " location / { proxy_pass http://127.0.0.1:3000; proxy_method POST; }\n}\n")
    d = doc_for(capsys, p, "http://a.test:8080/x")
    assert d["upstream_request"]["request_line"] == "POST /x HTTP/1.1"


def test_proxy_pass_variables_making_an_invalid_url(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """nginx's `invalid URL prefix`: a 500, with or without a resolver (explain used to
    fail on it when a resolver was set)."""
    p = tmp_path / "bad.conf"
    p.write_text("server {\n listen 127.0.0.1:8080;\n resolver 127.0.0.11;\n"
                 " location / { proxy_pass $arg_u; }\n}\n")
    d = doc_for(capsys, p, "http://a.test:8080/x?u=ftp://h/")
    assert (d["action"]["kind"], d["action"]["code"]) == ("return", 500)
