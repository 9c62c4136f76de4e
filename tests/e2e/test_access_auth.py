"""The access phase end to end: allow/deny (IPv4, IPv6, CIDR, unix:, realip), satisfy,
auth_basic with password files in every format nginx accepts on Linux (each hash made by an
independent tool: openssl passwd, hashlib, the bcrypt package), limit_except."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from auth_app import worker_readable_dir
from harness import free_port, run_truehop


@pytest.fixture
def files():
    """Where the password files go (auth_app.worker_readable_dir)."""
    with worker_readable_dir() as d:
        yield d


UPSTREAM_CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    listen [::1]:@@PORT@@;
    proxy_set_header X-Remote-User $remote_user;
    location /open { proxy_pass http://127.0.0.1:@@UP@@; }
    location /deny-all { deny all; proxy_pass http://127.0.0.1:@@UP@@; }
    location /v4-only { allow 127.0.0.1; deny all; proxy_pass http://127.0.0.1:@@UP@@; }
    location /v6-only { allow ::1; deny all; proxy_pass http://127.0.0.1:@@UP@@; }
    location /cidr { allow 127.0.0.0/8; deny all; proxy_pass http://127.0.0.1:@@UP@@; }
    location /cidr6 { allow ::/1; deny all; proxy_pass http://127.0.0.1:@@UP@@; }
    location /first-match { deny 127.0.0.1; allow all; deny ::1; proxy_pass http://127.0.0.1:@@UP@@; }
    location /other-net { allow 10.0.0.0/8; allow 2001:db8::/32; deny all; proxy_pass http://127.0.0.1:@@UP@@; }
    location /no-match { deny 10.0.0.1; proxy_pass http://127.0.0.1:@@UP@@; }
    location /low-bits { allow 127.0.0.77/8; deny all; proxy_pass http://127.0.0.1:@@UP@@; }
    location /inherit {
        deny 127.0.0.1;
        allow all;
        location /inherit/kept { proxy_pass http://127.0.0.1:@@UP@@; }
        location /inherit/replaced { allow 127.0.0.1; proxy_pass http://127.0.0.1:@@UP@@; }
    }
    location /return { deny all; return 200 "rewrite phase first\\n"; }
}
"""

V4_V6 = [
    # path, status from 127.0.0.1, status from ::1
    ("/open", 200, 200),
    ("/deny-all", 403, 403),
    ("/v4-only", 200, 403),
    ("/v6-only", 403, 200),
    ("/cidr", 200, 403),
    ("/cidr6", 403, 200),
    ("/first-match", 403, 200),
    ("/other-net", 403, 403),
    ("/no-match", 200, 200),
    ("/low-bits", 200, 403),
    ("/inherit/kept", 403, 200),
    ("/inherit/replaced", 200, 200),
    # `return` runs in the rewrite phase, before the access phase: nginx answers it
    ("/return", 200, 200),
]


def test_allow_deny_matrix_ipv4_and_ipv6(truehop, upstream):
    port = free_port()
    tp = truehop(UPSTREAM_CONF, port=port, up=upstream.port)
    for path, v4, v6 in V4_V6:
        assert httpx.get(f"http://127.0.0.1:{port}{path}").status_code == v4, (path, "v4")
        assert httpx.get(f"http://[::1]:{port}{path}").status_code == v6, (path, "v6")
    log = tp.error_log()
    assert "[error]" in log and "access forbidden by rule" in log
    line = next(x for x in log.splitlines() if "access forbidden by rule" in x)
    assert "[error]" in line and "client: " in line


def test_low_address_bits_warning(tmp_path):
    conf = tmp_path / "t.conf"
    conf.write_text("server { listen 127.0.0.1:1; location / { allow 127.0.0.77/8; "
                    "deny 2001:db8::1/32; } }\n")
    res = run_truehop("-t", "-c", str(conf), "-p", str(tmp_path))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert f"low address bits of 127.0.0.77/8 are meaningless in {conf}:1" in out
    assert f"low address bits of 2001:db8::1/32 are meaningless in {conf}:1" in out


@pytest.mark.parametrize("rule, message", [
    ("allow 10.0.0.256;", 'invalid parameter "10.0.0.256"'),
    ("deny 10.0.0.0/33;", 'invalid parameter "10.0.0.0/33"'),
    ("deny example.com;", 'invalid parameter "example.com"'),
    ("satisfy some;", 'invalid value "some"'),
    ("limit_except FETCH { deny all; }", 'invalid method "FETCH"'),
    ("auth_request_set user $remote_addr;", 'invalid variable name "user"'),
])
def test_config_errors(tmp_path, rule, message):
    conf = tmp_path / "t.conf"
    conf.write_text(f"server {{ listen 127.0.0.1:1; location / {{\n{rule}\n}} }}\n")
    res = run_truehop("-t", "-c", str(conf), "-p", str(tmp_path))
    assert res.returncode == 1
    assert f"{message} in {conf}:2" in res.stdout + res.stderr


def test_realip_address_is_the_one_checked(truehop, upstream):
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;
    location / { allow 192.0.2.1; allow 2001:db8::7; deny all; proxy_pass http://127.0.0.1:@@UP@@; }
}""", port=port, up=upstream.port)
    url = f"http://127.0.0.1:{port}/x"
    assert httpx.get(url).status_code == 403
    assert httpx.get(url, headers={"X-Real-IP": "192.0.2.1"}).status_code == 200
    assert httpx.get(url, headers={"X-Real-IP": "192.0.2.2"}).status_code == 403
    assert httpx.get(url, headers={"X-Real-IP": "2001:db8::7"}).status_code == 200


def test_unix_socket_clients(truehop, upstream, tmp_path):
    sock = tmp_path / "s.sock"
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    listen unix:@@SOCK@@;
    location / { allow unix:; deny all; proxy_pass http://127.0.0.1:@@UP@@; }
    location /no-unix-rule { allow 127.0.0.1; deny 10.0.0.0/8; proxy_pass http://127.0.0.1:@@UP@@; }
}""", port=port, sock=sock, up=upstream.port)
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock))) as c:
        assert c.get("http://localhost/x").status_code == 200
        # only IPv4 rules: a UNIX socket client matches none of them, the module declines
        assert c.get("http://localhost/no-unix-rule").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/x").status_code == 403


# --- password files -----------------------------------------------------------------------

def _openssl(flag: str, password: str) -> str:
    return subprocess.run(["openssl", "passwd", flag, password], check=True,
                          capture_output=True, text=True).stdout.strip()


def make_users() -> dict[str, tuple[str, str]]:
    """user -> (password, the stored string), each made by a tool other than truehop."""
    users: dict[str, tuple[str, str]] = {}
    users["plain"] = ("pl41n", "{PLAIN}pl41n")
    users["sha"] = ("s-h-a", "{SHA}" + base64.b64encode(hashlib.sha1(b"s-h-a").digest()).decode())
    salt = os.urandom(8)
    users["ssha"] = ("salty", "{SSHA}" + base64.b64encode(
        hashlib.sha1(b"salty" + salt).digest() + salt).decode())
    if shutil.which("openssl"):
        users["apr1"] = ("apache md5", _openssl("-apr1", "apache md5"))
        users["md5"] = ("md5crypt", _openssl("-1", "md5crypt"))
        users["sha256"] = ("sha-256 crypt", _openssl("-5", "sha-256 crypt"))
        users["sha512"] = ("sha-512 crypt", _openssl("-6", "sha-512 crypt"))
    try:
        import bcrypt
    except ImportError:
        pass
    else:
        users["bcrypt"] = ("blowfish", bcrypt.hashpw(b"blowfish", bcrypt.gensalt(5))
                           .decode().replace("$2b$", "$2y$"))   # htpasswd -B writes $2y$
    return users


def write_htpasswd(path: Path, users: dict[str, tuple[str, str]]) -> None:
    lines = ["# a comment line", ""]
    lines += [f"{u}:{stored}" for u, (_, stored) in users.items()]
    lines.append("commented:{PLAIN}x:trailing comment field")
    path.write_text("\n".join(lines) + "\n")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


BASIC_CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    error_log @@INFO_LOG@@ info;
    proxy_set_header X-Remote-User $remote_user;
    location / {
        auth_basic "Restricted $host";
        auth_basic_user_file @@FILE@@;
        proxy_pass http://127.0.0.1:@@UP@@;
        location /public/ { auth_basic off; proxy_pass http://127.0.0.1:@@UP@@; }
    }
    location /relative/ {
        auth_basic "rel";
        auth_basic_user_file htpasswd;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /by-var/ {
        auth_basic "var";
        auth_basic_user_file $http_x_file;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /missing/ {
        auth_basic "missing";
        auth_basic_user_file /nonexistent/htpasswd;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /realm-off/ {
        set $realm off;
        auth_basic $realm;
        auth_basic_user_file @@FILE@@;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
}
"""


def test_auth_basic_every_hash_format(truehop, upstream, tmp_path, files):
    users = make_users()
    assert len(users) >= 3
    pwfile = files / "htpasswd"
    write_htpasswd(pwfile, users)
    port = free_port()
    info_log = tmp_path / "info.log"
    truehop(BASIC_CONF, port=port, up=upstream.port, file=pwfile, info_log=info_log)
    url = f"http://localhost:{port}/secret"
    r = httpx.get(url)
    assert r.status_code == 401
    assert r.headers.get_list("www-authenticate") == ['Basic realm="Restricted localhost"']
    for user, (password, _) in users.items():
        ok = httpx.get(url, headers=basic(user, password))
        assert ok.status_code == 200, (user, ok.status_code)
        seen = {k.lower(): v for k, v in ok.json()["headers"]}
        assert seen["x-remote-user"] == user
        bad = httpx.get(url, headers=basic(user, password + "x"))
        assert bad.status_code == 401, user
        assert bad.headers["www-authenticate"] == 'Basic realm="Restricted localhost"'
        assert f'user "{user}": password mismatch' in info_log.read_text()
    # a `user:hash:comment` line: the value ends at ':'
    assert httpx.get(url, headers=basic("commented", "x")).status_code == 200
    assert httpx.get(url, headers=basic("nobody", "x")).status_code == 401
    log = info_log.read_text()
    assert f'user "nobody" was not found in "{pwfile}"' in log
    assert "[info]" in log and "no user/password was provided for basic authentication" in log
    # not Basic, or broken credentials: as none
    for bad_auth in ("Bearer abc", "Basic", "Basic !!!!", "Basic " +
                     base64.b64encode(b"nocolon").decode()):
        assert httpx.get(url, headers={"Authorization": bad_auth}).status_code == 401, bad_auth
    assert httpx.get(f"http://localhost:{port}/public/x").status_code == 200
    assert httpx.get(f"http://localhost:{port}/realm-off/x").status_code == 200


def test_auth_basic_file_paths_and_changes(truehop, upstream, tmp_path, files):
    (tmp_path / "htpasswd").write_text("a:{PLAIN}one\n")   # `htpasswd`, relative
    pwfile = files / "htpasswd"
    pwfile.write_text("a:{PLAIN}one\n")
    other = files / "other"
    other.write_text("b:{PLAIN}two\n")
    port = free_port()
    info_log = tmp_path / "info.log"
    truehop(BASIC_CONF, port=port, up=upstream.port, file=pwfile, info_log=info_log)
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/relative/", headers=basic("a", "one")).status_code == 200
    assert httpx.get(f"{base}/by-var/", headers={**basic("b", "two"),
                                                 "X-File": str(other)}).status_code == 200
    # a relative path rendered from variables: from the configuration's directory too
    assert httpx.get(f"{base}/by-var/", headers={**basic("a", "one"),
                                                 "X-File": "htpasswd"}).status_code == 200
    # a missing file: 403, logged at [error]
    r = httpx.get(f"{base}/missing/", headers=basic("a", "one"))
    assert r.status_code == 403
    assert 'open() "/nonexistent/htpasswd" failed (2: No such file or directory)' in \
        info_log.read_text()
    # the file is read again once it changes (nginx reads it on every request)
    assert httpx.get(f"{base}/x", headers=basic("c", "three")).status_code == 401
    pwfile.write_text("a:{PLAIN}one\nc:{PLAIN}three\n")
    assert httpx.get(f"{base}/x", headers=basic("c", "three")).status_code == 200
    pwfile.write_text("c:{PLAIN}four\n")
    assert httpx.get(f"{base}/x", headers=basic("c", "three")).status_code == 401
    assert httpx.get(f"{base}/x", headers=basic("c", "four")).status_code == 200


# --- satisfy --------------------------------------------------------------------------------

SATISFY_CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    listen [::1]:@@PORT@@;
    allow 127.0.0.1;
    deny all;
    auth_basic "s";
    auth_basic_user_file @@FILE@@;
    location /all/ { proxy_pass http://127.0.0.1:@@UP@@; }
    location /any/ { satisfy any; proxy_pass http://127.0.0.1:@@UP@@; }
    location /any-deny/ { satisfy any; deny all; auth_basic off; proxy_pass http://127.0.0.1:@@UP@@; }
}
"""


def test_satisfy_all_and_any(truehop, upstream, files):
    pwfile = files / "htpasswd"
    pwfile.write_text("u:{PLAIN}p\n")
    port = free_port()
    tp = truehop(SATISFY_CONF, port=port, up=upstream.port, file=pwfile)
    v4, v6 = f"http://127.0.0.1:{port}", f"http://[::1]:{port}"
    good, wrong = basic("u", "p"), basic("u", "q")
    # all: the address must be allowed and the password right
    assert httpx.get(f"{v4}/all/").status_code == 401
    assert httpx.get(f"{v4}/all/", headers=good).status_code == 200
    assert httpx.get(f"{v6}/all/", headers=good).status_code == 403
    # any: an allowed address needs no password; another one does
    assert httpx.get(f"{v4}/any/").status_code == 200
    r = httpx.get(f"{v6}/any/")
    assert r.status_code == 401                   # the 401 wins over the rules' 403
    assert r.headers["www-authenticate"] == 'Basic realm="s"'
    assert httpx.get(f"{v6}/any/", headers=good).status_code == 200
    assert httpx.get(f"{v6}/any/", headers=wrong).status_code == 401
    # any, and nothing allows: the rules' 403, logged once the phase is over
    before = tp.error_log().count("access forbidden by rule")
    assert httpx.get(f"{v4}/any-deny/").status_code == 403
    assert tp.error_log().count("access forbidden by rule") == before + 1


# --- limit_except ---------------------------------------------------------------------------

LIMIT_EXCEPT_CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    location /ro/ {
        limit_except GET { deny all; }
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /writers/ {
        allow 127.0.0.1;
        limit_except GET OPTIONS {
            auth_basic "writers";
            auth_basic_user_file @@FILE@@;
        }
        proxy_pass http://127.0.0.1:@@UP@@;
        location /writers/nested/ { proxy_pass http://127.0.0.1:@@UP@@; }
    }
    location /ro-v6-only/ {
        limit_except GET { allow ::1; deny all; }
        proxy_pass http://127.0.0.1:@@UP@@;
    }
}
"""


def test_limit_except(truehop, upstream, files):
    pwfile = files / "htpasswd"
    pwfile.write_text("w:{PLAIN}pw\n")
    port = free_port()
    truehop(LIMIT_EXCEPT_CONF, port=port, up=upstream.port, file=pwfile)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client() as c:
        for method, want in (("GET", 200), ("HEAD", 200), ("POST", 403), ("PUT", 403),
                             ("DELETE", 403), ("PATCH", 403), ("OPTIONS", 403),
                             ("PROPFIND", 403)):
            assert c.request(method, f"{base}/ro/x").status_code == want, method
        for method, want in (("GET", 200), ("HEAD", 200), ("OPTIONS", 200), ("POST", 401),
                             ("DELETE", 401)):
            assert c.request(method, f"{base}/writers/x").status_code == want, method
        r = c.post(f"{base}/writers/x", content=b"data", headers=basic("w", "pw"))
        assert r.status_code == 200 and r.json()["body_len"] == 4
        # a nested location does not inherit the block (nginx keeps it per location)
        assert c.post(f"{base}/writers/nested/x").status_code == 200
        assert c.get(f"{base}/ro-v6-only/x").status_code == 200
        assert c.post(f"{base}/ro-v6-only/x").status_code == 403


def test_auth_delay_slows_refusals_only(truehop, upstream, files):
    pwfile = files / "htpasswd"
    pwfile.write_text("u:{PLAIN}p\n")
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    auth_delay 400ms;
    location / {
        auth_basic "d";
        auth_basic_user_file @@FILE@@;
        proxy_pass http://127.0.0.1:@@UP@@;
    }
    location /deny { deny all; proxy_pass http://127.0.0.1:@@UP@@; }
}""", port=port, up=upstream.port, file=pwfile)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client() as c:
        c.get(f"{base}/warm", headers=basic("u", "p"))

        def timed(path: str, headers: dict[str, str]) -> tuple[int, float]:
            t = time.monotonic()
            r = c.get(f"{base}{path}", headers=headers)
            return r.status_code, time.monotonic() - t
        status, took = timed("/x", basic("u", "wrong"))
        assert status == 401 and took >= 0.4
        status, took = timed("/x", {})
        assert status == 401 and took >= 0.4
        status, took = timed("/x", basic("u", "p"))
        assert status == 200 and took < 0.4
        status, took = timed("/deny", {})           # a 403 is not delayed
        assert status == 403 and took < 0.4
