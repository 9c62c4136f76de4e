"""The `truehop_proxy` pytest fixture: a project's own nginx configuration, run by the real
truehop in front of its app, in its tests. Registered as a `pytest11` entry point, so
installing truehop is all a project needs:

    def test_forwarded_proto(truehop_proxy, app):
        proxy = truehop_proxy("deploy/site.conf", upstreams={"backend": app.address})
        r = httpx.get(proxy.url("/whoami", port=443, scheme="https"), verify=False)
        assert r.json()["scheme"] == "https"

Each call starts a `truehop.testing.Proxy` (see there for what is rewritten to run on
loopback); all are stopped when the test ends, and a test whose proxy logged an [alert],
[crit], [emerg] or a traceback fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from truehop.testing import Proxy


@pytest.fixture
def truehop_proxy() -> Iterator[Callable[..., Proxy]]:
    """A factory: `truehop_proxy(config, upstreams={...}, tls=(cert, key), paths={...},
    prefix=...)` returns a started `Proxy`."""
    started: list[Proxy] = []

    def start(config: Any, **options: Any) -> Proxy:
        proxy = Proxy(config, **options)
        started.append(proxy.start())
        return proxy

    yield start
    errors = []
    for proxy in started:
        try:
            proxy.stop(check=True)
        except Exception as e:      # every proxy is stopped before the first failure counts
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)
