"""Logs in nginx's formats: the error log (`2026/11/26 18:05:19 [warn] 123#0: *5 msg, client:
...`) and access logs (`log_format` templates, `escape=`, buffered writes).

Sinks are opened once per worker and reopened on `USR1` (log rotation). Formatting is skipped
entirely when a line's level is below the sink's level.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

LEVELS = {"debug": 7, "info": 6, "notice": 5, "warn": 4, "error": 3, "crit": 2, "alert": 1,
          "emerg": 0}


class LogOpenError(OSError):
    """A log file that cannot be opened. Like nginx, truehop creates the file but never its
    directory; the message is nginx's: `open() "PATH" failed (2: No such file or directory)`."""

    def __init__(self, path: str, e: OSError) -> None:
        super().__init__(e.errno, e.strerror, path)

    def __str__(self) -> str:
        return f'open() "{self.filename}" failed ({self.errno}: {self.strerror})'


def open_log_file(path: str, buffering: int = 1) -> TextIO:
    """Open (create) a log file for appending; LogOpenError when it cannot be."""
    try:
        return open(path, "a", buffering=buffering, encoding="utf-8",
                    errors="backslashreplace")
    except OSError as e:
        raise LogOpenError(path, e) from None


class ErrorLog:
    """`strict`: a file that cannot be opened at construction raises LogOpenError (start-up,
    `-t`, reload refuse the configuration, as nginx does); otherwise, and on `reopen`, the
    failure is reported and stderr takes the file's place."""

    def __init__(self, targets: list[tuple[str, str]] | None = None,
                 strict: bool = False) -> None:
        self.targets = targets or [("stderr", "error")]
        self.sinks: list[tuple[TextIO, int]] = []
        self.threshold = -1
        self.pid = os.getpid()
        self._open(strict)

    def open(self) -> None:
        self._open(False)

    def _open(self, strict: bool) -> None:
        sinks: list[tuple[TextIO, int]] = []
        for path, level in self.targets:
            if path == "stderr":
                f: TextIO = sys.stderr
            else:
                try:
                    f = open_log_file(path)
                except LogOpenError as e:
                    if strict:
                        for g, _ in sinks:
                            if g not in (sys.stderr, sys.stdout):
                                g.close()
                        raise
                    print(f"truehop: [alert] could not open error log file: {e}",
                          file=sys.stderr)
                    f = sys.stderr
            sinks.append((f, LEVELS.get(level, 3)))
        old = self.sinks
        self.sinks = sinks
        self.threshold = max((lv for _, lv in sinks), default=-1)
        for f, _ in old:
            if f not in (sys.stderr, sys.stdout) and f not in [s for s, _ in sinks]:
                f.close()

    reopen = open

    def enabled(self, level: str) -> bool:
        return LEVELS[level] <= self.threshold

    def log(self, level: str, msg: str, conn: Any = None, r: Any = None) -> None:
        lv = LEVELS[level]
        if lv > self.threshold:
            return
        self.pid = os.getpid()
        line = f"{time.strftime('%Y/%m/%d %H:%M:%S')} [{level}] {self.pid}#0: "
        if conn is not None:
            line += f"*{conn.number} "
        line += msg
        if conn is not None:
            line += f", client: {conn.remote_addr}, server: "
            if r is not None:
                line += r.server_name
                h = r.head
                if h.method:
                    line += f', request: "{h.method} {h.target} HTTP/{h.version}"'
                if r.upstream_tries:
                    line += f', upstream: "{r.upstream_tries[-1].url}"'
                if h.host:
                    line += f', host: "{h.host}"'
            else:
                line += f"{conn.server_addr}:{conn.server_port}" if conn.server_addr else ""
        line += "\n"
        for f, flv in self.sinks:
            if lv <= flv:
                try:
                    f.write(line)
                except (OSError, ValueError):
                    pass

    def debug(self, msg: str, conn: Any = None, r: Any = None) -> None:
        self.log("debug", msg, conn, r)

    def info(self, msg: str, conn: Any = None, r: Any = None) -> None:
        self.log("info", msg, conn, r)

    def notice(self, msg: str, conn: Any = None, r: Any = None) -> None:
        self.log("notice", msg, conn, r)

    def warn(self, msg: str, conn: Any = None, r: Any = None) -> None:
        self.log("warn", msg, conn, r)

    def error(self, msg: str, conn: Any = None, r: Any = None) -> None:
        self.log("error", msg, conn, r)

    def crit(self, msg: str, conn: Any = None, r: Any = None) -> None:
        self.log("crit", msg, conn, r)

    def alert(self, msg: str, conn: Any = None, r: Any = None) -> None:
        self.log("alert", msg, conn, r)

    def emerg(self, msg: str, conn: Any = None, r: Any = None) -> None:
        self.log("emerg", msg, conn, r)


class ScopedErrorLog(ErrorLog):
    """The error log of a configuration with `error_log` at http, server or location level.

    A line about a request (`r` given) goes to the error log of the request's location (or of
    its server, before a location is chosen) when that level or one above it set one: the
    innermost `error_log` wins, as in nginx. Every other line goes to `base`, the main-level
    log. `scoped` maps each `Settings.error_log` value to its opened log. Used only when some
    inner `error_log` exists, so a configuration without one pays nothing per line."""

    def __init__(self, base: ErrorLog, scoped: dict[tuple[tuple[str, str], ...], ErrorLog]) -> None:
        # no ErrorLog.__init__: the sinks are base's (a reopen there is seen here)
        self.base = base
        self.scoped = scoped
        self.pid = base.pid

    @property
    def targets(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return self.base.targets

    @property
    def sinks(self) -> list[tuple[TextIO, int]]:  # type: ignore[override]
        return self.base.sinks

    @property
    def threshold(self) -> int:  # type: ignore[override]
        return max(self.base.threshold, *(s.threshold for s in self.scoped.values()))

    def open(self) -> None:
        self.base.open()
        for s in self.scoped.values():
            s.open()

    reopen = open

    def log(self, level: str, msg: str, conn: Any = None, r: Any = None) -> None:
        if r is not None:
            loc = r.loc
            at = loc if loc is not None else r.server
            targets = at.settings.error_log if at is not None else None
            if targets is not None:
                self.scoped[targets].log(level, msg, conn, r)
                return
        self.base.log(level, msg, conn, r)

    def close_files(self) -> None:
        """Close the inner logs' files (the master's copies, after a reload)."""
        for s in self.scoped.values():
            for f, _ in s.sinks:
                if f not in (sys.stderr, sys.stdout):
                    f.close()


def escape_default(s: str) -> str:
    """nginx's default access-log escaping: `"`, `\\`, and bytes < 0x20 or >= 0x7f as \\xXX."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return s
    out = []
    for ch in s:
        o = ord(ch)
        if ch in '"\\' or o < 0x20 or o >= 0x7F:
            out.append(f"\\x{o:02X}")
        else:
            out.append(ch)
    return "".join(out)


# ngx_escape_json: '"' and '\\' get a backslash, control characters their short form or
# \u00XX (upper-case hex); every other byte, 0x7f and up included, is copied as it is
_JSON_ESCAPES = {i: f"\\u00{i:02X}" for i in range(0x20)}
_JSON_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t",
                      ord("\b"): "\\b", ord("\f"): "\\f", ord('"'): '\\"',
                      ord("\\"): "\\\\"})


def escape_json(s: str) -> str:
    """nginx's `escape=json` access-log escaping (ngx_escape_json)."""
    return s.translate(_JSON_ESCAPES)


class AccessSink:
    """One access log file, shared by every `access_log` line naming it. Buffered writes when
    `buffer=` was given (flushed when full, on `flush=` expiry, and at exit)."""

    def __init__(self, path: str, buffer: int = 0, flush: float = 0.0) -> None:
        self.path = path
        self.buffer = buffer
        self.flush_after = flush
        self.pending: list[str] = []
        self.pending_size = 0
        self.first_pending = 0.0
        self.f: TextIO | None = None
        self.open()

    def open(self) -> None:
        old = self.f
        self.f = open_log_file(self.path, 1 if not self.buffer else -1)
        if old is not None:
            old.close()

    def reopen(self) -> None:
        self.flush()
        self.open()

    def write(self, line: str) -> None:
        assert self.f is not None
        if not self.buffer:
            self.f.write(line)
            return
        if not self.pending:
            self.first_pending = time.monotonic()
        self.pending.append(line)
        self.pending_size += len(line)
        if self.pending_size >= self.buffer or (
                self.flush_after and time.monotonic() - self.first_pending >= self.flush_after):
            self.flush()

    def flush(self) -> None:
        if self.f is None:
            return
        if self.pending:
            self.f.write("".join(self.pending))
            self.pending.clear()
            self.pending_size = 0
        self.f.flush()

    def close(self) -> None:
        self.flush()
        if self.f is not None:
            self.f.close()
            self.f = None
