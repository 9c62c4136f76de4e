"""limit_req, limit_conn and limit_rate end to end (proxy.limits, proxy.pacing, net.shm):
counts of 200/503 for bursts, delays that really delay (without blocking other requests),
one limit across two workers, counts released at the end of a request, bodies paced.

As in nginx, the limits apply in the preaccess phase: a `return` (rewrite phase) is never
limited, so the limited locations here serve a file or proxy.

Timing: the limits are chosen so that the counts do not depend on how fast the machine is
(rates of 1r/m leak nothing during a test), and the timed cases assert wide bounds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from harness import free_port, nginx_binary, render

BURSTS = """
limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
limit_req_zone $arg_k zone=bykey:1m rate=1r/m;
limit_req_zone $binary_remote_addr zone=fast:1m rate=10r/s;
limit_req_zone $binary_remote_addr zone=slow:1m rate=2r/s;
log_format lim '$uri $status $limit_req_status';
server {
    listen 127.0.0.1:@@PORT@@;
    access_log @@LOG@@ lim;
    location /none { alias @@ROOT@@/ok.txt; }
    location /plain { limit_req zone=one; alias @@ROOT@@/ok.txt; }
    location /burst { limit_req zone=one burst=3 nodelay; alias @@ROOT@@/ok.txt; }
    location /status { limit_req zone=one; limit_req_status 429; alias @@ROOT@@/ok.txt; }
    location /key { limit_req zone=bykey burst=1 nodelay; alias @@ROOT@@/ok.txt; }
    location /dry { limit_req zone=one; limit_req_dry_run on; alias @@ROOT@@/ok.txt; }
    location /delay { limit_req zone=fast burst=3; alias @@ROOT@@/ok.txt; }
    location /delay3 { limit_req zone=slow burst=3; alias @@ROOT@@/ok.txt; }
    location /delay2 { limit_req zone=slow burst=5 delay=2; alias @@ROOT@@/ok.txt; }
    location /app { limit_req zone=one burst=2 nodelay; proxy_pass http://127.0.0.1:@@APP@@; }
}
"""


def _statuses(url: str, n: int) -> list[int]:
    with httpx.Client(timeout=10) as c:
        return [c.get(url).status_code for _ in range(n)]


def _concurrent(url: str, n: int) -> list[tuple[int, float]]:
    """n requests at once, each on its own connection: (status, seconds) each."""
    def one(_: int) -> tuple[int, float]:
        t0 = time.monotonic()
        r = httpx.get(url, timeout=20)
        return r.status_code, time.monotonic() - t0
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


@pytest.fixture
def bursts(truehop, upstream, tmp_path):
    port = free_port()
    log = tmp_path / "lim.log"
    (tmp_path / "ok.txt").write_text("ok")
    truehop(BURSTS, port=port, log=str(log), app=upstream.port, root=str(tmp_path))
    return f"http://127.0.0.1:{port}", log


def test_without_burst_one_request_passes(bursts):
    base, _ = bursts
    assert _statuses(base + "/none", 3) == [200, 200, 200]
    assert _statuses(base + "/plain", 5) == [200, 503, 503, 503, 503]


def test_burst_nodelay_passes_burst_more(bursts):
    base, _ = bursts
    assert _statuses(base + "/burst", 7) == [200, 200, 200, 200, 503, 503, 503]


def test_limits_of_one_zone_are_shared_by_locations(bursts):
    base, _ = bursts
    assert _statuses(base + "/plain", 1) == [200]
    # the same key in the same zone: the excess is there already
    assert _statuses(base + "/burst", 4) == [200, 200, 200, 503]


def test_status_and_proxied_location(bursts, upstream):
    base, _ = bursts
    assert _statuses(base + "/status", 2) == [200, 429]
    upstream.clear()
    # /status took this address's first request; burst=2 admits two more
    assert _statuses(base + "/app", 4) == [200, 200, 503, 503]
    assert len(upstream.records) == 2      # a rejected request never reaches the upstream


def test_each_key_has_its_own_state_and_empty_keys_are_not_limited(bursts):
    base, _ = bursts
    assert _statuses(base + "/key?k=a", 3) == [200, 200, 503]
    assert _statuses(base + "/key?k=b", 3) == [200, 200, 503]
    assert _statuses(base + "/key", 5) == [200] * 5


def test_dry_run_counts_but_lets_pass_and_logs_the_variable(bursts):
    base, log = bursts
    assert _statuses(base + "/dry", 3) == [200, 200, 200]
    assert _statuses(base + "/none", 1) == [200]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and log.read_text().count("\n") < 4:
        time.sleep(0.05)
    lines = log.read_text().splitlines()
    assert lines == ["/dry 200 PASSED", "/dry 200 REJECTED_DRY_RUN",
                     "/dry 200 REJECTED_DRY_RUN", "/none 200 -"]


def test_delayed_requests_are_delayed_not_refused(bursts):
    """rate=2r/s burst=3: of 5 requests at once, 4 pass, delayed 0, 0.5, 1, 1.5 s (less
    what leaked while the client started them)."""
    base, _ = bursts
    t0 = time.monotonic()
    got = _concurrent(base + "/delay3", 5)
    statuses = sorted(s for s, _ in got)
    assert statuses == [200, 200, 200, 200, 503]
    slowest = max(t for s, t in got if s == 200)
    assert 1.0 <= slowest < 8, got
    # the rejected one is answered at once, not after the others' delays
    assert min(t for s, t in got if s == 503) < slowest
    assert time.monotonic() - t0 < 10


def test_delay_parameter_lets_the_first_ones_through_at_once(bursts):
    """burst=5 delay=2 at 2r/s: 3 at once (excess up to 2), the 4th and 5th delayed
    (excess 3 and 4: 0.5 and 1 s, less what leaked meanwhile)."""
    base, _ = bursts
    got = _concurrent(base + "/delay2", 5)
    assert sorted(s for s, _ in got) == [200] * 5
    times = sorted(t for _, t in got)
    assert times[-1] >= 0.4, got
    assert times[-1] - times[0] >= 0.3, got


def test_a_delayed_request_does_not_block_the_worker(bursts):
    """rate=2r/s burst=3: three requests delayed 0.5, 1 and 1.5 s; another location's
    request meanwhile is answered at once (the delay is an asyncio sleep)."""
    base, _ = bursts
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(_concurrent, base + "/delay3", 1) for _ in range(4)]
        time.sleep(0.2)
        t0 = time.monotonic()
        assert httpx.get(base + "/none", timeout=5).status_code == 200
        fast = time.monotonic() - t0
        got = [f.result()[0] for f in slow]
    assert sorted(s for s, _ in got) == [200, 200, 200, 200]
    assert max(t for _, t in got) >= 1.3
    assert fast < 1.0


TWO_WORKERS = """
worker_processes 2;
events {}
http {
    limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
    limit_conn_zone $binary_remote_addr zone=addr:1m;
    server {
        listen 127.0.0.1:@@PORT@@ reuseport;
        add_header X-Pid $pid always;
        location /req { limit_req zone=one burst=5 nodelay; proxy_pass http://127.0.0.1:@@APP@@; }
        location /conn { limit_conn addr 2; proxy_pass http://127.0.0.1:@@APP@@; }
    }
}
"""


def _new_connection_get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=20, headers={"Connection": "close"})


def test_one_limit_across_two_workers(truehop, upstream):
    port = free_port()
    truehop(TWO_WORKERS, port=port, app=upstream.port)
    rs = [_new_connection_get(f"http://127.0.0.1:{port}/req") for _ in range(24)]
    pids = {r.headers["X-Pid"] for r in rs}
    assert len(pids) == 2, "reuseport spread 24 connections over both workers"
    assert sum(r.status_code == 200 for r in rs) == 6
    assert sum(r.status_code == 503 for r in rs) == 18
    assert {r.headers["X-Pid"] for r in rs if r.status_code == 503} == pids


def test_limit_conn_across_two_workers_and_released_at_the_end(truehop, upstream):
    port = free_port()
    truehop(TWO_WORKERS, port=port, app=upstream.port)
    url = f"http://127.0.0.1:{port}/conn/__slow?ms=3000"
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futs = [pool.submit(_new_connection_get, url) for _ in range(6)]
        rs = [f.result() for f in futs]
    assert sorted(r.status_code for r in rs) == [200, 200, 503, 503, 503, 503]
    # the counts went back when those requests ended
    rs = [_new_connection_get(f"http://127.0.0.1:{port}/conn/x") for _ in range(6)]
    assert [r.status_code for r in rs] == [200] * 6


CONN = """
limit_conn_zone $binary_remote_addr zone=addr:1m;
limit_conn_zone $arg_k zone=bykey:1m;
log_format lim '$uri $status $limit_conn_status';
server {
    listen 127.0.0.1:@@PORT@@;
    http2 on;
    access_log @@LOG@@ lim;
    location /one { limit_conn addr 1; proxy_pass http://127.0.0.1:@@APP@@; }
    location /status { limit_conn addr 1; limit_conn_status 429; proxy_pass http://127.0.0.1:@@APP@@; }
    location /dry { limit_conn addr 1; limit_conn_dry_run on; proxy_pass http://127.0.0.1:@@APP@@; }
    location /key { limit_conn bykey 1; proxy_pass http://127.0.0.1:@@APP@@; }
}
"""


def test_limit_conn_counts_requests_in_progress(truehop, upstream, tmp_path):
    port = free_port()
    truehop(CONN, port=port, app=upstream.port, log=str(tmp_path / "c.log"))
    base = f"http://127.0.0.1:{port}"
    got = _concurrent(base + "/one/__slow?ms=2000", 3)
    assert sorted(s for s, _ in got) == [200, 503, 503]
    got = _concurrent(base + "/status/__slow?ms=2000", 2)
    assert sorted(s for s, _ in got) == [200, 429]
    got = _concurrent(base + "/dry/__slow?ms=2000", 3)
    assert sorted(s for s, _ in got) == [200, 200, 200]
    # an empty key is not counted
    got = _concurrent(base + "/key/__slow?ms=500", 3)
    assert sorted(s for s, _ in got) == [200, 200, 200]
    text = (tmp_path / "c.log").read_text()
    assert text.count("/dry/__slow 200 REJECTED_DRY_RUN") == 2
    assert text.count("/dry/__slow 200 PASSED") == 1
    assert text.count("/one/__slow 503 REJECTED") == 2
    assert "/key/__slow 200 -" in text


def test_limit_conn_counts_each_http2_stream(truehop, upstream, tmp_path):
    port = free_port()
    truehop(CONN, port=port, app=upstream.port, log=str(tmp_path / "c.log"))

    async def run() -> list[int]:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=20) as c:
            rs = await asyncio.gather(*(c.get(f"http://127.0.0.1:{port}/one/__slow?ms=2000")
                                        for _ in range(3)))
            return sorted(r.status_code for r in rs)

    assert asyncio.run(run()) == [200, 503, 503]


RATE = """
limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
map $arg_rate $rate { default 0; slow 100k; }
server {
    listen 127.0.0.1:@@PORT@@;
    http2 on;
    root @@ROOT@@;
    location /static/ { limit_rate 100k; }
    location /after/ { alias @@ROOT@@/static/; limit_rate 100k; limit_rate_after 150k; }
    location /free/ { alias @@ROOT@@/static/; }
    location /var/ { alias @@ROOT@@/static/; limit_rate $rate; }
    location /set/ { alias @@ROOT@@/static/; set $limit_rate 100k;
                     add_header X-Rate $limit_rate; }
    location /setbad/ { alias @@ROOT@@/static/; set $limit_rate fast;
                        add_header X-Rate $limit_rate; }
    location /proxied/ { limit_rate 100k; proxy_pass http://127.0.0.1:@@APP@@; }
    location /unbuffered/ { limit_rate 100k; proxy_buffering off;
                            proxy_pass http://127.0.0.1:@@APP@@; }
    location /upstream/ { proxy_limit_rate 100k; proxy_pass http://127.0.0.1:@@APP@@; }
    location /accel/ { proxy_pass http://127.0.0.1:@@PORT@@/inner/; }
    location /ignored/ { proxy_ignore_headers X-Accel-Limit-Rate;
                         proxy_pass http://127.0.0.1:@@PORT@@/inner/; }
    location /inner/ { add_header X-Accel-Limit-Rate 102400;
                       proxy_pass http://127.0.0.1:@@APP@@; }
}
"""


@pytest.fixture
def rate(truehop, upstream, tmp_path: Path):
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "f.bin").write_bytes(bytes(range(256)) * 800)    # 200 KiB
    port = free_port()
    truehop(RATE, port=port, app=upstream.port, root=str(tmp_path))
    return f"http://127.0.0.1:{port}"


def _timed(url: str, http2: bool = False) -> tuple[int, int, float]:
    with httpx.Client(http1=not http2, http2=http2, timeout=30) as c:
        t0 = time.monotonic()
        r = c.get(url)
        return r.status_code, len(r.content), time.monotonic() - t0


# 200 KiB at 100 KiB/s: nginx sends about one second's worth at once, then 100 KiB/s
@pytest.mark.parametrize("path", ["/static/f.bin", "/var/f.bin?rate=slow", "/set/f.bin",
                                  "/proxied/__big?kb=200", "/upstream/__big?kb=200",
                                  "/accel/__big?kb=200"])
def test_limited_bodies_take_their_time(rate, path):
    status, n, took = _timed(rate + path)
    assert status == 200 and n == 200 * 1024
    assert 0.7 <= took < 6, took


@pytest.mark.parametrize("path", ["/free/f.bin", "/var/f.bin", "/unbuffered/__big?kb=200",
                                  "/after/f.bin", "/ignored/__big?kb=200"])
def test_unlimited_bodies_are_fast(rate, path):
    # /after: 150 KiB at full speed, then 50 KiB within the first second's allowance
    status, n, took = _timed(rate + path)
    assert status == 200 and n == 200 * 1024
    assert took < 0.6, took


def test_the_limit_rate_variable_reads_what_set_wrote_in_bytes(rate):
    assert httpx.head(rate + "/set/f.bin").headers["X-Rate"] == "102400"
    r = httpx.get(rate + "/setbad/f.bin", timeout=10)
    assert r.headers["X-Rate"] == "0" and r.elapsed.total_seconds() < 0.6   # ignored


def test_limit_rate_over_http2_is_per_stream(rate):
    status, n, took = _timed(rate + "/static/f.bin", http2=True)
    assert status == 200 and n == 200 * 1024
    assert 0.7 <= took < 6, took


def test_a_paced_download_does_not_block_other_requests(rate):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(_timed, rate + "/static/f.bin")
        time.sleep(0.1)
        status, n, took = _timed(rate + "/free/f.bin")
        assert status == 200 and took < 0.5
        assert slow.result()[2] >= 0.7


@pytest.mark.parametrize("conf, error", [
    ("limit_req_zone $arg_a zone=x:1m rate=1r/s sync;", '"sync" parameter'),
    ("limit_req_zone $arg_a zone=x:1k rate=1r/s;", 'zone "zone=x:1k" is too small'),
    ("limit_req_zone $arg_a zone=x rate=1r/s;", 'invalid zone size "zone=x"'),
    ("limit_req_zone $arg_a zone=x:1m rate=fast;", 'invalid rate "rate=fast"'),
    ("limit_req_zone $arg_a rate=1r/s;", '"limit_req_zone" must have "zone" parameter'),
    ("limit_req_zone $arg_a zone=x:1m; limit_req_zone $arg_b zone=x:1m;",
     'limit_req_zone "x" is already bound to key "$arg_a"'),
    ("limit_req_zone $arg_a zone=x:1m; limit_conn_zone $arg_b zone=x:1m;",
     'the shared memory zone "x" is already declared for a different use'),
    ("server { listen 127.0.0.1:1; limit_req zone=nope; }",
     'zero size shared memory zone "nope"'),
    ("limit_req_zone $arg_a zone=x:1m; server { listen 127.0.0.1:1; limit_req zone=x burst=0; }",
     'invalid burst value "burst=0"'),
    ("limit_req_zone $arg_a zone=x:1m; server { listen 127.0.0.1:1; "
     "limit_req zone=x; limit_req zone=x; }", '"limit_req" directive is duplicate'),
    ("limit_conn_zone $arg_a zone=x:1m; server { listen 127.0.0.1:1; limit_conn x 0; }",
     'invalid number of connections "0"'),
    ("server { listen 127.0.0.1:1; limit_req_status 200; }",
     "value must be between 400 and 599"),
    ("server { listen 127.0.0.1:1; limit_req_log_level debug; }", 'invalid value "debug"'),
    ("server { listen 127.0.0.1:1; limit_rate 1x; }", '"limit_rate" directive invalid value'),
])
def test_config_errors(tmp_path, conf, error):
    p = tmp_path / "t.conf"
    p.write_text(conf + "\n")
    out = subprocess.run([sys.executable, "-m", "truehop", "-t", "-c", str(p), "-p",
                          str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert error in out.stderr and f"{p}:" in out.stderr, out.stderr


# -- differential: the same limit_req matrix through nginx -----------------------------------

MATRIX = """
limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
limit_req_zone $binary_remote_addr zone=two:1m rate=2r/m;
limit_req_zone $arg_k zone=bykey:1m rate=1r/m;
server {
    listen 127.0.0.1:@@PORT@@;
    location /a { limit_req zone=one; alias @@ROOT@@/ok.txt; }
    location /b { limit_req zone=one burst=4 nodelay; alias @@ROOT@@/ok.txt; }
    location /c { limit_req zone=two burst=2 nodelay; limit_req zone=bykey burst=5 nodelay;
                  alias @@ROOT@@/ok.txt; }
    location /d { limit_req zone=bykey nodelay; limit_req_status 429; alias @@ROOT@@/ok.txt; }
    location /e { limit_req zone=two burst=1 nodelay; limit_req_dry_run on; alias @@ROOT@@/ok.txt; }
}
"""

SEQUENCE = ["/a"] * 3 + ["/b"] * 6 + ["/c?k=x"] * 4 + ["/c?k=y"] * 2 + ["/c"] * 3 + \
    ["/d?k=z"] * 3 + ["/d"] * 2 + ["/e"] * 4


def _run_matrix(factory, root: Path) -> list[int]:
    port = free_port()
    factory(MATRIX, port=port, root=str(root))
    out = []
    for path in SEQUENCE:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        out.append(int(data.split(b" ", 2)[1]))
    return out


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
def test_limit_req_matrix_matches_nginx(truehop, nginx, tmp_path):
    (tmp_path / "ok.txt").write_text("ok")
    want = _run_matrix(nginx, tmp_path)
    got = _run_matrix(truehop, tmp_path)
    assert got == want
    assert want.count(503) >= 5 and 429 in want      # the matrix does limit


# -- reload ------------------------------------------------------------------------------------

RELOAD = """
worker_processes 2;
error_log error.log notice;
events {}
http {
    limit_req_zone @@KEY@@ zone=one:1m rate=1r/m;
    server {
        listen 127.0.0.1:@@PORT@@;
        add_header X-Gen @@GEN@@ always;
        location /t { limit_req zone=one burst=2 nodelay; alias @@ROOT@@/ok.txt; }
    }
}
"""


def test_a_zone_keeps_its_states_across_a_reload(truehop, tmp_path):
    """nginx keeps a zone of the same name and size across a reload: the excess a client
    built up is still there for the new workers."""
    (tmp_path / "ok.txt").write_text("ok")
    port = free_port()
    values = dict(port=port, root=str(tmp_path), key="$binary_remote_addr")
    tp = truehop(RELOAD, gen=1, **values)
    base = f"http://127.0.0.1:{port}/t"
    assert [_new_connection_get(base).status_code for _ in range(4)] == [200, 200, 200, 503]
    tp.reload(render(RELOAD, gen=2, **values), wait_for="reconfiguring done")
    deadline = time.monotonic() + 10
    r = _new_connection_get(base)
    while r.headers.get("X-Gen") != "2" and time.monotonic() < deadline:
        time.sleep(0.1)
        r = _new_connection_get(base)
    assert r.headers.get("X-Gen") == "2"
    assert r.status_code == 503
    # a changed key refuses the reload, as nginx does; the old configuration serves on
    tp.expect_log("[emerg]")
    tp.reload(render(RELOAD, gen=3, **{**values, "key": "$remote_addr"}),
              wait_for="the old configuration stays in effect")
    assert 'limit_req "one" uses the "$remote_addr" key while previously it used the ' \
           '"$binary_remote_addr" key' in tp.error_log()
    r = _new_connection_get(base)
    assert r.headers.get("X-Gen") == "2" and r.status_code == 503


CONN_MATRIX = """
limit_conn_zone $binary_remote_addr zone=addr:1m;
limit_conn_zone $arg_k zone=bykey:1m;
server {
    listen 127.0.0.1:@@PORT@@;
    location /one/ { limit_conn addr 1; proxy_pass http://127.0.0.1:@@APP@@; }
    location /two/ { limit_conn addr 2; limit_conn bykey 1; limit_conn_status 429;
                     proxy_pass http://127.0.0.1:@@APP@@; }
}
"""


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
@pytest.mark.parametrize("path, n", [("/one/__slow?ms=2000", 3), ("/two/__slow?ms=2000&k=a", 3),
                                     ("/two/__slow?ms=2000", 4)])
def test_limit_conn_matches_nginx(truehop, nginx, upstream, path, n):
    got = {}
    for name, factory in (("nginx", nginx), ("truehop", truehop)):
        port = free_port()
        factory(CONN_MATRIX, port=port, app=upstream.port)
        got[name] = sorted(s for s, _ in _concurrent(f"http://127.0.0.1:{port}{path}", n))
    assert got["truehop"] == got["nginx"]
    assert got["nginx"][-1] in (429, 503)          # the case does limit


INHERIT = """
limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
limit_req_zone $binary_remote_addr zone=two:1m rate=1r/m;
server {
    listen 127.0.0.1:@@PORT@@;
    limit_req zone=one burst=1 nodelay;
    limit_req_status 429;
    location /inherits { alias @@ROOT@@/ok.txt; }
    location /replaces { limit_req zone=two burst=3 nodelay; alias @@ROOT@@/ok.txt; }
    location /off { limit_req_status 503; alias @@ROOT@@/ok.txt; }
}
"""


def test_a_level_with_limit_req_replaces_the_inherited_ones(truehop, tmp_path):
    (tmp_path / "ok.txt").write_text("ok")
    port = free_port()
    truehop(INHERIT, port=port, root=str(tmp_path))
    base = f"http://127.0.0.1:{port}"
    assert _statuses(base + "/inherits", 3) == [200, 200, 429]
    # zone "two" only: zone "one" (already over its burst) is not consulted
    assert _statuses(base + "/replaces", 5) == [200, 200, 200, 200, 429]
    # the inherited limit_req, with this level's status
    assert _statuses(base + "/off", 1) == [503]
