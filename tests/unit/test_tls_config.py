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
