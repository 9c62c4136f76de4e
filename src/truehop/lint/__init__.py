"""Lint: pure rules over the compiled config that make nginx's quiet misconfigurations loud.

    from truehop.lint import run
    for f in run(cfg): print(f.render())
"""

from __future__ import annotations

from truehop.lint.report import Finding
from truehop.lint.rules import RULES, run

__all__ = ["Finding", "RULES", "run"]
