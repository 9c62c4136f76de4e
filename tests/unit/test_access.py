"""The access phase's pure parts: password files and hashes (truehop.htpasswd), the
allow/deny rules as compiled and matched, satisfy's folding, limit_except's settings."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from truehop import htpasswd
from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.proxy.access import GO_ON, _fold, match_rules

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


def _openssl(flag: str, password: str, salt: str | None = None) -> bytes:
    args = ["openssl", "passwd", flag] + (["-salt", salt] if salt else []) + [password]
    return subprocess.run(args, check=True, capture_output=True).stdout.strip()


# --- htpasswd ------------------------------------------------------------------------------

def test_find_hash_scans_like_nginx() -> None:
    data = (b"# alice:{PLAIN}commented\n"
            b"\r\n"
            b"\n"
            b"al:{PLAIN}short\n"
            b"alice:{PLAIN}right:a comment\r\n"
            b"alice:{PLAIN}second\n"
            b"bob:{PLAIN}crlf\r\n"
            b"carol:{PLAIN}no-newline")
    assert htpasswd.find_hash(data, b"alice") == b"{PLAIN}right"
    assert htpasswd.find_hash(data, b"al") == b"{PLAIN}short"
    assert htpasswd.find_hash(data, b"bob") == b"{PLAIN}crlf"
    assert htpasswd.find_hash(data, b"carol") == b"{PLAIN}no-newline"
    assert htpasswd.find_hash(data, b"# alice") is None
    assert htpasswd.find_hash(data, b"dave") is None


def test_nginx_own_schemes() -> None:
    sha = b"{SHA}" + base64.b64encode(hashlib.sha1(b"pw").digest())
    salt = b"\x01\x02salt"
    ssha = b"{SSHA}" + base64.b64encode(hashlib.sha1(b"pw" + salt).digest() + salt)
    for stored in (b"{PLAIN}pw", sha, ssha):
        assert htpasswd.verify(b"pw", stored) is True
        assert htpasswd.verify(b"pW", stored) is False
    # a NUL ends the password, as the C string nginx hands to ngx_crypt
    assert htpasswd.verify(b"pw\0junk", b"{PLAIN}pw") is True


@needs_openssl
@pytest.mark.parametrize("flag, magic", [("-1", b"$1$"), ("-apr1", b"$apr1$"),
                                         ("-5", b"$5$"), ("-6", b"$6$")])
@pytest.mark.parametrize("password", ["hello", "x", "a" * 80, "pässwörd", "with space"])
def test_crypt_schemes_against_openssl(flag: str, magic: bytes, password: str) -> None:
    for salt in ("s", "abcdefgh", "saltsaltsaltsalt12"):
        if magic in (b"$1$", b"$apr1$"):
            salt = salt[:8]
        stored = _openssl(flag, password, salt)
        key = password.encode()
        if magic in (b"$1$", b"$apr1$"):
            assert htpasswd.md5_crypt(key, stored, magic) == stored
        else:
            assert htpasswd.sha_crypt(key, stored, magic) == stored
        if magic != b"$apr1$":
            assert htpasswd.own_crypt(key, stored) == stored
        assert htpasswd.verify(key, stored) is True
        assert htpasswd.verify(key + b"!", stored) is False


def test_sha_crypt_rounds() -> None:
    # Drepper's test vectors (the specification's own)
    assert htpasswd.sha_crypt(b"Hello world!", b"$5$rounds=10000$saltstringsaltstring",
                              b"$5$") == \
        b"$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"
    assert htpasswd.sha_crypt(b"Hello world!", b"$6$rounds=10000$saltstringsaltstring",
                              b"$6$") == \
        (b"$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/"
         b"UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.")
    # rounds below the minimum are raised to it, and say so (Drepper's rule; libxcrypt,
    # which truehop calls where it can, as nginx does, refuses such a salt instead)
    assert htpasswd.sha_crypt(b"the minimum number is still observed",
                              b"$5$rounds=10$roundstoolow", b"$5$") == \
        b"$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC"
    assert htpasswd.sha_crypt(b"x", b"$5$rounds=abc$salt", b"$5$") is None


@pytest.mark.skipif(htpasswd.LIBC_CRYPT is None, reason="no libcrypt")
def test_libc_crypt_is_what_nginx_calls() -> None:
    bcrypt = pytest.importorskip("bcrypt")
    stored = bcrypt.hashpw(b"blowfish", bcrypt.gensalt(4)).replace(b"$2b$", b"$2y$")
    assert htpasswd.verify(b"blowfish", stored) is True
    assert htpasswd.verify(b"blowfisH", stored) is False
    # a salt crypt(3) refuses: libxcrypt's failure token, never equal to the stored string
    assert htpasswd.verify(b"x", b"!!") is False


def test_without_libcrypt_unknown_schemes_cannot_be_checked() -> None:
    assert htpasswd.own_crypt(b"x", b"$2y$05$abcdefghijklmnopqrstuu") is None
    assert htpasswd.own_crypt(b"x", b"abJnggxhB/yWI") is None


# --- rules ---------------------------------------------------------------------------------

def compile_text(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    p = tmp_path / "site.conf"
    p.write_text(text)
    return load(str(p), str(tmp_path))


def rules_of(tmp_path: Path, lines: str):  # type: ignore[no-untyped-def]
    cfg = compile_text(tmp_path, f"server {{ location / {{ {lines} }} }}")
    return cfg.http.servers[0].locations[0].settings.access_rules, cfg.warnings


def test_rules_compile_like_ngx_ptocidr(tmp_path: Path) -> None:
    rules, warnings = rules_of(tmp_path, "allow 10.1.2.3/8; deny 2001:db8::1/32; allow unix:; "
                                         "deny all; allow 192.168.1.1; allow 010.0.0.1;")
    assert [(r.deny, r.family) for r in rules] == [(False, "4"), (True, "6"), (False, "unix"),
                                                   (True, "all"), (False, "4"), (False, "4")]
    assert rules[0].addr == 0x0A000000 and rules[0].mask == 0xFF000000
    assert rules[1].addr == 0x20010DB8 << 96
    assert rules[4].mask == 0xFFFFFFFF
    assert rules[5].addr == 0x0A000001          # ngx_inet_addr reads "010" as ten
    assert len(warnings) == 2 and "low address bits of 10.1.2.3/8 are meaningless" in warnings[0]
    zero, _ = rules_of(tmp_path, "allow 0.0.0.0/0; deny ::/0;")
    assert (zero[0].mask, zero[1].mask) == (0, 0)


@pytest.mark.parametrize("bad", ["10.0.0.1/33", "::1/129", "10.0.0.1/", "10.0.0.1/x",
                                 "1.2.3", "1.2.3.4.5", "fe80::1%lo", "localhost", "unix:/x"])
def test_invalid_rules(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match=f'invalid parameter "{bad}"'):
        rules_of(tmp_path, f"allow {bad};")


def test_rules_inherit_as_a_whole(tmp_path: Path) -> None:
    cfg = compile_text(tmp_path, """
        allow 10.0.0.0/8;
        server {
            deny 10.0.0.1;
            location /a { }
            location /b { allow all; }
            location /c { auth_request /auth; location /c/d { auth_request off; } }
            location /e { }
        }""")
    srv = cfg.http.servers[0]
    by = {loc.pattern: loc for loc in srv.locations}
    assert [r.text for r in by["/a"].settings.access_rules] == ["10.0.0.1"]
    assert [r.text for r in by["/b"].settings.access_rules] == ["all"]
    assert by["/c"].settings.auth_request == "/auth"
    assert by["/c"].children[0].settings.auth_request is None
    assert all(loc.settings.access_phase for loc in srv.locations)
    plain = compile_text(tmp_path, "server { location / { } location /x { proxy_pass "
                                   "http://127.0.0.1:1; } }")
    assert not any(loc.settings.access_phase for loc in plain.http.servers[0].locations)
    assert not plain.http.servers[0].default_loc.settings.access_phase


def test_limit_except_settings(tmp_path: Path) -> None:
    cfg = compile_text(tmp_path, """
        server {
            allow 127.0.0.1;
            location / {
                auth_basic "loc";
                limit_except get PROPFIND { deny all; }
                location /inner { }
            }
            location /p { limit_except POST { allow 10.0.0.1; } }
        }""")
    loc, p = cfg.http.servers[0].locations
    le = loc.limit_except
    assert le is not None and le.methods == {"GET", "HEAD", "PROPFIND"}
    assert [r.text for r in le.settings.access_rules] == ["all"]
    assert le.settings.auth_basic is not None and le.settings.auth_basic.source == "loc"
    assert loc.settings.access_phase
    assert [r.text for r in loc.settings.access_rules] == ["127.0.0.1"]
    assert loc.children[0].limit_except is None
    assert p.limit_except is not None and p.limit_except.methods == {"POST"}


def test_user_file_is_relative_to_the_config(tmp_path: Path) -> None:
    cfg = compile_text(tmp_path, "server { auth_basic x; auth_basic_user_file pw/users; "
                                 "location /v { auth_basic_user_file $http_x; } }")
    srv = cfg.http.servers[0]
    uf = srv.settings.auth_basic_user_file
    assert uf is not None and uf.path.static == str(tmp_path / "pw" / "users")
    v = srv.locations[0].settings.auth_basic_user_file
    assert v is not None and v.path.static is None and v.base == str(tmp_path)


@pytest.mark.parametrize("addr, want", [
    ("127.0.0.1", False), ("127.0.0.2", True), ("10.1.2.3", True),
    ("::1", False), ("::2", None), ("2001:db8::5", True),
    ("::ffff:127.0.0.1", False),        # IPv4-mapped: the IPv4 rules
    ("unix:", True), ("not an address", None),
])
def test_match_rules(tmp_path: Path, addr: str, want: bool | None) -> None:
    rules, _ = rules_of(tmp_path, "allow 127.0.0.1; deny 127.0.0.0/8; deny 10.0.0.0/8; "
                                  "allow ::1; deny 2001:db8::/32; deny unix:;")
    assert match_rules(rules, addr) is want


def test_mapped_address_without_ipv4_rules_uses_ipv6_ones(tmp_path: Path) -> None:
    rules, _ = rules_of(tmp_path, "deny ::ffff:0:0/96;")
    assert match_rules(rules, "::ffff:127.0.0.1") is True
    rules, _ = rules_of(tmp_path, "deny ::ffff:0:0/96; allow 0.0.0.0/0;")
    assert match_rules(rules, "::ffff:127.0.0.1") is False


@pytest.mark.parametrize("rc, code, satisfy_any, want", [
    (None, 0, False, (GO_ON, 0)),
    (0, 0, False, (GO_ON, 0)),
    (0, 403, True, (0, 403)),            # any: the first that allows lets it through
    (401, 0, False, (401, 0)),
    (403, 0, False, (403, 0)),
    (500, 0, True, (500, 0)),            # any: an error is answered at once
    (401, 403, True, (GO_ON, 401)),      # a 401 replaces a remembered 403...
    (403, 401, True, (GO_ON, 401)),      # ...and is not replaced by one
])
def test_fold(rc: int | None, code: int, satisfy_any: bool, want: tuple[int, int]) -> None:
    assert _fold(rc, code, satisfy_any) == want
