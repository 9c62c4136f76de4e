"""A lint finding and how it is shown.

A `Finding` names a public rule id, a severity (`error`: nginx refuses the file; `warn`: it
loads and silently misbehaves; `note`: worth knowing, not wrong), the `file:line` that causes
it, what will break, and the line that fixes it. `-t` prints `render()` on stderr, or
`as_dict()` as JSON with `--format json`; start-up writes `render(prefix=False)` to the error
log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SEVERITIES = ("error", "warn", "note")
LOUD = frozenset({"error", "warn"})


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: str        # "error" | "warn" | "note"
    file: str
    line: int
    message: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    @property
    def loud(self) -> bool:
        return self.severity in LOUD

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "severity": self.severity, "file": self.file,
                "line": self.line, "message": self.message, "fix": self.fix}

    def render(self, prefix: bool = True) -> str:
        """nginx-style one line: `truehop: [warn] [rule] message in file:line; fix: ...`."""
        head = f"truehop: [{self.severity}] " if prefix else ""
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"{head}[{self.rule}] {self.message} in {self.file}:{self.line}{fix}"


def sort_key(f: Finding) -> tuple[str, int, int, str]:
    return (f.file, f.line, SEVERITIES.index(f.severity), f.rule)


def render_text(findings: Iterable[Finding], prefix: bool = True) -> str:
    return "".join(f.render(prefix) + "\n" for f in findings)


def render_json(findings: Iterable[Finding]) -> str:
    return json.dumps({"findings": [f.as_dict() for f in findings]}, indent=1)


def summary(findings: Iterable[Finding]) -> str:
    counts = {s: 0 for s in SEVERITIES}
    for f in findings:
        counts[f.severity] += 1
    return ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n) \
        or "no findings"
