"""End-to-end harness: run the real ``truehop`` (or ``nginx``) process against a config written
by the test, on free loopback ports, and check its error log at teardown.

Typical test::

    def test_host_header(truehop, upstream):
        tp = truehop(CONF, HTTP=free_port(), APP=upstream.port)   # render + start + wait ready
        r = httpx.get(tp.url("/x"))
        assert upstream.last().header("Host") == "example.test"

Configs use ``@@NAME@@`` placeholders (nginx configs are full of braces), see ``render``.
Import from tests as ``from harness import ...`` (tests/e2e is on sys.path via its conftest).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httptools

__all__ = [
    "BAD_LOG_MARKERS",
    "NginxProcess",
    "ProcessFailed",
    "RawResponse",
    "TruehopProcess",
    "free_port",
    "free_ports",
    "listen_ports",
    "nginx_binary",
    "parse_responses",
    "raw_request",
    "read",
    "render",
    "run_truehop",
    "wait_port",
]

READY_TIMEOUT = 10.0
POLL = 0.02
BAD_LOG_MARKERS: tuple[str, ...] = ("[alert]", "[crit]", "[emerg]", "Traceback")


class ProcessFailed(AssertionError):
    """The server process exited early, never became ready, or logged something fatal."""


# -- ports and files --------------------------------------------------------------------------

def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel's pick, so parallel-safe in practice)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct free ports (all sockets held open while choosing, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            s.bind((host, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def read(path: str | os.PathLike[str]) -> str:
    """The file's text, or "" when it does not exist (yet)."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


_PLACEHOLDER = re.compile(r"@@([A-Za-z_][A-Za-z0-9_]*)@@")


def render(config_text: str, **values: object) -> str:
    """Replace ``@@NAME@@`` placeholders with ``values[NAME]`` (``str()``-ed).

    Keys match exactly or upper-cased (``render(t, http=8080)`` fills ``@@HTTP@@``). A
    placeholder left without a value is an error, so a typo cannot start a broken config."""
    table = {k: str(v) for k, v in values.items()}
    table.update({k.upper(): str(v) for k, v in values.items() if k.upper() not in table})

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in table:
            raise KeyError(f"render: no value for @@{name}@@ (given: {sorted(values)})")
        return table[name]

    return _PLACEHOLDER.sub(sub, config_text)


_LISTEN = re.compile(r"(?:^|[;{}])\s*listen\s+([^\s;]+)", re.MULTILINE)


def listen_ports(config_text: str) -> list[tuple[str, int]]:
    """``(host, port)`` of each ``listen`` directive, in file order (a rough scan, comments
    skipped). ``listen 8080`` and ``listen *:8080`` give host 127.0.0.1; ``[::1]:p`` gives ::1."""
    out: list[tuple[str, int]] = []
    text = "\n".join(line.split("#", 1)[0] for line in config_text.splitlines())
    for m in _LISTEN.finditer(text):
        addr = m.group(1)
        if addr.startswith("unix:"):
            continue
        if addr.startswith("["):
            host, _, port = addr[1:].partition("]:")
            host = "::1" if host == "::" else host
        elif ":" in addr:
            host, _, port = addr.rpartition(":")
            host = "127.0.0.1" if host in ("*", "0.0.0.0", "localhost") else host
        else:
            host, port = "127.0.0.1", addr
        if port.isdigit():
            out.append((host, int(port)))
    return out


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = READY_TIMEOUT,
              proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll a TCP connect every 20 ms until it succeeds; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        if proc is not None and proc.poll() is not None:
            raise ProcessFailed(f"process exited with status {proc.returncode} before "
                                f"{host}:{port} accepted connections")
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            try:
                s.connect((host, port))
                return
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise ProcessFailed(f"nothing accepted connections on {host}:{port} in {timeout}s")
        time.sleep(POLL)


# -- raw sockets --------------------------------------------------------------------------------

def raw_request(port: int, data: bytes, timeout: float = 2.0, host: str = "127.0.0.1",
                half_close: bool = False, until: bytes | None = None) -> tuple[bytes, bool]:
    """Send ``data`` as is, then read until the peer closes or ``timeout`` seconds pass
    without new bytes. Returns ``(bytes_received, closed)``; ``closed`` is True when the peer
    closed (FIN or RST) and False when we gave up waiting.

    ``half_close`` shuts down our write side after sending; ``until`` stops reading (with
    ``closed=False``) as soon as the received bytes contain that marker."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    buf = bytearray()
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return bytes(buf), True
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return bytes(buf), False
            except ConnectionResetError:
                return bytes(buf), True
            if not chunk:
                return bytes(buf), True
            buf += chunk
            if until is not None and until in buf:
                return bytes(buf), False


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    complete: bool  # the whole message arrived (False: cut short)

    def header(self, name: str) -> str | None:
        n = name.lower()
        return next((v for k, v in self.headers if k.lower() == n), None)


class _RespCollector:
    def __init__(self) -> None:
        self.out: list[RawResponse] = []
        self.parser: httptools.HttpResponseParser | None = None

    def on_message_begin(self) -> None:
        self.out.append(RawResponse(0, [], b"", False))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.out[-1].headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.out[-1].status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.out[-1].body += body

    def on_message_complete(self) -> None:
        self.out[-1].complete = True


def parse_responses(data: bytes) -> list[RawResponse]:
    """Split the bytes from ``raw_request`` into responses (pipelining, malformed-input tests).
    A response cut short is returned with ``complete=False``; bytes that are not HTTP raise
    ``httptools.HttpParserError``. (Responses to HEAD cannot be split this way.)"""
    coll = _RespCollector()
    coll.parser = httptools.HttpResponseParser(coll)
    try:
        coll.parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        pass
    return coll.out


# -- the processes ----------------------------------------------------------------------------

class _ServerProcess:
    """Shared machinery: start, wait ready, stop politely, check the error log."""

    name = "server"

    def __init__(self, config_text: str, tmp_path: Path, extra_args: Sequence[str] = (),
                 allow_log: Iterable[str] = (), ready_port: int | None = None,
                 ready_host: str | None = None) -> None:
        self.config_text = config_text
        self.tmp_path = Path(tmp_path)
        self.extra_args = list(extra_args)
        self.allow_log = set(allow_log)
        self.conf_path = self.tmp_path / "truehop.conf"
        self.error_log_path = self.tmp_path / "error.log"
        self.stdout_path = self.tmp_path / f"{self.name}.stdout"
        self.stderr_path = self.tmp_path / f"{self.name}.stderr"
        ports = listen_ports(config_text)
        self.ready_port = ready_port if ready_port is not None else (ports[0][1] if ports else None)
        self.ready_host = ready_host or (ports[0][0] if ports else "127.0.0.1")
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_checked = False

    # subclasses
    def command(self) -> list[str]:
        raise NotImplementedError

    def write_config(self, config_text: str | None = None) -> None:
        if config_text is not None:
            self.config_text = config_text
        self.conf_path.write_text(self.config_text)

    # lifecycle
    def start(self) -> _ServerProcess:
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        (self.tmp_path / "logs").mkdir(exist_ok=True)
        self.write_config()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=self.tmp_path,
                                         start_new_session=True)
        try:
            self.wait_ready()
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def wait_ready(self, port: int | None = None, timeout: float = READY_TIMEOUT) -> None:
        """Ready = a TCP connect to the (first) listen port succeeds. Fails with the logs if the
        process exits first."""
        assert self.proc is not None
        port = port if port is not None else self.ready_port
        if port is None:
            raise ProcessFailed("no listen port in the config: pass ready_port=")
        try:
            wait_port(port, self.ready_host, timeout, self.proc)
        except ProcessFailed as e:
            raise ProcessFailed(f"{self.name}: {e}\n{self.diagnostics()}") from None

    def diagnostics(self) -> str:
        parts = [f"command: {' '.join(self.command())}"]
        for label, path in (("error log", self.error_log_path), ("stderr", self.stderr_path),
                            ("stdout", self.stdout_path)):
            text = read(path)
            if text.strip():
                parts.append(f"--- {label} ({path}) ---\n{text.rstrip()}")
        return "\n".join(parts)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, check: bool = True, graceful_timeout: float = 5.0) -> int | None:
        """SIGQUIT (graceful), then SIGTERM after ``graceful_timeout``, then SIGKILL; the whole
        process group is killed in the last step so no worker outlives the test. Then, with
        ``check``, assert the error log is clean."""
        if self.proc is None:
            return None
        p = self.proc
        if p.poll() is None:
            for sig, wait in ((signal.SIGQUIT, graceful_timeout), (signal.SIGTERM, 5.0)):
                try:
                    p.send_signal(sig)
                    p.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                self._kill_group()
                p.wait(5)
        self._kill_group()  # stray workers
        if check:
            self.check_log()
        return p.returncode

    def _kill_group(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def check_log(self, allow: Iterable[str] = ()) -> None:
        """Assert the error log and stderr hold none of ``BAD_LOG_MARKERS`` except those allowed
        (constructor ``allow_log=`` or ``expect_log()``)."""
        self._log_checked = True
        allowed = self.allow_log | set(allow)
        bad = []
        for path in (self.error_log_path, self.stderr_path):
            for line in read(path).splitlines():
                if any(m in line for m in BAD_LOG_MARKERS if m not in allowed):
                    bad.append(f"{path.name}: {line}")
        if bad:
            raise ProcessFailed(f"{self.name} logged problems:\n" + "\n".join(bad[:40]) +
                                f"\n\n{self.diagnostics()}")

    def expect_log(self, *markers: str) -> None:
        """Declare that ``[alert]``/``[crit]``/``[emerg]``/``Traceback`` lines are expected."""
        self.allow_log.update(markers)

    # logs
    def error_log(self) -> str:
        return read(self.error_log_path)

    def access_log(self, name: str | None = None) -> str:
        """The access log at ``tmp_path/name`` (paths in the config are relative to the prefix,
        which is tmp_path). Without ``name``: ``access.log``, else the default
        ``logs/access.log``."""
        if name is not None:
            return read(self.tmp_path / name)
        return read(self.tmp_path / "access.log") or read(self.tmp_path / "logs/access.log")

    def stderr(self) -> str:
        return read(self.stderr_path)

    def stdout(self) -> str:
        return read(self.stdout_path)

    def wait_for_log(self, text: str | re.Pattern[str], timeout: float = 5.0,
                     after: int = 0, log: str = "error") -> str:
        """Poll the error log (``log="error"``), access log (``"access"``) or ``"stderr"`` until
        ``text`` (substring or regex) appears at or beyond offset ``after``; return the line."""
        getter = {"error": self.error_log, "access": self.access_log, "stderr": self.stderr}[log]
        deadline = time.monotonic() + timeout
        while True:
            content = getter()[after:]
            for line in content.splitlines():
                if (text.search(line) if isinstance(text, re.Pattern) else text in line):
                    return line
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in the {log} log after {timeout}s:\n"
                                   f"{content[-4000:]}")
            time.sleep(POLL)

    def reload(self, config_text: str | None = None, wait_for: str | None = None,
               timeout: float = 10.0) -> None:
        """Rewrite the config (if given), send SIGHUP, and when ``wait_for`` is given wait for
        that text to appear in the error log after this point."""
        mark = len(self.error_log())
        self.write_config(config_text)
        self.signal(signal.SIGHUP)
        if wait_for is not None:
            self.wait_for_log(wait_for, timeout, after=mark)

    # helpers
    def url(self, path: str = "/", port: int | None = None, scheme: str = "http",
            host: str | None = None) -> str:
        host = host or self.ready_host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{port if port is not None else self.ready_port}{path}"

    def __enter__(self) -> _ServerProcess:
        return self.start()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.stop(check=exc_type is None)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} pid={self.proc.pid if self.proc else None} {state}>"


class TruehopProcess(_ServerProcess):
    """The real truehop, started as ``python -m truehop -p TMP/ -c TMP/truehop.conf -e
    TMP/error.log [extra_args]`` with cwd = tmp_path."""

    name = "truehop"

    def write_config(self, config_text: str | None = None) -> None:
        super().write_config(config_text)
        if os.geteuid() == 0:
            worker_readable(self.tmp_path)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "truehop", "-p", f"{self.tmp_path}/",
                "-c", str(self.conf_path), "-e", str(self.error_log_path), *self.extra_args]


def worker_readable(path: Path) -> None:
    """Started as root, truehop's workers run as nobody (nginx's default `user`): let them
    reach the files a test puts under its tmp_path (pytest makes its base directory 0700)."""
    p = path
    while str(p) not in ("/", "/tmp", tempfile.gettempdir()):
        os.chmod(p, os.stat(p).st_mode | 0o755)
        p = p.parent


def run_truehop(*args: str, cwd: str | os.PathLike[str] | None = None,
                timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a short-lived truehop command (``-t``, ``-T``, ``explain``, ``check``...)."""
    return subprocess.run([sys.executable, "-m", "truehop", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def worker_pid(tp: _ServerProcess) -> int:
    """The pid of the (first) worker of a started server: a child of its master."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{tp.pid}/task/{tp.pid}/children").read_text().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    raise AssertionError("no worker process")


def close_all(socks: Iterable[socket.socket]) -> None:
    """Close client sockets a test held open, whatever state they are in."""
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# -- nginx, for differential tests ------------------------------------------------------------

def nginx_binary() -> str | None:
    """The nginx executable, or None (tests then ``pytest.skip``)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def nginx_version() -> tuple[int, ...]:
    """The installed nginx's version ((0,) when there is none): Debian's may predate
    directives a config uses (`http2 on` came with 1.25.1)."""
    binary = nginx_binary()
    if binary is None:
        return (0,)
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10).stderr
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0,)


_NGINX_MAIN = """\
{user}daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {tmp}/nginx-tmp/body;
    proxy_temp_path {tmp}/nginx-tmp/proxy;
    fastcgi_temp_path {tmp}/nginx-tmp/fastcgi;
    uwsgi_temp_path {tmp}/nginx-tmp/uwsgi;
    scgi_temp_path {tmp}/nginx-tmp/scgi;
    include {conf};
}}
"""


class NginxProcess(_ServerProcess):
    """nginx running the same conf.d-style text (``full=True``: the text is a whole
    nginx.conf). The conf.d text is wrapped in a main config with pid, error log and temp paths
    under tmp_path. Use a different tmp dir than the truehop run being compared."""

    name = "nginx"

    def __init__(self, config_text: str, tmp_path: Path, extra_args: Sequence[str] = (),
                 allow_log: Iterable[str] = (), ready_port: int | None = None,
                 ready_host: str | None = None, full: bool = False) -> None:
        super().__init__(config_text, tmp_path, extra_args, allow_log, ready_port, ready_host)
        self.full = full
        self.conf_path = self.tmp_path / ("nginx.conf" if full else "site.conf")
        self.main_conf_path = self.conf_path if full else self.tmp_path / "nginx.conf"
        self.binary = nginx_binary() or "nginx"

    def write_config(self, config_text: str | None = None) -> None:
        super().write_config(config_text)
        (self.tmp_path / "nginx-tmp").mkdir(exist_ok=True)
        if not self.full:
            self.main_conf_path.write_text(
                _NGINX_MAIN.format(tmp=self.tmp_path, conf=self.conf_path,
                                   user="user root;\n" if os.geteuid() == 0 else ""))

    def command(self) -> list[str]:
        return [self.binary, "-p", f"{self.tmp_path}/", "-c", str(self.main_conf_path),
                "-e", str(self.error_log_path), *self.extra_args]
