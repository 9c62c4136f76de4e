"""The directive reference in README.md is the table's, rendered (conf/reference.py)."""

from __future__ import annotations

from pathlib import Path

from truehop.conf import directives as dt
from truehop.conf import reference

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_section_is_the_generated_reference() -> None:
    held = reference.readme_section(README.read_text(encoding="utf-8"))
    assert held is not None, "README.md lost its directive-reference markers"
    assert held == reference.section(), (
        "README.md's directive reference differs from the table: run "
        "`python -m truehop.conf.reference --write README.md`")


def test_reference_lists_every_entry_in_its_kind() -> None:
    text = reference.render()
    applied = text.split("### Applied")[1].split("### Accepted, no effect")[0]
    noop = text.split("### Accepted, no effect")[1].split("### Accepted, not applied")[0]
    ignored = text.split("### Accepted, not applied")[1].split("### Refused")[0]
    refused = text.split("### Refused")[1]
    assert "| `proxy_set_header` | http, server, location | - | list, nearest level | " \
           "proxy/upstream_request.py |" in applied
    assert "| `keepalive` | upstream | 32 | - |" in applied
    assert "| `keepalive_timeout` | http, server, location | 75s | inherited |" in applied
    assert "`open_file_cache`" in noop and "no descriptor cache" in noop
    assert "| `limit_rate` |" in applied and "proxy/pacing.py" in applied
    assert "| `limit_req` |" in applied and "`limit_req`" not in refused
    assert "| `gzip` |" in applied and "`gzip`" not in refused
    assert "- ngx_http_mirror_module: " in refused and "`mirror`" in refused
    for s in dt.SPECS:
        section = {"applied": applied, "no-effect": noop, "not-applied": ignored,
                   "refused": refused}[s.effect.kind]
        assert f"`{s.name}`" in section, s.name


def test_format_default() -> None:
    assert reference.format_default(60.0) == "60s"
    assert reference.format_default(True) == "on"
    assert reference.format_default(frozenset({"timeout", "error"})) == "error timeout"
    assert reference.format_default(None) == "-"
    assert reference.format_default(dt.NO_DEFAULT) == "-"
