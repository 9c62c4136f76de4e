"""`proxy_cookie_flags` (nginx 1.19.3+): set or clear the Secure, HttpOnly and SameSite
attributes of the cookies an upstream sets, as ngx_http_proxy_rewrite_cookie_flags and
ngx_http_proxy_edit_cookie_flags do.

The first rule whose cookie matches the cookie's name (the name compared ignoring case,
or a caseless regex) applies; its flags (read per response: they may hold variables; an
empty or unknown one is skipped) add up to a mask. Then, over the cookie's attributes:
a Secure / HttpOnly present stays when asked for and goes with `nosecure` / `nohttponly`;
a SameSite present is rewritten to the asked value (`SameSite=Strict|Lax|None`) unless it
already says so, and goes with `nosamesite`; what was asked for and is missing is appended
(`Secure`, `HttpOnly`, `SameSite=...`, in that order). The caller writes the cookie back.
"""

from __future__ import annotations

from typing import Final

from truehop.conf.model import CookieFlags
from truehop.route.state import RequestState

SECURE_ON: Final = 0x002
SECURE_OFF: Final = 0x004
HTTPONLY_ON: Final = 0x010
HTTPONLY_OFF: Final = 0x020
SAMESITE_STRICT: Final = 0x080
SAMESITE_LAX: Final = 0x100
SAMESITE_NONE: Final = 0x200
SAMESITE_OFF: Final = 0x400

# ngx_http_proxy_cookie_flags_masks (names compared ignoring case)
FLAG_MASKS: Final[dict[str, int]] = {
    "secure": SECURE_ON, "nosecure": SECURE_OFF,
    "httponly": HTTPONLY_ON, "nohttponly": HTTPONLY_OFF,
    "samesite=strict": SAMESITE_STRICT, "samesite=lax": SAMESITE_LAX,
    "samesite=none": SAMESITE_NONE, "nosamesite": SAMESITE_OFF,
}

Attr = tuple[str, str | None]


def cookie_mask(r: RequestState, name: str, rules: tuple[CookieFlags, ...]) -> int:
    """The flags of the first rule that matches cookie `name` (0: none applies)."""
    for rule in rules:
        if rule.regex is not None:
            if rule.regex.search(name) is None:
                continue
        else:
            assert rule.name is not None
            if rule.name.render(r).lower() != name.lower():
                continue
        mask = 0
        for f in rule.flags:
            mask |= FLAG_MASKS.get(f.render(r).lower(), 0)
        return mask
    return 0


def edit_flags(attrs: list[Attr], mask: int) -> list[Attr]:
    """The attributes with `mask` applied (attrs[0] is the cookie's name=value)."""
    out: list[Attr] = [attrs[0]]
    for key, value in attrs[1:]:
        low = key.lower()
        if low == "secure":
            if mask & SECURE_ON:
                mask &= ~SECURE_ON
            elif mask & SECURE_OFF:
                continue
        elif low == "httponly":
            if mask & HTTPONLY_ON:
                mask &= ~HTTPONLY_ON
            elif mask & HTTPONLY_OFF:
                continue
        elif low == "samesite":
            v = (value or "").lower()
            for bit, word in ((SAMESITE_STRICT, "Strict"), (SAMESITE_LAX, "Lax"),
                              (SAMESITE_NONE, "None")):
                if mask & bit:
                    mask &= ~bit
                    if v != word.lower():
                        key, value = "SameSite", word
                    break
            else:
                if mask & SAMESITE_OFF:
                    continue
        out.append((key, value))
    if mask & SECURE_ON:
        out.append(("Secure", None))
    if mask & HTTPONLY_ON:
        out.append(("HttpOnly", None))
    if mask & SAMESITE_STRICT:
        out.append(("SameSite", "Strict"))
    elif mask & SAMESITE_LAX:
        out.append(("SameSite", "Lax"))
    elif mask & SAMESITE_NONE:
        out.append(("SameSite", "None"))
    return out
