"""`-t` opens certificates and keys: failures name the file and the config line."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.log import ErrorLog
from truehop.process.runtime import Runtime

CONF = """
server {
    listen 127.0.0.1:8443 ssl;
    server_name a.test;
    ssl_certificate cert.pem;
    ssl_certificate_key key.pem;
}
"""


def build(tmp_path: Path) -> Runtime:
    (tmp_path / "site.conf").write_text(CONF)
    cfg = load(str(tmp_path / "site.conf"), str(tmp_path))
    return Runtime(cfg, ErrorLog([("stderr", "emerg")]))


def test_good_pair_loads(tmp_path):
    c = trustme.CA().issue_cert("a.test")
    c.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    c.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    assert build(tmp_path).listeners


def test_missing_key(tmp_path):
    trustme.CA().issue_cert("a.test").cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    with pytest.raises(ConfigError) as e:
        build(tmp_path)
    assert str(e.value) == (f'cannot load certificate key "{tmp_path}/key.pem": BIO_new_file() '
                            f"failed (2: No such file or directory) in {tmp_path}/site.conf:5")


def test_key_not_matching_certificate(tmp_path):
    ca = trustme.CA()
    ca.issue_cert("a.test").cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.issue_cert("b.test").private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    with pytest.raises(ConfigError, match="key values mismatch") as e:
        build(tmp_path)
    assert str(e.value).endswith("site.conf:5")


def test_expired_certificate_is_a_warning(tmp_path):
    import datetime
    c = trustme.CA().issue_cert(
        "a.test", not_after=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    c.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    c.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    rt = build(tmp_path)
    assert any(w.startswith(f'certificate "{tmp_path}/cert.pem" expired on 2020-01-01')
               and w.endswith("site.conf:5") for w in rt.cfg.warnings)


def test_dhparam_loaded_or_refused_at_its_line(tmp_path):
    """ssl_dhparam (was accepted and ignored): a readable file is loaded, anything else is
    nginx's PEM_read_bio_DHparams error at the directive's line."""
    c = trustme.CA().issue_cert("a.test")
    c.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    c.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    conf = CONF.replace("    ssl_certificate cert.pem;",
                        "    ssl_certificate cert.pem;\n    ssl_dhparam dh.pem;")
    (tmp_path / "site.conf").write_text(conf)
    (tmp_path / "dh.pem").write_text("not DH parameters\n")
    with pytest.raises(ConfigError) as e:
        Runtime(load(str(tmp_path / "site.conf"), str(tmp_path)), ErrorLog([("stderr", "emerg")]))
    assert str(e.value) == (f'PEM_read_bio_DHparams("{tmp_path}/dh.pem") failed in '
                            f"{tmp_path}/site.conf:6")
    (tmp_path / "dh.pem").write_text(FFDHE2048)
    assert Runtime(load(str(tmp_path / "site.conf"), str(tmp_path)),
                   ErrorLog([("stderr", "emerg")])).listeners


# RFC 7919's ffdhe2048 group (generating safe primes in a test takes too long)
FFDHE2048 = """-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""


def test_password_file_for_an_encrypted_key(tmp_path):
    """ssl_password_file (was refused as unknown): the passphrases are tried in turn; an
    encrypted key without the right one is nginx's error, never a prompt."""
    from cryptography.hazmat.primitives import serialization

    c = trustme.CA().issue_cert("a.test")
    c.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    key = serialization.load_pem_private_key(c.private_key_pem.bytes(), password=None)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"right")))
    conf = CONF.replace("    ssl_certificate cert.pem;",
                        "    ssl_certificate cert.pem;\n    ssl_password_file pw.txt;")
    (tmp_path / "site.conf").write_text(conf)

    def runtime() -> Runtime:
        return Runtime(load(str(tmp_path / "site.conf"), str(tmp_path)),
                       ErrorLog([("stderr", "emerg")]))

    with pytest.raises(ConfigError) as e:
        runtime()
    assert str(e.value) == (f'open() "{tmp_path}/pw.txt" failed (2: No such file or '
                            f"directory) in {tmp_path}/site.conf:6")
    (tmp_path / "pw.txt").write_text("wrong\nright\n")
    assert runtime().listeners
    (tmp_path / "pw.txt").write_text("wrong\n")
    with pytest.raises(ConfigError, match="cannot load certificate"):
        runtime()
    (tmp_path / "site.conf").write_text(CONF)       # no password file at all
    with pytest.raises(ConfigError, match="cannot load certificate"):
        runtime()
