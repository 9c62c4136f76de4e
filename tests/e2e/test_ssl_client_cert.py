"""Client certificates (ssl_verify_client and friends) against the real truehop: the upstream
receives the certificate's variables, nginx's 400 pages for a missing or failed certificate,
per-server verification picked by the SNI name, 421 for a Host other than the verified name,
over HTTP/1.1 and HTTP/2; configuration errors with file:line."""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from harness import free_port, run_truehop

pytestmark = pytest.mark.timeout(60)

CONF = """
error_log error.log info;
events { }
http {
    access_log access.log;
    ssl_certificate @@SITE@@;
    ssl_certificate_key @@SITE@@;
    ssl_client_certificate @@CLIENT_CA@@;
    proxy_set_header X-Verify $ssl_client_verify;
    proxy_set_header X-S-DN $ssl_client_s_dn;
    proxy_set_header X-I-DN $ssl_client_i_dn;
    proxy_set_header X-Serial $ssl_client_serial;
    proxy_set_header X-Fingerprint $ssl_client_fingerprint;
    proxy_set_header X-Cert $ssl_client_escaped_cert;
    proxy_set_header X-Remain $ssl_client_v_remain;

    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        server_name on.test;
        http2 on;
        ssl_verify_client on;
        location / { proxy_pass http://127.0.0.1:@@UP@@; }
        location /vars {
            return 200 "$ssl_client_verify|$ssl_client_v_start|$ssl_client_v_end|$ssl_client_raw_cert";
        }
    }
    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        server_name optional.test;
        http2 on;
        ssl_verify_client optional;
        location / { proxy_pass http://127.0.0.1:@@UP@@; }
    }
    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        server_name off.test;
        location / { return 200 "off $ssl_client_verify\\n"; }
    }
    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        server_name depth0.test;
        ssl_verify_client on;
        ssl_verify_depth 0;
        location / { return 200 "depth0 $ssl_client_verify\\n"; }
    }
    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        server_name depth1.test;
        ssl_verify_client on;
        location / { return 200 "depth1 $ssl_client_verify\\n"; }
    }
    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        server_name page.test;
        ssl_verify_client on;
        error_page 496 = @nocert;
        location / { return 200 "page\\n"; }
        location @nocert { return 403 "certificate required\\n"; }
    }
}
"""


@pytest.fixture
def site(truehop: Any, upstream: Any, tmp_path: Path) -> SimpleNamespace:
    server_ca = trustme.CA()
    server_ca.cert_pem.write_to_path(str(tmp_path / "server-ca.pem"))
    server_ca.issue_cert("on.test", "optional.test", "off.test", "depth0.test", "depth1.test",
                         "page.test").private_key_and_cert_chain_pem \
        .write_to_path(str(tmp_path / "site.pem"))
    client_ca = trustme.CA(organization_name="Client CA, Inc.")
    client_ca.cert_pem.write_to_path(str(tmp_path / "client-ca.pem"))
    alice = client_ca.issue_cert("alice@example.com", common_name="alice",
                                 organization_unit_name="eng+ops")
    alice.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "alice.pem"))
    # leaf <- intermediate <- the client CA: one intermediate CA, sent by the client
    inter = client_ca.create_child_ca()
    bob = inter.issue_cert("bob@example.com", common_name="bob")
    bob.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "bob.pem"))
    mallory = trustme.CA().issue_cert("mallory@example.com", common_name="mallory")
    mallory.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "mallory.pem"))
    port = free_port()
    tp = truehop(CONF, TLS=port, UP=upstream.port, SITE=tmp_path / "site.pem",
                 CLIENT_CA=tmp_path / "client-ca.pem")
    return SimpleNamespace(tp=tp, port=port, dir=tmp_path, server_ca=str(tmp_path / "server-ca.pem"),
                           alice=x509.load_pem_x509_certificate(alice.cert_chain_pems[0].bytes()))


def client_ctx(site: SimpleNamespace, cert: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=site.server_ca)
    if cert:
        ctx.load_cert_chain(str(site.dir / f"{cert}.pem"))
    return ctx


def get(site: SimpleNamespace, name: str, cert: str | None, path: str = "/",
        http2: bool = False, host: str | None = None) -> httpx.Response:
    """A request to https://name/ made on a connection whose SNI is `name`."""
    with httpx.Client(verify=client_ctx(site, cert), http1=not http2, http2=http2,
                      timeout=5) as c:
        headers = {"Host": host} if host else {}
        r = c.get(f"https://{name}:{site.port}{path}", headers=headers,
                  extensions={"sni_hostname": name})
        assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        return r


@pytest.fixture(autouse=True)
def _resolve_test_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """*.test names resolve to 127.0.0.1 for the clients of this file."""
    real = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kw: Any) -> Any:
        if isinstance(host, str) and host.endswith(".test"):
            host = "127.0.0.1"
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def upstream_headers(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 200, r.text
    return {k.lower(): v for k, v in json.loads(r.text)["headers"]}


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
def test_valid_certificate_reaches_the_upstream_as_variables(site: SimpleNamespace,
                                                             http2: bool) -> None:
    h = upstream_headers(get(site, "on.test", "alice", http2=http2))
    cert = site.alice
    assert h["x-verify"] == "SUCCESS"
    # RFC 2253 order (last RDN first); "+" and "," escaped as OpenSSL does
    assert h["x-s-dn"] == cert.subject.rfc4514_string()
    assert h["x-s-dn"].startswith("CN=alice,OU=eng\\+ops,O=")
    assert h["x-i-dn"] == cert.issuer.rfc4514_string()
    assert "O=Client CA\\, Inc." in h["x-i-dn"]
    hexed = f"{cert.serial_number:X}"
    assert h["x-serial"] == ("0" if len(hexed) % 2 else "") + hexed
    der = cert.public_bytes(Encoding.DER)
    assert h["x-fingerprint"] == hashlib.sha1(der).hexdigest()
    assert unquote(h["x-cert"]) == ssl.DER_cert_to_PEM_cert(der)
    assert int(h["x-remain"]) > 300000          # trustme's leaves are valid until 3000


def test_certificate_times_and_pem(site: SimpleNamespace) -> None:
    r = get(site, "on.test", "alice", "/vars")
    verify, start, end, pem = r.text.split("|", 3)
    assert verify == "SUCCESS"
    assert start == site.alice.not_valid_before_utc.strftime("%b %e %H:%M:%S %Y GMT")
    assert end == site.alice.not_valid_after_utc.strftime("%b %e %H:%M:%S %Y GMT")
    assert pem == site.alice.public_bytes(Encoding.PEM).decode()


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
def test_on_without_certificate_is_nginx_496_page(site: SimpleNamespace, http2: bool) -> None:
    r = get(site, "on.test", None, http2=http2)
    assert r.status_code == 400
    assert "<head><title>400 No required SSL certificate was sent</title></head>" in r.text
    assert "<center><h1>400 No required SSL certificate was sent</h1></center>" in r.text
    site.tp.wait_for_log("client sent no required SSL certificate while reading client "
                         "request headers")
    if not http2:
        assert r.headers.get("connection") == "close"


def test_error_page_496_is_honoured(site: SimpleNamespace) -> None:
    r = get(site, "page.test", None)
    assert (r.status_code, r.text) == (403, "certificate required\n")
    assert get(site, "page.test", "alice").text == "page\n"


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
def test_optional_without_certificate(site: SimpleNamespace, http2: bool) -> None:
    h = upstream_headers(get(site, "optional.test", None, http2=http2))
    assert h["x-verify"] == "NONE"
    # empty values: proxy_set_header drops the header
    assert "x-s-dn" not in h and "x-serial" not in h and "x-fingerprint" not in h


def test_optional_with_certificate(site: SimpleNamespace) -> None:
    h = upstream_headers(get(site, "optional.test", "alice"))
    assert h["x-verify"] == "SUCCESS"
    assert h["x-s-dn"] == site.alice.subject.rfc4514_string()


@pytest.mark.parametrize("name", ["on.test", "optional.test"])
def test_certificate_from_another_ca_is_refused_in_the_handshake(site: SimpleNamespace,
                                                                 name: str) -> None:
    # nginx answers "400 The SSL certificate error" here; Python's ssl can only end the
    # handshake (with TLS 1.3 the client sees it when it reads the answer)
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        get(site, name, "mallory")
    site.tp.wait_for_log("SSL_do_handshake() failed (SSL: certificate verify failed: unable "
                         "to get local issuer certificate) while SSL handshaking")


def test_server_without_verification_asks_for_no_certificate(site: SimpleNamespace) -> None:
    # the SNI name picks the context before the handshake: off.test does not ask, so even a
    # certificate no CA here knows is not sent, and the handshake succeeds
    assert get(site, "off.test", "mallory").text == "off NONE\n"
    assert get(site, "off.test", None).text == "off NONE\n"


def test_host_other_than_the_verified_name_is_421(site: SimpleNamespace) -> None:
    r = get(site, "on.test", "alice", host="optional.test")
    assert r.status_code == 421
    site.tp.wait_for_log("client attempted to request the server name different from the "
                         "one that was negotiated")
    # a Host whose server does not verify is answered, as nginx does
    assert get(site, "on.test", "alice", host="off.test").text == "off SUCCESS\n"


def test_verify_depth(site: SimpleNamespace) -> None:
    # bob's chain has one intermediate CA: ssl_verify_depth 1 (the default) allows it, 0 not
    assert get(site, "depth1.test", "bob").text == "depth1 SUCCESS\n"
    assert get(site, "depth1.test", "alice").text == "depth1 SUCCESS\n"
    assert get(site, "depth0.test", "alice").text == "depth0 SUCCESS\n"
    r = get(site, "depth0.test", "bob")
    assert r.status_code == 400
    assert "<head><title>400 The SSL certificate error</title></head>" in r.text
    site.tp.wait_for_log("client SSL certificate verify error: (22:certificate chain too "
                         "long) while reading client request headers")


ERRORS = """
events { }
http {
    server {
        listen 127.0.0.1:@@PORT@@ ssl;
        ssl_certificate @@SITE@@;
        ssl_certificate_key @@SITE@@;
@@BODY@@
    }
}
"""


@pytest.mark.parametrize(("body", "message", "line"), [
    ("        ssl_verify_client on;",
     "no ssl_client_certificate or ssl_trusted_certificate for ssl_verify_client", 8),
    ("        ssl_verify_client optional_no_ca;",
     '"ssl_verify_client optional_no_ca" is not supported by truehop', 8),
    ("        ssl_verify_client yes;", 'invalid value "yes"', 8),
    ("        ssl_verify_depth -1;", '"ssl_verify_depth" directive invalid number', 8),
    ("        ssl_verify_client on;\n        ssl_client_certificate missing.pem;",
     'cannot load certificate "@@DIR@@/missing.pem": BIO_new_file() failed '
     "(2: No such file or directory)", 9),
    ("        ssl_verify_client on;\n        ssl_trusted_certificate @@SITE@@;\n"
     "        ssl_crl @@SITE@@;",
     'cannot load CRL "@@SITE@@": PEM_read_bio_X509_CRL() failed', 10),
])
def test_configuration_errors(tmp_path: Path, body: str, message: str, line: int) -> None:
    ca = trustme.CA()
    site = tmp_path / "site.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(site))
    conf = tmp_path / "t.conf"
    text = ERRORS.replace("@@BODY@@", body).replace("@@PORT@@", str(free_port()))
    conf.write_text(text.replace("@@SITE@@", str(site)))
    out = run_truehop("-t", "-p", f"{tmp_path}/", "-c", str(conf))
    assert out.returncode == 1
    message = message.replace("@@DIR@@", str(tmp_path)).replace("@@SITE@@", str(site))
    assert f"{message}" in out.stderr
    assert f"in {conf}:{line}" in out.stderr


def test_configuration_ok_with_trusted_certificate_only(tmp_path: Path) -> None:
    ca = trustme.CA()
    site = tmp_path / "site.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(site))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    conf = tmp_path / "t.conf"
    body = ("        ssl_verify_client optional;\n        ssl_trusted_certificate ca.pem;\n"
            "        ssl_verify_depth 3;")
    text = ERRORS.replace("@@BODY@@", body).replace("@@PORT@@", str(free_port()))
    conf.write_text(text.replace("@@SITE@@", str(site)))
    out = run_truehop("-t", "-p", f"{tmp_path}/", "-c", str(conf))
    assert out.returncode == 0, out.stderr


CRL_CONF = """
error_log error.log info;
events { }
http {
    ssl_certificate @@SITE@@;
    ssl_certificate_key @@SITE@@;
    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        server_name crl.test;
        ssl_verify_client optional;
        ssl_client_certificate @@CLIENT_CA@@;
        ssl_crl @@CRL@@;
        location / { return 200 "crl $ssl_client_verify $ssl_client_s_dn\\n"; }
    }
}
"""


def test_crl(truehop: Any, tmp_path: Path) -> None:
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    server_ca = trustme.CA()
    server_ca.cert_pem.write_to_path(str(tmp_path / "server-ca.pem"))
    server_ca.issue_cert("crl.test").private_key_and_cert_chain_pem \
        .write_to_path(str(tmp_path / "site.pem"))
    client_ca = trustme.CA()
    client_ca.cert_pem.write_to_path(str(tmp_path / "client-ca.pem"))
    good = client_ca.issue_cert("good@example.com", common_name="good")
    good.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "good.pem"))
    bad = client_ca.issue_cert("bad@example.com", common_name="bad")
    bad.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "bad.pem"))
    ca_cert = x509.load_pem_x509_certificate(client_ca.cert_pem.bytes())
    ca_key = load_pem_private_key(client_ca.private_key_pem.bytes(), None)
    now = datetime.datetime.now(datetime.UTC)
    revoked = (x509.RevokedCertificateBuilder()
               .serial_number(x509.load_pem_x509_certificate(bad.cert_chain_pems[0].bytes())
                              .serial_number)
               .revocation_date(now - datetime.timedelta(hours=1)).build())
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
           .last_update(now - datetime.timedelta(hours=1))
           .next_update(now + datetime.timedelta(days=1))
           .add_revoked_certificate(revoked).sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    (tmp_path / "ca.crl").write_bytes(crl.public_bytes(Encoding.PEM))
    port = free_port()
    tp = truehop(CRL_CONF, TLS=port, SITE=tmp_path / "site.pem",
                 CLIENT_CA=tmp_path / "client-ca.pem", CRL=tmp_path / "ca.crl")
    site = SimpleNamespace(tp=tp, port=port, dir=tmp_path,
                           server_ca=str(tmp_path / "server-ca.pem"))
    assert get(site, "crl.test", "good").text.startswith("crl SUCCESS CN=good,")
    assert get(site, "crl.test", None).text == "crl NONE \n"
    # nginx: 400 with $ssl_client_verify "FAILED:certificate revoked"; here the handshake
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        get(site, "crl.test", "bad")
    tp.wait_for_log("(SSL: certificate verify failed: certificate revoked) while SSL handshaking")
