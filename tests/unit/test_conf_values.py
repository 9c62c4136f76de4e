"""nginx value syntaxes: sizes, offsets, times, flags, numbers."""

from __future__ import annotations

import pytest

from truehop.conf.values import (
    MAX_INT,
    parse_flag,
    parse_msec,
    parse_number,
    parse_offset,
    parse_sec,
    parse_size,
    parse_time,
)

K, M, G = 1024, 1024**2, 1024**3


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("1", 1), ("1024", 1024), ("8k", 8 * K), ("8K", 8 * K), ("10m", 10 * M),
    ("10M", 10 * M), ("1g", G), ("2G", 2 * G), ("0k", 0), ("007", 7),
])
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value
    assert parse_offset(text) == value


@pytest.mark.parametrize("text", [
    "", "k", "m", "-1", "+1", "1.5m", "1 m", " 1", "1t", "1kb", "10mm", "abc", "1e3", "١",
    str(MAX_INT + 1), f"{MAX_INT // 1024 + 1}k",
])
def test_parse_size_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="invalid value"):
        parse_size(text)


@pytest.mark.parametrize("text, seconds", [
    ("0", 0.0), ("30", 30.0), ("30s", 30.0), ("500ms", 0.5), ("1ms", 0.001), ("5m", 300.0),
    ("1h", 3600.0), ("1h 30m", 5400.0), ("1h30m", 5400.0), ("1h  30m  15s", 5415.0),
    ("1d", 86400.0), ("30d", 30 * 86400.0), ("2w", 14 * 86400.0), ("1M", 30 * 86400.0),
    ("1y", 365 * 86400.0), ("1y 2M 3w 4d 5h 6m 7s 8ms", (
        365 * 86400 + 2 * 30 * 86400 + 3 * 7 * 86400 + 4 * 86400 + 5 * 3600 + 6 * 60 + 7) + 0.008),
    ("1m 30", 90.0), ("1h 5", 3605.0), ("60s", 60.0), ("1s 500ms", 1.5),
    # nginx quirks: a trailing bare number is always seconds, "1 2" is 1s + 2s
    ("1s 30", 31.0), ("1 2", 3.0), ("1ms 5", 5.001), ("1s ", 1.0),
])
def test_parse_time(text: str, seconds: float) -> None:
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [
    "", "s", "ms", "-1s", "1.5s", "1x", "30m 1h", "1s 1s", "1h 1h", "1ms 1s", "1 2 3",
    "1s 2 3", " 1s", "1sec", "1hr", "1 h", str(MAX_INT) + "d",
])
def test_parse_time_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="invalid value"):
        parse_time(text)


@pytest.mark.parametrize("text, ms", [
    ("60", 60000), ("60s", 60000), ("500ms", 500), ("1m 30s", 90000), ("1d", 86400000),
])
def test_parse_msec(text: str, ms: int) -> None:
    assert parse_msec(text) == ms


@pytest.mark.parametrize("text", ["1y", "1M", "x"])
def test_parse_msec_invalid(text: str) -> None:
    """nginx's msec mode (timeouts) has no years or months."""
    with pytest.raises(ValueError):
        parse_msec(text)


@pytest.mark.parametrize("text, secs", [
    ("30d", 30 * 86400), ("1y", 365 * 86400), ("1M", 30 * 86400), ("10", 10), ("1h 1s", 3601),
])
def test_parse_sec(text: str, secs: int) -> None:
    assert parse_sec(text) == secs


@pytest.mark.parametrize("text", ["500ms", "1s 5ms", ""])
def test_parse_sec_invalid(text: str) -> None:
    """nginx's sec mode (expires, fail_timeout) has no milliseconds."""
    with pytest.raises(ValueError):
        parse_sec(text)


@pytest.mark.parametrize("text, value", [
    ("on", True), ("off", False), ("ON", True), ("Off", False),
])
def test_parse_flag(text: str, value: bool) -> None:
    assert parse_flag(text) is value


@pytest.mark.parametrize("text", ["", "yes", "no", "1", "0", "true", "onn", " on"])
def test_parse_flag_invalid(text: str) -> None:
    with pytest.raises(ValueError) as ei:
        parse_flag(text)
    assert str(ei.value) == f'invalid value "{text}", it must be "on" or "off"'


@pytest.mark.parametrize("text, value", [("0", 0), ("42", 42), (str(MAX_INT), MAX_INT)])
def test_parse_number(text: str, value: int) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "-1", "+1", "1.0", "1k", " 1", str(MAX_INT + 1), "²"])
def test_parse_number_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_number(text)
