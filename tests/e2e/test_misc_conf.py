"""Issue 15, end to end: `if ($https = '')`, server names on a lone server, a whole
nginx.conf without `events`, and `$request_filename` / `$document_root` / `$realpath_root`
(compared with nginx where it is installed)."""

from __future__ import annotations

import os

import httpx
import pytest
from harness import free_port, run_truehop

IF_HTTPS = """
server {
    listen 127.0.0.1:@@PORT@@;
    server_name app.test;
    location / {
        if ($https = '') { return 301 https://$host$request_uri; }
        return 200 "secure\\n";
    }
    location /ne/ {
        if ($https != '') { return 200 "tls\\n"; }
        if ($http_x_empty = "") { return 200 "no x-empty\\n"; }
        return 200 "x-empty=$http_x_empty\\n";
    }
}
"""


def test_if_https_empty_redirects(truehop):
    port = free_port()
    truehop(IF_HTTPS, port=port)
    base = f"http://127.0.0.1:{port}"
    r = httpx.get(base + "/login?next=/x", headers={"Host": "app.test"})
    assert r.status_code == 301
    assert r.headers["location"] == "https://app.test/login?next=/x"
    assert httpx.get(base + "/ne/", headers={"Host": "app.test"}).text == "no x-empty\n"
    assert httpx.get(base + "/ne/", headers={"Host": "app.test", "X-Empty": "1"}).text == \
        "x-empty=1\n"


def test_lone_server_with_unhashable_name(tmp_path, truehop):
    port = free_port()
    conf = "server { listen 127.0.0.1:@@PORT@@; server_name ...; return 200 \"lone\\n\"; }"
    truehop(conf, port=port)
    assert httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": "x.test"}).text == "lone\n"
    two = tmp_path / "two.conf"
    two.write_text(f"server {{ listen 127.0.0.1:{port + 0}; server_name ...; }}\n"
                   f"server {{ listen 127.0.0.1:{port}; server_name b.test; }}\n")
    res = run_truehop("-t", "-c", str(two), cwd=tmp_path)
    assert res.returncode == 1
    assert f'invalid server name or wildcard "..." on 127.0.0.1:{port}' in res.stderr


def test_whole_conf_without_events_is_refused(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text("http { server { listen 127.0.0.1:1; } }\n")
    res = run_truehop("-t", "-c", str(conf), cwd=tmp_path)
    assert res.returncode == 1
    assert 'no "events" section in configuration' in res.stderr
    conf.write_text("server { listen 127.0.0.1:1; }\n")
    assert run_truehop("-t", "-c", str(conf), cwd=tmp_path).returncode == 0


PATHS = """
server {
    listen 127.0.0.1:@@PORT@@;
    root @@DIR@@/link/;
    location / { return 200 "f=$request_filename d=$document_root r=$realpath_root\\n"; }
    location /a/ { alias @@DIR@@/al/; return 200 "f=$request_filename d=$document_root\\n"; }
    location /b { alias @@DIR@@/al; return 200 "f=$request_filename d=$document_root\\n"; }
    location ~ ^/re/(.*)$ { alias @@DIR@@/al/$1; return 200 "f=$request_filename d=$document_root r=$realpath_root\\n"; }
    location /rel/ { root html; return 200 "f=$request_filename d=$document_root r=$realpath_root\\n"; }
    location /if/ {
        alias @@DIR@@/al/;
        if ($arg_x) { return 200 "f=$request_filename d=$document_root\\n"; }
        return 200 "no\\n";
    }
    location /files/ { proxy_pass http://127.0.0.1:@@UP@@/; proxy_set_header X-File $request_filename; }
}
"""

PATH_CASES = ["/x/y.html", "/a/b/c", "/bxyz/q", "/re/zz", "/rel/k", "/if/k?x=1"]


def _paths_dir(tmp_path):
    d = tmp_path / "files"
    (d / "www").mkdir(parents=True)
    (d / "al").mkdir()
    os.symlink(d / "www", d / "link")
    return d


def test_path_variables(truehop, upstream, tmp_path):
    d = _paths_dir(tmp_path)
    port = free_port()
    truehop(PATHS, port=port, dir=d, up=upstream.port)
    got = {u: httpx.get(f"http://127.0.0.1:{port}{u}").text for u in PATH_CASES}
    assert got["/x/y.html"] == f"f={d}/link/x/y.html d={d}/link r={d}/www\n"
    assert got["/a/b/c"] == f"f={d}/al/b/c d={d}/al/\n"
    assert got["/bxyz/q"] == f"f={d}/alxyz/q d={d}/al\n"
    assert got["/re/zz"] == f"f={d}/al/zz d={d}/al/zz r=\n"          # does not exist
    assert got["/rel/k"] == f"f={tmp_path}/html/rel/k d={tmp_path}/html r=\n"
    assert got["/if/k?x=1"] == f"f={d}/al/k d={d}/al/\n"
    httpx.get(f"http://127.0.0.1:{port}/files/doc.txt")
    assert upstream.last().header("X-File") == f"{d}/link/files/doc.txt"


def test_path_variables_as_nginx(truehop, nginx, upstream, tmp_path):
    d = _paths_dir(tmp_path)
    p1, p2 = free_port(), free_port()
    truehop(PATHS, port=p1, dir=d, up=upstream.port)
    nginx(PATHS, port=p2, dir=d, up=upstream.port, allow_log=["[crit]"])
    for u in PATH_CASES:
        a = httpx.get(f"http://127.0.0.1:{p1}{u}").text
        b = httpx.get(f"http://127.0.0.1:{p2}{u}").text
        # the relative root is the prefix of each server: compare what follows it
        b = b.replace(str(tmp_path / "nginx0"), "P")
        assert a.replace(str(tmp_path), "P") == b.replace(str(tmp_path), "P"), u


@pytest.mark.parametrize("var", ["uid_got", "geoip_country_code"])
def test_nginx_variable_not_supported_message(tmp_path, var):
    conf = tmp_path / "site.conf"
    conf.write_text("server { listen 127.0.0.1:1; location / { return 200 $VAR; } }\n".replace("VAR", var))
    res = run_truehop("-t", "-c", str(conf), cwd=tmp_path)
    assert res.returncode == 1
    assert f'"{var}" variable is not supported by truehop (ngx_http_' in res.stderr
    assert f"{conf}:1" in res.stderr
