"""truehop from Python: run a project's own nginx configuration in front of its app, in its
tests, on free loopback ports.

    from truehop.testing import Proxy

    with Proxy("deploy/nginx/site.conf", upstreams={"app": app_address}) as proxy:
        r = httpx.get(proxy.url("/login"))          # through the real truehop process
        assert r.headers["x-frame-options"] == "DENY"

The configuration is the one the project deploys, unchanged on disk. What cannot work in a
test is rewritten on the way in, in the parsed tree (never by text substitution):

* every `listen` gets a free port on 127.0.0.1 (the same port for the IPv4 and IPv6 listens
  of one original port; `unix:` listens are dropped). `proxy.ports` maps each original port
  to its test port; `proxy.url()` builds URLs against them.
* an `upstream NAME` named in `upstreams` gets the given servers instead of its own (its
  other directives, keepalive included, stay); a `proxy_pass` whose host is a key of
  `upstreams` (`app`, or `app:8000`) is pointed at the given address.
* `pid`, `error_log` and `access_log` files go to the proxy's own temporary directory
  (`proxy.error_log()`, `proxy.access_log()`), `daemon` and `user` are dropped.
* with `tls=(cert, key)`, every `ssl_certificate`/`ssl_certificate_key` pair is replaced,
  for configurations whose production certificates a test does not have; `paths` maps
  directories the configuration names (`{"/srv/app/public": "tests/public"}`) to the test's.
* relative paths keep their meaning: `root`/`alias` against `prefix` (default: the
  configuration's directory), certificates and password files against the configuration's
  directory; the proxy itself runs with its temporary directory as prefix.

`Proxy` starts the real `truehop` process (`python -m truehop`), waits until every port
accepts connections, and stops it gracefully on exit. The pytest plugin
(`truehop.pytest_plugin`, registered as a `pytest11` entry point) wraps it as the
`truehop_proxy` fixture.
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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from truehop.conf.ast import Arg, Directive
from truehop.conf.dump import dump_tree
from truehop.conf.parser import parse_file, parse_string

__all__ = ["Proxy", "ProxyFailed", "free_port"]

# error-log lines that mean the proxy misbehaved, whatever the test checked
_BAD_LOG = re.compile(r"\[(alert|crit|emerg)\]|Traceback")
# directives that would write outside the proxy's directory or change who runs it
_DROPPED_MAIN = frozenset({"daemon", "user", "pid", "worker_rlimit_nofile"})
# listen parameters that make no sense for a loopback test port
_DROPPED_LISTEN = frozenset({"reuseport", "deferred", "bind"})


class ProxyFailed(RuntimeError):
    """truehop refused the configuration or did not come up; the message holds its output."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _port_of(listen: str) -> int | None:
    """The port an nginx `listen` address names (80 when it names none); None for unix:."""
    if listen.startswith("unix:"):
        return None
    if listen.startswith("["):
        _, _, rest = listen.partition("]")
        return int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 80
    if listen.isdigit():
        return int(listen)
    host, _, port = listen.rpartition(":")
    if host and port.isdigit():
        return int(port)
    return 80


def _retarget(value: str, upstreams: Mapping[str, Sequence[str]]) -> tuple[str, str] | None:
    """A proxy_pass URL whose host ("app", or "app:8000") is a key of `upstreams`, pointed
    at that key's (first) address; with the key. None when the host is not a key."""
    m = re.match(r"(https?://)([^/$]+)(.*)", value, re.S)
    if m is None:
        return None
    scheme, hostport, rest = m.groups()
    host = hostport.rpartition(":")[0] if re.search(r":\d+$", hostport) else hostport
    for key in (hostport, host):
        if key in upstreams:
            return f"{scheme}{upstreams[key][0]}{rest}", key
    return None


# paths nginx reads against the prefix (-p) and against the configuration's directory
_PREFIX_PATHS: Final = frozenset({"root", "alias"})
_CONF_PATHS: Final = frozenset({
    "ssl_certificate", "ssl_certificate_key", "ssl_trusted_certificate",
    "ssl_client_certificate", "ssl_dhparam", "ssl_password_file", "ssl_crl",
    "proxy_ssl_trusted_certificate", "proxy_ssl_certificate", "proxy_ssl_certificate_key",
    "proxy_ssl_crl", "auth_basic_user_file",
})


class _Rewriter:
    """The parsed configuration, made runnable on loopback in a directory of its own."""

    def __init__(self, workdir: Path, upstreams: Mapping[str, Sequence[str]],
                 tls: tuple[str, str] | None, paths: Mapping[str, str], prefix: Path,
                 conf_dir: Path) -> None:
        self.workdir = workdir
        self.upstreams = upstreams
        self.tls = tls
        # longest first, so that a mapped directory wins over its parent
        self.paths = sorted(paths.items(), key=lambda kv: -len(kv[0]))
        self.prefix = prefix
        self.conf_dir = conf_dir
        self.ports: dict[int, int] = {}
        self.used: set[str] = set()         # the keys of `upstreams` that found a use

    @staticmethod
    def _with(d: Directive, args: Iterable[str] | None = None,
              block: tuple[Directive, ...] | None = None) -> Directive:
        new_args = d.args if args is None else tuple(Arg(a) for a in args)
        return Directive(d.name, new_args, block if block is not None else d.block, d.file,
                         d.line)

    def _added(self, name: str, *args: str) -> Directive:
        return Directive(name, tuple(Arg(a) for a in args), None, "<test>", 0)

    def tree(self, tree: Sequence[Directive], context: str) -> tuple[Directive, ...]:
        out: list[Directive] = []
        for d in tree:
            out.extend(self.directive(d, context))
        logs = self.workdir / "logs"
        if context == "http" and not any(d.name == "access_log" for d in out):
            # nginx's default access log is prefix/logs/access.log: the proxy's own instead
            out.insert(0, self._added("access_log", f"{logs}/access.log"))
        return tuple(out)

    def directive(self, d: Directive, context: str) -> list[Directive]:
        name = d.name
        if context == "main" and name in _DROPPED_MAIN:
            return []
        if name in ("error_log", "access_log"):
            return [self.log(d)]
        if name == "listen":
            return self.listen(d)
        if name == "upstream" and d.block is not None and d.values and \
                d.values[0] in self.upstreams:
            return [self.upstream(d)]
        if name == "proxy_pass" and d.args:
            hit = _retarget(d.values[0], self.upstreams)
            if hit is not None:
                self.used.add(hit[1])
                return [self._with(d, [hit[0]])]
            return [d]
        if self.tls is not None and name in ("ssl_certificate", "ssl_certificate_key"):
            return [self._with(d, [self.tls[0] if name == "ssl_certificate" else self.tls[1]])]
        if d.args and (name in _PREFIX_PATHS or name in _CONF_PATHS):
            base = self.prefix if name in _PREFIX_PATHS else self.conf_dir
            return [self._with(d, [self.path(d.values[0], base), *d.values[1:]])]
        if d.block is not None:
            return [self._with(d, block=self.tree(d.block, name))]
        return [d]

    def path(self, value: str, base: Path) -> str:
        """A path as the test runs it: mapped by `paths`, made absolute against where nginx
        would have read it from (a path with variables is left as written)."""
        if "$" in value:
            return value
        for old, new in self.paths:
            if value == old or value.startswith(old.rstrip("/") + "/"):
                value = new + value[len(old):]
                break
        # alias keeps a trailing slash: it is part of its meaning
        return value if os.path.isabs(value) else str(base / value) + \
            ("/" if value.endswith("/") else "")

    def log(self, d: Directive) -> Directive:
        """Logs go to the proxy's directory; `off` and syslog stay as written."""
        v = d.values
        if not v or v[0] in ("off", "stderr") or v[0].startswith(("syslog:", "memory:")):
            return d
        kind = "error" if d.name == "error_log" else "access"
        return self._with(d, [str(self.workdir / "logs" / f"{kind}.log"), *v[1:]])

    def listen(self, d: Directive) -> list[Directive]:
        v = d.values
        port = _port_of(v[0])
        if port is None:
            return []                       # unix: sockets have no place in a port map
        if v[0].startswith("[") and port in self.ports:
            return []                       # the IPv6 twin of an IPv4 listen: one test port
        test_port = self.ports.setdefault(port, free_port())
        params = [p for p in v[1:] if p.split("=", 1)[0] not in _DROPPED_LISTEN and
                  not p.startswith("ipv6only")]
        return [self._with(d, [f"127.0.0.1:{test_port}", *params])]

    def upstream(self, d: Directive) -> Directive:
        name = d.values[0]
        self.used.add(name)
        assert d.block is not None
        kept = [e for e in d.block if e.name not in ("server", "zone", "resolver")]
        servers = [Directive("server", (Arg(addr),), None, d.file, d.line)
                   for addr in self.upstreams[name]]
        return self._with(d, block=tuple(servers + kept))


class Proxy:
    """The real truehop running `config` (a path, or the configuration's text) on loopback.

    `upstreams` maps an `upstream` block's name, or a `proxy_pass` host, to the address (or
    addresses) of the app under test. `prefix` is the directory relative `root`, `alias` and
    `include` paths resolve against (default: the config file's directory, or the proxy's own
    for a text). `python` runs `-m truehop` (default: this interpreter)."""

    def __init__(self, config: str | os.PathLike[str], *,
                 upstreams: Mapping[str, str | Sequence[str]] | None = None,
                 tls: tuple[str, str] | None = None,
                 paths: Mapping[str, str] | None = None,
                 prefix: str | os.PathLike[str] | None = None,
                 python: str = sys.executable, startup_timeout: float = 20.0,
                 env: Mapping[str, str] | None = None) -> None:
        self._config = config
        self._upstreams = {k: [v] if isinstance(v, str) else list(v)
                           for k, v in (upstreams or {}).items()}
        self._tls = tls
        self._paths = dict(paths or {})
        self._prefix = prefix
        self._python = python
        self._timeout = startup_timeout
        self._env = env
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.workdir = Path()
        self.ports: dict[int, int] = {}
        self.config_text = ""
        self.proc: subprocess.Popen[bytes] | None = None

    # -- the configuration ------------------------------------------------------------------

    def _parse(self) -> tuple[tuple[Directive, ...], Path]:
        """The configuration's tree (includes read) and the directory it was read from."""
        c = self._config
        if isinstance(c, os.PathLike) or "\n" not in c and "{" not in c and ";" not in c:
            path = Path(c).resolve()
            return parse_file(str(path)), path.parent
        base = Path(self._prefix).resolve() if self._prefix is not None else Path.cwd()
        return parse_string(str(c), "<config>", base_dir=str(base)), base

    def _write_config(self) -> tuple[Path, str]:
        """Write the rewritten configuration; returns its path and the -g globals."""
        tree, conf_dir = self._parse()
        prefix = Path(self._prefix).resolve() if self._prefix is not None else conf_dir
        rw = _Rewriter(self.workdir, self._upstreams, self._tls, self._paths, prefix, conf_dir)
        top = "main" if any(d.name in ("http", "events") for d in tree) else "http"
        out = rw.tree(tree, top)
        # main-level lines come from the command line (-g), which a conf.d-style file
        # needs anyway; started as root, the workers stay root: the files a test hands the
        # proxy are its own (nginx's default would switch them to nobody)
        globals_ = f"pid {self.workdir}/logs/truehop.pid;"
        if os.geteuid() == 0:
            globals_ += " user root;"
        self.ports = rw.ports
        if not self.ports:
            raise ProxyFailed("the configuration has no `listen` truehop could give a port")
        unused = sorted(set(self._upstreams) - rw.used)
        if unused:
            raise ProxyFailed(f"upstreams {unused} name no `upstream` block and no "
                              "proxy_pass host of the configuration")
        self.config_text = dump_tree(out)
        conf = self.workdir / "truehop.conf"
        conf.write_text(self.config_text)
        return conf, globals_

    # -- the process ------------------------------------------------------------------------

    def start(self) -> Proxy:
        self._tmp = tempfile.TemporaryDirectory(prefix="truehop-proxy-")
        self.workdir = Path(self._tmp.name)
        (self.workdir / "logs").mkdir()
        conf, globals_ = self._write_config()
        # the prefix is the proxy's directory: what nginx would create under its prefix
        # (temp directories, default logs) stays out of the project; the paths the
        # configuration reads were made absolute against the real prefix above
        cmd = [self._python, "-m", "truehop", "-p", f"{self.workdir}/", "-c", str(conf),
               "-e", str(self.workdir / "logs" / "error.log")]
        cmd += ["-g", globals_]
        env = {**os.environ, **(self._env or {})}
        with open(self.workdir / "stderr", "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=err, stderr=err, stdin=subprocess.DEVNULL,
                                         cwd=self.workdir, env=env, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._timeout
        pending = set(self.ports.values())
        while pending:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ProxyFailed(f"truehop exited with {self.proc.returncode}:\n"
                                  f"{self.output()}")
            for port in list(pending):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        pending.discard(port)
                except OSError:
                    pass
            if pending and time.monotonic() > deadline:
                raise ProxyFailed(f"truehop did not accept connections on {sorted(pending)} "
                                  f"within {self._timeout}s:\n{self.output()}")
            if pending:
                time.sleep(0.05)

    def stop(self, check: bool = True) -> None:
        """Stop gracefully (SIGQUIT, as `truehop -s quit`), then harder; with `check`, raise
        if the error log holds an [alert], [crit], [emerg] or a traceback."""
        p = self.proc
        if p is not None and p.poll() is None:
            for sig, wait in ((signal.SIGQUIT, 10.0), (signal.SIGTERM, 5.0)):
                try:
                    p.send_signal(sig)
                    p.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                self._kill()
                p.wait(5)
        if p is not None:
            self._kill()        # workers that outlived the master
        try:
            if check and p is not None:
                bad = [line for line in self.error_log().splitlines() if _BAD_LOG.search(line)]
                if bad:
                    raise ProxyFailed("truehop's error log has:\n" + "\n".join(bad))
        finally:
            self.proc = None
            if self._tmp is not None and not os.environ.get("TRUEHOP_KEEP_TMP"):
                shutil.rmtree(self._tmp.name, ignore_errors=True)
                self._tmp = None

    def _kill(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def reload(self) -> None:
        """`truehop -s reload`: re-read the configuration (as written) and swap workers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    # -- what a test reads ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The test port of the first `listen`."""
        return next(iter(self.ports.values()))

    def url(self, path: str = "/", *, port: int | None = None, scheme: str = "http") -> str:
        """A URL on the proxy. `port` is the port the configuration listens on (80, 443...):
        its test port is used; default: the first `listen`."""
        p = self.ports[port] if port is not None else self.port
        return f"{scheme}://127.0.0.1:{p}{path}"

    def error_log(self) -> str:
        return self._read("logs/error.log")

    def access_log(self) -> str:
        return self._read("logs/access.log")

    def output(self) -> str:
        return self._read("stderr") + self.error_log()

    def _read(self, rel: str) -> str:
        try:
            return (self.workdir / rel).read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(check=exc_type is None)

    def __repr__(self) -> str:
        state = "running" if self.proc is not None and self.proc.poll() is None else "stopped"
        return f"<truehop.testing.Proxy ports={self.ports} {state}>"
