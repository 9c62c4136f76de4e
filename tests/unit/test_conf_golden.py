"""Golden files: tests/golden/conf/NAME.conf -> NAME.out.

The expected output is either the canonical dump of the checked tree (`dump_tree`) or the
exact error line. Paths are shown relative to the golden directory. Included files live in
tests/golden/conf/inc/ (not *.conf at the top, so they are not cases themselves).

Regenerate after a deliberate change with `TRUEHOP_UPDATE_GOLDEN=1 pytest tests/unit/test_conf_golden.py`
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from truehop.conf.ast import ConfigError
from truehop.conf.directives import check_tree, detect_top
from truehop.conf.dump import dump_tree
from truehop.conf.parser import parse_file, parse_string

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "conf"
CASES = sorted(GOLDEN.glob("*.conf"))
UPDATE = os.environ.get("TRUEHOP_UPDATE_GOLDEN") == "1"


def render(path: Path) -> str:
    try:
        tree = parse_file(str(path))
        check_tree(tree, detect_top(tree))
    except ConfigError as e:
        return "error: " + str(e).replace(str(GOLDEN) + os.sep, "") + "\n"
    return dump_tree(tree)


def test_there_are_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    got = render(path)
    out = path.with_suffix(".out")
    if UPDATE:
        out.write_text(got)
    assert out.exists(), f"missing {out.name}; run with TRUEHOP_UPDATE_GOLDEN=1"
    assert got == out.read_text()


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_dump_reparses(path: Path) -> None:
    """A dump is itself a valid config that dumps to the same text."""
    got = render(path)
    if got.startswith("error: "):
        return
    again = parse_string(got, "dump")
    check_tree(again, detect_top(again))
    assert dump_tree(again) == got


def test_dump_files_is_nginx_T_format() -> None:
    from truehop.conf.dump import dump_files

    assert dump_files([("/etc/a.conf", "a;\n"), ("/etc/b.conf", "b;")]) == (
        "# configuration file /etc/a.conf:\na;\n\n# configuration file /etc/b.conf:\nb;\n")


def test_dump_tree_empty() -> None:
    assert dump_tree(()) == ""
