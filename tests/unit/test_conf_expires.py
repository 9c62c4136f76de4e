"""`expires` values (ngx_http_parse_expires) and the directive's config-time errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.conf.values import parse_expires


@pytest.mark.parametrize("text,modified,expected", [
    ("epoch", False, ("epoch", 0)),
    ("max", False, ("max", 0)),
    ("off", False, ("off", 0)),
    ("2048", False, ("access", 2048)),
    ("+1h30m", False, ("access", 5400)),
    ("-2048", False, ("access", -2048)),
    ("@15h30m33s", False, ("daily", 55833)),
    ("@33s", False, ("daily", 33)),
    ("1d", True, ("modified", 86400)),
    ("-30s", True, ("modified", -30)),
    # moved from test_static (its second parser is gone): units, quoted spaces, no unit
    ("12h", False, ("access", 43200)),
    ("-5m", False, ("access", -300)),
    ("1M", False, ("access", 30 * 86400)),
    ("1h 30m", False, ("access", 5400)),
    ("1h30", False, ("access", 3630)),
    ("@3h", False, ("daily", 10800)),
    ("2w", True, ("modified", 14 * 86400)),
    ("-1d", True, ("modified", -86400)),
])
def test_parse_expires(text: str, modified: bool, expected: tuple[str, int]) -> None:
    assert parse_expires(text, modified) == expected


@pytest.mark.parametrize("text,modified,message", [
    ("epoch", True, "invalid value"),
    ("", False, "invalid value"),
    ("bad", False, "invalid value"),
    ("500ms", False, "invalid value"),
    ("@1h", True, 'daily time cannot be used with "modified" parameter'),
    ("@25h", False, "daily time value must be less than 24 hours"),
    ("1x", False, "invalid value"),
    ("1m1h", False, "invalid value"),
    ("h", False, "invalid value"),
    ("1h1h", False, "invalid value"),
    ("99999999999999999999", False, "invalid value"),
])
def test_parse_expires_errors(text: str, modified: bool, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_expires(text, modified)
    assert str(e.value) == message


def _compile(tmp_path: Path, expires: str):
    p = tmp_path / "site.conf"
    p.write_text(f"server {{ listen 127.0.0.1:8080; location / {{ expires {expires}; }} }}")
    return load(str(p), str(tmp_path)).http.servers[0].locations[0].settings.expires


def test_expires_directive_forms(tmp_path: Path) -> None:
    e = _compile(tmp_path, "@15h30m33s")
    assert (e.kind, e.seconds, e.value) == ("daily", 55833, None)
    e = _compile(tmp_path, "modified -1h")
    assert (e.kind, e.seconds) == ("modified", -3600)
    e = _compile(tmp_path, "modified $arg_e")
    assert e.kind == "modified" and e.value is not None and e.value.source == "$arg_e"


@pytest.mark.parametrize("expires,message", [
    ("later 1h", '"expires" directive invalid value'),
    ("modified @1h", '"expires" directive daily time cannot be used with "modified" parameter'),
    ("@24h1s", '"expires" directive daily time value must be less than 24 hours'),
    ("foo 1h", '"expires" directive invalid value'),
    ("modified epoch", '"expires" directive invalid value'),
])
def test_expires_directive_errors(tmp_path: Path, expires: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        _compile(tmp_path, expires)
    assert message in str(e.value)
