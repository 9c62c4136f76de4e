"""limit_req and limit_conn: nginx's preaccess handlers (ngx_http_limit_req_module.c,
ngx_http_limit_conn_module.c) over zones every worker shares (net.shm).

    Zones.build(cfg)   made by whoever builds the runtime: the master, before it forks, so
                       the workers share each zone's memory. A reload keeps a zone of the
                       same name, kind and size, with its states, as nginx does; a zone
                       whose key changed refuses the reload (nginx's message).
    preaccess(...)     the one call at the start of the content phase (proxy.pipeline),
                       made only for a location with limit_req or limit_conn: limit_req
                       first (reject, or delay: an asyncio sleep, the loop keeps serving),
                       then limit_conn; returns the status to answer, 0 to go on. As nginx
                       (r->main->limit_*_status), each runs once per request, not again
                       after an internal redirect.

limit_conn counts a request while it runs (an HTTP/2 stream is a request) and gives its
count back when the exchange ends (its `on_done`), however it ends.

Theory: limit_req per key keeps (excess, last, count) in a shared record (proxy.leaky has
the arithmetic). With several limit_req at a level, each limit but the last is looked up
without accounting (count + 1 keeps the record from being dropped), the last is accounted
at once, then `account` accounts the others and takes the longest delay
(ngx_http_limit_req_account); a rejection gives the counts back (ngx_http_limit_req_unlock).
When a zone is full, the oldest unused state goes, then up to two drained ones; if none
can go, nginx's "could not allocate node" and the request is rejected.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from truehop.clock import monotonic as _monotonic
from truehop.conf.ast import ConfigError
from truehop.conf.model import Config, LimitConn, LimitReq, LimitZone, Settings
from truehop.http.exchange import Exchange
from truehop.log import ErrorLog
from truehop.net.shm import NONE, SharedTable, capacity_for, digest
from truehop.proxy.leaky import delay_ms, elapsed, excess_after, expired
from truehop.route.state import LimitState, RequestState

# $limit_req_status and $limit_conn_status (nginx's values, 1-based as r->main keeps them)
REQ_PASSED: Final = 1
REQ_DELAYED: Final = 2
REQ_REJECTED: Final = 3
REQ_DELAYED_DRY_RUN: Final = 4
REQ_REJECTED_DRY_RUN: Final = 5
CONN_PASSED: Final = 1
CONN_REJECTED: Final = 2
CONN_REJECTED_DRY_RUN: Final = 3

_REQ_KEY_MAX: Final = 65535
_CONN_KEY_MAX: Final = 255
# the next lower level of a limit_req_log_level, for delays (ngx_http_limit_req_merge_conf)
_LOWER: Final = {"info": "info", "notice": "info", "warn": "notice", "error": "warn"}

# zones made in this process, by name: a reload's zones take over their states
_MADE: dict[str, Zone] = {}


def _now_ms() -> int:
    return int(_monotonic() * 1000)


class Zone:
    """A live zone: its configuration and its shared table."""

    __slots__ = ("conf", "table", "rate", "name")

    def __init__(self, conf: LimitZone, table: SharedTable) -> None:
        self.conf = conf
        self.table = table
        self.rate = conf.rate        # milli-requests per second (limit_req)
        self.name = conf.name

    # -- limit_req (ngx_http_limit_req_lookup, _expire) ------------------------------------

    def req_lookup(self, key: int, burst: int, account: bool, log: ErrorLog
                   ) -> tuple[str, int, int]:
        """("busy" | "ok" | "again" | "error", excess, record). "again": the record's count
        was raised; `req_account` or `req_unlock` lowers it. Takes the lock."""
        t = self.table
        now = _now_ms()
        rate = self.rate
        with t:
            i = t.find(key)
            if i != NONE:
                t.touch(i)
                ms = elapsed(now, t.get_b(i))
                excess = excess_after(t.get_a(i), rate, ms)
                if excess > burst:
                    return "busy", excess, i
                if account:
                    t.set_a(i, excess)
                    if ms:
                        t.set_b(i, now)
                    return "ok", excess, i
                t.set_count(i, t.get_count(i) + 1)
                return "again", excess, i
            self._expire(now, 1)
            i = t.alloc(key)
            if i == NONE:
                self._expire(now, 0)
                i = t.alloc(key)
                if i == NONE:
                    log.alert(f'could not allocate node in limit_req zone "{self.name}"')
                    return "error", 0, NONE
            if account:
                t.set_b(i, now)
                return "ok", 0, i
            t.set_b(i, 0)
            t.set_count(i, 1)
            return "again", 0, i

    def _expire(self, now: int, n: int) -> None:
        """n == 1 drops one or two drained states unused for a minute; n == 0 drops the
        oldest unused one first (ngx_http_limit_req_expire). Lock held."""
        t = self.table
        while n < 3:
            i = t.oldest()
            if i == NONE or t.get_count(i):
                return
            if n != 0 and not expired(t.get_a(i), self.rate, now, t.get_b(i)):
                return
            n += 1
            t.free(i)

    def req_account(self, i: int) -> int:
        """Account a request looked up with "again"; its excess (ngx_http_limit_req_account)."""
        t = self.table
        now = _now_ms()
        with t:
            ms = elapsed(now, t.get_b(i))
            excess = excess_after(t.get_a(i), self.rate, ms)
            if ms:
                t.set_b(i, now)
            t.set_a(i, excess)
            t.set_count(i, t.get_count(i) - 1)
        return excess

    def req_unlock(self, i: int) -> None:
        t = self.table
        with t:
            t.set_count(i, t.get_count(i) - 1)

    # -- limit_conn -----------------------------------------------------------------------

    def conn_take(self, key: int, limit: int) -> int:
        """One more request for `key`: its record, or NONE when it is at its limit, or -2
        when the zone is full."""
        t = self.table
        with t:
            i = t.find(key)
            if i == NONE:
                i = t.alloc(key)
                if i == NONE:
                    return -2
                t.set_count(i, 1)
                return i
            n = t.get_count(i)
            if n >= limit:
                return NONE
            t.set_count(i, n + 1)
            return i

    def conn_release(self, i: int) -> None:
        t = self.table
        with t:
            n = t.get_count(i) - 1
            if n <= 0:
                t.free(i)
            else:
                t.set_count(i, n)


class Plan:
    """What one level's settings ask, with the live zones: made once per Settings."""

    __slots__ = ("req", "req_status", "req_level", "delay_level", "req_dry_run", "conn",
                 "conn_status", "conn_level", "conn_dry_run")

    def __init__(self, s: Settings, zones: dict[str, Zone]) -> None:
        self.req = [(zones[x.zone], x.burst, x.delay) for x in s.limit_req]
        self.req_status = s.limit_req_status
        self.req_level = s.limit_req_log_level
        self.delay_level = _LOWER[s.limit_req_log_level]
        self.req_dry_run = s.limit_req_dry_run
        self.conn = [(zones[x.zone], x.conn) for x in s.limit_conn]
        self.conn_status = s.limit_conn_status
        self.conn_level = s.limit_conn_log_level
        self.conn_dry_run = s.limit_conn_dry_run


class Zones:
    """The live zones of one configuration and the plan of each level that uses them."""

    __slots__ = ("zones", "plans")

    def __init__(self, zones: dict[str, Zone]) -> None:
        self.zones = zones
        self.plans: dict[int, tuple[Settings, Plan]] = {}

    @staticmethod
    def build(cfg: Config) -> Zones:
        """Make (or take over from the previous load) every zone, and check that every
        limit_req / limit_conn names one of its kind. Raises ConfigError."""
        top = cfg.http.settings
        declared = {z.name: z for z in (*top.limit_req_zone, *top.limit_conn_zone)}
        zones: dict[str, Zone] = {}
        levels = _levels(cfg)
        for s in levels:
            uses: list[tuple[LimitReq | LimitConn, str]] = [
                *((x, "limit_req") for x in s.limit_req),
                *((x, "limit_conn") for x in s.limit_conn)]
            for lim, kind in uses:
                z = declared.get(lim.zone)
                if z is None:
                    raise ConfigError(f'zero size shared memory zone "{lim.zone}"',
                                      lim.where[0], lim.where[1])
                if z.kind != kind:
                    raise ConfigError(f'the shared memory zone "{lim.zone}" is already '
                                      f'declared for a different use', lim.where[0],
                                      lim.where[1])
        for name, z in declared.items():
            old = _MADE.get(name)
            if old is not None and old.conf.kind == z.kind and old.conf.size == z.size:
                if old.conf.key.source != z.key.source:
                    raise ConfigError(f'{z.kind}{"_zone" if z.kind == "limit_conn" else ""} '
                                      f'"{name}" uses the "{z.key.source}" key while '
                                      f'previously it used the "{old.conf.key.source}" key',
                                      z.where[0], z.where[1])
                zones[name] = Zone(z, old.table)
            else:
                zones[name] = Zone(z, SharedTable(capacity_for(z.size), name))
        _MADE.clear()
        _MADE.update(zones)
        out = Zones(zones)
        for s in levels:
            if s.limit_req or s.limit_conn:
                out.plans[id(s)] = (s, Plan(s, zones))
        return out

    def plan(self, s: Settings) -> Plan:
        hit = self.plans.get(id(s))
        if hit is not None and hit[0] is s:
            return hit[1]
        p = Plan(s, self.zones)     # a level not walked at build (none today)
        self.plans[id(s)] = (s, p)
        return p


def _levels(cfg: Config) -> list[Settings]:
    """Every level's settings: http, servers, locations (nested, named, `if`)."""
    out = [cfg.http.settings]
    for srv in cfg.http.servers:
        out.append(srv.settings)
        stack: list[Any] = [*srv.locations, *srv.named.values()]
        while stack:
            loc = stack.pop()
            out.append(loc.settings)
            stack.extend(loc.children)
            stack.extend(op.loc for op in loc.ops if getattr(op, "loc", None) is not None)
    return out


def _key(r: RequestState, z: Zone, limit: int, log: ErrorLog) -> int | None:
    """The digest of the request's key in zone `z`; None when not limited: an empty key,
    or one longer than nginx allows (logged)."""
    text = z.conf.key.render(r)
    if not text:
        return None
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) > limit:
        log.error(f'the value of the "{z.conf.key.source}" key is more than {limit} bytes: '
                  f'"{text}"', r.conn, r)
        return None
    return digest(raw)


async def preaccess(host: Any, r: RequestState, ex: Exchange, s: Settings) -> int:
    """limit_req, then limit_conn, for this request; the status to answer, or 0.
    `host` is the runtime (its `limits` and `log`)."""
    st = r.limits
    if st is None:
        st = r.limits = LimitState()
    plan = host.limits.plan(s)
    log: ErrorLog = host.log
    if plan.req and not st.req_status:
        status, delay = limit_req(plan, r, st, log)
        if status:
            return status
        if delay:
            await asyncio.sleep(delay / 1000)
    if plan.conn and not st.conn_status:
        return limit_conn(plan, r, ex, st, log)
    return 0


def limit_req(plan: Plan, r: RequestState, st: LimitState, log: ErrorLog) -> tuple[int, int]:
    """ngx_http_limit_req_handler: (status to answer or 0, delay in ms)."""
    limits = plan.req
    last = len(limits) - 1
    pending: list[tuple[Zone, int, int]] = []    # looked up, to account ("again")
    rc = ""
    excess = 0
    zone, _, delay = limits[0]
    for n, (z, burst, d) in enumerate(limits):
        zone, delay = z, d      # nginx's `limit`: the last one reached, empty key or not
        key = _key(r, z, _REQ_KEY_MAX, log)
        if key is None:
            continue
        rc, excess, i = z.req_lookup(key, burst, n == last, log)
        if rc != "again":
            break
        pending.append((z, i, d))
    if not rc:
        return 0, 0             # every key empty: not limited
    if rc == "busy" or rc == "error":
        if rc == "busy":
            log.log(plan.req_level,
                    f'limiting requests{", dry run" if plan.req_dry_run else ""}, excess: '
                    f'{excess // 1000}.{excess % 1000:03d} by zone "{zone.name}"', r.conn, r)
        for z, i, _ in pending:
            z.req_unlock(i)
        if plan.req_dry_run:
            st.req_status = REQ_REJECTED_DRY_RUN
            return 0, 0
        st.req_status = REQ_REJECTED
        return plan.req_status, 0
    if rc == "again":
        excess = 0              # the keys after the last lookup were empty
    # ngx_http_limit_req_account: account the limits looked up before; the longest delay
    best = delay_ms(excess, delay, zone.rate)
    for z, i, d in reversed(pending):
        e = z.req_account(i)
        dl = delay_ms(e, d, z.rate)
        if dl > best:
            best, excess, zone = dl, e, z
    if not best:
        st.req_status = REQ_PASSED
        return 0, 0
    log.log(plan.delay_level,
            f'delaying request{", dry run" if plan.req_dry_run else ""}, excess: '
            f'{excess // 1000}.{excess % 1000:03d}, by zone "{zone.name}"', r.conn, r)
    if plan.req_dry_run:
        st.req_status = REQ_DELAYED_DRY_RUN
        return 0, 0
    st.req_status = REQ_DELAYED
    return 0, best


def limit_conn(plan: Plan, r: RequestState, ex: Exchange, st: LimitState,
               log: ErrorLog) -> int:
    """ngx_http_limit_conn_handler: count this request under each key; the status to
    answer (the counts taken are given back at once) or 0 (given back when the exchange
    ends)."""
    held: list[tuple[Zone, int]] = []
    for z, limit in plan.conn:
        key = _key(r, z, _CONN_KEY_MAX, log)
        if key is None:
            continue
        st.conn_status = CONN_PASSED
        i = z.conn_take(key, limit)
        if i < 0:
            if i == NONE:
                log.log(plan.conn_level,
                        f'limiting connections{", dry run," if plan.conn_dry_run else ""} '
                        f'by zone "{z.name}"', r.conn, r)
            else:
                log.crit(f'ngx_slab_alloc() failed: no memory in limit_conn_zone "{z.name}"',
                         r.conn, r)
            for hz, hi in held:
                hz.conn_release(hi)
            if plan.conn_dry_run:
                st.conn_status = CONN_REJECTED_DRY_RUN
                return 0
            st.conn_status = CONN_REJECTED
            return plan.conn_status
        held.append((z, i))
    if held:
        _release_at_end(ex, held)
    return 0


def _release_at_end(ex: Exchange, held: list[tuple[Zone, int]]) -> None:
    """Give the counts back when the exchange ends (nginx: the request pool's cleanup)."""
    prev = ex.on_done

    def done() -> None:
        for z, i in held:
            z.conn_release(i)
        if prev is not None:
            prev()
    ex.on_done = done
