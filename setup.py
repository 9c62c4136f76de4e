"""Build hook: with TRUEHOP_MYPYC=1 the request path is compiled to C by mypyc.

The same sources run either way: pure Python by default (what `pip install -e .` and
`make run` give), compiled when built with `TRUEHOP_MYPYC=1` (what `make compiled` puts in
.venv/compiled, and what the benchmarks measure beside the pure build). black and mypy ship
themselves the same way. mypyc reads the type hints: a value that does not match its declared
type is a TypeError at run time in the compiled build, which is why `make test` runs the
whole suite against both builds.

Only the modules every request passes through are compiled: the request path, the config
model it reads (`conf/model.py`: a compiled class's attributes are read as C struct fields,
an interpreted one's by a dictionary lookup each time) and the worker's runtime. Config
loading, lint, the master process and the CLI stay interpreted (they run once per load).
"""

from __future__ import annotations

import os

from setuptools import setup

COMPILED = [
    "conf/model.py",
    "process/runtime.py",
    "clock.py",
    "http/events.py",
    "http/headers.py",
    "http/h1.py",
    "http/h1client.py",
    "net/flow.py",
    "net/deadline.py",
    "net/closing.py",
    "net/downstream.py",
    "net/upstream.py",
    "net/h2conn.py",
    "net/negotiate.py",
    "net/client_cert.py",
    "proxy/pipeline.py",
    "proxy/upstream.py",
    "proxy/balancer.py",
    "proxy/pool.py",
    "proxy/static.py",
    "detect.py",
    "route/variables.py",
    "route/locations.py",
    "route/servers.py",
    "route/state.py",
    "route/uri.py",
]

ext_modules = []
if os.environ.get("TRUEHOP_MYPYC") == "1":
    try:
        from mypyc.build import mypycify
    except ImportError:
        # pip builds in an isolated environment unless told not to: mypyc comes with mypy
        raise SystemExit("TRUEHOP_MYPYC=1 needs mypyc: pip install mypy wheel, then "
                         "TRUEHOP_MYPYC=1 pip install --no-build-isolation .") from None

    ext_modules = mypycify(
        [os.path.join("src", "truehop", m) for m in COMPILED],
        opt_level=os.environ.get("MYPYC_OPT_LEVEL", "3"),
    )

setup(ext_modules=ext_modules)
