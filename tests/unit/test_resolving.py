"""proxy.resolving: the peers of an upstream with `server name resolve`, by what resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.conf.model import PeerConf, ResolverConf, UpstreamConf
from truehop.proxy.resolving import PeerResolution, expanded


def up() -> UpstreamConf:
    return UpstreamConf("app", [PeerConf("app.test", 3000, weight=2, resolve=True),
                                PeerConf("127.0.0.9", 3000, backup=True)],
                        resolver=ResolverConf((("127.0.0.1", 53),)))


def test_expanded_peers_keep_their_parameters() -> None:
    got = expanded(up(), {"app.test": ("10.0.0.1", "10.0.0.2")})
    assert [(p.host, p.weight, p.backup, p.resolve, p.down) for p in got.peers] == [
        ("10.0.0.1", 2, False, False, False), ("10.0.0.2", 2, False, False, False),
        ("127.0.0.9", 1, True, False, False)]


def test_a_name_not_resolved_yet_is_a_down_peer() -> None:
    got = expanded(up(), {})
    assert [(p.host, p.down) for p in got.peers] == [("app.test", True), ("127.0.0.9", False)]
    b = PeerResolution(up()).balancer()
    peer = b.start(0.0).next(0.0)
    assert peer is not None and peer.backup        # only the backup can answer


def test_compile_keeps_the_name_and_the_http_resolver(tmp_path: Path) -> None:
    conf = tmp_path / "site.conf"
    conf.write_text("resolver 127.0.0.1:5353 valid=5s;\nresolver_timeout 3s;\n"
                    "upstream app { zone app 64k; server app.test:3000 resolve; }\n"
                    "server { listen 127.0.0.1:8080; location / { proxy_pass http://app; } }\n")
    u = load(str(conf), str(tmp_path)).http.upstreams["app"]
    assert [(p.host, p.port, p.resolve) for p in u.peers] == [("app.test", 3000, True)]
    assert u.resolver == ResolverConf((("127.0.0.1", 5353),), 5.0)
    assert u.resolver_timeout == 3.0 and u.zone == "app"


def test_resolve_needs_a_zone(tmp_path: Path) -> None:
    conf = tmp_path / "site.conf"
    conf.write_text("resolver 127.0.0.1;\nupstream app { server app.test:3000 resolve; }\n")
    with pytest.raises(ConfigError, match='requires upstream "app" in shared memory'):
        load(str(conf), str(tmp_path))
