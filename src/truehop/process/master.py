"""The master process: owns the listening sockets and the workers, as nginx's master does.

    start:   test the config (the -t path), bind every listen socket, write the pid file,
             fork `worker_processes` workers that inherit the sockets.
    HUP:     re-read and fully test the config; on failure log `emerg` and keep the old
             workers; on success bind added sockets (kept ones are never closed), fork new
             workers, send QUIT to the old ones (they finish in-flight work), close sockets no
             longer listed.
    QUIT:    graceful stop of every worker, then exit. TERM/INT: fast stop. USR1: reopen logs.
    CHLD:    a worker that died unexpectedly is replaced, logged at `alert`.

The master never runs an event loop, so forking is safe: it blocks in `signal.sigtimedwait`.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import time
from typing import Any

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.conf.model import Config, Listen
from truehop.log import ErrorLog
from truehop.process.runtime import Runtime, listener_groups

SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
           signal.SIGCHLD, signal.SIGWINCH)


def bind(key: tuple[str, int], ls: Listen) -> socket.socket:
    addr, port = key
    if addr.startswith("unix:"):
        path = addr[5:]
        try:
            os.unlink(path)
        except OSError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
    else:
        host = "0.0.0.0" if addr == "*" else addr
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if ls.reuseport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if ls.ipv6only else 0)
        try:
            s.bind((host, port))
        except OSError as e:
            s.close()
            shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
            raise OSError(e.errno, f'bind() to {shown} failed ({e.errno}: {e.strerror})') from None
    s.listen(ls.backlog)
    s.setblocking(False)
    return s


class Master:
    def __init__(self, cfg: Config, conf_path: str, prefix: str, globals_: str | None,
                 log: ErrorLog) -> None:
        self.cfg = cfg
        self.conf_path = conf_path
        self.prefix = prefix
        self.globals = globals_
        self.log = log
        self.sockets: dict[tuple[str, int], socket.socket] = {}
        self.workers: dict[int, int] = {}        # pid -> generation
        self.generation = 0
        self.stopping: str | None = None
        self.rt: Runtime | None = None

    # -- sockets -------------------------------------------------------------------------

    def bind_all(self, cfg: Config) -> None:
        wanted = {key: members[0][0] for key, members in listener_groups(cfg).items()}
        for key, ls in wanted.items():
            if key not in self.sockets:
                self.sockets[key] = bind(key, ls)
        for key in list(self.sockets):
            if key not in wanted:
                self.sockets.pop(key).close()

    # -- workers -------------------------------------------------------------------------

    def spawn(self, rt: Runtime, n: int) -> None:
        for _ in range(n):
            self.spawn_one(rt)

    def spawn_one(self, rt: Runtime) -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
                for sig in SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                from truehop.process import worker
                worker.run(rt, self.sockets)
            except BaseException as e:  # never let a worker unwind into the master's code
                try:
                    rt.log.alert(f"worker exited on error: {type(e).__name__}: {e}")
                except Exception:
                    pass
                code = 2
            finally:
                os._exit(code)
        self.workers[pid] = self.generation

    def signal_workers(self, sig: int, generation: int | None = None) -> None:
        for pid, gen in list(self.workers.items()):
            if generation is None or gen == generation:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            gen = self.workers.pop(pid, None)
            if gen is None:
                continue
            if self.stopping is None and gen == self.generation:
                how = (f"exited on signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                       else f"exited with fatal code {os.WEXITSTATUS(status)}")
                self.log.alert(f"worker process {pid} {how}, respawning")
                assert self.rt is not None
                self.spawn_one(self.rt)

    # -- reload --------------------------------------------------------------------------

    def reload(self) -> None:
        self.log.notice("signal 1 (SIGHUP) received, reconfiguring")
        try:
            cfg = load(self.conf_path, self.prefix, self.globals)
            rt = Runtime(cfg, self.log_for(cfg))
            self.bind_all(cfg)
        except (ConfigError, OSError, ValueError) as e:
            self.log.emerg(str(e))
            return
        except Exception as e:  # ssl.SSLError and friends: refuse, keep serving
            self.log.emerg(f"{type(e).__name__}: {e}")
            return
        old = self.generation
        old_rt = self.rt
        self.generation += 1
        self.cfg = cfg
        self.rt = rt
        self.spawn(rt, cfg.main.worker_processes)
        self.signal_workers(signal.SIGQUIT, old)
        if old_rt is not None:
            for sink in old_rt.sinks.values():
                sink.close()  # the master's copies; old workers keep their own
        self.log.notice("reconfiguring done, old workers shutting down gracefully")

    def log_for(self, cfg: Config) -> ErrorLog:
        targets = cfg.main.error_logs or self.log.targets
        if targets != self.log.targets:
            self.log.targets = targets
            self.log.reopen()
        return self.log

    # -- main loop -----------------------------------------------------------------------

    def run(self, rt: Runtime) -> int:
        self.rt = rt
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        self.spawn(rt, self.cfg.main.worker_processes)
        stop_deadline: float | None = None
        while True:
            info = signal.sigtimedwait(SIGNALS, 0.5)
            if info is not None:
                sig = info.si_signo
                if sig == signal.SIGCHLD:
                    pass
                elif sig == signal.SIGHUP:
                    if self.stopping is None:
                        self.reload()
                elif sig == signal.SIGQUIT:
                    if self.stopping is None:
                        self.log.notice("gracefully shutting down")
                        self.stopping = "quit"
                        self.signal_workers(signal.SIGQUIT)
                        for s in self.sockets.values():
                            s.close()
                elif sig in (signal.SIGTERM, signal.SIGINT):
                    self.log.notice(f"signal {sig} received, exiting")
                    self.stopping = "stop"
                    self.signal_workers(signal.SIGTERM)
                    stop_deadline = time.monotonic() + 5.0
                elif sig == signal.SIGUSR1:
                    self.log.reopen()
                    self.signal_workers(signal.SIGUSR1)
            self.reap()
            if self.stopping is not None and not self.workers:
                break
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                self.signal_workers(signal.SIGKILL)
        for s in self.sockets.values():
            s.close()
        self.log.notice("exit")
        return 0


def write_pid(path: str) -> None:
    if path == "off":
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def remove_pid(path: str) -> None:
    if path == "off":
        return
    try:
        with open(path) as f:
            if f.read().strip() != str(os.getpid()):
                return
        os.unlink(path)
    except OSError:
        pass


def daemonize() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    fd = os.open(os.devnull, os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(fd, i)


def ensure_std_fds() -> None:
    """Daemon managers may start us with 0-2 closed: reopen them on /dev/null first, so a
    socket never lands on descriptor 1 or 2."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError as e:
            if e.errno == errno.EBADF:
                nfd = os.open(os.devnull, os.O_RDWR)
                if nfd != fd:
                    os.dup2(nfd, fd)
                    os.close(nfd)


def serve(cfg: Config, conf_path: str, prefix: str, globals_: str | None, log: ErrorLog,
          rt: Runtime) -> int:
    master = Master(cfg, conf_path, prefix, globals_, log)
    try:
        master.bind_all(cfg)
    except OSError as e:
        log.emerg(e.strerror or str(e))
        print(f"truehop: [emerg] {e.strerror or e}", file=sys.stderr)
        return 1
    if cfg.main.daemon:
        daemonize()
    pid_path = cfg.main.pid
    write_pid(pid_path)
    try:
        return master.run(rt)
    finally:
        remove_pid(pid_path)


def send_signal(pid_path: str, name: str) -> int:
    sigs: dict[str, Any] = {"stop": signal.SIGTERM, "quit": signal.SIGQUIT,
                            "reopen": signal.SIGUSR1, "reload": signal.SIGHUP}
    try:
        with open(pid_path) as f:
            text = f.read().strip()
    except OSError as e:
        print(f'truehop: [error] open() "{pid_path}" failed ({e.errno}: {e.strerror})',
              file=sys.stderr)
        return 1
    if not text.isdigit():
        print(f'truehop: [error] invalid PID number "{text}" in "{pid_path}"', file=sys.stderr)
        return 1
    try:
        os.kill(int(text), sigs[name])
    except ProcessLookupError:
        print(f"truehop: [error] kill({text}, {sigs[name].value}) failed (3: No such process)",
              file=sys.stderr)
        return 1
    return 0
