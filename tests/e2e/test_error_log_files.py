"""error_log at server/location level (the innermost wins), and log directories never
created: a missing one fails the start, as in nginx."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
from harness import free_port, read, run_truehop

SCOPED = """
server {
    listen 127.0.0.1:@@PORT@@;
    error_log srv.log info;
    location /loc/ {
        proxy_pass http://127.0.0.1:@@DEAD@@;
        error_log loc.log warn;
    }
    location /srv/ { proxy_pass http://127.0.0.1:@@DEAD@@; }
}
server {
    listen 127.0.0.1:@@PORT2@@;
    location / { proxy_pass http://127.0.0.1:@@DEAD@@; }
}
"""


def test_error_log_of_the_location_or_server_takes_the_request_lines(truehop):
    port, port2, dead = free_port(), free_port(), free_port()
    tp = truehop(SCOPED, port=port, port2=port2, dead=dead)
    assert httpx.get(f"http://127.0.0.1:{port}/loc/a").status_code == 502
    assert httpx.get(f"http://127.0.0.1:{port}/srv/b").status_code == 502
    assert httpx.get(f"http://127.0.0.1:{port2}/c").status_code == 502
    loc, srv = tp.tmp_path / "loc.log", tp.tmp_path / "srv.log"
    deadline = time.monotonic() + 5
    while "/c " not in tp.error_log() and time.monotonic() < deadline:
        time.sleep(0.02)
    # nginx's line format, in the innermost error_log
    assert '[error]' in read(loc) and 'connect() failed (111: Connection refused) while ' \
        'connecting to upstream, client: 127.0.0.1, server: , request: "GET /loc/a HTTP/1.1", ' \
        f'upstream: "http://127.0.0.1:{dead}/loc/a", host: "127.0.0.1:{port}"' in read(loc)
    assert '"GET /srv/b HTTP/1.1"' in read(srv) and "/loc/a" not in read(srv)
    main = tp.error_log()
    assert '"GET /c HTTP/1.1"' in main
    assert "/loc/a" not in main and "/srv/b" not in main
    assert "start worker process" not in read(srv)   # the master's lines stay in the main log


def test_start_fails_on_a_missing_log_directory_and_creates_none(tmp_path):
    conf = tmp_path / "n.conf"
    conf.write_text(f"error_log {tmp_path}/nope/e.log;\nevents {{}}\n"
                    f"http {{ server {{ listen 127.0.0.1:{free_port()}; }} }}\n")
    p = subprocess.run([sys.executable, "-m", "truehop", "-p", f"{tmp_path}/", "-c", str(conf)],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 1
    assert f'truehop: [emerg] open() "{tmp_path}/nope/e.log" failed (2: No such file or ' \
        "directory)" in p.stderr
    assert not (tmp_path / "nope").exists()
    out = run_truehop("-t", "-p", f"{tmp_path}/", "-c", str(conf))
    assert out.returncode == 1 and "test failed" in out.stderr
