"""The process model end to end: master + workers, signals, pid file, reload without a dropped
request (section N of research/bad-input.md), daemon mode, log reopening.

Every test starts the real truehop with a whole nginx.conf (main context: worker_processes,
pid, error_log at `notice` so the master's reload messages can be waited for).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import (
    TruehopProcess,
    free_port,
    free_ports,
    parse_responses,
    raw_request,
    read,
    render,
    run_truehop,
    wait_port,
)

pytestmark = pytest.mark.timeout(40)

MAIN = """
worker_processes @@WORKERS@@;
error_log error.log notice;
pid truehop.pid;
@@EXTRA@@
events { }
http {
    access_log @@ACCESS@@;
@@HTTP@@
}
"""

SITE = """
    server {
        listen 127.0.0.1:@@PORT@@;
        location /gen { return 200 "gen @@GEN@@\\n"; }
        location / {
            proxy_pass http://127.0.0.1:@@APP@@;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 30s;
        }
    }
"""

RELOADED = "reconfiguring done"


def test_refused_reload_closes_the_files_it_opened(truehop, upstream, tmp_path):
    """A reload refused after its log files were opened (here: a listen address is taken)
    closes them: repeated failed reloads must not pile up open files in the master."""
    port = free_port()
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=1))
    tp.expect_log("[emerg]")
    wait_until(lambda: len(children(tp.pid)) == 2, 5, "2 workers")

    def open_logs() -> list[str]:
        return [link for link in fd_links(tp.pid) if link.endswith("refused.log")]

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        both = SITE + SITE.replace("@@PORT@@", "@@PORT2@@")
        for _ in range(3):
            mark = len(tp.error_log())
            tp.reload(conf(http=both, PORT=port, PORT2=busy, APP=upstream.port, GEN=2,
                           access=str(tmp_path / "access-refused.log")))
            line = tp.wait_for_log("[emerg]", after=mark)
            assert f"bind() to 127.0.0.1:{busy} failed (98: Address already in use); the old " \
                   "configuration stays in effect" in line
            assert "[Errno" not in line
    assert (tmp_path / "access-refused.log").exists()   # it was opened...
    assert open_logs() == []                             # ...and closed again
    assert body_of(get(port)) == b"gen 1\n"


def conf(http: str = SITE, workers: int = 2, extra: str = "", access: str = "off",
         **values: object) -> str:
    """A whole nginx.conf: MAIN around `http`, placeholders filled from `values`."""
    text = MAIN.replace("@@HTTP@@", http)
    return render(text, WORKERS=workers, EXTRA=extra, ACCESS=access, **values)


GET = b"GET /%s HTTP/1.1\r\nHost: t\r\n%s\r\n"


def get(port: int, path: str = "gen", close: bool = True, timeout: float = 5.0) -> bytes:
    data, _ = raw_request(port, GET % (path.encode(), b"Connection: close\r\n" if close else b""),
                          timeout=timeout)
    return data


def body_of(data: bytes) -> bytes:
    rs = parse_responses(data)
    assert rs and rs[0].complete, data
    return rs[0].body


def recv_response(s: socket.socket) -> bytes:
    """Read from `s` until one complete response has arrived."""
    data = b""
    while True:
        rs = parse_responses(data) if data else []
        if rs and rs[0].complete:
            return data
        chunk = s.recv(4096)
        assert chunk, f"closed before a complete response: {data!r}"
        data += chunk


def children(pid: int) -> list[int]:
    """The direct children of `pid` (the workers of a master)."""
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            text = read(f"/proc/{pid}/task/{tid}/children")
            out += [int(x) for x in text.split()]
    except FileNotFoundError:
        pass
    return out


def wait_until(cond: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def fd_links(pid: int) -> list[str]:
    """What each open file descriptor of `pid` points at (paths, socket:[inode], ...)."""
    fds = f"/proc/{pid}/fd"
    out = []
    for fd in os.listdir(fds):
        try:
            out.append(os.readlink(f"{fds}/{fd}"))
        except OSError:
            continue
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    return "State:\tZ" not in read(f"/proc/{pid}/status")


def reload(tp: TruehopProcess, config_text: str) -> None:
    """Reload and wait until the old workers have stopped accepting (between the master's
    "reconfiguring done" and an old worker handling its QUIT, a fresh connection may still
    be accepted, and served, by an old worker)."""
    old = children(tp.pid)
    mark = len(tp.error_log())
    tp.reload(config_text, wait_for=RELOADED)

    def settled() -> bool:
        log = tp.error_log()[mark:]
        return all(f"{p}#0: gracefully shutting down" in log or not alive(p) for p in old)
    wait_until(settled, 5, "old workers stop accepting")


def truehop_cmd(tmp: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "truehop", "-p", f"{tmp}/", "-c", str(tmp / "truehop.conf"),
            *args]


def signal_cli(tp: TruehopProcess, name: str) -> subprocess.CompletedProcess[str]:
    return run_truehop("-p", f"{tp.tmp_path}/", "-c", str(tp.conf_path), "-s", name,
                       cwd=tp.tmp_path)


# -- reload: nothing dropped ---------------------------------------------------------------------

def test_reload_under_continuous_load_drops_nothing(truehop, upstream):
    """4 clients open a fresh connection every few ms while 5 reloads happen 0.5 s apart: every
    request gets a complete 200 (nginx: 0 failures of 1382; we must match it)."""
    port = free_port()
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=0))
    stop = threading.Event()
    ok: list[int] = []
    failures: list[str] = []
    seen: set[bytes] = set()

    def client(path: str) -> None:
        while not stop.is_set():
            try:
                data = get(port, path)
                rs = parse_responses(data)
                if not rs or not rs[0].complete or rs[0].status != 200:
                    failures.append(repr(data[:200]))
                else:
                    ok.append(1)
                    if path == "gen":
                        seen.add(rs[0].body)
            except OSError as e:
                failures.append(repr(e))
            time.sleep(0.005)

    threads = [threading.Thread(target=client, args=(p,)) for p in ("gen", "gen", "x", "x")]
    for t in threads:
        t.start()
    try:
        for gen in range(1, 6):
            time.sleep(0.5)
            reload(tp, conf(PORT=port, APP=upstream.port, GEN=gen))
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not failures, f"{len(failures)} failed of {len(failures) + len(ok)}: {failures[:5]}"
    assert len(ok) > 200
    assert b"gen 5\n" in seen and b"gen 0\n" in seen
    assert body_of(get(port)) == b"gen 5\n"
    assert tp.stdout() == ""


def test_in_flight_request_survives_reload(truehop, upstream):
    """A 3 s request that is in flight when the reload happens completes on the old worker;
    new requests meanwhile see the new configuration."""
    port = free_port()
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=1))
    result: list[bytes] = []
    t = threading.Thread(target=lambda: result.append(get(port, "__slow?ms=3000", timeout=10)))
    started = time.monotonic()
    t.start()
    upstream.wait_for_records(1)
    reload(tp, conf(PORT=port, APP=upstream.port, GEN=2))
    assert body_of(get(port)) == b"gen 2\n"
    t.join(10)
    elapsed = time.monotonic() - started
    rs = parse_responses(result[0])
    assert rs[0].complete and rs[0].status == 200, result[0][:300]
    assert rs[0].header("Connection") == "close"
    assert 2.9 < elapsed < 8


def test_idle_keepalive_connections_reused_after_reload(truehop, upstream):
    """50 idle keep-alive connections, reload, then one more request on each 0.5 s later:
    every one gets a complete response (nginx: 50 of 50 closed before the response head), and
    the old workers say Connection: close."""
    port = free_port()
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=1))
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(s)
            s.sendall(GET % (b"gen", b""))
        for s in socks:
            assert b"Connection: keep-alive" in recv_response(s)
        reload(tp, conf(PORT=port, APP=upstream.port, GEN=2))
        time.sleep(0.5)
        for s in socks:
            s.sendall(GET % (b"gen", b""))
        results = []
        for s in socks:
            data = b""
            while True:
                try:
                    chunk = s.recv(4096)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
            results.append(parse_responses(data))
    finally:
        for s in socks:
            s.close()
    good = [rs for rs in results if rs and rs[0].complete and rs[0].status == 200]
    assert len(good) == 50, [r[0].status if r else None for r in results]
    closing = [rs for rs in good if rs[0].header("Connection") == "close"]
    assert len(closing) >= 45
    # served by the old workers: the old configuration, then a close
    assert all(rs[0].body == b"gen 1\n" for rs in closing)
    assert body_of(get(port)) == b"gen 2\n"


def test_old_workers_close_idle_connections_after_drain_window(truehop, upstream):
    """An idle keep-alive connection that is never reused is closed by the old worker within
    its drain window (bounded by worker_shutdown_timeout), and the old worker then exits."""
    port = free_port()
    extra = "worker_shutdown_timeout 2s;"
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=1, workers=1, extra=extra))
    wait_until(lambda: len(children(tp.pid)) == 1, 5, "the worker")
    old = children(tp.pid)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(GET % (b"gen", b""))
        assert body_of(recv_response(s)) == b"gen 1\n"
        t0 = time.monotonic()
        reload(tp, conf(PORT=port, APP=upstream.port, GEN=2, workers=1, extra=extra))
        s.settimeout(6)
        assert s.recv(4096) == b""
        assert 0.9 < time.monotonic() - t0 < 4
    wait_until(lambda: not any(alive(p) for p in old), 5, "old worker exits")


def test_websocket_stays_open_until_shutdown_timeout(truehop, upstream):
    """A WebSocket tunnel through an old worker keeps echoing after the reload and is closed
    at worker_shutdown_timeout (3 s)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    port = free_port()
    extra = "worker_shutdown_timeout 3s;"
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=1, extra=extra))
    with connect(f"ws://127.0.0.1:{port}/__ws", open_timeout=5) as ws:
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        t0 = time.monotonic()
        reload(tp, conf(PORT=port, APP=upstream.port, GEN=2, extra=extra))
        for i in range(4):
            time.sleep(0.5)
            ws.send(f"after {i}")
            assert ws.recv(timeout=5) == f"after {i}"
        assert body_of(get(port)) == b"gen 2\n"
        with pytest.raises(ConnectionClosed):
            while time.monotonic() - t0 < 10:
                ws.send("ping")
                ws.recv(timeout=1)
                time.sleep(0.1)
        closed_after = time.monotonic() - t0
    assert 2.5 < closed_after < 6, closed_after


# -- reload: configuration changes ---------------------------------------------------------------

def test_broken_config_on_reload_is_refused(truehop, upstream):
    """A HUP with a broken file: emerg in the log, the old workers keep serving the old
    configuration; `-s reload` with that file exits non-zero without signalling."""
    port = free_port()
    good = conf(PORT=port, APP=upstream.port, GEN=1)
    tp = truehop(good)
    tp.expect_log("[emerg]")
    wait_until(lambda: len(children(tp.pid)) == 2, 5, "2 workers")
    workers = sorted(children(tp.pid))
    broken = good.replace('return 200 "gen 1\\n";', "no_such_directive on;")
    mark = len(tp.error_log())
    tp.reload(broken)
    line = tp.wait_for_log("[emerg]", after=mark)
    assert "no_such_directive" in line
    assert body_of(get(port)) == b"gen 1\n"
    time.sleep(0.2)
    assert sorted(children(tp.pid)) == workers
    # the CLI tests before it signals
    mark = len(tp.error_log())
    r = signal_cli(tp, "reload")
    assert r.returncode == 1
    assert "no_such_directive" in r.stderr
    time.sleep(0.3)
    assert "SIGHUP" not in tp.error_log()[mark:]
    # a config that parses but cannot start (its new listen address is taken) is refused too
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        both = SITE + SITE.replace("@@PORT@@", "@@PORT2@@")
        mark = len(tp.error_log())
        tp.reload(conf(http=both, PORT=port, PORT2=busy, APP=upstream.port, GEN=3))
        assert "bind()" in tp.wait_for_log("[emerg]", after=mark)
    assert body_of(get(port)) == b"gen 1\n"
    # and a good one afterwards is taken
    reload(tp, conf(PORT=port, APP=upstream.port, GEN=4))
    assert body_of(get(port)) == b"gen 4\n"


def test_reload_adds_and_removes_listen_addresses(truehop, upstream):
    a, b = free_ports(2)
    tp = truehop(conf(PORT=a, APP=upstream.port, GEN=1))
    both = SITE + SITE.replace("@@PORT@@", "@@PORT2@@")
    reload(tp, conf(http=both, PORT=a, PORT2=b, APP=upstream.port, GEN=2))
    assert body_of(get(a)) == b"gen 2\n"
    assert body_of(get(b)) == b"gen 2\n"
    reload(tp, conf(PORT=b, APP=upstream.port, GEN=3))
    assert body_of(get(b)) == b"gen 3\n"

    def refused() -> bool:
        try:
            get(a, timeout=1)
        except ConnectionRefusedError:
            return True
        return False
    wait_until(refused, 5, f"port {a} closed after its listen was removed")


def test_reload_keeps_listening_socket_open(truehop, upstream):
    """A listen address that stays is the same socket before and after (the master never
    closes and reopens it): same inode in the master's fd table."""
    port = free_port()
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=1))

    def inodes() -> set[str]:
        return {link for link in fd_links(tp.pid) if link.startswith("socket:")}

    before = inodes()
    assert before
    for gen in (2, 3):
        reload(tp, conf(PORT=port, APP=upstream.port, GEN=gen))
    assert inodes() == before
    assert body_of(get(port)) == b"gen 3\n"


def test_reuseport_one_socket_per_worker(truehop, upstream):
    port = free_port()
    http = SITE.replace("listen 127.0.0.1:@@PORT@@;", "listen 127.0.0.1:@@PORT@@ reuseport;")
    tp = truehop(conf(http=http, PORT=port, APP=upstream.port, GEN=1, workers=3))

    def listeners() -> int:
        n = 0
        for line in read("/proc/net/tcp").splitlines()[1:]:
            f = line.split()
            if f[1].endswith(f":{port:04X}") and f[3] == "0A":
                n += 1
        return n

    assert listeners() == 3
    bodies = [body_of(get(port)) for _ in range(20)]
    assert set(bodies) == {b"gen 1\n"}, bodies
    reload(tp, conf(http=http, PORT=port, APP=upstream.port, GEN=2, workers=3))
    assert listeners() == 3
    bodies = [body_of(get(port)) for _ in range(20)]
    assert set(bodies) == {b"gen 2\n"}, (bodies, tp.error_log()[-3000:])


# -- workers ---------------------------------------------------------------------------------------

def test_killed_worker_is_replaced_and_alert_logged(truehop, upstream):
    port = free_port()
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=1, workers=2))
    tp.expect_log("[alert]")
    wait_until(lambda: len(children(tp.pid)) == 2, 5, "2 workers")
    workers = children(tp.pid)
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    line = tp.wait_for_log(f"worker process {victim} exited on signal 9")
    assert "[alert]" in line
    wait_until(lambda: len(children(tp.pid)) == 2 and victim not in children(tp.pid), 5,
               "a replacement worker")
    assert all(body_of(get(port)) == b"gen 1\n" for _ in range(10))


def test_worker_processes_auto(truehop, upstream):
    port = free_port()
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=1, workers="auto"))  # type: ignore[arg-type]
    n = os.cpu_count() or 1
    wait_until(lambda: len(children(tp.pid)) == n, 10, f"{n} workers")
    assert body_of(get(port)) == b"gen 1\n"


# -- signals, pid file, -s --------------------------------------------------------------------------

def test_pid_file_written_after_bind_and_removed_at_exit(tmp_path, upstream):
    """The pid file appears only once every socket listens (a connect succeeds the moment it
    exists) and is gone after a graceful stop."""
    p1, p2 = free_ports(2)
    http = SITE + SITE.replace("@@PORT@@", "@@PORT2@@")
    tp = TruehopProcess(conf(http=http, PORT=p1, PORT2=p2, APP=upstream.port, GEN=1), tmp_path)
    pid_path = tmp_path / "truehop.pid"
    tmp_path.mkdir(parents=True, exist_ok=True)
    tp.write_config()
    with open(tp.stderr_path, "wb") as err:
        proc = subprocess.Popen(tp.command(), stdout=subprocess.PIPE, stderr=err,
                                stdin=subprocess.DEVNULL, cwd=tmp_path, start_new_session=True)
    tp.proc = proc  # so stop() cleans up
    try:
        wait_until(pid_path.exists, 10, "pid file")
        for port in (p1, p2):
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        assert read(pid_path).strip() == str(proc.pid)
        proc.send_signal(signal.SIGQUIT)
        assert proc.wait(10) == 0
        assert not pid_path.exists()
        assert proc.stdout is not None and proc.stdout.read() == b""
    finally:
        tp.stop()


def test_no_pid_file_when_a_socket_cannot_be_bound(tmp_path, upstream):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        http = SITE + SITE.replace("@@PORT@@", str(busy))
        (tmp_path / "truehop.conf").write_text(conf(http=http, PORT=port, APP=upstream.port,
                                                    GEN=1))
        r = subprocess.run(truehop_cmd(tmp_path), capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert f"bind() to 127.0.0.1:{busy} failed (98: Address already in use)" in r.stderr
    assert r.stdout == ""
    assert not (tmp_path / "truehop.pid").exists()


def test_pid_directory_is_never_created(tmp_path, upstream):
    """As nginx: a configured pid path whose directory is missing is an [emerg] at start-up,
    before anything listens; truehop does not create the directory."""
    port = free_port()
    missing = tmp_path / "no-such-dir" / "truehop.pid"
    text = conf(PORT=port, APP=upstream.port, GEN=1).replace("pid truehop.pid;",
                                                            f"pid {missing};")
    assert f"pid {missing};" in text
    (tmp_path / "truehop.conf").write_text(text)
    r = subprocess.run(truehop_cmd(tmp_path), capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert f'[emerg] open() "{missing}" failed (2: No such file or directory)' in r.stderr
    assert not missing.parent.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_s_quit_and_s_stop_use_the_pid_file(truehop, upstream):
    port = free_port()
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=1))
    r = signal_cli(tp, "quit")
    assert r.returncode == 0, r.stderr
    assert tp.proc is not None and tp.proc.wait(10) == 0
    assert not (tp.tmp_path / "truehop.pid").exists()
    assert "SIGQUIT" in tp.error_log()

    port2 = free_port()
    tp2 = truehop(conf(PORT=port2, APP=upstream.port, GEN=2))
    slow: list[bytes] = []
    t = threading.Thread(target=lambda: slow.append(get(port2, "__slow?ms=3000", timeout=5)))
    t.start()
    upstream.wait_for_records(1)
    t0 = time.monotonic()
    r = signal_cli(tp2, "stop")
    assert r.returncode == 0, r.stderr
    assert tp2.proc is not None and tp2.proc.wait(10) == 0
    assert time.monotonic() - t0 < 2.5  # fast: the in-flight request is not waited for
    t.join(5)
    assert not (tp2.tmp_path / "truehop.pid").exists()

    # no pid file any more: nginx's message, exit 1
    r = signal_cli(tp2, "stop")
    assert r.returncode == 1
    pid_path = tp2.tmp_path / "truehop.pid"
    assert f'[error] open() "{pid_path}" failed (2: No such file or directory)' in r.stderr
    pid_path.write_text("junk\n")
    r = signal_cli(tp2, "reopen")
    assert r.returncode == 1 and f'invalid PID number "junk" in "{pid_path}"' in r.stderr


def test_sigquit_finishes_in_flight_request(truehop, upstream):
    port = free_port()
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=1))
    slow: list[bytes] = []
    t = threading.Thread(target=lambda: slow.append(get(port, "__slow?ms=1500", timeout=5)))
    t.start()
    upstream.wait_for_records(1)
    tp.signal(signal.SIGQUIT)
    t.join(5)
    rs = parse_responses(slow[0])
    assert rs and rs[0].complete and rs[0].status == 200
    assert tp.proc is not None and tp.proc.wait(5) == 0


def test_s_reopen_writes_to_a_new_log_file(truehop, upstream):
    port = free_port()
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=1, access="access.log"))
    assert body_of(get(port, "first")) .startswith(b"{")
    log = tp.tmp_path / "access.log"
    wait_until(lambda: "/first" in read(log), 5, "first request logged")
    os.rename(log, tp.tmp_path / "access.log.1")
    os.rename(tp.error_log_path, tp.tmp_path / "error.log.1")
    r = signal_cli(tp, "reopen")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: log.exists() and tp.error_log_path.exists(), 5, "logs reopened")
    get(port, "second")
    wait_until(lambda: "/second" in read(log), 5, "second request in the new file")
    assert "/first" not in read(log)
    assert "/second" not in read(tp.tmp_path / "access.log.1")
    assert "reopening logs" in tp.error_log()


# -- start-up modes -----------------------------------------------------------------------------

def test_daemon_on_detaches(tmp_path, upstream):
    port = free_port()
    (tmp_path / "truehop.conf").write_text(conf(PORT=port, APP=upstream.port, GEN=1,
                                                extra="daemon on;"))
    pid_path = tmp_path / "truehop.pid"
    r = subprocess.run(truehop_cmd(tmp_path), capture_output=True, timeout=20,
                       stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b""
    wait_until(pid_path.exists, 10, "pid file of the daemon")
    pid = int(read(pid_path))
    try:
        wait_port(port)
        assert body_of(get(port)) == b"gen 1\n"
        assert os.getsid(pid) == pid or os.getsid(pid) != os.getsid(0)
        r2 = subprocess.run(truehop_cmd(tmp_path, "-s", "quit"), capture_output=True,
                            timeout=20, stdin=subprocess.DEVNULL)
        assert r2.returncode == 0, r2.stderr
        wait_until(lambda: not alive(pid), 10, "daemon exits")
        assert not pid_path.exists()
    finally:
        if alive(pid):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    bad = [ln for ln in read(tmp_path / "error.log").splitlines()
           if "[alert]" in ln or "[emerg]" in ln or "Traceback" in ln]
    assert not bad


def test_starts_with_std_fds_closed(tmp_path, upstream):
    """Started with 0, 1 and 2 closed (as Test::Nginx's try_run closes stderr): it serves,
    and descriptors 0-2 are /dev/null, never a socket or a log."""
    port = free_port()
    (tmp_path / "truehop.conf").write_text(conf(PORT=port, APP=upstream.port, GEN=1))
    cmd = " ".join(truehop_cmd(tmp_path))
    proc = subprocess.Popen(["/bin/sh", "-c", f"exec {cmd} <&- >&- 2>&-"], cwd=tmp_path,
                            start_new_session=True)
    try:
        wait_port(port, proc=proc)
        assert body_of(get(port)) == b"gen 1\n"
        for pid in [proc.pid, *children(proc.pid)]:
            for fd in (0, 1, 2):
                assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null", (pid, fd)
        proc.send_signal(signal.SIGQUIT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_error_with_stderr_closed_never_reaches_stdout(tmp_path):
    """With fd 2 closed at start, Python's sys.stderr is None, and print(file=None) would
    write to stdout (Test::Nginx's TAP stream): a start-up error must go nowhere instead."""
    (tmp_path / "truehop.conf").write_text(conf(http="no_such_directive on;"))
    cmd = " ".join(truehop_cmd(tmp_path))
    r = subprocess.run(["/bin/sh", "-c", f"exec {cmd} <&- 2>&-"], capture_output=True,
                       timeout=20, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout == b""


TLS_SITE = """
    server {
        listen 127.0.0.1:@@PORT@@ ssl;
        ssl_certificate @@CERT@@;
        ssl_certificate_key @@CERT@@;
        location /gen { return 200 "gen @@GEN@@\\n"; }
    }
"""


def test_reload_under_tls_load_drops_nothing(truehop, tmp_path):
    """The same with TLS: a handshake in progress on an old worker when it retires must be
    finished (or never accepted by it), not cut."""
    import ssl

    import trustme

    ca = trustme.CA()
    cert = tmp_path / "cert.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    port = free_port()
    tp = truehop(conf(http=TLS_SITE, PORT=port, CERT=cert, GEN=0))
    stop = threading.Event()
    ok: list[int] = []
    failures: list[str] = []

    def client() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(GET % (b"gen", b"Connection: close\r\n"))
                    data = b""
                    while chunk := s.recv(4096):
                        data += chunk
                rs = parse_responses(data)
                if rs and rs[0].complete and rs[0].status == 200:
                    ok.append(1)
                else:
                    failures.append(repr(data[:200]))
            except (OSError, ssl.SSLError) as e:
                failures.append(repr(e))
            time.sleep(0.005)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for gen in range(1, 6):
            time.sleep(0.5)
            tp.reload(conf(http=TLS_SITE, PORT=port, CERT=cert, GEN=gen), wait_for=RELOADED)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not failures, f"{len(failures)} failed of {len(failures) + len(ok)}: {failures[:5]}"
    assert len(ok) > 100


def test_worker_rlimit_nofile(truehop, upstream):
    """worker_rlimit_nofile sets the workers' open-file limit (it was accepted and ignored)."""
    port = free_port()
    tp = truehop(conf(PORT=port, APP=upstream.port, GEN=1, workers=1,
                      extra="worker_rlimit_nofile 2345;"))
    assert body_of(get(port)) == b"gen 1\n"     # a worker that answers has set its limit
    kids = children(tp.pid)
    assert len(kids) == 1
    limits = read(f"/proc/{kids[0]}/limits")
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    assert line.split()[3:5] == ["2345", "2345"]
