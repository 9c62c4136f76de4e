"""Live detection: notice the quiet failures of a reverse-proxy setup as they happen.

Each detector logs one `warn` per cause and location, naming the config line and the fix, and
then stays quiet for `REPEAT_AFTER` seconds (rate limit). Findings are kept for `status`.
"""

from __future__ import annotations

import collections
import json
import os
from typing import TYPE_CHECKING, Any, Final

from truehop.clock import monotonic as _monotonic

if TYPE_CHECKING:
    from truehop.conf.model import LocationConf, UpstreamConf
    from truehop.http.events import ResponseHead
    from truehop.route.state import RequestState

REPEAT_AFTER: Final = 300.0
LOOP_WINDOW: Final = 10.0
LOOP_COUNT: Final = 5
SAME_ADDR_COUNT: Final = 50
IDLE_CLOSE_COUNT: Final = 2


def _shorter(idle: float) -> str:
    """A keepalive_timeout safely below a backend's idle timeout, in nginx's units."""
    # the idle time is measured from when the response was read, a little after the
    # backend's own timer started: round it to the second it most likely is
    t = round(idle) - 1 if idle >= 2 else idle * 0.75
    return f"{int(t)}s" if t >= 1 else f"{max(int(t * 10), 1) * 100}ms"


class Detector:
    def __init__(self, log: Any, state_dir: str | None = None) -> None:
        self.log = log
        self.state_dir = state_dir
        self.dirty = False
        self.last: dict[tuple[str, str], float] = {}
        self.findings: dict[tuple[str, str], dict[str, Any]] = {}
        self.redirects: dict[tuple[str, str], collections.deque[float]] = {}
        self.addr_seen: dict[Any, tuple[str, int]] = {}
        # upstream name -> idle times after which it closed pooled connections
        self.idle_closes: dict[str, collections.deque[float]] = {}
        self.state_fd: int | None = None

    def report(self, rule: str, loc: LocationConf | None, r: RequestState | None,
               message: str, fix: str) -> None:
        where = f"{loc.where[0]}:{loc.where[1]}" if loc is not None else "?"
        self.report_at(rule, where, "location", r, message, fix)

    def report_at(self, rule: str, where: str, what: str, r: RequestState | None,
                  message: str, fix: str) -> None:
        """`report` for a finding that belongs to a block (`what`: "location", "upstream")
        written at `where` (file:line)."""
        key = (rule, where)
        now = _monotonic()
        f = self.findings.setdefault(key, {"rule": rule, "where": where, "message": message,
                                           "fix": fix, "count": 0})
        f["count"] += 1
        self.dirty = True
        last = self.last.get(key)
        if last is not None and now - last < REPEAT_AFTER:
            return
        self.last[key] = now
        self.log.warn(f"[{rule}] {message} ({what} at {where}); fix: {fix}",
                      r.conn if r is not None else None, r)

    # -- hooks called by the proxy -------------------------------------------------------

    def upgrade_not_forwarded(self, r: RequestState, loc: LocationConf) -> None:
        self.report("upgrade-not-forwarded", loc, r,
                    f"an upgrade request (Upgrade: {r.head.upgrade}) reached a location that "
                    "does not forward the Upgrade header, so the upstream sees a plain request "
                    "and the protocol switch (WebSocket or other) fails",
                    "proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "
                    "$connection_upgrade; (with map $http_upgrade $connection_upgrade)")

    def on_response(self, r: RequestState, loc: LocationConf, status: int, rh: ResponseHead,
                    ctype: str) -> None:
        """`ctype`: the response's Content-Type, which the proxy found in its one pass over
        the headers ("" when none)."""
        if status in (301, 302, 303, 307, 308):
            location = rh.get("location") or ""
            if r.conn.scheme == "https" and location.startswith("http://"):
                host = location[7:].split("/", 1)[0].split(":", 1)[0].lower()
                if host == r.host:
                    self.report("https-downgrade-redirect", loc, r,
                                f"the upstream redirected an HTTPS request to {location!r}: "
                                "the app does not know the request came over HTTPS",
                                "proxy_set_header X-Forwarded-Proto $scheme;")
            self.redirect_seen(r, loc, location)
        if ctype[:17].lower() == "text/event-stream":
            s = loc.settings
            if s.proxy_buffering and (rh.get("x-accel-buffering") or "").lower() != "no":
                self.report("sse-buffered", loc, r,
                            "the upstream answered text/event-stream while proxy_buffering is on:"
                            " events may reach clients late",
                            "proxy_buffering off; in this location")
        self.same_address(r, loc)

    def upstream_idle_close(self, up: UpstreamConf, idles: list[float]) -> None:
        """The upstream closed pooled connections that were idle here for `idles` seconds.
        Said once two closes agree (a backend's idle timeout is steady; a restart that drops
        every connection at once is not), when they come sooner than keepalive_timeout."""
        seen = self.idle_closes.get(up.name)
        if seen is None:
            if len(self.idle_closes) > 1000:
                self.idle_closes.clear()
            seen = self.idle_closes[up.name] = collections.deque(maxlen=IDLE_CLOSE_COUNT)
        seen.extend(i for i in idles if i < up.keepalive_timeout)
        if len(seen) < IDLE_CLOSE_COUNT:
            return
        low, high = min(seen), max(seen)
        if high - low > max(0.5, low / 4):
            return
        fix = _shorter(low)
        self.report_at("upstream-idle-close", f"{up.where[0]}:{up.where[1]}", "upstream", None,
                       f'upstream "{up.name}" closes idle keep-alive connections after about '
                       f"{low:.1f}s, sooner than keepalive_timeout {up.keepalive_timeout:g}s: a "
                       "request sent on a connection as it closes fails, and a POST is not "
                       "retried (intermittent 502)",
                       f'keepalive_timeout {fix}; in upstream "{up.name}" (shorter than the '
                       "backend's idle timeout)")

    def cl_and_te(self, r: RequestState, loc: LocationConf, up: UpstreamConf, addr: str
                  ) -> None:
        self.report("upstream-cl-and-te", loc, r,
                    f'upstream "{up.name}" ({addr}) answered {r.head.method} {r.uri} with both '
                    "Content-Length and Transfer-Encoding: the response's length is ambiguous "
                    "(a request-smuggling shape), so it is refused with 502. Over HTTP/1.0 "
                    "(proxy_http_version 1.0, nginx's old default) the backend may not have "
                    "sent Transfer-Encoding",
                    "fix the backend to send one of the two (usually: drop Content-Length on "
                    "chunked responses); proxy_http_version 1.0; in this location works "
                    "around it meanwhile")

    def read_timeout(self, r: RequestState, loc: LocationConf, timeout: float) -> None:
        self.report("read-timeout", loc, r,
                    f"the upstream did not answer within proxy_read_timeout ({timeout:g}s): "
                    "clients get 504 for requests the app is still working on",
                    "proxy_read_timeout <longer>; in this location, if the app is slow on "
                    "purpose")

    def redirect_seen(self, r: RequestState, loc: LocationConf, location: str) -> None:
        key = (r.remote_addr, location)
        now = _monotonic()
        dq = self.redirects.get(key)
        if dq is None:
            if len(self.redirects) > 10000:
                self.redirects.clear()
            dq = self.redirects[key] = collections.deque(maxlen=LOOP_COUNT)
        dq.append(now)
        if len(dq) == LOOP_COUNT and now - dq[0] < LOOP_WINDOW:
            self.report("redirect-loop", loc, r,
                        f"client {r.remote_addr} was redirected to {location!r} {LOOP_COUNT} "
                        f"times in {LOOP_WINDOW:.0f}s: a redirect loop",
                        "proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header Host $host;")

    def same_address(self, r: RequestState, loc: LocationConf) -> None:
        where = loc.where
        addr = r.remote_addr
        prev = self.addr_seen.get(where)
        if prev is None or prev[0] != addr:
            self.addr_seen[where] = (addr, 1)
            return
        n = prev[1] + 1
        if n > SAME_ADDR_COUNT:
            return      # judged at the count; nothing to update until the address changes
        self.addr_seen[where] = (addr, n)
        if n == SAME_ADDR_COUNT and addr.startswith(("127.", "::1", "10.", "192.168.")) and \
                not loc.settings.set_real_ip_from and r.head.get("x-forwarded-for"):
            self.report("all-from-one-address", loc, r,
                        f"every request arrives from {addr} with X-Forwarded-For set: a proxy in "
                        "front is not trusted, so $remote_addr is the proxy's address",
                        f"set_real_ip_from {addr}; real_ip_header X-Forwarded-For;")

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self.findings.values())

    def open_state(self) -> None:
        """Create this worker's findings file now and keep it open. A worker calls this before
        it switches to the `user` of the config: like the log files, the file is opened with
        the master's privileges, and the worker only writes to the open descriptor (the
        directory stays the master's, nothing in it becomes writable by the worker user)."""
        if not self.state_dir:
            return
        try:
            self.state_fd = os.open(state_path(self.state_dir, os.getpid()),
                                    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError:
            self.state_fd = None

    def save(self) -> None:
        """Write this worker's findings where `truehop status` reads them (only when changed)."""
        if not self.dirty or not self.state_dir:
            return
        self.dirty = False
        if self.state_fd is not None:
            data = json.dumps({"pid": os.getpid(), "findings": self.snapshot()}).encode()
            try:
                # a reader racing this write sees invalid JSON and skips the file this once
                os.ftruncate(self.state_fd, 0)
                os.pwrite(self.state_fd, data, 0)
            except OSError:
                pass
            return
        path = state_path(self.state_dir, os.getpid())
        try:
            tmp = path + ".tmp"
            with open(tmp, "w") as fh:
                json.dump({"pid": os.getpid(), "findings": self.snapshot()}, fh)
            os.replace(tmp, path)
        except OSError:
            pass


def state_path(state_dir: str, pid: int) -> str:
    return os.path.join(state_dir, f"findings.{pid}.json")


def read_status(state_dir: str) -> list[dict[str, Any]]:
    """Findings of the running workers (files of dead workers are skipped)."""
    out: list[dict[str, Any]] = []
    try:
        names = sorted(os.listdir(state_dir))
    except OSError:
        return out
    for name in names:
        if not (name.startswith("findings.") and name.endswith(".json")):
            continue
        try:
            with open(os.path.join(state_dir, name)) as fh:
                doc = json.load(fh)
            os.kill(int(doc["pid"]), 0)
        except (OSError, ValueError, KeyError):
            continue
        for f in doc.get("findings", []):
            out.append({**f, "pid": doc["pid"]})
    return out
