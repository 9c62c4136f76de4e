"""limit_rate, limit_rate_after, $limit_rate, X-Accel-Limit-Rate and proxy_limit_rate: a
response body sent no faster than a rate, without blocking the loop.

nginx paces in its write filter, the last body filter (ngx_http_write_filter):

    limit = rate * (now - start + 1) - (sent - limit_rate_after)
    limit <= 0: wait (-limit / rate) s (+1 ms); else send at most `limit` bytes,
    then wait (bytes sent beyond limit_rate_after) / rate s before the next send.

So a response gets about one second's worth at once, and the rate after that. Here the same
arithmetic (`RatePacer`) drives `PacedBody`, a body filter put last in the chain
(proxy.filters calls `limit_rate_filter` after the other header filters): `write` passes on
what the rate allows now and keeps the rest, `write_blocked` then asks the writer to
`drain`, which sleeps (asyncio) and passes the rest on; `sendfile` sends a file in pieces
the rate allows. Differences from nginx: the clock is not rounded to the second, and only
body bytes count (nginx counts the head as well).

The rate of a response, as nginx decides it (r->limit_rate, first writer wins in this order):
an unbuffered proxied response (proxy_buffering off, X-Accel-Buffering: no) is not limited;
else the upstream's X-Accel-Limit-Rate (bytes/s, unless proxy_ignore_headers names it);
else `set $limit_rate` (a size); else `limit_rate` (a size, or a template whose value is
parsed per request). HTTP/1 and HTTP/2 alike: the rate is per request (per stream).

proxy_limit_rate limits reading a buffered response from the upstream (ngx_event_pipe): a
second pacer with its own rate, counting from the response's start; since the relay reads
the upstream only as the client side takes the bytes (back-pressure within proxy_buffers),
pacing what passes on paces the reads.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Final

from truehop.clock import monotonic as _monotonic
from truehop.clock import wall as _wall
from truehop.conf.model import Settings
from truehop.conf.values import parse_size
from truehop.http.exchange import ResponseBody
from truehop.route.state import LimitState, RequestState
from truehop.route.template import Template

_FILE_CHUNK: Final = 64 * 1024


class RatePacer:
    """nginx's write-filter arithmetic for one response: `rate` bytes/s after the first
    `after` bytes, counted from `start` (monotonic seconds)."""

    __slots__ = ("rate", "after", "start", "sent", "ready_at")

    def __init__(self, rate: int, after: int, start: float) -> None:
        self.rate = rate
        self.after = after
        self.start = start
        self.sent = 0
        self.ready_at = 0.0     # the post-send delay: no send before this

    def allowance(self, now: float) -> int:
        """Bytes that may be sent now (0: wait `wait(now)`)."""
        if now < self.ready_at:
            return 0
        limit = int(self.rate * (now - self.start + 1)) - (self.sent - self.after)
        return limit if limit > 0 else 0

    def wait(self, now: float) -> float:
        """Seconds until something may be sent."""
        if now < self.ready_at:
            return self.ready_at - now
        limit = self.rate * (now - self.start + 1) - (self.sent - self.after)
        if limit >= 1:
            return 0.0
        return -limit / self.rate + 0.001

    def sent_now(self, n: int, now: float) -> None:
        """`n` bytes went out at `now`: the bytes beyond `after` delay the next send."""
        after = self.after
        before = self.sent - after
        self.sent += n
        paced = self.sent - after - (before if before > 0 else 0)
        if paced > 0:
            self.ready_at = now + paced / self.rate


class PacedBody(ResponseBody):
    """A body filter that passes bytes on no faster than its pacer allows."""

    __slots__ = ("next", "pacer", "pending")

    def __init__(self, next: ResponseBody, pacer: RatePacer) -> None:
        self.next = next
        self.pacer = pacer
        self.pending: list[bytes] = []

    def _pass(self, data: bytes, now: float) -> bytes:
        """Pass on what the rate allows now; return the rest."""
        n = self.pacer.allowance(now)
        if n <= 0:
            return data
        if n >= len(data):
            self.next.write(data)
            self.pacer.sent_now(len(data), now)
            return b""
        self.next.write(data[:n])
        self.pacer.sent_now(n, now)
        return data[n:]

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.pending:
            self.pending.append(data)
            return
        rest = self._pass(data, _monotonic())
        if rest:
            self.pending.append(rest)

    def flush(self) -> None:
        self.next.flush()

    @property
    def write_blocked(self) -> bool:
        return bool(self.pending) or self.next.write_blocked

    async def drain(self) -> None:
        pending = self.pending
        while pending:
            await self.next.drain()
            now = _monotonic()
            w = self.pacer.wait(now)
            if w > 0:
                self.next.flush()
                await asyncio.sleep(w)
                now = _monotonic()
            rest = self._pass(pending[0], now)
            if rest:
                pending[0] = rest
            else:
                pending.pop(0)
        await self.next.drain()

    async def sendfile(self, f: Any, offset: int, count: int) -> None:
        if self.pending:
            await self.drain()
        pacer = self.pacer
        fd = f.fileno()
        while count > 0:
            now = _monotonic()
            w = pacer.wait(now)
            if w > 0:
                self.next.flush()
                await asyncio.sleep(w)
                now = _monotonic()
            n = min(pacer.allowance(now), count)
            if n <= 0:
                continue
            if isinstance(self.next, PacedBody):
                # another pacer (proxy_limit_rate never meets a file; kept general)
                data = os.pread(fd, min(n, _FILE_CHUNK), offset)
                if not data:
                    raise OSError(f"file shrank while being sent ({count} bytes short)")
                n = len(data)
                self.next.write(data)
            else:
                await self.next.sendfile(f, offset, n)
            pacer.sent_now(n, now)
            offset += n
            count -= n
            await self.next.drain()

    def end(self) -> None:
        # a writer that ends without draining (a short `return` text): what is held goes
        # now; the bodies that matter (static files, proxied responses) are drained
        for data in self.pending:
            self.next.write(data)
        self.pending.clear()
        self.next.end()

    def abort(self) -> None:
        self.pending.clear()
        self.next.abort()


class _Paced:
    """The constructor proxy.filters calls with the next body: a PacedBody with this
    pacer (HeadersOut.add_body_filter takes one-argument constructors)."""

    __slots__ = ("pacer",)

    def __init__(self, pacer: RatePacer) -> None:
        self.pacer = pacer

    def __call__(self, next: ResponseBody) -> ResponseBody:
        return PacedBody(next, self.pacer)


def _size(v: int | Template, r: RequestState) -> int:
    """A rate setting's value for this request (ngx_http_complex_value_size: an invalid
    value counts as 0)."""
    if isinstance(v, int):
        return v
    try:
        return parse_size(v.render(r))
    except ValueError:
        return 0


def response_rate(r: RequestState, s: Settings) -> int:
    """This response's limit_rate in bytes/s (0: none), as nginx decides r->limit_rate."""
    st = r.limits
    if st is not None and st.rate >= 0:
        return st.rate
    if r.vars:
        v = r.vars.get("limit_rate")
        if v is not None:
            try:
                return parse_size(v)
            except ValueError:
                pass        # nginx logs `invalid $limit_rate` when it is set; not here
    lr = s.limit_rate
    if isinstance(lr, int):
        return lr
    return _size(lr, r)


def limit_rate_filter(r: RequestState, s: Settings, h: Any) -> None:
    """The pacing body filters this response needs, added last (so they sit next to the
    exchange, as nginx's write filter): proxy_limit_rate's, then limit_rate's."""
    st = r.limits
    if st is None and s.limit_rate == 0 and not r.vars:
        return          # the common case: nothing set
    start = _monotonic()
    if st is not None and st.proxy_rate > 0:
        h.add_body_filter(_Paced(RatePacer(st.proxy_rate, 0, start)))
    rate = response_rate(r, s)
    if rate <= 0:
        return
    if st is None:
        st = r.limits = LimitState()
    st.rate = rate
    # nginx counts from the request's start (r->start_sec): time spent before the response
    # (a slow upstream) is credit, as there
    begun = start - max(0.0, _wall() - r.start)
    h.add_body_filter(_Paced(RatePacer(rate, _size(s.limit_rate_after, r), begun)))


def accel_limit_rate(r: RequestState, value: str) -> None:
    """The upstream's X-Accel-Limit-Rate (ngx_http_upstream_process_limit_rate): bytes/s,
    digits only (ngx_atoi), else ignored."""
    if value.isdigit():
        st = r.limits
        if st is None:
            st = r.limits = LimitState()
        st.rate = int(value)


def upstream_rates(r: RequestState, s: Settings, unbuffered: bool) -> None:
    """What the relay mode decides of the rates (ngx_http_upstream_send_response): an
    unbuffered response has no limit_rate (nginx sets r->limit_rate to 0); a buffered one
    reads at proxy_limit_rate (ngx_event_pipe's p->limit_rate)."""
    st = r.limits
    if unbuffered:
        if st is None:
            if s.limit_rate == 0 and not r.vars:
                return
            st = r.limits = LimitState()
        st.rate = 0
        return
    pr = s.proxy_limit_rate
    if pr != 0:
        rate = _size(pr, r)
        if rate > 0:
            if st is None:
                st = r.limits = LimitState()
            st.proxy_rate = rate
