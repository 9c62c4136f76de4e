"""truehop says which build serves: `truehop -V` always, and at start-up the pure-Python build
logs a [warn] (it costs about twice the CPU per request); the compiled one says so at
[notice], below the default level. The suite runs once per build, so each run checks its
own."""

from __future__ import annotations

from harness import free_port, run_truehop

from truehop.build import is_compiled

CONF = """
server { listen 127.0.0.1:@@PORT@@; return 204; }
"""


def test_version_names_the_build():
    out = run_truehop("-V")
    want = "build: compiled (mypyc)" if is_compiled() else "build: pure Python"
    assert want in out.stderr + out.stdout


def test_start_up_warns_of_the_pure_build(truehop):
    tp = truehop(CONF, port=free_port())
    if is_compiled():
        assert "pure-Python" not in tp.error_log()
    else:
        line = tp.wait_for_log("pure-Python build", timeout=10)
        assert "[warn]" in line, line
