"""The access phase (nginx's NGX_HTTP_ACCESS_PHASE and post-access phase): `allow`/`deny`,
auth_basic and auth_request, combined by `satisfy`, for the methods `limit_except` leaves
to its rules.

The pipeline calls `check_access` at the start of its content phase, only where the
location's settings say there is something to check (`Settings.access_phase`, decided when
the configuration is compiled): a request elsewhere pays one attribute test.

nginx's order and rules (ngx_http_core_access_phase, ngx_http_core_post_access_phase):

* the handlers run in the order the modules registered, reversed: access (allow/deny),
  then auth_basic, then auth_request. A handler that has nothing configured, or whose
  rules match nothing, declines and the next one runs;
* `satisfy all`: every handler that does not decline must allow. The first refusal is the
  answer: a `deny` logs "access forbidden by rule" at [error] and answers 403; a 401, or
  anything else (500), is answered as is, with the challenges (WWW-Authenticate) gathered
  so far (nginx keeps them in r->headers_out, whatever the status);
* `satisfy any`: the first handler that allows lets the request through, and the
  challenges gathered so far are dropped; a 401 or 403 is remembered (a 401 is not replaced
  by a later 403) and the next handler runs; a 500 is answered at once. When none allowed,
  the remembered status is the answer, and a 403 then logs "access forbidden by rule";
* a subrequest skips the phase (`r != r->main`);
* `limit_except`: a method it does not list is checked with the block's settings (its
  rules and auth_basic, merged with the location's), a listed one with the location's;
* `auth_delay`: a 401 is answered that much later (against timing attacks on passwords).

The address checked is $remote_addr: the one realip put in place, if it did. IPv4 rules
apply to IPv4 clients and to IPv4-mapped IPv6 addresses (when there is any IPv4 rule),
IPv6 rules to the other IPv6 clients, `unix:` to clients on a UNIX socket; `all` to each.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Protocol

from truehop.conf.model import AccessRule, LocationConf, Settings
from truehop.log import ErrorLog
from truehop.proxy.auth import auth_basic, auth_request
from truehop.proxy.subrequest import SubrequestRunner
from truehop.route.state import RequestState

FORBIDDEN_LOG = "access forbidden by rule"
GO_ON = -1          # _fold: no answer yet, the next handler runs


class _Logs(Protocol):
    log: ErrorLog


class AccessHost(SubrequestRunner, Protocol):
    """What the access phase uses of the pipeline: its error log, and subrequests."""

    @property
    def rt(self) -> _Logs: ...


def match_rules(rules: tuple[AccessRule, ...], addr: str) -> bool | None:
    """ngx_http_access_handler: True when the first rule matching `addr` is a `deny`, False
    when it is an `allow`, None when none matches (the module declines)."""
    if addr == "unix:" or addr.startswith("unix:"):
        for rule in rules:
            if rule.family == "unix" or rule.family == "all":
                return rule.deny
        return None
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    family = "4"
    value = int(ip)
    if ip.version == 6:
        family = "6"
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        if mapped is not None and any(x.family == "4" or x.family == "all" for x in rules):
            family = "4"
            value = int(mapped)
    for rule in rules:
        f = rule.family
        if f == "all" or (f == family and value & rule.mask == rule.addr):
            return rule.deny
    return None


async def check_access(host: AccessHost, r: RequestState, loc: LocationConf) -> int:
    """The access phase for `r` in `loc`: 0 to go on to the content, else the status to
    answer with (the WWW-Authenticate challenges made on the way set as r.carried_headers,
    which the response filters put on whatever answers it: the built-in page or an
    error_page). A 401 waits `auth_delay` first (ngx_http_core_auth_delay)."""
    if r.parent is not None:
        return 0
    s = loc.settings
    le = loc.limit_except
    if le is not None and r.head.method not in le.methods:
        s = le.settings
    status = await _decide(host, r, s)
    if status == 401 and s.auth_delay > 0:
        await asyncio.sleep(s.auth_delay)
    return status


async def _decide(host: AccessHost, r: RequestState, s: Settings) -> int:
    """The handlers in nginx's order, combined by `satisfy` (the module docstring)."""
    log = host.rt.log
    satisfy_any = s.satisfy == "any"
    code = 0                                   # nginx's r->access_code
    challenges: list[tuple[str, str]] = []     # WWW-Authenticate fields gathered
    if s.access_rules:
        deny = match_rules(s.access_rules, r.remote_addr)
        if deny is not None:
            if not deny:
                if satisfy_any:
                    return 0
            elif not satisfy_any:
                log.error(FORBIDDEN_LOG, r.conn, r)
                return 403
            else:
                code = 403
    if s.auth_basic is not None and s.auth_basic_user_file is not None:
        rc = auth_basic(log, r, s.auth_basic, s.auth_basic_user_file, challenges)
        answer, code = _fold(rc, code, satisfy_any)
        if answer != GO_ON:
            return _answer(r, answer, challenges)
    if s.auth_request is not None:
        rc = await auth_request(host, log, r, s.auth_request, s.auth_request_set, challenges)
        answer, code = _fold(rc, code, satisfy_any)
        if answer != GO_ON:
            return _answer(r, answer, challenges)
    if code > 0:
        if code == 403:
            log.error(FORBIDDEN_LOG, r.conn, r)
        return _answer(r, code, challenges)
    return 0


def _fold(rc: int | None, code: int, satisfy_any: bool) -> tuple[int, int]:
    """One auth handler's result (None: declined, 0: allowed, else a status) as
    ngx_http_core_access_phase takes it: (the answer now, or GO_ON; the access code)."""
    if rc is None:
        return GO_ON, code
    if rc == 0:
        return (0, code) if satisfy_any else (GO_ON, code)
    if satisfy_any and rc in (401, 403):
        return GO_ON, code if code == 401 else rc
    return rc, code


def _answer(r: RequestState, status: int, challenges: list[tuple[str, str]]) -> int:
    """The challenges stay with whatever answers the request (nginx keeps them in
    r->headers_out: a `satisfy any` that ends in a 500 still carries auth_basic's)."""
    if status and challenges:
        r.carried_headers = (r.carried_headers or []) + challenges
    return status
