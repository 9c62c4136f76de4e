"""truehop says at start-up which build serves: the compiled one at [notice], the pure-Python
one as a [warn] (it costs about twice the CPU per request). The suite runs once per build,
so each run checks its own."""

from __future__ import annotations

from harness import free_port

from truehop.build import is_compiled

CONF = """
error_log error.log notice;
server { listen 127.0.0.1:@@PORT@@; return 204; }
"""


def test_start_up_names_the_build(truehop):
    tp = truehop(CONF, port=free_port())
    line = tp.wait_for_log("build", timeout=10)
    if is_compiled():
        assert "[notice]" in line and "the compiled (mypyc) build" in line, line
        assert "pure-Python" not in tp.error_log()
    else:
        assert "[warn]" in line and "runs its pure-Python build" in line, line
