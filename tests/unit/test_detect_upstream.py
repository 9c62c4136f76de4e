"""detect.upstream_idle_close: said once per upstream, when two closes agree and come sooner
than keepalive_timeout; the fix it names is below the idle time seen."""

from __future__ import annotations

from typing import Any

from truehop.conf.model import UpstreamConf
from truehop.detect import Detector, _shorter


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warn(self, msg: str, *_a: Any) -> None:
        self.lines.append(msg)


def up() -> UpstreamConf:
    return UpstreamConf("app", [], keepalive=32, keepalive_timeout=60.0, where=("/s.conf", 4))


def test_two_agreeing_closes_are_named_once() -> None:
    log = Log()
    d = Detector(log)
    d.upstream_idle_close(up(), [5.02])
    assert log.lines == []
    d.upstream_idle_close(up(), [4.98])
    d.upstream_idle_close(up(), [5.0, 5.01])
    assert len(log.lines) == 1
    line = log.lines[0]
    assert line.startswith('[upstream-idle-close] upstream "app" closes idle keep-alive '
                           "connections after about 5.0s, sooner than keepalive_timeout 60s")
    assert '(upstream at /s.conf:4); fix: keepalive_timeout 4s; in upstream "app"' in line


def test_a_restart_or_a_late_close_is_not_named() -> None:
    log = Log()
    d = Detector(log)
    d.upstream_idle_close(up(), [0.3, 7.5])      # everything dropped at once: idle times differ
    d.upstream_idle_close(up(), [61.0, 61.0])    # after keepalive_timeout: not the backend's
    assert log.lines == []


def test_shorter() -> None:
    assert [_shorter(x) for x in (5.0, 4.97, 75.0, 2.0, 1.0, 0.5, 0.1)] == \
        ["4s", "4s", "74s", "1s", "700ms", "300ms", "100ms"]
