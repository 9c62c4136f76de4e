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


class ErrorLog:
    def __init__(self, targets: list[tuple[str, str]] | None = None) -> None:
        self.targets = targets or [("stderr", "error")]
        self.sinks: list[tuple[TextIO, int]] = []
        self.threshold = -1
        self.pid = os.getpid()
        self.open()

    def open(self) -> None:
        sinks: list[tuple[TextIO, int]] = []
        for path, level in self.targets:
            if path == "stderr":
                f: TextIO = sys.stderr
            else:
                try:
                    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                    f = open(path, "a", buffering=1, encoding="utf-8", errors="backslashreplace")
                except OSError as e:
                    print(f'truehop: [alert] could not open error log file: open() "{path}" '
                          f"failed ({e.errno}: {e.strerror})", file=sys.stderr)
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


def escape_json(s: str) -> str:
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


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
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        old = self.f
        self.f = open(self.path, "a", encoding="utf-8", errors="backslashreplace",
                      buffering=1 if not self.buffer else -1)
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
