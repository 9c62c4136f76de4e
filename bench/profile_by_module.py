#!/usr/bin/env python3
"""Where the interpreted time of a proxied request goes, by module (cProfile, not callgrind).

callgrind sees C functions: every line of interpreted Python is `_PyEval_EvalFrameDefault`,
so it cannot tell the h2 library from truehop's own http/h2.py. This runs truehop's worker
under cProfile (TRUEHOP_PROFILE, see README.md) while instructions_per_request.py's client
sends N requests in the chosen mode, then sums each function's own time (tottime) by the
module it lives in: h2, hpack, hyperframe, jh2, truehop.<module>, ssl, asyncio, or
"C (builtins)" for C functions called from Python. mypyc-compiled functions are not seen
by cProfile: their time is in their interpreted callers' or missing, so with the compiled
build (--src .venv/compiled) the table is the split of what is still interpreted.

    python bench/profile_by_module.py [--src DIR] [--mode h2c] [--n 2000] [--top 25]

cProfile inflates call-heavy code (about 4x); read the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from instructions_per_request import (  # noqa: E402
    MODES,
    PROXY_CONF,
    WARMUP,
    drive,
    listener,
    make_cert,
)
from proxy_vs_nginx import UPSTREAM_CONF, free_port, nginx_bin, stop_all, wait_port  # noqa: E402


def group(filename: str) -> str:
    """The package or truehop module a code object's file belongs to."""
    if filename.startswith("~") or filename.startswith("<"):
        return "C (builtins)"
    parts = filename.split(os.sep)
    if "truehop" in parts:
        i = len(parts) - 1 - parts[::-1].index("truehop")
        return "truehop." + ".".join(parts[i + 1:]).removesuffix(".py")
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    base = os.path.basename(filename).removesuffix(".py")
    return "asyncio" if "asyncio" in parts else base


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(ROOT, "src"))
    ap.add_argument("--mode", choices=MODES, default="h2c")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--top", type=int, default=25, help="also print the N costliest functions")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="truehop-prof-")
    os.chmod(d, 0o1777)
    os.makedirs(f"{d}/data")
    os.makedirs(f"{d}/logs")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up = free_port()
        with open(f"{d}/upstream.conf", "w") as f:
            f.write(UPSTREAM_CONF.format(d=d, port=up))
        procs.append(subprocess.Popen([nginx_bin(), "-p", d + "/", "-c", f"{d}/upstream.conf"]))
        wait_port(up)
        if args.mode.startswith("tls"):
            make_cert(d)
        port = free_port()
        listen, extra = listener(args.mode, d)
        with open(f"{d}/truehop.conf", "w") as conf:
            conf.write(PROXY_CONF.format(d=d, up=up, port=port, listen_extra=listen,
                                         server_extra=extra))
        env = dict(os.environ, PYTHONPATH=args.src, TRUEHOP_PROFILE=f"{d}/prof")
        p = subprocess.Popen([os.path.join(ROOT, ".venv", "bin", "python"), "-m", "truehop",
                              "-p", d + "/", "-c", f"{d}/truehop.conf"], env=env)
        wait_port(port, 60)
        drive(port, WARMUP, args.mode)
        t0 = time.monotonic()
        drive(port, args.n, args.mode)
        wall = time.monotonic() - t0
        p.send_signal(signal.SIGQUIT)
        p.wait(60)
        dumps = glob.glob(f"{d}/prof.*")
        if not dumps:
            sys.exit("no profile written (the worker must be able to write to " + d + ")")
        st = pstats.Stats(dumps[0])
        by: collections.Counter[str] = collections.Counter()
        funcs: collections.Counter[str] = collections.Counter()
        for (filename, line, name), (_cc, _nc, tt, _ct, _callers) in \
                st.stats.items():  # type: ignore[attr-defined]
            by[group(filename)] += tt
            funcs[f"{group(filename)}:{line}({name})"] += tt
        total = sum(by.values())
        print(f"src: {args.src}  mode: {args.mode}  {args.n} requests in {wall:.1f} s "
              f"under cProfile (warm-up included in the shares)")
        for name, tt in by.most_common():
            if tt / total >= 0.005:
                print(f"{100 * tt / total:6.1f}%  {name}")
        if args.top:
            print(f"top {args.top} functions by own time:")
            for name, tt in funcs.most_common(args.top):
                print(f"{100 * tt / total:6.1f}%  {name[:110]}")
    finally:
        stop_all(procs)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
