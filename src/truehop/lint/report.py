"""A lint finding and how it is shown.

A `Finding` names a public rule id, a severity (`error`: nginx refuses the file; `warn`: it
loads and silently misbehaves; `note`: worth knowing, not wrong), the `file:line` that causes
it, what will break, and the line that fixes it. `-t` prints `render()` on stderr, or
`as_dict()` as JSON with `--format json`, or a SARIF 2.1.0 log with `--format sarif` (what
GitHub code scanning reads to show findings inline); start-up writes `render(prefix=False)`
to the error log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
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


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"error": "error", "warn": "warning", "note": "note"}


def sarif_uri(path: str, base: str | None = None) -> str:
    """A result's file: relative to `base` (the current directory: a repository checkout,
    as code scanning expects) when it lies under it, else an absolute `file://` URI."""
    base = os.path.abspath(base or os.getcwd())
    full = os.path.abspath(path)
    if full == base or full.startswith(base.rstrip(os.sep) + os.sep):
        return os.path.relpath(full, base).replace(os.sep, "/")
    return "file://" + full.replace(os.sep, "/")


def sarif_log(findings: Iterable[Finding], rules: Mapping[str, str], version: str,
              base: str | None = None) -> dict[str, Any]:
    """A SARIF 2.1.0 log of one run: the tool with every rule id (and its one-line
    description), then one result per finding with its level and its file:line region. A
    finding without a line (a file that cannot be opened) has no region."""
    found = list(findings)
    ids = list(rules)
    ids.extend(sorted({f.rule for f in found} - set(rules)))
    index = {rid: i for i, rid in enumerate(ids)}
    results = []
    for f in found:
        loc: dict[str, Any] = {"artifactLocation": {"uri": sarif_uri(f.file, base)}}
        if f.line:
            loc["region"] = {"startLine": f.line}
        text = f.message + (f" Fix: {f.fix}" if f.fix else "")
        results.append({"ruleId": f.rule, "ruleIndex": index[f.rule],
                        "level": SARIF_LEVEL[f.severity], "message": {"text": text},
                        "locations": [{"physicalLocation": loc}]})
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "truehop",
                "version": version,
                "rules": [{"id": rid, "name": rid,
                           "shortDescription": {"text": rules.get(rid) or rid}}
                          for rid in ids],
            }},
            "results": results,
        }],
    }


def render_sarif(findings: Iterable[Finding], rules: Mapping[str, str], version: str,
                 base: str | None = None) -> str:
    return json.dumps(sarif_log(findings, rules, version, base), indent=1)
