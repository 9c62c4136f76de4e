"""Which build of truehop is running: the request path compiled by mypyc (what `pip install`
gives where a C compiler is present), or the pure-Python sources (an editable install, or a
machine without a compiler). `truehop -V` and the start-up log say which; the pure build
costs about twice the CPU per request (README, "The compiled build").
"""

from __future__ import annotations

from truehop.http import h1


def is_compiled() -> bool:
    """True when the request path runs as C extensions: the HTTP/1 parser, compiled with the
    rest of setup.py's COMPILED list, is then a shared object rather than a .py file."""
    return not (getattr(h1, "__file__", None) or "").endswith(".py")


def build_name() -> str:
    return "compiled (mypyc)" if is_compiled() else "pure Python"
