#!/usr/bin/env python3
"""User-space instructions per proxied request, counted by valgrind's callgrind.

Wall-clock and CPU-time figures move with whatever else the machine runs (here: up to 30%
between runs). Instruction counts do not: the same code, config and requests give the same
count within about 0.5%. So this is the number to compare two versions of the hot path by.

It runs truehop's worker under callgrind twice, in front of an nginx upstream answering from
memory, with 300 warm-up requests and then N1 or N2 requests from 4 keep-alive clients in
lockstep, and prints (total(N2) - total(N1)) / (N2 - N1): start-up, warm-up and shutdown
cancel out. With --top it also prints the C functions the difference is spent in
(_PyEval_EvalFrameDefault is the bytecode interpreter: Python code as such).

    python bench/instructions_per_request.py [--src DIR] [--top 20] [--n1 400 --n2 2400]
        [--keep DIR] [--bare] [--mode h1|h1-close|h1-64k|h2c|tls|tls-close|tls-resume|tls-h2]
        [--driver lockstep|h2load]
        [--objects] [--nginx]

--mode picks the client's protocol (the proxy's listener follows): h1 is plain HTTP/1.1
keep-alive (the default, as before); h1-close opens a new TCP connection per request
(`Connection: close`: the cost of accept, the per-connection objects and the close);
h1-64k is keep-alive with 64 KiB responses (the relay's copies); h2c is HTTP/2 with prior knowledge on a plain port
(`http2 on`); tls is HTTPS keep-alive with HTTP/1.1; tls-close is a new TLS connection per
request (`Connection: close`, a full handshake each time: the issue's "new connections" case);
tls-resume is the same with the client resuming the previous connection's session (a TLS 1.3
ticket: a resumed handshake, PSK with (EC)DHE); tls-h2 is HTTPS with HTTP/2 chosen by
ALPN. TLS uses an ECDSA P-256 certificate made with openssl. The HTTP/2 modes send 10
requests per connection at a time (h2load's -m10) on 4 connections and wait for all 40
answers before the next round, so the proxy sees the same reads every run; `--driver h2load`
uses h2load (-c4 -m10) instead, closer to the issue's figures, less repeatable. --objects
prints the per-request instructions by shared object (libssl/libcrypto, the interpreter,
mypyc's .so files, uvloop...). --nginx counts nginx's worker as the proxy (the same
configuration and client): the reference the issue's ratios are taken against.

--src runs another checkout's src/ (e.g. a `git worktree` of an older commit) with this
venv, to compare versions; `--src .venv/compiled` runs the mypyc build (`make compiled`). Needs valgrind and nginx. Loopback only; about 1-2 minutes.
Kernel time (syscalls) is not counted: this measures the Python side only.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import h2.config  # the client side only
import h2.connection
import h2.events

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from proxy_vs_nginx import (  # noqa: E402
    UPSTREAM_CONF,
    free_port,
    nginx_bin,
    stop_all,
    wait_port,
)

PROXY_CONF = """
user root;
worker_processes 1;
daemon off;
pid {d}/truehop.pid;
error_log {d}/truehop-error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    upstream app {{
        server 127.0.0.1:{up};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port}{listen_extra};
        keepalive_requests 100000;{server_extra}
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""

REQUEST = (b"GET /small HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n"
           b"Accept: */*\r\n\r\n")
# h1-close: a new TCP connection per request (issue 19's "Connection: close" case)
REQUEST_CLOSE = (b"GET /small HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n"
                 b"Accept: */*\r\nConnection: close\r\n\r\n")
# h1-64k: a 64 KiB response (issue 19's large-body case), from the upstream's /big/ alias
REQUEST_64K = (b"GET /big/64k HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n"
               b"Accept: */*\r\n\r\n")
BIG = 65536


MODES = ("h1", "h1-close", "h1-64k", "h2c", "tls", "tls-close", "tls-resume", "tls-h2")
CONNS = 4
STREAMS = 10        # HTTP/2 requests in flight per connection (h2load -m10)
WARMUP = 400        # a multiple of CONNS * STREAMS


def listener(mode: str, d: str) -> tuple[str, str]:
    """(listen parameters, server-level directives) for a mode."""
    tls = mode.startswith("tls")
    listen = " ssl" if tls else ""
    extra = ""
    if tls:
        # nginx 1.30's default, stated: the nginx compared against may be older (Debian's
        # 1.22 defaults to TLSv1 TLSv1.1 TLSv1.2, so its handshakes would be TLS 1.2 ones)
        extra += "\n        ssl_protocols TLSv1.2 TLSv1.3;"
        extra += (f"\n        ssl_certificate {d}/cert.pem;"
                  f"\n        ssl_certificate_key {d}/key.pem;")
    if mode in ("h2c", "tls-h2"):
        extra += "\n        http2 on;"
    return listen, extra


def make_cert(d: str) -> None:
    """An ECDSA P-256 self-signed certificate, as the issue's measurements use."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", f"{d}/key.pem",
                    "-out", f"{d}/cert.pem"], check=True, capture_output=True)
    os.chmod(f"{d}/key.pem", 0o644)


def client_context(alpn: list[str]) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(alpn)
    return ctx


_CLIENT_CONTEXTS: dict[str, ssl.SSLContext] = {}


def connect(port: int, mode: str, session: ssl.SSLSession | None = None) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(120)
    if mode.startswith("tls"):
        alpn = ["h2"] if mode == "tls-h2" else ["http/1.1"]
        ctx = _CLIENT_CONTEXTS.get(mode)
        if ctx is None:
            ctx = _CLIENT_CONTEXTS[mode] = client_context(alpn)
        s = ctx.wrap_socket(s, server_hostname="localhost", session=session)
        if (s.selected_alpn_protocol() == "h2") != (mode == "tls-h2"):
            raise RuntimeError(f"ALPN chose {s.selected_alpn_protocol()!r} for {mode}")
    return s


def drive_h2(port: int, n: int, mode: str) -> None:
    """n requests over CONNS HTTP/2 connections, STREAMS at a time on each, in lockstep."""
    if n % (CONNS * STREAMS):
        raise SystemExit(f"HTTP/2 modes need request counts that are multiples of "
                         f"{CONNS * STREAMS}")
    conns = []
    for _ in range(CONNS):
        s = connect(port, mode)
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        s.sendall(c.data_to_send())
        conns.append((s, c))
    headers = [(":method", "GET"), (":scheme", "https" if mode == "tls-h2" else "http"),
               (":authority", "localhost"), (":path", "/small"), ("user-agent", "bench"),
               ("accept", "*/*")]
    for _ in range(n // (CONNS * STREAMS)):
        for s, c in conns:
            for _ in range(STREAMS):
                c.send_headers(c.get_next_available_stream_id(), headers, end_stream=True)
            s.sendall(c.data_to_send())
        for s, c in conns:
            done = 0
            while done < STREAMS:
                data = s.recv(65536)
                if not data:
                    raise RuntimeError("truehop closed the connection")
                for ev in c.receive_data(data):
                    if isinstance(ev, h2.events.DataReceived):
                        c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        done += 1
                    elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                        raise RuntimeError(f"truehop answered {ev}")
                out = c.data_to_send()
                if out:
                    s.sendall(out)
    for s, _ in conns:
        s.close()


def drive_h2load(port: int, n: int, mode: str) -> None:
    scheme = "https" if mode == "tls-h2" else "http"
    out = subprocess.run(["h2load", "-n", str(n), f"-c{CONNS}", f"-m{STREAMS}",
                          f"{scheme}://127.0.0.1:{port}/small"],
                         capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not m or int(m.group(2)) != n:
        raise RuntimeError(f"h2load did not complete {n} requests:\n{out[-800:]}")


def drive(port: int, n: int, mode: str = "h1", driver: str = "lockstep") -> None:
    if mode in ("h2c", "tls-h2"):
        (drive_h2load if driver == "h2load" else drive_h2)(port, n, mode)
        return
    if mode in ("h1-close", "tls-close", "tls-resume"):
        session = None
        for _ in range(n):
            s = connect(port, mode, session)
            s.sendall(REQUEST_CLOSE)
            buf = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except ssl.SSLEOFError:      # a TCP close without close_notify
                    break
                if not chunk:
                    break
                buf += chunk
            if mode == "tls-resume":
                # the TLS 1.3 tickets came after the handshake: take the newest
                assert isinstance(s, ssl.SSLSocket)
                if session is not None and not s.session_reused:
                    raise RuntimeError("the session was not resumed")
                session = s.session
            s.close()
            if not buf.endswith(b"hello, world\n"):
                raise RuntimeError(f"unexpected answer: {buf[:200]!r}")
        return
    socks = [connect(port, mode) for _ in range(4)]
    for s in socks:
        s.settimeout(60)
    if mode == "h1-64k":
        for _ in range(n // 4):
            for s in socks:
                s.sendall(REQUEST_64K)
            for s in socks:
                buf = b""
                while True:
                    chunk = s.recv(262144)
                    if not chunk:
                        raise RuntimeError("truehop closed the connection")
                    buf += chunk
                    head, sep, body = buf.partition(b"\r\n\r\n")
                    if sep and len(body) >= BIG:
                        break
        for s in socks:
            s.close()
        return
    for _ in range(n // 4):
        for s in socks:
            s.sendall(REQUEST)
        for s in socks:
            buf = b""
            while not buf.endswith(b"hello, world\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("truehop closed the connection")
                buf += chunk
    for s in socks:
        s.close()


def run_once(d: str, src: str | None, up: int, n: int, mode: str = "h1",
             driver: str = "lockstep", nginx: bool = False) -> str:
    """One callgrind run of truehop's worker (src) or, with src None, of bench/bare_relay.py
    (or, with nginx, of nginx's worker as the proxy, the same configuration)."""
    port = free_port()
    listen, extra = listener(mode, d)
    with open(f"{d}/truehop.conf", "w") as conf:
        conf.write(PROXY_CONF.format(d=d, up=up, port=port, listen_extra=listen,
                                     server_extra=extra))
    out = f"{d}/cg.%p"
    python = os.path.join(ROOT, ".venv", "bin", "python")
    if nginx:
        cmd = [nginx_bin(), "-p", d + "/", "-c", f"{d}/truehop.conf"]
        env = dict(os.environ)
    elif src is None:
        cmd = [python, os.path.join(HERE, "bare_relay.py"), str(port), str(up)]
        env = dict(os.environ)
    else:
        cmd = [python, "-m", "truehop", "-p", d + "/", "-c", f"{d}/truehop.conf"]
        env = dict(os.environ, PYTHONPATH=src)
    before = set(os.listdir(d))
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          "--dump-instr=no", "--collect-jumps=no", *cmd],
                         env=env, stderr=subprocess.DEVNULL)
    master = p.pid   # the bare relay is one process: valgrind runs it as this pid
    try:
        wait_port(port, timeout=180)
        if src is not None or nginx:
            deadline = time.monotonic() + 30
            while not os.path.exists(f"{d}/truehop.pid") and time.monotonic() < deadline:
                time.sleep(0.1)
            with open(f"{d}/truehop.pid") as pidfile:
                master = int(pidfile.read())
            before = set(os.listdir(d))
        warm = 300 if mode == "h1" else 100 if mode.endswith(("-close", "-resume")) else WARMUP
        drive(port, warm, mode, driver)
        drive(port, n, mode, driver)
        # truehop's master stops its worker; the bare relay ends on KeyboardInterrupt
        os.kill(master, signal.SIGQUIT if src is not None or nginx else signal.SIGINT)
        p.wait(120)
    finally:
        if p.poll() is None:
            p.kill()
    files = [f for f in os.listdir(d) if f.startswith("cg.") and f not in before]
    worker = [f for f in files if f != f"cg.{master}"] if src is not None or nginx else files
    if not worker:
        raise RuntimeError("no callgrind output from the worker")
    path = os.path.join(d, worker[0])
    final = os.path.join(d, f"run-{n}.cg")
    os.replace(path, final)
    for f in files:
        if os.path.exists(os.path.join(d, f)):
            os.unlink(os.path.join(d, f))
    return final


Counts = tuple[int, collections.Counter[str], collections.Counter[str]]


def functions(path: str) -> Counts:
    """Total, instructions by function, instructions by shared object."""
    # --auto=no: without it, callgrind_annotate also prints the annotated sources it can find
    # (the interpreter's), whose per-line counts would be read as functions
    text = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", path],
                          capture_output=True, text=True).stdout
    counts: collections.Counter[str] = collections.Counter()
    objects: collections.Counter[str] = collections.Counter()
    owner: dict[str, str] = {}
    total = 0
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*)", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        name = m.group(2)
        if "PROGRAM TOTALS" in name:
            total = n
            continue
        obj = re.search(r" \[(.*)\]$", name)
        fn = name.rsplit(":", 1)[-1].split(" [")[0]
        # code inlined from a header is listed without its object: take the object the same
        # function is listed with elsewhere, else guess from where the source lives
        where = os.path.basename(obj.group(1)) if obj else owner.get(fn) or (
            "(mypyc, inlined)" if fn.startswith("CPy") else
            "(libpython, inlined)" if "/Python-3" in name else "?")
        owner.setdefault(fn, where)
        objects[where] += n
        name = re.sub(r"^.*/(?=[^/]*:)", "", re.sub(r" \[.*\]$", "", name))
        counts[name] += n
    return total, counts, objects


def report(a: Counts, b: Counts, args: argparse.Namespace, what: str) -> None:
    """The difference between the N1 and N2 runs, per request."""
    n = args.n2 - args.n1
    print(f"{(b[0] - a[0]) / n:.0f} instructions per request "
          f"(callgrind, {args.n1} vs {args.n2} requests, {what})")
    if args.top:
        diff = {k: (b[1][k] - a[1][k]) / n for k in b[1]}
        for name, v in sorted(diff.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"{v:10.0f}  {name[:110]}")
    if args.objects:
        print("by shared object:")
        diff = {k: (b[2][k] - a[2][k]) / n for k in b[2]}
        for name, v in sorted(diff.items(), key=lambda kv: -kv[1]):
            if abs(v) >= 50:
                print(f"{v:10.0f}  {name[:110]}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(ROOT, "src"))
    ap.add_argument("--bare", action="store_true",
                    help="count bench/bare_relay.py instead: the floor, in the same unit")
    ap.add_argument("--nginx", action="store_true",
                    help="count nginx's worker as the proxy instead (same config, same client)")
    ap.add_argument("--n1", type=int, default=400)
    ap.add_argument("--n2", type=int, default=2400)
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--mode", choices=MODES, default="h1")
    ap.add_argument("--driver", choices=("lockstep", "h2load"), default="lockstep",
                    help="HTTP/2 modes: this script's client (repeatable) or h2load")
    ap.add_argument("--objects", action="store_true",
                    help="also print instructions per request by shared object")
    ap.add_argument("--keep", metavar="DIR",
                    help="copy the two callgrind files here, for callgrind_annotate --tree=caller")
    ap.add_argument("--reread", metavar="DIR",
                    help="print the figures of a --keep directory again, without running")
    args = ap.parse_args()
    if args.reread:
        report(functions(os.path.join(args.reread, f"run-{args.n1}.cg")),
               functions(os.path.join(args.reread, f"run-{args.n2}.cg")), args, args.reread)
        return 0
    for tool in ("valgrind", "callgrind_annotate"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install valgrind")
    d = tempfile.mkdtemp(prefix="truehop-cg-")
    os.chmod(d, 0o1777)  # the worker may run as another user
    os.makedirs(f"{d}/data", exist_ok=True)
    os.makedirs(f"{d}/logs", exist_ok=True)
    with open(f"{d}/data/64k", "wb") as f:
        f.write(bytes(range(256)) * (BIG // 256))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up = free_port()
        with open(f"{d}/upstream.conf", "w") as f:
            f.write(UPSTREAM_CONF.format(d=d, port=up))
        procs.append(subprocess.Popen([nginx_bin(), "-p", d + "/", "-c", f"{d}/upstream.conf"]))
        wait_port(up)
        if args.mode.startswith("tls"):
            make_cert(d)
        if args.bare and not args.mode.startswith("h1"):
            sys.exit("--bare relays plain HTTP/1.1 only")
        t0 = time.monotonic()
        src = None if args.bare else args.src
        a = functions(run_once(d, src, up, args.n1, args.mode, args.driver, args.nginx))
        b = functions(run_once(d, src, up, args.n2, args.mode, args.driver, args.nginx))
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            for name in (f"run-{args.n1}.cg", f"run-{args.n2}.cg"):
                shutil.copy(os.path.join(d, name), os.path.join(args.keep, name))
        print("nginx" if args.nginx else "bench/bare_relay.py" if args.bare else
              f"src: {args.src}", f"mode: {args.mode}",
              f"driver: {args.driver}" if args.mode in ("h2c", "tls-h2") else "")
        report(a, b, args, f"{time.monotonic() - t0:.0f} s")
    finally:
        stop_all(procs)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
