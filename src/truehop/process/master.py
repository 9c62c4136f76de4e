"""The master process: owns the listening sockets and the workers, as nginx's master does.

    start:   (the CLI has tested the config) bind and listen on every socket, detach if
             `daemon on`, write the pid file, fork `worker_processes` workers that inherit
             the sockets.
    HUP:     re-read and fully test the config (load, build the runtime, lint errors). On
             failure log `emerg` and keep the old workers. On success bind the added sockets
             (sockets that remain are kept open, never closed and reopened), fork new workers,
             wait until they serve, then send QUIT to the old ones (they finish in-flight work,
             see worker.py), and close the sockets no longer listed.
    QUIT:    graceful stop of every worker, then exit. TERM/INT: fast stop. USR1: reopen logs.
    CHLD:    a worker that died unexpectedly is replaced, logged at `alert` (one that exits
             with the fatal code 2 is not: it would only die again).

Sockets: one per listen address, shared by all workers; with `reuseport`, one per worker
slot (worker i always gets socket i, also when replaced or after a reload, so connections
queued on a socket are never lost).

The master never runs an event loop, so forking is safe: it blocks in `signal.sigtimedwait`
with every signal it handles blocked. Children inherit that mask; a worker unblocks once its
own handlers are installed.
"""

from __future__ import annotations

import errno
import importlib
import os
import pkgutil
import resource
import select
import signal
import socket
import stat
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import truehop
from truehop.build import is_compiled
from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.conf.model import Config, Listen
from truehop.detect import state_path
from truehop.lint import rules
from truehop.log import ErrorLog, ScopedErrorLog
from truehop.process import worker
from truehop.process.runtime import Runtime, listener_groups
from truehop.proxy.cache.store import Manager as CacheManager

SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
           signal.SIGCHLD, signal.SIGWINCH)
READY_TIMEOUT = 10.0      # how long a reload waits for its new workers to serve
FAST_STOP_GRACE = 5.0     # after TERM, workers still alive are killed
FATAL_EXIT = 2            # a worker that exits with this code is not respawned (as nginx)

Key = tuple[str, int]


def bind(key: Key, ls: Listen) -> socket.socket:
    addr, port = key
    if addr.startswith("unix:"):
        path = addr[5:]
        try:
            os.unlink(path)
        except OSError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(path)
        except OSError as e:
            s.close()
            raise OSError(e.errno, f'bind() to {addr} failed ({e.errno}: {e.strerror})') from None
        try:
            # as nginx (ngx_open_listening_sockets): anyone may connect, whatever the umask
            os.chmod(path, 0o666)
        except OSError as e:
            s.close()
            raise OSError(e.errno, f'chmod() "{path}" failed ({e.errno}: {e.strerror})') from None
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
    try:
        configure(s, ls)
    except OSError as e:
        s.close()
        raise OSError(e.errno, f"setsockopt() on {addr}:{port} failed "
                               f"({e.errno}: {e.strerror})") from None
    try:
        s.listen(ls.backlog)
    except OSError as e:
        s.close()
        raise OSError(e.errno, f"listen() to {addr}:{port}, backlog {ls.backlog} failed "
                               f"({e.errno}: {e.strerror})") from None
    s.setblocking(False)
    return s


def configure(s: socket.socket, ls: Listen) -> None:
    """The listen parameters that are socket options (nginx sets them on the listening
    socket; accepted connections inherit them). Also applied to a socket kept by a reload."""
    if ls.rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, ls.rcvbuf)
    if ls.sndbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, ls.sndbuf)
    if s.family == socket.AF_UNIX:
        return
    if ls.so_keepalive is not None:
        on, idle, intvl, cnt = ls.so_keepalive
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1 if on else 0)
        if idle:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        if intvl:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl)
        if cnt:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cnt)
    if ls.deferred:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
    if ls.fastopen:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, ls.fastopen)


def set_nofile(rt: Runtime) -> None:
    """worker_rlimit_nofile: the worker's open-file limit (soft and hard, as nginx), set
    before it gives up root; a refusal is logged and the worker goes on."""
    n = rt.cfg.main.rlimit_nofile
    if n:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        except (ValueError, OSError) as e:
            code = getattr(e, "errno", None) or 1
            rt.log.alert(f"setrlimit(RLIMIT_NOFILE, {n}) failed ({code}: "
                         f"{getattr(e, 'strerror', None) or e})")


def unlink_unix(key: Key) -> None:
    if key[0].startswith("unix:"):
        try:
            os.unlink(key[0][5:])
        except OSError:
            pass


@dataclass
class SocketSet:
    """The listening sockets of one configuration: key -> one socket, or one per worker slot
    for `reuseport`."""

    socks: dict[Key, list[socket.socket]] = field(default_factory=dict)
    reuseport: dict[Key, bool] = field(default_factory=dict)

    def for_slot(self, slot: int) -> dict[Key, socket.socket]:
        return {k: v[slot % len(v)] for k, v in self.socks.items() if v}

    def all(self) -> list[socket.socket]:
        return [s for v in self.socks.values() for s in v]


def wanted_sockets(cfg: Config) -> dict[Key, Listen]:
    return {key: members[0][0] for key, members in listener_groups(cfg).items()}


class Master:
    def __init__(self, cfg: Config, conf_path: str, prefix: str, globals_: str | None,
                 log: ErrorLog) -> None:
        self.cfg = cfg
        self.conf_path = conf_path
        self.prefix = prefix
        self.globals = globals_
        self.log = log
        self.sockets = SocketSet()
        self.workers: dict[int, tuple[int, int]] = {}        # pid -> (generation, slot)
        self.generation = 0
        self._next_generation = 1
        self.stopping: str | None = None
        self.rt: Runtime | None = None
        self._ready_fds: list[int] = []                      # read ends, master side
        self._cache_manager: CacheManager | None = None

    # -- sockets -------------------------------------------------------------------------

    def plan_sockets(self, cfg: Config) -> tuple[SocketSet, list[socket.socket]]:
        """The socket set for `cfg`: sockets kept from the current set, plus new ones bound
        now. Returns (set, newly bound). Raises OSError having closed what it bound."""
        n = max(1, cfg.main.worker_processes)
        plan = SocketSet()
        new: list[socket.socket] = []
        try:
            for key, ls in wanted_sockets(cfg).items():
                have = self.sockets.socks.get(key, [])
                rp = self.sockets.reuseport.get(key, ls.reuseport) if have else ls.reuseport
                if have and rp != ls.reuseport:
                    self.log.warn(f'the "reuseport" parameter of "listen {key[0]}:{key[1]}" '
                                  f"changed: it takes effect after a restart")
                want = n if rp else 1
                lst = list(have[:want])
                for kept in lst:
                    configure(kept, ls)   # buffer sizes and keepalive may have changed
                while len(lst) < want:
                    s = bind(key, ls)
                    new.append(s)
                    lst.append(s)
                plan.socks[key] = lst
                plan.reuseport[key] = rp
        except OSError:
            for s in new:
                s.close()
            raise
        return plan, new

    def commit_sockets(self, plan: SocketSet) -> None:
        """Switch to `plan`; close (in the master) the sockets it no longer holds."""
        keep = {id(s) for s in plan.all()}
        for key, lst in self.sockets.socks.items():
            for s in lst:
                if id(s) not in keep:
                    s.close()
            if key not in plan.socks:
                unlink_unix(key)
        self.sockets = plan

    def bind_all(self, cfg: Config) -> None:
        plan, _ = self.plan_sockets(cfg)
        self.commit_sockets(plan)

    def close_sockets(self) -> None:
        for key, lst in self.sockets.socks.items():
            for s in lst:
                s.close()
            unlink_unix(key)
        self.sockets = SocketSet()

    # -- workers -------------------------------------------------------------------------

    def spawn(self, rt: Runtime, n: int, sockets: SocketSet, generation: int) -> list[int]:
        """Fork `n` workers; returns the read ends of their readiness pipes."""
        return [self.spawn_one(rt, slot, sockets, generation) for slot in range(n)]

    def spawn_one(self, rt: Runtime, slot: int, sockets: SocketSet, generation: int) -> int:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(r)
                for fd in self._ready_fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                # handlers back to default while the signals are still blocked; the worker
                # unblocks them once its own handlers are in place
                for sig in SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                # a listening socket left open here would keep accepting into a queue
                # nobody reads (a removed listen address would still take connections)
                mine = {id(s) for s in sockets.for_slot(slot).values()}
                for s in self.sockets.all() + sockets.all():
                    if id(s) not in mine:
                        s.close()
                signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGCHLD,))
                # files the worker writes are opened before it gives up root: the logs
                # (opened by the master), and its findings file for `truehop status`
                rt.detect.open_state()
                set_nofile(rt)
                switch_user(rt.cfg)
                worker.run(rt, sockets.for_slot(slot), w)
            except BaseException as e:  # never let a worker unwind into the master's code
                try:
                    rt.log.alert(f"worker process exited on error: {type(e).__name__}: {e}")
                except Exception:
                    pass
                code = FATAL_EXIT
            finally:
                os._exit(code)
        os.close(w)
        self._ready_fds.append(r)
        self.workers[pid] = (generation, slot)
        self.log.notice(f"start worker process {pid}")
        return r

    def wait_ready(self, fds: list[int], timeout: float = READY_TIMEOUT) -> int:
        """Wait until every worker behind `fds` has written its ready byte or died; returns
        how many are serving. Closes the fds."""
        ready = 0
        pending = list(fds)
        deadline = time.monotonic() + timeout
        try:
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                readable, _, _ = select.select(pending, [], [], left)
                for fd in readable:
                    try:
                        data = os.read(fd, 1)
                    except OSError:
                        data = b""
                    if data:
                        ready += 1
                    pending.remove(fd)
        finally:
            for fd in fds:
                self._close_ready(fd)
        return ready

    def _close_ready(self, fd: int) -> None:
        if fd in self._ready_fds:
            self._ready_fds.remove(fd)
            try:
                os.close(fd)
            except OSError:
                pass

    def signal_workers(self, sig: int, generation: int | None = None) -> None:
        for pid, (gen, _slot) in list(self.workers.items()):
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
            entry = self.workers.pop(pid, None)
            if entry is None:
                continue
            if self.rt is not None and self.rt.detect.state_dir:
                try:
                    os.unlink(state_path(self.rt.detect.state_dir, pid))
                except OSError:
                    pass
            gen, slot = entry
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            if os.WIFSIGNALED(status):
                how = f"exited on signal {os.WTERMSIG(status)}"
            else:
                how = f"exited with code {code}"
            unexpected = self.stopping is None and gen == self.generation
            if unexpected and code == FATAL_EXIT:
                self.log.alert(f"worker process {pid} exited with fatal code {code} "
                               f"and cannot be respawned")
                continue
            if unexpected or (code != 0 and self.stopping != "stop"):
                self.log.alert(f"worker process {pid} {how}")
            else:
                self.log.notice(f"worker process {pid} {how}")
            if not unexpected:
                continue
            assert self.rt is not None
            fd = self.spawn_one(self.rt, slot, self.sockets, self.generation)
            self._close_ready(fd)

    # -- reload --------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read, test, and switch to the configuration on disk. False: refused, the old
        configuration keeps serving."""
        self.log.notice("signal 1 (SIGHUP) received, reconfiguring")
        log: ErrorLog | None = None
        rt: Runtime | None = None
        try:
            cfg = load(self.conf_path, self.prefix, self.globals)
            targets = cfg.main.error_logs or self.log.targets
            log = self.log if targets == self.log.targets else ErrorLog(targets, strict=True)
            rt = Runtime(cfg, log)
            findings = lint(cfg)
            errors = [f for f in findings if f.severity == "error"]
            if errors:
                raise ConfigError(errors[0].render(prefix=False))
            plan, new = self.plan_sockets(cfg)
        except Exception as e:  # ConfigError, OSError (bind), ssl.SSLError...: refuse
            if isinstance(e, OSError) and e.strerror and " failed (" in e.strerror:
                text = e.strerror   # ours, already in nginx's words (bind() to ... failed)
            elif isinstance(e, (ConfigError, OSError, ValueError)):
                text = str(e)
            else:
                text = f"{type(e).__name__}: {e}"
            self.log.emerg(f"{text}; the old configuration stays in effect")
            if rt is not None:
                rt.close_files()   # the log files the refused configuration opened
            if log is not None and log is not self.log:
                close_log(log)
            return False
        for w in cfg.warnings:
            log.warn(w)
        for f in findings:
            if f.severity == "warn":
                log.warn(f.render(prefix=False))
        old_gen, gen = self.generation, self._next_generation
        self._next_generation += 1
        n = max(1, cfg.main.worker_processes)
        fds = self.spawn(rt, n, plan, gen)
        if self.wait_ready(fds) == 0:
            self.log.alert("no new worker process started; the old configuration stays in "
                           "effect")
            self.signal_workers(signal.SIGKILL, gen)
            for s in new:
                s.close()
            rt.close_files()
            if log is not self.log:
                close_log(log)
            return False
        self.generation = gen
        self.commit_sockets(plan)
        old_rt, old_log = self.rt, self.log
        self.cfg, self.rt, self.log = cfg, rt, log
        self.signal_workers(signal.SIGQUIT, old_gen)
        if old_rt is not None:
            old_rt.close_files()  # the master's copies; the old workers keep their own
        if old_log is not log:
            close_log(old_log)
        self.log.notice("reconfiguring done, old worker processes shutting down gracefully")
        return True

    def reopen_logs(self) -> None:
        """USR1, as nginx: the master reopens every log file (creating those moved away) and,
        when the workers run as another user, gives each file to that user, so that the
        workers, signalled next, can reopen it too."""
        self.log.reopen()
        paths = [p for p, _ in self.log.targets]
        rt = self.rt
        if rt is not None:
            if isinstance(rt.log, ScopedErrorLog):
                for el in rt.log.scoped.values():
                    el.reopen()
                    paths.extend(p for p, _ in el.targets)
            for sink in rt.sinks.values():
                try:
                    sink.reopen()
                except OSError as e:
                    self.log.emerg(str(e))
                paths.append(sink.path)
        uid = self.cfg.main.uid
        if uid is None or os.geteuid() != 0:
            return
        for path in dict.fromkeys(paths):
            try:
                st = os.stat(path)
                if not stat.S_ISREG(st.st_mode):
                    continue        # stderr, /dev/stdout...: not the workers' to own
                if st.st_uid != uid:
                    os.chown(path, uid, -1)
                if st.st_mode & 0o600 != 0o600:
                    os.chmod(path, st.st_mode | 0o600)
            except OSError as e:
                self.log.alert(f'chown("{path}", {uid}) failed ({e.errno}: {e.strerror})')

    # -- the cache manager and loader -----------------------------------------------------

    def cache_manager(self) -> CacheManager:
        """nginx's cache manager and loader, run here between signals (proxy.cache.store):
        one per configuration's proxy_cache_path list, a reload keeps it when it is equal."""
        paths = self.cfg.http.settings.proxy_cache_path
        m = self._cache_manager
        if m is None or m.paths != paths:
            m = self._cache_manager = CacheManager(paths, self.log)
        return m

    # -- main loop -----------------------------------------------------------------------

    def run(self, rt: Runtime) -> int:
        self.rt = rt
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        announce_build(self.log)
        self.generation = self._next_generation
        self._next_generation += 1
        for fd in self.spawn(rt, max(1, self.cfg.main.worker_processes), self.sockets,
                             self.generation):
            self._close_ready(fd)
        stop_deadline: float | None = None
        while True:
            info = signal.sigtimedwait(SIGNALS, 0.5)
            if info is not None:
                sig = info.si_signo
                if sig == signal.SIGHUP:
                    if self.stopping is None:
                        self.reload()
                elif sig == signal.SIGQUIT:
                    if self.stopping is None:
                        self.log.notice("signal 3 (SIGQUIT) received, shutting down")
                        self.stopping = "quit"
                        self.signal_workers(signal.SIGQUIT)
                        self.close_sockets()
                elif sig in (signal.SIGTERM, signal.SIGINT):
                    if self.stopping != "stop":
                        self.log.notice(f"signal {sig} ({signal.Signals(sig).name}) received, exiting")
                        self.stopping = "stop"
                        self.signal_workers(signal.SIGTERM)
                        self.close_sockets()
                        stop_deadline = time.monotonic() + FAST_STOP_GRACE
                elif sig == signal.SIGUSR1:
                    self.reopen_logs()
                    self.log.notice("signal 10 (SIGUSR1) received, reopening logs")
                    self.signal_workers(signal.SIGUSR1)
            self.reap()
            if self.stopping is not None and not self.workers:
                break
            self.cache_manager().tick()
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                self.signal_workers(signal.SIGKILL)
        self.close_sockets()
        self.log.notice("exit")
        return 0


def announce_build(log: ErrorLog) -> None:
    """Which build serves, said once at start-up (nginx says which event method it uses):
    the pure-Python build costs about twice the CPU per request, which an operator should
    learn from the log rather than from a load test."""
    if is_compiled():
        log.notice(f"truehop/{truehop.__version__}, the compiled (mypyc) build")
    else:
        log.warn(f"truehop/{truehop.__version__} runs its pure-Python build: about twice the "
                 "CPU per request of the compiled one, which `pip install .` builds where a C "
                 "compiler is present (`truehop -V` says which build is installed)")


def lint(cfg: Config) -> list[Any]:
    return list(rules.run(cfg))


# Imported lazily by the standard library or by truehop on paths a worker may take later.
LAZY_STDLIB = ("concurrent.futures.thread", "encodings.idna", "encodings.ascii",
               "encodings.latin_1", "datetime", "email.utils", "mimetypes", "hashlib",
               "base64", "zlib", "json", "ssl", "uvloop", "h2.connection", "httptools",
               "traceback", "cProfile", "pstats")


def preload_modules() -> None:
    """Import now whatever a worker could import later. After the switch to `user`, the
    Python installation may be unreadable (a pyenv or uv interpreter under /root is mode 700):
    nginx's workers have all their code loaded, a Python worker must load it first."""
    names = [m.name for m in pkgutil.walk_packages(truehop.__path__, "truehop.")
             if not m.name.startswith(("truehop.__main__", "truehop.demo", "truehop.testing",
                                       "truehop.pytest_plugin"))]
    for name in (*names, *LAZY_STDLIB):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def switch_user(cfg: Config) -> None:
    """In a new worker: become the configured `user` (nginx's default nobody/nogroup) when
    the master runs as root; the listening sockets and log files are already open."""
    uid, gid, user = cfg.main.uid, cfg.main.gid, cfg.main.user or "nobody"
    if uid is None or gid is None or os.geteuid() != 0:
        return
    preload_modules()
    call = f"setgid({gid})"
    try:
        os.setgid(gid)
        call = f"initgroups({user}, {gid})"
        os.initgroups(user, gid)
        call = f"setuid({uid})"
        os.setuid(uid)
    except OSError as e:
        raise OSError(e.errno, f"{call} failed ({e.errno}: {e.strerror})") from None


def close_log(log: ErrorLog) -> None:
    for f, _ in log.sinks:
        if f not in (sys.stderr, sys.stdout):
            try:
                f.close()
            except OSError:
                pass


def write_pid(path: str) -> None:
    if path == "off":
        return
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
    if fd > 2:
        os.close(fd)


def ensure_std_fds() -> None:
    """Daemon managers (and Test::Nginx's try_run) may start us with 0-2 closed: reopen them
    on /dev/null first, so a socket or log never lands on descriptor 1 or 2. Python leaves
    `sys.stdin/stdout/stderr` as None for a descriptor closed at start; give them a stream on
    the /dev/null descriptor, or `print(file=sys.stderr)` would write to stdout."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError as e:
            if e.errno == errno.EBADF:
                nfd = os.open(os.devnull, os.O_RDWR)
                if nfd != fd:
                    os.dup2(nfd, fd)
                    os.close(nfd)
    if sys.stdin is None:
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115


def serve(cfg: Config, conf_path: str, prefix: str, globals_: str | None, log: ErrorLog,
          rt: Runtime) -> int:
    ensure_std_fds()
    master = Master(cfg, conf_path, prefix, globals_, log)
    if rt.detect.state_dir:
        # where the workers' findings files go (`truehop status`): <prefix>/logs, ours to make
        try:
            os.makedirs(rt.detect.state_dir, exist_ok=True)
        except OSError:
            pass
    try:
        master.bind_all(cfg)
    except OSError as e:
        log.emerg(e.strerror or str(e))
        print(f"truehop: [emerg] {e.strerror or e}", file=sys.stderr)
        return 1
    if cfg.main.daemon:
        daemonize()
    pid_path = cfg.main.pid
    if pid_path != "off" and "pid" not in cfg.main.where:
        # the built-in default, <prefix>/logs/truehop.pid: its directory is ours to make, as
        # the log directory is; a configured path's is not (nginx: `open() ... failed`)
        try:
            os.makedirs(os.path.dirname(pid_path) or ".", exist_ok=True)
        except OSError:
            pass
    try:
        write_pid(pid_path)
    except OSError as e:
        msg = f'open() "{pid_path}" failed ({e.errno}: {e.strerror})'
        log.emerg(msg)
        print(f"truehop: [emerg] {msg}", file=sys.stderr)
        master.close_sockets()
        return 1
    try:
        return master.run(rt)
    finally:
        remove_pid(pid_path)


def send_signal(pid_path: str, name: str) -> int:
    """`-s stop|quit|reopen|reload`: signal the pid in the pid file, with nginx's messages."""
    sigs: dict[str, Any] = {"stop": signal.SIGTERM, "quit": signal.SIGQUIT,
                            "reopen": signal.SIGUSR1, "reload": signal.SIGHUP}
    if pid_path == "off":
        print('truehop: [error] "pid" is off, no process to signal', file=sys.stderr)
        return 1
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
    sig = sigs[name]
    try:
        os.kill(int(text), sig)
    except OSError as e:
        print(f"truehop: [alert] kill({text}, {sig.value}) failed ({e.errno}: {e.strerror})",
              file=sys.stderr)
        return 1
    return 0
