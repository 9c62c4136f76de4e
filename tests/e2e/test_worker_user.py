"""Workers run as the `user` of the config (nginx's default nobody/nogroup) when the master
is root: listeners, logs and the findings file are opened before the switch."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import time

import httpx
import pytest
from harness import free_port, read, run_truehop


def _worker_users(master_pid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "user=", "--ppid", str(master_pid)], capture_output=True,
                         text=True).stdout
    return out.split()


def _wait_workers(tp, want: list[str]) -> list[str]:
    """The users of the master's children, once they are `want` (a new worker is root until
    it switches) or after 5 s."""
    deadline = time.monotonic() + 5
    while True:
        users = _worker_users(tp.pid)
        if users == want or time.monotonic() > deadline:
            return users
        time.sleep(0.02)


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the switch needs a root master")

PROXY_AND_STATIC = """
server {
    listen 127.0.0.1:@@PORT@@;
    location / {
        proxy_pass http://127.0.0.1:@@UP@@;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }
    location /static/ { root @@TMP@@/public; }
    location /secret/ { root @@TMP@@/private; }
}
"""


@root_only
def test_workers_run_as_nobody_and_still_serve(truehop, upstream, tmp_path):
    (tmp_path / "public" / "static").mkdir(parents=True)
    (tmp_path / "public" / "static" / "a.txt").write_text("public\n")
    (tmp_path / "private" / "secret").mkdir(parents=True)
    (tmp_path / "private" / "secret" / "b.txt").write_text("root only\n")
    os.chmod(tmp_path / "private", 0o700)
    port = free_port()
    tp = truehop(PROXY_AND_STATIC, port=port, up=upstream.port, tmp=tmp_path)
    assert _wait_workers(tp, ["nobody"]) == ["nobody"]
    assert subprocess.run(["ps", "-o", "user=", "-p", str(tp.pid)], capture_output=True,
                          text=True).stdout.split() == ["root"]
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(base + "/app").status_code == 200
    assert httpx.get(base + "/static/a.txt").text == "public\n"
    # as nginx: a file only root may read is forbidden to the worker
    assert httpx.get(base + "/secret/b.txt").status_code == 403
    assert "(13: Permission denied)" in tp.wait_for_log("/secret/b.txt")
    # `truehop status` still sees the worker's findings (file opened before the switch)
    httpx.get(base + "/__sse?n=1&interval_ms=10")
    tp.wait_for_log("[sse-buffered]")
    deadline = time.monotonic() + 5
    while True:
        out = run_truehop("status", "-p", f"{tmp_path}/", "--format", "json")
        rules = [f["rule"] for f in json.loads(out.stdout)["findings"]]
        if "sse-buffered" in rules or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "sse-buffered" in rules
    # log rotation: the master creates the new file and gives it to the worker user
    log = tmp_path / "logs" / "access.log"
    os.rename(log, tmp_path / "access.log.1")
    tp.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while "/after-rotation" not in read(log) and time.monotonic() < deadline:
        httpx.get(base + "/after-rotation")
        time.sleep(0.2)
    assert "/after-rotation" in read(log)
    assert os.stat(log).st_uid == pwd.getpwnam("nobody").pw_uid


@root_only
def test_explicit_user_root_keeps_root(truehop, upstream):
    port = free_port()
    tp = truehop(PROXY_AND_STATIC, port=port, up=upstream.port, tmp="/nonexistent",
                 extra_args=["-g", "user root;"])
    assert _wait_workers(tp, ["root"]) == ["root"]
    assert httpx.get(f"http://127.0.0.1:{port}/app").status_code == 200


@root_only
def test_unknown_user_is_emerg_at_t(tmp_path):
    conf = tmp_path / "n.conf"
    conf.write_text("user nosuchuser-xyz;\nevents {}\nhttp { access_log off; }\n")
    out = run_truehop("-t", "-p", f"{tmp_path}/", "-c", str(conf))
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f'truehop: [emerg] getpwnam("nosuchuser-xyz") failed in {conf}:1',
        f"truehop: configuration file {conf} test failed"]
