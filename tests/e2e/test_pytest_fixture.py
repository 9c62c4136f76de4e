"""The `truehop_proxy` fixture (truehop.pytest_plugin, a pytest11 entry point) used the way a
project would use it: its deployed nginx configuration, unchanged on disk, in front of its
app in its own tests. The configurations below are written in the shape projects deploy
(ports 80/443, IPv6 twins, production log paths, an upstream by a service name, a whole
nginx.conf with `user` and `pid`), and nothing in them knows about the test."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from truehop.testing import Proxy, ProxyFailed

SITE = """
upstream backend {
    server app.internal:8000;
    keepalive 16;
}

server {
    listen 80;
    listen [::]:80;
    server_name app.example.com;
    access_log /var/log/nginx/app.access.log;

    location / {
        proxy_pass http://backend;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }

    location /static/ {
        alias public/;
        expires 1h;
    }
}
"""

WHOLE = """
user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log warn;

events { worker_connections 256; }

http {
    server {
        listen 443 ssl;
        listen [::]:443 ssl;
        http2 on;
        server_name app.example.com;
        ssl_certificate /etc/letsencrypt/live/app.example.com/fullchain.pem;
        ssl_certificate_key /etc/letsencrypt/live/app.example.com/privkey.pem;
        location / {
            proxy_pass http://api:9000;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
    }
}
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A project's deploy/ directory: the site config and the static files beside it."""
    deploy = tmp_path / "deploy"
    (deploy / "public").mkdir(parents=True)
    (deploy / "public" / "app.css").write_text("body { color: teal }\n")
    conf = deploy / "site.conf"
    conf.write_text(SITE)
    return conf


def test_fixture_runs_the_deployed_config(truehop_proxy, upstream, site):
    proxy = truehop_proxy(site, upstreams={"backend": f"127.0.0.1:{upstream.port}"})
    r = httpx.get(proxy.url("/orders?id=7", port=80), headers={"Host": "app.example.com"})
    assert r.status_code == 200
    seen = upstream.records[-1]
    assert seen.target == "/orders?id=7"
    assert seen.header("host") == "app.example.com"
    assert seen.header("x-forwarded-for") == "127.0.0.1"
    assert seen.header("x-forwarded-proto") == "http"
    # the static location's relative alias still means the file beside the config
    css = httpx.get(proxy.url("/static/app.css"))
    assert css.text == "body { color: teal }\n"
    assert css.headers["cache-control"] == "max-age=3600"
    # the production log path went to the proxy's own directory
    assert '"GET /orders?id=7 HTTP/1.1" 200' in proxy.access_log()
    assert not site.parent.joinpath("logs").exists()
    # the file on disk is the project's, unchanged
    assert site.read_text() == SITE


def test_whole_nginx_conf_with_tls_and_a_service_host(truehop_proxy, upstream, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("app.example.com", "127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    proxy = truehop_proxy(WHOLE, upstreams={"api:9000": f"127.0.0.1:{upstream.port}"},
                          tls=(str(cert_path), str(key_path)))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    with httpx.Client(http2=True, verify=ctx) as client:
        r = client.get(proxy.url("/me", port=443, scheme="https"),
                       headers={"Host": "app.example.com"})
    assert r.status_code == 200 and r.http_version == "HTTP/2"
    assert upstream.records[-1].header("x-forwarded-proto") == "https"
    # the main-level error_log went to the proxy's directory with its level
    assert "error.log warn" in proxy.config_text


def test_unknown_upstream_key_is_refused(upstream, site):
    with pytest.raises(ProxyFailed, match=r"upstreams \['frontend'\] name no"):
        Proxy(site, upstreams={"frontend": f"127.0.0.1:{upstream.port}"}).start()


def test_bad_config_says_where(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("server {\n    listen 80;\n    proxy_pas http://x;\n}\n")
    with pytest.raises(ProxyFailed, match=r'unknown directive "proxy_pas"'):
        Proxy(conf).start()


def test_context_manager_stops_the_process(upstream, site):
    with Proxy(site, upstreams={"backend": f"127.0.0.1:{upstream.port}"}) as proxy:
        assert httpx.get(proxy.url("/")).status_code == 200
        proc = proxy.proc
        assert proc is not None
    assert proc.poll() is not None
