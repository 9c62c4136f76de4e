"""Quick mode (`truehop --to ...`), run as a user runs it: the real command line, a real app
behind it, real clients. Each flag is checked by what the app and the client see, and the
config it prints passes `truehop -t --strict`."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest
import trustme
from harness import _ServerProcess, free_port, free_ports, run_truehop, worker_readable

from truehop.demo.app import BackgroundApp

pytestmark = pytest.mark.timeout(60)


class QuickProcess(_ServerProcess):
    """`python -m truehop --to ... [flags]`, with a private data directory for the local CA."""

    name = "truehop-quick"

    def __init__(self, args: Sequence[str], tmp_path: Path, ready_port: int) -> None:
        super().__init__("", tmp_path, extra_args=args, ready_port=ready_port)

    def write_config(self, config_text: str | None = None) -> None:
        pass   # quick mode writes its own

    def command(self) -> list[str]:
        return [sys.executable, "-m", "truehop", *self.extra_args]

    def start(self) -> QuickProcess:
        os.environ["TRUEHOP_DATA_DIR"] = str(self.tmp_path / "data")
        try:
            super().start()
        finally:
            del os.environ["TRUEHOP_DATA_DIR"]
        return self


def _ca(tmp_path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tmp_path / "data" / "ca.pem"))


def test_pool_headers_and_access_log_on_the_terminal(
        tmp_path: Path, upstreams: Callable[..., list[BackgroundApp]]) -> None:
    a, b = upstreams(2)
    port = free_port()
    with QuickProcess(["--to", str(a.port), "--to", f"http://127.0.0.1:{b.port}",
                       "--listen", f"127.0.0.1:{port}"], tmp_path, port) as q:
        with httpx.Client() as c:
            answers = [c.get(f"http://127.0.0.1:{port}/x", headers={"Host": "site.test"}).json()
                       for _ in range(4)]
        assert {x["app"] for x in answers} == {a.name, b.name}     # balanced over both
        rec = a.last()
        assert rec.header("Host") == "site.test"
        assert rec.header("X-Forwarded-Proto") == "http"
        assert rec.header("X-Real-IP") == "127.0.0.1"
        assert rec.header("X-Forwarded-Host") == "site.test"
        assert rec.header("Connection") is None                     # the pool stays reusable
        assert any(x["conn_requests"] > 1 for x in answers)         # ... and is reused
        q.stop()
        assert '"GET /x HTTP/1.1" 200' in q.stdout()                # the access log, on stdout
        assert "-> " in q.stderr() and f"http://127.0.0.1:{port}/" in q.stderr()


def test_self_signed_https_http2_and_redirect(
        tmp_path: Path, upstreams: Callable[..., list[BackgroundApp]]) -> None:
    (app,) = upstreams(1)
    https, plain = free_ports(2)
    with QuickProcess(["--to", f"127.0.0.1:{app.port}", "--self-signed",
                       "--listen", f"127.0.0.1:{https}",
                       "--redirect-from", f"127.0.0.1:{plain}"], tmp_path, https) as q:
        assert "local CA" in q.stderr() and "update-ca-certificates" in q.stderr()
        with httpx.Client(verify=_ca(tmp_path), http2=True) as c:
            r = c.get(f"https://localhost:{https}/p?q=1")
            assert r.http_version == "HTTP/2"          # HTTP/2 is on by default with TLS
            assert r.json()["app"] == app.name
            assert r.headers["strict-transport-security"] == "max-age=300"
        assert app.last().header("X-Forwarded-Proto") == "https"
        r = httpx.get(f"http://127.0.0.1:{plain}/p?q=1", headers={"Host": "localhost"})
        assert r.status_code == 301
        assert r.headers["location"] == f"https://localhost:{https}/p?q=1"
    # the CA is kept: a second run issues from the same root, no new CA
    ca_before = (tmp_path / "data" / "ca.pem").read_bytes()
    with QuickProcess(["--to", str(app.port), "--self-signed", "--listen",
                       f"127.0.0.1:{https}", "--redirect-from", f"127.0.0.1:{plain}"],
                      tmp_path, https) as q2:
        assert "(new)" not in q2.stderr()
        with httpx.Client(verify=_ca(tmp_path)) as c:
            assert c.get(f"https://127.0.0.1:{https}/").status_code == 200
    assert (tmp_path / "data" / "ca.pem").read_bytes() == ca_before


def test_given_certificate(tmp_path: Path, upstreams: Callable[..., list[BackgroundApp]]) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "app.test")
    leaf.private_key_pem.write_to_path(str(tmp_path / "k.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
    (app,) = upstreams(1)
    https, plain = free_ports(2)
    with QuickProcess(["--to", str(app.port), "--tls-cert", str(tmp_path / "c.pem"),
                       "--tls-key", str(tmp_path / "k.pem"), "--listen", f"127.0.0.1:{https}",
                       "--redirect-from", f"127.0.0.1:{plain}"], tmp_path, https):
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        r = httpx.get(f"https://127.0.0.1:{https}/", verify=ctx)
        assert r.status_code == 200 and r.json()["app"] == app.name


def test_static_directories(tmp_path: Path, upstreams: Callable[..., list[BackgroundApp]]) -> None:
    (app,) = upstreams(1)
    assets, site = tmp_path / "assets", tmp_path / "site"
    assets.mkdir()
    site.mkdir()
    (assets / "a.css").write_text("body{}")
    (site / "robots.txt").write_text("User-agent: *\n")
    port = free_port()
    if os.geteuid() == 0:
        worker_readable(assets)    # started as root, the workers run as nobody, as nginx's
        worker_readable(site)
    with QuickProcess(["--to", str(app.port), "--listen", f"127.0.0.1:{port}",
                       "--static", f"/assets/={assets}", "--static", f"/={site}"],
                      tmp_path, port):
        base = f"http://127.0.0.1:{port}"
        r = httpx.get(base + "/assets/a.css")
        assert r.status_code == 200 and r.text == "body{}"
        assert r.headers["content-type"].startswith("text/css")
        assert r.headers["cache-control"] == "max-age=3600"
        assert httpx.get(base + "/robots.txt").text == "User-agent: *\n"
        n = len(app.records)
        assert httpx.get(base + "/api/x").json()["app"] == app.name    # not a file: the app
        assert httpx.get(base + "/assets/missing.css").status_code == 404
        assert len(app.records) == n + 1                               # static never woke it


def test_trust_proxy(tmp_path: Path, upstreams: Callable[..., list[BackgroundApp]]) -> None:
    (app,) = upstreams(1)
    port = free_port()
    with QuickProcess(["--to", str(app.port), "--listen", f"127.0.0.1:{port}",
                       "--trust-proxy", "127.0.0.1/32"], tmp_path, port):
        url = f"http://127.0.0.1:{port}/"
        httpx.get(url, headers={"X-Forwarded-For": "203.0.113.9",
                                "X-Forwarded-Proto": "https"})
        rec = app.last()
        assert rec.header("X-Real-IP") == "203.0.113.9"
        assert rec.header("X-Forwarded-Proto") == "https"
        # no X-Forwarded-For: the address is not replaced, the scheme not taken from the client
        httpx.get(url, headers={"X-Forwarded-Proto": "https"})
        rec = app.last()
        assert rec.header("X-Real-IP") == "127.0.0.1"
        assert rec.header("X-Forwarded-Proto") == "http"
    port2 = free_port()
    with QuickProcess(["--to", str(app.port), "--listen", f"127.0.0.1:{port2}",
                       "--trust-proxy", "10.0.0.0/8"], tmp_path / "untrusted", port2):
        httpx.get(f"http://127.0.0.1:{port2}/", headers={"X-Forwarded-For": "203.0.113.9",
                                                         "X-Forwarded-Proto": "https"})
        rec = app.last()
        assert rec.header("X-Real-IP") == "127.0.0.1"      # 127.0.0.1 is not the trusted proxy
        assert rec.header("X-Forwarded-Proto") == "http"


@pytest.mark.parametrize("flags", [
    [],
    ["--self-signed"],
    ["--to", "127.0.0.1:3001", "--static", "/s/=.", "--trust-proxy", "10.0.0.0/8", "--http2"],
    ["--self-signed", "--static", "/=.", "--listen", "127.0.0.1:443"],
])
def test_printed_config_passes_strict_lint(tmp_path: Path, flags: list[str]) -> None:
    env = dict(os.environ, TRUEHOP_DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-m", "truehop", "--to", "127.0.0.1:3000", *flags,
                          "--print-config"], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=30, check=True).stdout
    (tmp_path / "site.conf").write_text(out)
    r = run_truehop("-t", "--strict", "-c", str(tmp_path / "site.conf"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[warn]" not in r.stderr and "[notice]" not in r.stderr


@pytest.mark.parametrize("flags,message", [
    (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
    (["--to", "https://127.0.0.1:1"], "same scheme"),
    (["--static", "assets=."], "expected /PREFIX/=DIRECTORY"),
    (["--trust-proxy", "10.0.0.300/8"], "not an address or CIDR"),
    (["--listen", "127.0.0.1:99999"], 'invalid port "99999"'),
])
def test_bad_flags_are_explained(tmp_path: Path, flags: list[str], message: str) -> None:
    r = run_truehop("--to", "127.0.0.1:3000", *flags, "--print-config", cwd=tmp_path)
    assert r.returncode == 1 and message in r.stderr, r.stderr
