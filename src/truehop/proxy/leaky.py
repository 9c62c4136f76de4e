"""The leaky bucket of ngx_http_limit_req_module, as plain arithmetic (no I/O, no locks).

nginx keeps, per key, `excess` in milli-requests and `last`, the time of the last accounted
request in milliseconds; the zone's `rate` is in milli-requests per second (10r/s: 10000).
At each request the bucket leaks `rate * ms / 1000` since `last` and the request adds 1000:

    excess = max(excess - rate * ms / 1000 + 1000, 0)

A request whose new excess is above `burst` (milli-requests) is rejected; else it is
accounted, and delayed by `(excess - delay) * 1000 / rate` ms when its excess is above
`delay` (`nodelay` is a delay no excess reaches). The divisions are C's on non-negative
integers, so Python's `//` gives the same results.
"""

from __future__ import annotations

from typing import Final

# nginx's clamp of a clock that went backwards (ngx_http_limit_req_lookup)
_BACKWARDS: Final = -60000
# an idle state is removed once drained and unused for this long (ngx_http_limit_req_expire)
IDLE_MS: Final = 60000


def elapsed(now: int, last: int) -> int:
    """Milliseconds since `last`, as nginx clamps them: a clock far behind counts 1 ms,
    a little behind 0."""
    ms = now - last
    if ms < _BACKWARDS:
        return 1
    if ms < 0:
        return 0
    return ms


def excess_after(excess: int, rate: int, ms: int) -> int:
    """The excess once the bucket leaked for `ms` and this request was added."""
    e = excess - rate * ms // 1000 + 1000
    return e if e > 0 else 0


def delay_ms(excess: int, delay: int, rate: int) -> int:
    """How long a request with this excess waits (0: not delayed)."""
    if excess <= delay:
        return 0
    return (excess - delay) * 1000 // rate


def expired(excess: int, rate: int, now: int, last: int) -> bool:
    """May an unused state be dropped to make room (ngx_http_limit_req_expire)? Only once
    idle for a minute and drained."""
    ms = abs(now - last)
    if ms < IDLE_MS:
        return False
    return excess - rate * ms // 1000 <= 0
