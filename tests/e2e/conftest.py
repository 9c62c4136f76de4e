"""Fixtures for end-to-end tests; the helpers themselves live in harness.py.

- ``upstream``: a started demo app (``BackgroundApp`` named "a") on a free port.
- ``upstreams(n)``: n started demo apps named "a", "b", "c"...
- ``truehop(config_text, **placeholders)``: render, start the real truehop, wait until its
  first listen port accepts; stopped at teardown with the error log checked.
- ``nginx(config_text, **placeholders)``: the same with nginx (skips when not installed).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:  # pytest's default import mode adds it too; --import-mode=importlib not
    sys.path.insert(0, _HERE)

from harness import NginxProcess, TruehopProcess, nginx_binary, render  # noqa: E402

from truehop.demo.app import BackgroundApp  # noqa: E402

_NAMES = "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def upstream() -> Iterator[BackgroundApp]:
    with BackgroundApp(name="a") as app:
        yield app


@pytest.fixture
def upstreams() -> Iterator[Callable[..., list[BackgroundApp]]]:
    started: list[BackgroundApp] = []

    def make(n: int, names: Sequence[str] | None = None) -> list[BackgroundApp]:
        names = list(names) if names is not None else \
            [_NAMES[(len(started) + i) % 26] for i in range(n)]
        apps = [BackgroundApp(name=names[i]).start() for i in range(n)]
        started.extend(apps)
        return apps

    yield make
    for app in started:
        app.stop()


def _factory(cls: type[Any], tmp_path: Path, label: str) -> tuple[Callable[..., Any], list[Any]]:
    procs: list[Any] = []

    def make(config_text: str, *, extra_args: Sequence[str] = (), allow_log: Sequence[str] = (),
             ready_port: int | None = None, **placeholders: object) -> Any:
        d = tmp_path if not procs and label == "truehop" else tmp_path / f"{label}{len(procs)}"
        p = cls(render(config_text, **placeholders), d, extra_args=extra_args,
                allow_log=allow_log, ready_port=ready_port)
        procs.append(p)
        p.start()
        return p

    return make, procs


@pytest.fixture
def truehop(tmp_path: Path) -> Iterator[Callable[..., TruehopProcess]]:
    make, procs = _factory(TruehopProcess, tmp_path, "truehop")
    yield make
    errors = []
    for p in procs:
        try:
            p.stop(check=True)
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., NginxProcess]]:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed")
    make, procs = _factory(NginxProcess, tmp_path, "nginx")
    yield make
    errors = []
    for p in procs:
        try:
            p.stop(check=True)
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)
