"""Issue 15's pure pieces: the charset header filter, proxy_cookie_flags' editing, the
sendfile_max_chunk split and the ssl_conf_command / ssl_ecdh_curve readings."""

from __future__ import annotations

from pathlib import Path

import pytest

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.proxy.charset import split_charset
from truehop.proxy.cookie_flags import (
    HTTPONLY_OFF,
    HTTPONLY_ON,
    SAMESITE_LAX,
    SAMESITE_OFF,
    SECURE_OFF,
    SECURE_ON,
    edit_flags,
)
from truehop.proxy.static import split_parts


@pytest.mark.parametrize("value,expected", [
    ("text/html", ("text/html", None)),
    ("text/html; charset=koi8-r", ("text/html", "koi8-r")),
    ("text/html;charset=\"UTF-8\"", ("text/html", "UTF-8")),
    ("text/html; q=1; charset=utf-8; x=y", ("text/html; q=1", "utf-8")),
    ("text/html; foo=bar", ("text/html; foo=bar", None)),
    ("charset=utf-8", ("charset=utf-8", None)),
])
def test_split_charset(value, expected):
    assert split_charset(value) == expected


def test_edit_flags():
    base = [("a", "1"), ("Path", "/")]
    assert edit_flags(base, SECURE_ON | HTTPONLY_ON) == [
        ("a", "1"), ("Path", "/"), ("Secure", None), ("HttpOnly", None)]
    assert edit_flags([("a", "1"), ("secure", None), ("HTTPONLY", None)],
                      SECURE_ON | HTTPONLY_OFF) == [("a", "1"), ("secure", None)]
    assert edit_flags([("a", "1"), ("SameSite", "None")], SAMESITE_LAX) == [
        ("a", "1"), ("SameSite", "Lax")]
    assert edit_flags([("a", "1"), ("samesite", "lax")], SAMESITE_LAX) == [
        ("a", "1"), ("samesite", "lax")]
    assert edit_flags([("a", "1"), ("SameSite", "Lax"), ("Secure", None)],
                      SAMESITE_OFF | SECURE_OFF) == [("a", "1")]
    # both asked: on wins, as nginx tests the _ON bit first
    assert edit_flags([("a", "1"), ("Secure", None)], SECURE_ON | SECURE_OFF) == [
        ("a", "1"), ("Secure", None)]


def test_split_parts():
    body = [b"--b\r\n", (0, 10), (100, 25)]
    assert split_parts(body, 0) is body
    assert split_parts(body, 25) is body
    assert split_parts(body, 10) == [b"--b\r\n", (0, 10), (100, 10), (110, 10), (120, 5)]


def _compile(tmp_path: Path, text: str):
    p = tmp_path / "site.conf"
    p.write_text(text)
    return load(str(p), str(tmp_path))


def test_ssl_tuning_readings(tmp_path):
    cfg = _compile(tmp_path, "server { listen 127.0.0.1:1 ssl;\n"
                   "ssl_ecdh_curve x25519:secp384r1;\n"
                   "ssl_conf_command Options -SessionTicket,PrioritizeChaCha;\n"
                   "ssl_conf_command Groups P-256:X25519;\n"
                   "ssl_conf_command MinProtocol TLSv1.3;\n"
                   "ssl_conf_command SignatureAlgorithms ECDSA+SHA256;\n}\n")
    ssl_conf = cfg.http.servers[0].ssl
    assert ssl_conf.ecdh_curve == ("X25519", ("secp384r1",))
    assert ssl_conf.ecdh_where[1] == 2
    hows = [(c.name, c.how, c.arg) for c in ssl_conf.conf_commands]
    assert hows == [("Options", "options", ""), ("Groups", "groups", "prime256v1"),
                    ("MinProtocol", "min", "TLSv1.3"), ("SignatureAlgorithms", "", "")]
    opts = ssl_conf.conf_commands[0]
    assert opts.set_bits == 1 << 14 | 1 << 21 and opts.clear_bits == 0   # NO_TICKET, CHACHA
    # inherited from the http level as a whole, as nginx's arrays are
    cfg = _compile(tmp_path, "ssl_conf_command Options ServerPreference;\n"
                   "server { listen 127.0.0.1:1 ssl; }\n")
    assert [c.how for c in cfg.http.servers[0].ssl.conf_commands] == ["options"]


@pytest.mark.parametrize("line,message", [
    ("ssl_ecdh_curve nosuchcurve;", 'SSL_CTX_set1_curves_list("nosuchcurve") failed'),
    ("ssl_conf_command CipherString NOTACIPHER;",
     'SSL_CONF_cmd("CipherString", "NOTACIPHER") failed'),
    ("charset $host;", '"charset" with variables is not supported by truehop'),
])
def test_tls_and_charset_errors(tmp_path, line, message):
    with pytest.raises(ConfigError) as e:
        _compile(tmp_path, "server { listen 127.0.0.1:1; %s }\n" % line)  # noqa: UP031
    assert message in str(e.value)
