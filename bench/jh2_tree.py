#!/usr/bin/env python3
"""Make copies of this tree whose http/h2.py runs on jh2 instead of h2, for measuring only.

jh2 (pip install jh2) is a fork of h2 that ships hpack and hyperframe inside it (jh2.hpack,
jh2.hyperframe) and an HPACK codec in Rust (jh2._hazmat). It does not import as `h2`, so
http/h2.py's imports are rewritten; its HPACK errors are jh2.connection.HPACKError (the Rust
one when the wheel has it). Writes OUT/src (pure) and, when .venv/compiled exists,
OUT/compiled (the mypyc build with this http/h2.py, which is interpreted in both builds).

    python bench/jh2_tree.py /tmp/truehop-jh2
    python bench/instructions_per_request.py --src /tmp/truehop-jh2/compiled --mode h2c
    python bench/h2_codec_cost.py --lib jh2 --src /tmp/truehop-jh2/src
    PYTHONPATH=/tmp/truehop-jh2/src pytest -o pythonpath=/tmp/truehop-jh2/src tests/unit/test_h2*.py
"""

from __future__ import annotations

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

H2_IMPORTS = """import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hpack.exceptions
from hyperframe.frame import GoAwayFrame
"""
JH2_IMPORTS = """import jh2 as h2
import jh2.config
import jh2.connection
import jh2.errors
import jh2.events
import jh2.exceptions
import jh2.settings
import jh2.stream
from jh2.connection import HPACKError as _HPACKError
from jh2.hyperframe.frame import GoAwayFrame
"""


def rewrite(path: str) -> None:
    with open(path) as f:
        text = f.read()
    if H2_IMPORTS not in text:
        sys.exit(f"{path}: h2 imports not as expected; update bench/jh2_tree.py")
    text = text.replace(H2_IMPORTS, JH2_IMPORTS).replace("hpack.exceptions.HPACKError",
                                                         "_HPACKError")
    with open(path, "w") as f:
        f.write(text)


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.rmtree(os.path.join(out, "src"), ignore_errors=True)
    shutil.copytree(os.path.join(ROOT, "src"), os.path.join(out, "src"), ignore=ignore)
    rewrite(os.path.join(out, "src", "truehop", "http", "h2.py"))
    compiled = os.path.join(ROOT, ".venv", "compiled")
    if os.path.isdir(compiled):
        shutil.rmtree(os.path.join(out, "compiled"), ignore_errors=True)
        shutil.copytree(compiled, os.path.join(out, "compiled"), ignore=ignore)
        shutil.copy(os.path.join(out, "src", "truehop", "http", "h2.py"),
                    os.path.join(out, "compiled", "truehop", "http", "h2.py"))
    print(f"{out}/src" + (f" and {out}/compiled" if os.path.isdir(compiled) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
