"""Build hook: the request path compiled to C by mypyc, where that can be done.

The same sources run either way: compiled (what `pip install .` and a wheel built with
`python -m build` give on a machine with a C compiler), or pure Python (an editable install,
what `make` uses for development and `make run`; or a machine without a compiler). black and
mypy ship themselves the same way. mypyc reads the type hints: a value that does not match
its declared type is a TypeError at run time in the compiled build, which is why `make test`
runs the whole suite against both builds.

TRUEHOP_MYPYC chooses: unset (auto) compiles when a C compiler is found and falls back to the
pure build, saying so, when it is not or when compiling fails; 1 compiles or fails the
install; 0 never compiles. An editable install is never compiled unless TRUEHOP_MYPYC=1: its
shared objects would sit in src/ and shadow later edits of the .py files.

Only the modules every request passes through are compiled: the request path, the config
model it reads (`conf/model.py`: a compiled class's attributes are read as C struct fields,
an interpreted one's by a dictionary lookup each time) and the worker's runtime. Config
loading, lint, the master process and the CLI stay interpreted (they run once per load).
`truehop -V` says which build runs.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    "conf/model.py",
    "process/runtime.py",
    "clock.py",
    "http/events.py",
    "http/status.py",
    "http/headers.py",
    "http/coding.py",
    "http/h1.py",
    "http/h1client.py",
    "http/hpack.py",
    "http/h2frames.py",
    "http/h2.py",
    "http/exchange.py",
    "net/flow.py",
    "net/deadline.py",
    "net/closing.py",
    "net/downstream.py",
    "net/upstream.py",
    "net/h2conn.py",
    "net/negotiate.py",
    "net/tls.py",
    "net/listen.py",
    "net/connection.py",
    "certificate.py",
    "proxy/pipeline.py",
    "proxy/upstream.py",
    "proxy/target.py",
    "proxy/upstream_request.py",
    "proxy/attempts.py",
    "proxy/response.py",
    "proxy/relay.py",
    "proxy/spool.py",
    "proxy/tunnel.py",
    "proxy/filters.py",
    "proxy/pacing.py",
    "proxy/limits.py",
    "proxy/leaky.py",
    "proxy/gzip.py",
    "proxy/brotli.py",
    "proxy/balancer.py",
    "proxy/pool.py",
    "proxy/upstreams.py",
    "proxy/resolving.py",
    "proxy/static.py",
    "proxy/cache/policy.py",
    "proxy/cache/store.py",
    "proxy/cache/handler.py",
    "proxy/charset.py",
    "proxy/cookie_flags.py",
    "proxy/access.py",
    "proxy/auth.py",
    "proxy/subrequest.py",
    "detect.py",
    "route/variables.py",
    "route/template.py",
    "route/locations.py",
    "route/servers.py",
    "route/state.py",
    "route/uri.py",
]

MODE = os.environ.get("TRUEHOP_MYPYC", "auto")
# setuptools runs this file for metadata (egg_info, dist_info) and, for `pip install -e`, as
# editable_wheel: neither compiles anything (unless TRUEHOP_MYPYC=1 asks for the editable one)
METADATA_ONLY = any(c in sys.argv for c in ("egg_info", "dist_info"))
EDITABLE = "editable_wheel" in sys.argv


def _say(msg: str) -> None:
    # pip shows a build backend's stderr with -v, and always when the build fails
    print(f"truehop setup: {msg}", file=sys.stderr)


def _compiler() -> str | None:
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc)


def _mypyc_extensions() -> list[Any]:
    """The mypyc extensions, or [] (with the reason said) for the pure build."""
    if MODE == "0" or METADATA_ONLY or (EDITABLE and MODE != "1"):
        return []
    if MODE != "1" and _compiler() is None:
        _say("no C compiler found: installing the pure-Python build "
             "(about twice the CPU per request; install a compiler to get the compiled one)")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        if MODE == "1":
            raise SystemExit("TRUEHOP_MYPYC=1 needs mypyc: pip install mypy wheel") from None
        _say("mypyc is not available: installing the pure-Python build")
        return []
    try:
        return list(mypycify([os.path.join("src", "truehop", m) for m in COMPILED],
                             opt_level=os.environ.get("MYPYC_OPT_LEVEL", "3")))
    except (SystemExit, Exception) as e:   # mypyc reports type errors by exiting
        if MODE == "1":
            raise
        _say(f"mypyc could not compile the request path ({e}): installing the pure-Python build")
        return []


class BuildExt(build_ext):
    """Compiles what mypyc generated, except in an editable install (unless asked), and
    falls back to the pure build if the C compiler fails (unless TRUEHOP_MYPYC=1)."""

    def run(self) -> None:
        if getattr(self, "editable_mode", False) and MODE != "1":
            _say("editable install: the pure-Python build (TRUEHOP_MYPYC=1 to compile)")
            self.extensions.clear()
            return
        try:
            super().run()
        except Exception as e:
            if MODE == "1":
                raise
            _say(f"compiling the request path failed ({e}): installing the pure-Python build")
            # a half-built set would not import (the modules share one mypyc library)
            for ext in self.extensions:
                path = self.get_ext_fullpath(ext.name)
                if os.path.exists(path):
                    os.remove(path)
            self.extensions.clear()


ext_modules = _mypyc_extensions()
setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
