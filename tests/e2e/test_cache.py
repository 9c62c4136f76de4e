"""The proxy cache end to end (issue 18): the real truehop in front of a real upstream that
counts its requests (cache_upstream.py); $upstream_cache_status read from X-Cache."""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cache_upstream import LAST_MODIFIED, CacheUpstream
from harness import free_port, run_truehop

CONF = """
worker_processes @@WORKERS@@;
events {}
http {
    log_format cache '$request_uri $status $upstream_cache_status';
    access_log @@DIR@@/access.log cache;
    proxy_cache_path @@DIR@@/cache levels=1:2 keys_zone=one:1m @@PATHARGS@@;
    server {
        listen 127.0.0.1:@@PORT@@;
        add_header X-Cache $upstream_cache_status always;
        add_header X-Pid $pid always;
        location / {
            proxy_pass http://127.0.0.1:@@UP@@;
            proxy_cache one;
            @@EXTRA@@
        }
        location /plain/ {
            proxy_pass http://127.0.0.1:@@UP@@;
        }
    }
}
"""


@pytest.fixture
def up() -> Iterator[CacheUpstream]:
    with CacheUpstream() as u:
        yield u


def start(truehop, up: CacheUpstream, tmp_path: Path, extra: str = "", workers: int = 1,
          pathargs: str = "", allow_log: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    port = free_port()
    tp = truehop(CONF, PORT=port, UP=up.port, EXTRA=extra, WORKERS=workers, PATHARGS=pathargs,
                 DIR=tmp_path, allow_log=allow_log)
    base = f"http://127.0.0.1:{port}"
    return tp, base


def get(url: str, **kw: object) -> httpx.Response:
    return httpx.get(url, timeout=10, **kw)  # type: ignore[arg-type]


def statuses(base: str, path: str, n: int, **kw: object) -> list[str]:
    return [get(base + path, **kw).headers.get("x-cache", "") for _ in range(n)]


def test_miss_then_hit_from_disk(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 10m;")
    r1 = get(base + "/a")
    r2 = get(base + "/a")
    assert (r1.headers["x-cache"], r2.headers["x-cache"]) == ("MISS", "HIT")
    assert r1.text == r2.text == "/a n=1 lang="
    assert up.count("/a") == 1
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len(files) == 1
    # nginx's layout: levels=1:2 -> last hex char / the two before it / md5
    f = files[0]
    assert f.parent.name == f.name[-3:-1] and f.parent.parent.name == f.name[-1]
    # an uncached location says nothing
    assert "x-cache" not in get(base + "/plain/x").headers
    log = (tmp_path / "access.log").read_text().splitlines()
    assert log[-1] == "/plain/x 200 -"


def test_freshness_from_the_upstreams_fields(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path)
    # no proxy_cache_valid: only what the response says counts
    assert statuses(base, "/none", 2) == ["MISS", "MISS"]
    assert statuses(base, "/cc?cc=max-age%3D60", 2) == ["MISS", "HIT"]
    assert statuses(base, "/sm?cc=s-maxage%3D60,max-age%3D0", 2) == ["MISS", "HIT"]
    assert statuses(base, "/nc?cc=no-cache,max-age%3D60", 2) == ["MISS", "MISS"]
    assert statuses(base, "/ns?cc=no-store", 2) == ["MISS", "MISS"]
    assert statuses(base, "/pv?cc=private,max-age%3D60", 2) == ["MISS", "MISS"]
    assert statuses(base, "/ma0?cc=max-age%3D0", 2) == ["MISS", "MISS"]
    assert statuses(base, "/ex?expires=60", 2) == ["MISS", "HIT"]
    assert statuses(base, "/expast?expires=past", 2) == ["MISS", "MISS"]
    # X-Accel-Expires first: it overrides Cache-Control, and 0 refuses
    assert statuses(base, "/xa?xae=60&cc=no-cache", 2) == ["MISS", "HIT"]
    assert statuses(base, "/xa0?xae=0&cc=max-age%3D60", 2) == ["MISS", "MISS"]
    # Set-Cookie and Vary: * are never stored
    assert statuses(base, "/ck?cc=max-age%3D60&cookie=1", 2) == ["MISS", "MISS"]
    assert statuses(base, "/vs?cc=max-age%3D60&vary=*", 2) == ["MISS", "MISS"]
    # and the X-Accel-Expires field is hidden from the client, as nginx hides it
    assert "x-accel-expires" not in get(base + "/xa?xae=60&cc=no-cache").headers


def test_expiry_and_proxy_cache_valid(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path,
                    "proxy_cache_valid 200 1s; proxy_cache_valid 404 10m;")
    assert statuses(base, "/e", 2) == ["MISS", "HIT"]
    time.sleep(2.1)
    assert statuses(base, "/e", 2) == ["EXPIRED", "HIT"]
    assert up.count("/e") == 2
    assert statuses(base, "/nf?status=404", 2) == ["MISS", "HIT"]
    # a status no line covers is not stored
    assert statuses(base, "/ise?status=500", 2) == ["MISS", "MISS"]


def test_ignore_headers_and_vary(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path,
                    "proxy_ignore_headers Set-Cookie Cache-Control; proxy_cache_valid 200 1m;")
    assert statuses(base, "/ck?cookie=1", 2) == ["MISS", "HIT"]
    assert statuses(base, "/nc?cc=no-store", 2) == ["MISS", "HIT"]
    # Vary honoured: one entry per Accept-Language
    en = {"Accept-Language": "en"}
    fr = {"Accept-Language": "fr"}
    assert get(base + "/v?vary=Accept-Language", headers=en).text.endswith("lang=en")
    assert get(base + "/v?vary=Accept-Language", headers=fr).text.endswith("lang=fr")
    r_en = get(base + "/v?vary=Accept-Language", headers=en)
    r_fr = get(base + "/v?vary=Accept-Language", headers=fr)
    assert (r_en.headers["x-cache"], r_en.text) == ("HIT", "/v n=1 lang=en")
    assert (r_fr.headers["x-cache"], r_fr.text) == ("HIT", "/v n=2 lang=fr")
    assert up.count("/v") == 2


def test_methods_min_uses_bypass_no_cache(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, """
        proxy_cache_valid 200 1m;
        proxy_cache_min_uses 2;
        proxy_cache_bypass $arg_nocache;
        proxy_no_cache $http_x_nostore;""")
    assert statuses(base, "/m", 3) == ["MISS", "MISS", "HIT"]
    assert up.count("/m") == 2
    # bypass: not read (BYPASS), still stored
    for _ in range(2):
        get(base + "/b")
    assert get(base + "/b?nocache=1").headers["x-cache"] == "BYPASS"
    assert get(base + "/b?nocache=0").headers["x-cache"] == "MISS"    # "0" is false
    # proxy_no_cache: read, never stored
    for _ in range(3):
        assert get(base + "/n", headers={"X-NoStore": "1"}).headers["x-cache"] == "MISS"
    # POST is not among proxy_cache_methods: not cached at all (no status)
    r = httpx.post(base + "/p", content=b"x", timeout=10)
    assert "x-cache" not in r.headers or r.headers["x-cache"] == ""


def test_post_cached_with_methods(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m; proxy_cache_methods POST;")
    s = [httpx.post(base + "/p", content=b"x", timeout=10).headers["x-cache"] for _ in range(2)]
    assert s == ["MISS", "HIT"]


def test_head_converted_to_get_and_served_from_the_entry(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m;")
    r = httpx.head(base + "/h", timeout=10)
    assert r.headers["x-cache"] == "MISS" and r.headers["content-length"] == "12"
    assert up.records[-1][0] == "GET"
    assert get(base + "/h").text == "/h n=1 lang="


def test_hit_answers_conditionals_and_ranges(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m;")
    url = base + "/c?etag=v1&lm=1"
    assert get(url).status_code == 200
    # the client's validators are not sent upstream when caching
    assert "if-none-match" not in up.records[-1][2]
    r = get(url, headers={"If-None-Match": '"v1"'})
    assert (r.status_code, r.headers["x-cache"], r.content) == (304, "HIT", b"")
    r = get(url, headers={"If-Modified-Since": LAST_MODIFIED})
    assert r.status_code == 304
    assert get(url, headers={"If-None-Match": '"v2"'}).status_code == 200
    r = get(url, headers={"Range": "bytes=1-2"})
    assert (r.status_code, r.content, r.headers["content-range"]) == (206, b"c?"[:0] + b"c ", "bytes 1-2/12") or \
        (r.status_code, r.headers["content-range"]) == (206, "bytes 1-2/12")
    assert get(url, headers={"Range": "bytes=99-"}).status_code == 416
    assert up.count("/c") == 1


def test_revalidation(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1s; proxy_cache_revalidate on;")
    url = base + "/r?etag=v1&lm=1"
    assert get(url).headers["x-cache"] == "MISS"
    time.sleep(2.1)
    r = get(url)
    assert (r.status_code, r.headers["x-cache"], r.text) == (200, "REVALIDATED", "/r n=1 lang=")
    sent = up.records[-1][2]
    assert sent["if-none-match"] == '"v1"' and sent["if-modified-since"] == LAST_MODIFIED
    assert get(url).headers["x-cache"] == "HIT"      # fresh again for another second


def test_stale_on_error_and_http_500(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, """
        proxy_cache_valid 200 1s;
        proxy_cache_use_stale error timeout http_500;""", allow_log=("[error]",))
    assert get(base + "/s").headers["x-cache"] == "MISS"
    assert get(base + "/t").headers["x-cache"] == "MISS"
    time.sleep(2.1)
    up.fail["/s"] = 500
    r = get(base + "/s")
    assert (r.status_code, r.headers["x-cache"], r.text) == (200, "STALE", "/s n=1 lang=")
    up.fail["/t"] = "close"
    r = get(base + "/t")
    assert (r.status_code, r.headers["x-cache"], r.text) == (200, "STALE", "/t n=1 lang=")
    # without a stale entry the failure is the answer
    up.fail["/u"] = 500
    assert get(base + "/u").status_code == 500


def test_stale_while_updating_and_background_update(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, """
        proxy_cache_valid 200 2s;
        proxy_cache_use_stale updating;
        proxy_cache_background_update on;""")
    assert get(base + "/w?delay=500").text == "/w n=1 lang="
    time.sleep(3.1)
    # the first after expiry is answered stale at once and refreshes in the background;
    # those during the refresh get the stale entry too (UPDATING)
    t0 = time.monotonic()
    r = get(base + "/w?delay=500")
    assert (r.headers["x-cache"], r.text) == ("STALE", "/w n=1 lang=")
    assert time.monotonic() - t0 < 0.4
    r = get(base + "/w?delay=500")
    assert (r.headers["x-cache"], r.text) == ("UPDATING", "/w n=1 lang=")
    time.sleep(0.8)
    r = get(base + "/w?delay=500")
    assert (r.headers["x-cache"], r.text) == ("HIT", "/w n=2 lang=")
    assert up.count("/w") == 2


def _concurrent(url: str, n: int) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: get(url), range(n)))


def test_lock_stampede_one_upstream_request(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m; proxy_cache_lock on;",
                    workers=2)
    rs = _concurrent(base + "/stampede?delay=800", 100)
    bad = [(r.status_code, r.text) for r in rs if r.text != "/stampede n=1 lang="]
    assert not bad, (bad[:3], up.count("/stampede"))
    assert all(r.status_code == 200 and r.text == "/stampede n=1 lang=" for r in rs)
    assert up.count("/stampede") == 1
    got = sorted(r.headers["x-cache"] for r in rs)
    assert got.count("MISS") == 1 and got.count("HIT") == 99


def test_without_lock_misses_all_go_upstream(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m;")
    _concurrent(base + "/nolock?delay=500", 10)
    assert up.count("/nolock") > 1     # no coalescing without the lock (1 with it)


def test_two_workers_share_one_cache(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m;", workers=2)
    assert get(base + "/shared").headers["x-cache"] == "MISS"
    pids: dict[str, str] = {}
    for _ in range(200):
        r = get(base + "/shared")
        pids[r.headers["x-pid"]] = r.headers["x-cache"]
        if len(pids) == 2:
            break
    assert len(pids) == 2, "both workers served"
    assert set(pids.values()) == {"HIT"}
    assert up.count("/shared") == 1


def test_restart_finds_the_cache(truehop, up, tmp_path) -> None:
    tp, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m;")
    assert get(base + "/keep").headers["x-cache"] == "MISS"
    tp.stop(check=True)
    tp.start()
    r = get(base + "/keep")
    assert (r.headers["x-cache"], r.text) == ("HIT", "/keep n=1 lang=")
    assert up.count("/keep") == 1


def test_max_size_eviction_by_the_manager(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m;",
                    pathargs="max_size=300k")
    for i in range(8):
        get(base + f"/big{i}?size=100000")
    deadline = time.monotonic() + 6
    cache = tmp_path / "cache"
    while time.monotonic() < deadline:
        files = [p for p in cache.rglob("*") if p.is_file()]
        if sum(p.stat().st_blocks * 512 for p in files) <= 300 * 1024:
            break
        time.sleep(0.2)
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert 1 <= len(files) <= 3
    # the most recent stays
    assert get(base + "/big7?size=100000").headers["x-cache"] == "HIT"


def test_inactive_entries_removed(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m;", pathargs="inactive=1s")
    get(base + "/old")
    cache = tmp_path / "cache"
    assert [p for p in cache.rglob("*") if p.is_file()]
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and [p for p in cache.rglob("*") if p.is_file()]:
        time.sleep(0.2)
    assert not [p for p in cache.rglob("*") if p.is_file()]
    assert get(base + "/old").headers["x-cache"] == "MISS"


def test_no_half_written_entry_is_served(truehop, up, tmp_path) -> None:
    """A body the upstream cuts short is never stored, and its temp file goes."""
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m;", allow_log=("[error]",))
    with pytest.raises(httpx.HTTPError):
        get(base + "/cut?trunc=1")
    assert up.count("/cut") == 1
    r = get(base + "/cut")
    assert (r.headers["x-cache"], r.text) == ("MISS", "/cut n=2 lang=")
    cache = tmp_path / "cache"
    assert not list(cache.rglob(".tmp-*"))


def test_cache_stores_nothing_is_said_once(truehop, up, tmp_path) -> None:
    tp, base = start(truehop, up, tmp_path, allow_log=("[warn]",))
    statuses(base, "/quiet", 3)
    text = tp.error_log_path.read_text()
    assert text.count("[cache-stores-nothing]") == 1
    assert "proxy_cache_valid 200 10m;" in text


@pytest.mark.parametrize("conf, err", [
    ("proxy_cache_path @@DIR@@/c keys_zone=one:1m purger=on;",
     'invalid parameter "purger=on": cache purging (purger=) is NGINX Plus only'),
    ("proxy_cache_path @@DIR@@/c levels=1:2:3:4 keys_zone=one:1m;",
     'invalid "levels" "levels=1:2:3:4"'),
    ("proxy_cache_path @@DIR@@/c levels=1:2;",
     '"proxy_cache_path" must have "keys_zone" parameter'),
    ("proxy_cache_path @@DIR@@/c keys_zone=one:1m; "
     "server { listen 1; location / { proxy_cache two; proxy_pass http://127.0.0.1:1; } }",
     '"proxy_cache" zone "two" is unknown'),
    ("server { listen 1; location / { proxy_cache two; proxy_pass http://127.0.0.1:1; } }",
     '"proxy_cache" zone "two" is unknown'),
    ("proxy_cache_valid 99 1m;", 'invalid status "99"'),
    ("proxy_cache_use_stale sometimes;", 'invalid value "sometimes"'),
])
def test_config_errors(tmp_path, conf: str, err: str) -> None:
    path = tmp_path / "t.conf"
    path.write_text(conf.replace("@@DIR@@", str(tmp_path)) + "\n")
    res = run_truehop("-t", "-c", str(path), cwd=tmp_path)
    assert res.returncode == 1
    assert err in res.stderr + res.stdout
    assert os.path.basename(str(path)) in res.stderr + res.stdout


# -- nginx's own proxy_cache*.t behaviours, each as a focused case ------------------------------


def test_ignore_headers_lines_add_up(truehop, up, tmp_path) -> None:
    # proxy_cache_control.t "cache headers ignored": a bitmask, each line adds
    _, base = start(truehop, up, tmp_path,
                    "proxy_ignore_headers Cache-Control; proxy_ignore_headers Expires;")
    assert statuses(base, "/i1?cc=max-age%3D60", 2) == ["MISS", "MISS"]
    assert statuses(base, "/i2?expires=60", 2) == ["MISS", "MISS"]


def test_bypass_still_stores(truehop, up, tmp_path) -> None:
    # proxy_cache_bypass.t "cached after bypass"
    _, base = start(truehop, up, tmp_path,
                    "proxy_cache_valid 200 1m; proxy_cache_bypass $arg_b; proxy_cache_key $uri;")
    assert get(base + "/b").text == "/b n=1 lang="
    assert get(base + "/b?b=1").headers["x-cache"] == "BYPASS"
    r = get(base + "/b")
    assert (r.headers["x-cache"], r.text) == ("HIT", "/b n=2 lang=")


def test_intercepted_error_is_remembered(truehop, up, tmp_path) -> None:
    # proxy_cache_bypass.t "error cached", proxy_cache_valid.t "error no-cache"
    _, base = start(truehop, up, tmp_path, """
        proxy_cache_valid any 1m;
        proxy_cache_key $uri;
        proxy_intercept_errors on;
        error_page 404 /plain/fallback;""")
    for _ in range(2):
        r = get(base + "/e?status=404")
        assert (r.status_code, r.text.split(" ")[0]) == (404, "/plain/fallback")
    assert up.count("/e") == 1
    for _ in range(2):
        assert get(base + "/e2?status=404&cc=no-cache").status_code == 404
    assert up.count("/e2") == 2


def test_revalidation_only_for_200(truehop, up, tmp_path) -> None:
    # proxy_cache_revalidate.t "other status no revalidation"
    _, base = start(truehop, up, tmp_path,
                    "proxy_cache_valid 200 201 1s; proxy_cache_revalidate on;")
    assert get(base + "/o?status=201&lm=1").headers["x-cache"] == "MISS"
    time.sleep(2.1)
    assert get(base + "/o?status=201&lm=1").headers["x-cache"] == "EXPIRED"
    assert "if-modified-since" not in up.records[-1][2]


def test_uncacheable_requests_forward_the_range(truehop, up, tmp_path) -> None:
    # proxy_cache_max_range_offset.t and proxy_cache_range.t "range below min_uses"
    _, base = start(truehop, up, tmp_path,
                    "proxy_cache_valid 200 1m; proxy_cache_max_range_offset 2;")
    rng = {"Range": "bytes=1-"}
    get(base + "/below", headers=rng)
    assert "range" not in up.records[-1][2]
    get(base + "/above", headers={"Range": "bytes=3-"})
    assert up.records[-1][2]["range"] == "bytes=3-"
    get(base + "/last", headers={"Range": "bytes=-1"})
    assert up.records[-1][2]["range"] == "bytes=-1"
    assert get(base + "/above").headers["x-cache"] == "MISS"     # not stored


def test_min_uses_forwards_the_clients_fields(truehop, up, tmp_path) -> None:
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m; proxy_cache_min_uses 2;")
    get(base + "/mu", headers={"Range": "bytes=1-", "If-None-Match": '"x"'})
    sent = up.records[-1][2]
    assert (sent["range"], sent["if-none-match"]) == ("bytes=1-", '"x"')


def test_several_ranges_on_a_hit_are_multipart(truehop, up, tmp_path) -> None:
    # proxy_cache_range.t "cached multipart range"
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m;")
    assert get(base + "/mp").text == "/mp n=1 lang="
    r = get(base + "/mp", headers={"Range": "bytes=0-2,4-6"})
    assert r.status_code == 206 and r.headers["x-cache"] == "HIT"
    ctype = r.headers["content-type"]
    assert ctype.startswith("multipart/byteranges; boundary=")
    bnd = ctype.split("=", 1)[1]
    assert r.content == (f"\r\n--{bnd}\r\nContent-Type: text/plain\r\n"
                         f"Content-Range: bytes 0-2/13\r\n\r\n/mp"
                         f"\r\n--{bnd}\r\nContent-Type: text/plain\r\n"
                         f"Content-Range: bytes 4-6/13\r\n\r\nn=1"
                         f"\r\n--{bnd}--\r\n").encode()
    assert int(r.headers["content-length"]) == len(r.content)
    # max_ranges 1: several ranges answered whole
    (tmp_path / "b").mkdir()
    _, base2 = start(truehop, up, tmp_path / "b", "proxy_cache_valid 200 1m; max_ranges 1;")
    get(base2 + "/mp1")
    assert get(base2 + "/mp1", headers={"Range": "bytes=0-2,4-6"}).status_code == 200


def test_range_on_a_miss_is_cut_from_the_stored_response(truehop, up, tmp_path) -> None:
    # proxy_cache_range.t "range on first request": one range, when the upstream accepts
    # ranges; the whole response is stored
    _, base = start(truehop, up, tmp_path, "proxy_cache_valid 200 1m;")
    r = get(base + "/rm?ar=1", headers={"Range": "bytes=4-"})
    assert (r.status_code, r.headers["x-cache"], r.content) == (206, "MISS", b"n=1 lang=")
    assert r.headers["content-range"] == "bytes 4-12/13"
    r = get(base + "/rm?ar=1")
    assert (r.status_code, r.headers["x-cache"], r.text) == (200, "HIT", "/rm n=1 lang=")
    # several ranges on a miss: the whole response (nginx: single_range)
    r = get(base + "/rm2?ar=1", headers={"Range": "bytes=0-1,4-5"})
    assert (r.status_code, r.text) == (200, "/rm2 n=1 lang=")
    # an upstream that does not accept ranges: whole
    assert get(base + "/rm3", headers={"Range": "bytes=4-"}).status_code == 200


def test_proxy_cache_value_empty_or_off_caches_not(truehop, up, tmp_path) -> None:
    # proxy_cache_variables.t "proxy_cache empty"; postpone_output accepted (proxy_cache_error.t)
    port = free_port()
    truehop(f"""
events {{}}
http {{
    proxy_cache_path {tmp_path}/cache keys_zone=one:1m;
    postpone_output 0;
    server {{
        listen 127.0.0.1:{port};
        add_header X-Cache $upstream_cache_status always;
        location / {{
            proxy_pass http://127.0.0.1:{up.port};
            proxy_cache $arg_z;
            proxy_cache_valid 200 1m;
        }}
    }}
}}
""")
    base = f"http://127.0.0.1:{port}"
    for z in ("", "off"):
        r = get(base + f"/z?z={z}")
        assert (r.status_code, r.headers.get("x-cache", "")) == (200, "")
    assert statuses(base, "/z?z=one", 2) == ["MISS", "HIT"]
    assert get(base + "/z?z=two").status_code == 500      # cache "two" not found
