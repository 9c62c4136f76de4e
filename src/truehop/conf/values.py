"""nginx's value syntaxes: sizes, offsets, times, flags, numbers.

Each parser follows the nginx function named in its docstring and raises ValueError with an
nginx-like text; the compiler turns that into the directive-specific message nginx prints
(`"client_max_body_size" directive invalid value in FILE:LINE`). No I/O, no state.
"""

from __future__ import annotations

__all__ = [
    "MAX_INT",
    "parse_number",
    "parse_size",
    "parse_offset",
    "parse_time",
    "parse_msec",
    "parse_sec",
    "parse_flag",
]

MAX_INT = 2**63 - 1  # NGX_MAX_INT_T_VALUE, NGX_MAX_SIZE_T_VALUE, NGX_MAX_OFF_T_VALUE (64-bit)

_SIZE_UNITS = {"k": 1024, "K": 1024, "m": 1024**2, "M": 1024**2, "g": 1024**3, "G": 1024**3}


def _invalid(text: str) -> ValueError:
    return ValueError(f'invalid value "{text}"')


def parse_number(text: str) -> int:
    """ngx_atoi: a non-negative decimal integer, digits only."""
    if not text or not text.isascii() or not text.isdigit():
        raise _invalid(text)
    value = int(text)
    if value > MAX_INT:
        raise _invalid(text)
    return value


def _scaled(text: str, units: str) -> int:
    if not text:
        raise _invalid(text)
    scale = 1
    digits = text
    unit = text[-1]
    if unit in _SIZE_UNITS and unit in units:
        scale = _SIZE_UNITS[unit]
        digits = text[:-1]
    value = parse_number(digits) if digits else None
    if value is None or value > MAX_INT // scale:
        raise _invalid(text)
    return value * scale


def parse_size(text: str) -> int:
    """A byte size: `1024`, `8k`/`8K`, `10m`/`10M`, `1g`/`1G`.

    nginx's ngx_parse_size() knows only k and m; g is accepted here too because the
    directives that take large sizes (client_max_body_size, proxy_max_temp_file_size) use
    ngx_parse_offset(), which knows g. Use `parse_offset` for the strict offset syntax."""
    return _scaled(text, "kKmMgG")


def parse_offset(text: str) -> int:
    """ngx_parse_offset: like a size, with k, m and g."""
    return _scaled(text, "kKmMgG")


# ngx_parse_time() steps: units must come in decreasing order, each at most once.
_ST_START, _ST_YEAR, _ST_MONTH, _ST_WEEK, _ST_DAY, _ST_HOUR, _ST_MIN, _ST_SEC, _ST_MSEC, _ST_LAST = range(10)

_MS = {
    "y": (_ST_YEAR, 365 * 24 * 3600 * 1000),
    "M": (_ST_MONTH, 30 * 24 * 3600 * 1000),
    "w": (_ST_WEEK, 7 * 24 * 3600 * 1000),
    "d": (_ST_DAY, 24 * 3600 * 1000),
    "h": (_ST_HOUR, 3600 * 1000),
    "m": (_ST_MIN, 60 * 1000),
    "s": (_ST_SEC, 1000),
}


def _parse_time_ms(text: str, mode: str) -> int:
    """The ngx_parse_time() state machine; returns milliseconds.

    mode "ms": nginx's msec mode (no y, no M); "s": its sec mode (no ms); "any": both."""
    step = _ST_MONTH if mode == "ms" else _ST_START
    valid = False
    value = 0
    total = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if "0" <= c <= "9":
            value = value * 10 + (ord(c) - 48)
            if value > MAX_INT:
                raise _invalid(text)
            valid = True
            i += 1
            continue
        i += 1
        if c == "m" and i < n and text[i] == "s":
            if mode == "s" or step >= _ST_MSEC:
                raise _invalid(text)
            i += 1
            step, scale = _ST_MSEC, 1
        elif c in _MS:
            new, scale = _MS[c]
            # nginx: `y` only first; every other unit must follow a larger one.
            if (new == _ST_YEAR and step > _ST_START) or (new != _ST_YEAR and step >= new):
                raise _invalid(text)
            step = new
        elif c == " ":
            if step >= _ST_SEC:
                raise _invalid(text)
            step, scale = _ST_LAST, 1000
        else:
            raise _invalid(text)
        value *= scale
        total += value
        if total > MAX_INT:
            raise _invalid(text)
        value = 0
        while i < n and text[i] == " ":
            i += 1
    if not valid:
        raise _invalid(text)
    total += value * 1000  # a bare trailing number is seconds
    if total > MAX_INT:
        raise _invalid(text)
    return total


def parse_time(text: str) -> float:
    """A time in seconds (float): `30`, `30s`, `500ms`, `5m`, `1h 30m`, `7d`, `2w`, `1M`, `1y`.

    Units (ms, s, m, h, d, w, M = 30 days, y = 365 days) must come in decreasing order,
    separated by optional spaces; a bare number is seconds. This accepts the union of
    nginx's two modes; `parse_msec` and `parse_sec` are the exact ones."""
    return _parse_time_ms(text, "any") / 1000


def parse_msec(text: str) -> int:
    """nginx's msec mode (ngx_conf_set_msec_slot: timeouts): milliseconds; no y or M."""
    return _parse_time_ms(text, "ms")


def parse_sec(text: str) -> int:
    """nginx's sec mode (ngx_conf_set_sec_slot: expires, fail_timeout, ssl_session_timeout):
    whole seconds; ms is refused."""
    return _parse_time_ms(text, "s") // 1000


def split_proxy_url(url: str) -> tuple[str, str] | None:
    """A proxy_pass URL -> ("http" | "https", the rest after `://`), the scheme in any case;
    None for another prefix (nginx: `invalid URL prefix`)."""
    low = url[:8].lower()
    if low.startswith("http://"):
        return "http", url[7:]
    if low.startswith("https://"):
        return "https", url[8:]
    return None


def parse_flag(text: str) -> bool:
    """ngx_conf_set_flag_slot: `on` or `off`, case-insensitive."""
    low = text.lower()
    if low == "on":
        return True
    if low == "off":
        return False
    raise ValueError(f'invalid value "{text}", it must be "on" or "off"')


def parse_expires(text: str, modified: bool = False) -> tuple[str, int]:
    """One `expires` value (ngx_http_parse_expires), at config time or, for a value with
    variables, per request: `epoch`, `max`, `off` (not after `modified`), `@TIME` (daily at
    that local time of day; not with `modified`; under 24 hours), `[+|-]TIME`.

    Returns (kind, seconds): kind is off, epoch, max, daily, or access / modified for a
    relative time (negative when `-`). Raises ValueError with nginx's wording after
    `"expires" directive `."""
    if not modified:
        if text in ("epoch", "max", "off"):
            return text, 0
    kind = "modified" if modified else "access"
    sign = 1
    if text.startswith("@"):
        if modified:
            raise ValueError('daily time cannot be used with "modified" parameter')
        kind = "daily"
        text = text[1:]
    elif text.startswith("+"):
        text = text[1:]
    elif text.startswith("-"):
        sign = -1
        text = text[1:]
    try:
        secs = parse_sec(text)
    except ValueError:
        raise ValueError("invalid value") from None
    if kind == "daily" and secs > 24 * 60 * 60:
        raise ValueError("daily time value must be less than 24 hours")
    return kind, sign * secs
