"""proxy.cache.policy: the pure decisions of the proxy cache, table-driven."""

from __future__ import annotations

import pytest

from truehop.conf.model import CacheValid
from truehop.proxy.cache import policy
from truehop.proxy.static import http_date

NOW = 1_700_000_000.0
VALID = (CacheValid(frozenset({200}), 600.0), CacheValid(frozenset(), 60.0, any=True))


def test_entry_path_levels() -> None:
    h = policy.key_hash("httplocalhost/")
    assert len(h) == 32
    assert policy.entry_path("/c", (1, 2), h) == f"/c/{h[-1]}/{h[-3:-1]}/{h}"
    assert policy.entry_path("/c", (), h) == f"/c/{h}"
    assert policy.entry_path("/c", (2,), h) == f"/c/{h[-2:]}/{h}"


@pytest.mark.parametrize("headers, ignore, until, refused", [
    ([], (), NOW + 600, ""),
    ([("Cache-Control", "max-age=5")], (), NOW + 5, ""),
    ([("Cache-Control", "s-maxage=7, max-age=5")], (), NOW + 7, ""),
    ([("Cache-Control", "max-age=0")], (), 0, "cache-control"),
    ([("Cache-Control", "no-cache")], (), 0, "cache-control"),
    ([("Cache-Control", "private, max-age=60")], (), 0, "cache-control"),
    ([("Cache-Control", "no-store")], ("cache-control",), NOW + 600, ""),
    ([("X-Accel-Expires", "30"), ("Cache-Control", "no-cache")], (), NOW + 30, ""),
    ([("Cache-Control", "no-cache"), ("X-Accel-Expires", "30")], (), NOW + 30, ""),
    ([("X-Accel-Expires", "0"), ("Cache-Control", "max-age=60")], (), 0, "x-accel-expires"),
    ([("X-Accel-Expires", "@1700000100")], (), 1700000100, ""),
    ([("Expires", http_date(NOW + 90))], (), NOW + 90, ""),
    ([("Expires", http_date(NOW - 90))], (), 0, "expires"),
    ([("Expires", "garbage")], (), 0, "expires"),
    ([("Expires", http_date(NOW - 90)), ("Cache-Control", "max-age=9")], (), NOW + 9, ""),
    ([("Set-Cookie", "a=1"), ("Cache-Control", "max-age=9")], (), 0, "set-cookie"),
    ([("Set-Cookie", "a=1")], ("set-cookie",), NOW + 600, ""),
    ([("Vary", "*")], (), 0, "vary"),
    ([("Vary", "*")], ("vary",), NOW + 600, ""),
    # nginx reads the fields in order: a no-cache line is not undone by a later max-age
    # (proxy_cache_control.t "cache-control no-cache multi line"), only by X-Accel-Expires
    ([("Cache-Control", "no-cache"), ("Cache-Control", "max-age=60")], (), 0, "cache-control"),
    ([("Cache-Control", "max-age=60"), ("Cache-Control", "no-cache")], (), 0, "cache-control"),
    ([("Cache-Control", "max-age=6x")], (), 0, "cache-control"),
    ([("Cache-Control", "max-age=60;x")], (), NOW + 60, ""),
    ([("X-Accel-Expires", "60"), ("X-Accel-Expires", "0")], (), NOW + 60, ""),
    ([("X-Accel-Expires", " 60")], (), NOW + 600, ""),
    ([("X-Accel-Expires", "@1")], (), 1, ""),
    ([("Expires", http_date(NOW + 90)), ("Expires", "garbage")], (), NOW + 90, ""),
    ([("Vary", "a" * 129)], (), 0, "vary"),
])
def test_freshness_precedence(headers: list[tuple[str, str]], ignore: tuple[str, ...],
                              until: float, refused: str) -> None:
    f = policy.freshness(200, headers, frozenset(ignore), VALID, NOW)
    assert (f.valid_until, f.refused) == (until, refused)


def test_proxy_cache_valid_order_and_statuses() -> None:
    assert policy.valid_for(VALID, 404) == 60.0
    assert policy.valid_for((CacheValid(frozenset(), 5.0, any=True),
                             CacheValid(frozenset({200}), 600.0)), 200) == 5.0
    assert policy.freshness(206, [], frozenset(), VALID, NOW).refused == "status"
    f = policy.freshness(500, [], frozenset(), (VALID[0],), NOW)
    assert f.refused == policy.NO_VALIDITY


def test_stale_windows_and_vary_names() -> None:
    f = policy.freshness(200, [("Cache-Control", "max-age=1, stale-while-revalidate=30, "
                                                 "stale-if-error=60"),
                               ("Vary", "Accept-Encoding, Accept-Language")],
                         frozenset(), (), NOW)
    assert (f.updating_sec, f.error_sec) == (30.0, 60.0)
    assert f.vary == ("Accept-Encoding", "Accept-Language")
    a = policy.variant("k", f.vary, [("Accept-Language", "en")])
    b = policy.variant("k", f.vary, [("accept-language", "en")])
    c = policy.variant("k", f.vary, [("Accept-Language", "fr")])
    assert a == b != c


def test_whole_seconds() -> None:
    f = policy.freshness(200, [("Cache-Control", "max-age=1")], frozenset(), (), NOW + 0.9)
    assert f.valid_until == NOW + 1
    assert policy.fresh(f.valid_until, NOW + 1.99)
    assert not policy.fresh(f.valid_until, NOW + 2.0)


def test_conditionals_and_ranges() -> None:
    lm = http_date(NOW)
    assert policy.not_modified({"if-none-match": '"a"'}, '"a"', lm, "exact") == 304
    assert policy.not_modified({"if-none-match": 'W/"a", "b"'}, '"a"', lm, "exact") == 304
    assert policy.not_modified({"if-none-match": '"b"'}, '"a"', lm, "exact") == 0
    assert policy.not_modified({"if-modified-since": lm}, None, lm, "exact") == 304
    assert policy.not_modified({"if-modified-since": lm}, None, lm, "off") == 0
    assert policy.not_modified({"if-match": '"b"'}, '"a"', lm, "exact") == 412
    assert policy.byte_range({"range": "bytes=0-9"}, 100, None, None, None) == [(0, 10)]
    assert policy.byte_range({"range": "bytes=-10"}, 100, None, None, None) == [(90, 100)]
    assert policy.byte_range({"range": "bytes=90-"}, 100, None, None, None) == [(90, 100)]
    assert policy.byte_range({"range": "bytes=100-"}, 100, None, None, None) is False
    # several ranges: multipart, as the static files' range filter answers them
    assert policy.byte_range({"range": "bytes=0-1,5-6"}, 100, None, None, None) \
        == [(0, 2), (5, 7)]
    # one allowed (the range filter's single_range on a response being stored): whole
    assert policy.byte_range({"range": "bytes=0-1,5-6"}, 100, None, None, 1) is None
    assert policy.byte_range({"range": "bytes=0-1"}, 100, None, None, 0) is None
    assert policy.byte_range({"range": "bytes=0-1", "if-range": '"x"'}, 100, '"y"', None,
                             None) is None


def test_bypass_values() -> None:
    assert not policy.truthy(["", "0"])
    assert policy.truthy(["", "1"])
