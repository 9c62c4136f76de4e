"""A worker that switched to `user` may no longer read the Python installation (a pyenv under
/root is mode 700), so every module a worker could import later must be loaded before the
switch (process.master.preload_modules). This test finds every import made inside a function
in src/truehop and checks that preloading has loaded it: a new lazy import that is not covered
fails here rather than in a worker, on the first request that takes that path."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "truehop"

# modules only the master or the command line import lazily (never after a worker's switch);
# truehop.testing is `truehop.Proxy`, the test helper a project's tests load, never a worker
MASTER_ONLY = {"grp", "pwd", "cryptography", "truehop.demo", "truehop.explain", "truehop.quick",
               "truehop.cli", "truehop.lint", "importlib", "pkgutil", "uvloop", "truehop.testing"}


def lazy_imports() -> set[str]:
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    found.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module)
    return found


def test_every_lazy_import_is_preloaded() -> None:
    wanted = sorted(m for m in lazy_imports()
                    if not any(m == x or m.startswith(x + ".") for x in MASTER_ONLY))
    code = ("import json, sys\n"
            "from truehop.process.master import preload_modules\n"
            "preload_modules()\n"
            f"print(json.dumps([m for m in {wanted!r} if m not in sys.modules]))\n")
    env = dict(os.environ, PYTHONPATH=str(SRC.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout
    missing = json.loads(out)
    assert missing == [], f"imported inside functions but not preloaded: {missing}"
