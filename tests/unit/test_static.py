"""proxy.static: nginx's static/index/try_files/range/not_modified/expires decisions, on real
files in tmp_path."""

from __future__ import annotations

import calendar
import email.utils
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from truehop.conf.values import parse_expires
from truehop.proxy import static
from truehop.proxy.static import (
    EXPIRES_STATUSES,
    ExpiresSpec,
    IndexRedirect,
    StaticError,
    StaticPlan,
    StaticTarget,
    TryFilesResult,
    dir_redirect_location,
    etag_for,
    expires_headers,
    find_index,
    http_date,
    index_candidates,
    map_path,
    method_error,
    mime_for,
    open_file,
    parse_http_date,
    plan_response,
    resolve,
    try_files,
)

MTIME = 1_700_000_000  # Tue, 14 Nov 2023 22:13:20 GMT
LM = "Tue, 14 Nov 2023 22:13:20 GMT"
DATA = bytes(range(256)) * 4  # 1024 bytes
TYPES = {"html": "text/html", "txt": "text/plain", "png": "image/png", "gz": "application/gzip"}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """tmp/secret.txt, tmp/public/static/{hello.txt,big.bin,dir/,dir/index.html,empty/,
    link-to-secret -> ../../secret.txt, inner-link -> hello.txt, dirlink -> dir}."""
    (tmp_path / "secret.txt").write_bytes(b"top secret\n")
    pub = tmp_path / "public"
    st = pub / "static"
    (st / "dir").mkdir(parents=True)
    (st / "empty").mkdir()
    (st / "hello.txt").write_bytes(b"hello\n")
    (st / "big.bin").write_bytes(DATA)
    (st / "dir" / "index.html").write_bytes(b"<p>index</p>")
    (pub / "secret.txt").write_bytes(b"public-level secret\n")
    os.symlink("../../secret.txt", st / "link-to-secret")
    os.symlink("hello.txt", st / "inner-link")
    os.symlink("dir", st / "dirlink")
    os.symlink(str(tmp_path), st / "abs-escape")
    for p in (st / "hello.txt", st / "big.bin"):
        os.utime(p, (MTIME, MTIME))
    return tmp_path


def fstat(path: Path) -> os.stat_result:
    return os.stat(path)


def big(site: Path) -> os.stat_result:
    return fstat(site / "public" / "static" / "big.bin")


def _spec(text: str, modified: bool = False) -> ExpiresSpec:
    """An `expires` value through the one parser (conf.values), as the pipeline builds it."""
    return ExpiresSpec(*parse_expires(text, modified))


def hdict(plan: StaticPlan) -> dict[str, str]:
    return dict(plan.headers)


def names(plan: StaticPlan) -> list[str]:
    return [k for k, _ in plan.headers]


def body_bytes(plan: StaticPlan, data: bytes = DATA) -> bytes:
    out = b""
    for part in plan.body:
        if isinstance(part, bytes):
            out += part
        else:
            off, n = part
            out += data[off:off + n]
    return out


# --------------------------------------------------------------------------------------
# map_path
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "kw", "expected"),
    [
        ("/a/b.txt", {"root": "/srv/www", "alias": None, "location_prefix": "/"},
         "/srv/www/a/b.txt"),
        ("/a/b.txt", {"root": "/srv/www/", "alias": None, "location_prefix": "/a/"},
         "/srv/www//a/b.txt"),  # nginx does not squash the slash
        ("/static/x.png", {"root": "/unused", "alias": "/srv/public/static/",
                           "location_prefix": "/static/"}, "/srv/public/static/x.png"),
        ("/static/x.png", {"root": "/unused", "alias": "/srv/public/static",
                           "location_prefix": "/static"}, "/srv/public/static/x.png"),
        # the off-by-slash alias: nginx builds exactly this path
        ("/static../secret.txt", {"root": "/unused", "alias": "/srv/public/static/",
                                  "location_prefix": "/static"},
         "/srv/public/static/../secret.txt"),
        ("/img/a/b.png", {"root": "/unused", "alias": "/data/a/b.png", "location_prefix": "^/img/",
                          "location_is_regex": True, "alias_captures_applied": True},
         "/data/a/b.png"),
        ("/caf\xc3\xa9", {"root": "/r", "alias": None, "location_prefix": "/"},
         "/r/caf\xc3\xa9"),
    ],
)
def test_map_path(uri: str, kw: dict[str, object], expected: str) -> None:
    assert map_path(uri, **kw) == expected  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# resolve: traversal, symlinks, NUL, errors
# --------------------------------------------------------------------------------------


def test_resolve_regular_file(site: Path) -> None:
    root = str(site / "public" / "static")
    t = resolve(root + "/hello.txt", root_dir=root)
    assert isinstance(t, StaticTarget)
    assert t.is_file and not t.is_dir
    assert t.st.st_size == 6


def test_resolve_directory(site: Path) -> None:
    root = str(site / "public" / "static")
    t = resolve(root + "/dir", root_dir=root)
    assert isinstance(t, StaticTarget) and t.is_dir


def test_missing_is_404(site: Path) -> None:
    root = str(site / "public" / "static")
    e = resolve(root + "/nope.txt", root_dir=root)
    assert isinstance(e, StaticError) and e.status == 404


def test_file_with_trailing_slash_is_404(site: Path) -> None:  # F28
    root = str(site / "public" / "static")
    e = resolve(root + "/hello.txt/", root_dir=root)
    assert isinstance(e, StaticError) and e.status == 404


def test_nul_byte_is_400(site: Path) -> None:  # F07
    root = str(site / "public" / "static")
    e = resolve(root + "/hello.txt\x00.png", root_dir=root)
    assert isinstance(e, StaticError) and e.status == 400


def test_symlink_escaping_root_is_403(site: Path) -> None:  # F09
    root = str(site / "public" / "static")
    for name in ("link-to-secret", "abs-escape"):
        e = resolve(root + "/" + name, root_dir=root)
        assert isinstance(e, StaticError) and e.status == 403, name
    e = resolve(root + "/abs-escape/secret.txt", root_dir=root)
    assert isinstance(e, StaticError) and e.status == 403


def test_symlink_escape_allowed_when_opted_in(site: Path) -> None:
    root = str(site / "public" / "static")
    t = resolve(root + "/link-to-secret", root_dir=root, follow_symlinks_outside=True)
    assert isinstance(t, StaticTarget)
    assert t.realpath == str(site / "secret.txt")


def test_symlink_inside_root_is_followed(site: Path) -> None:
    root = str(site / "public" / "static")
    t = resolve(root + "/inner-link", root_dir=root)
    assert isinstance(t, StaticTarget) and t.is_file
    assert t.realpath.endswith("/hello.txt")
    d = resolve(root + "/dirlink/index.html", root_dir=root)
    assert isinstance(d, StaticTarget) and d.is_file


def test_root_dir_itself_a_symlink(site: Path) -> None:
    os.symlink(site / "public" / "static", site / "www")
    root = str(site / "www")
    t = resolve(root + "/hello.txt", root_dir=root)
    assert isinstance(t, StaticTarget)


def test_off_by_slash_alias_is_refused(site: Path) -> None:  # F01
    """`location /static { alias <tmp>/public/static/; }` and GET /static../secret.txt:
    map_path builds the same path nginx does, and nginx WOULD serve <tmp>/public/secret.txt.
    Deliberate safer deviation: resolve refuses any path whose dot-segments leave the alias
    directory (404)."""
    alias = str(site / "public" / "static") + "/"
    path = map_path("/static../secret.txt", root="/unused", alias=alias, location_prefix="/static")
    assert path == alias + "../secret.txt"
    assert os.path.exists(path)  # the file nginx would serve is really there
    e = resolve(path, root_dir=alias)
    assert isinstance(e, StaticError) and e.status == 404
    # the correctly written alias never produces a dot-segment
    ok = map_path("/static/hello.txt", root="/unused", alias=alias, location_prefix="/static/")
    assert isinstance(resolve(ok, root_dir=alias), StaticTarget)


def test_dotdot_in_name_is_data(site: Path) -> None:
    root = str(site / "public" / "static")
    (site / "public" / "static" / "..foo").write_bytes(b"x")
    assert isinstance(resolve(root + "/..foo", root_dir=root), StaticTarget)
    e = resolve(root + "\\..\\secret.txt", root_dir=root)  # F32: backslash is data
    assert isinstance(e, StaticError) and e.status == 404


def test_fifo_is_404(site: Path) -> None:
    root = str(site / "public" / "static")
    os.mkfifo(site / "public" / "static" / "fifo")
    e = resolve(root + "/fifo", root_dir=root)
    assert isinstance(e, StaticError) and e.status == 404


def test_symlink_loop_is_403(site: Path) -> None:
    root = str(site / "public" / "static")
    os.symlink("loop", site / "public" / "static" / "loop")
    e = resolve(root + "/loop", root_dir=root)
    assert isinstance(e, StaticError) and e.status == 403


def test_name_too_long_is_404(site: Path) -> None:
    root = str(site / "public" / "static")
    e = resolve(root + "/" + "a" * 5000, root_dir=root)
    assert isinstance(e, StaticError) and e.status == 404


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_permission_denied_is_403(site: Path) -> None:
    d = site / "public" / "static" / "locked"
    d.mkdir()
    (d / "f.txt").write_bytes(b"x")
    d.chmod(0)
    try:
        root = str(site / "public" / "static")
        e = resolve(root + "/locked/f.txt", root_dir=root)
        assert isinstance(e, StaticError) and e.status == 403
    finally:
        d.chmod(0o755)


def test_latin1_bytes_reach_the_filesystem(site: Path) -> None:
    name = "café.txt".encode()
    (site / "public" / "static").joinpath(os.fsdecode(name)).write_bytes(b"c")
    root = str(site / "public" / "static")
    t = resolve(root + "/" + name.decode("latin-1"), root_dir=root)
    assert isinstance(t, StaticTarget)


def test_open_file(site: Path) -> None:
    root = str(site / "public" / "static")
    t = resolve(root + "/inner-link", root_dir=root)
    assert isinstance(t, StaticTarget)
    r = open_file(t)
    assert not isinstance(r, StaticError)
    fd, st = r
    try:
        assert os.read(fd, 100) == b"hello\n"
        assert st.st_size == 6
    finally:
        os.close(fd)


def test_open_file_refuses_swapped_file(site: Path) -> None:
    root = str(site / "public" / "static")
    t = resolve(root + "/hello.txt", root_dir=root)
    assert isinstance(t, StaticTarget)
    p = site / "public" / "static" / "hello.txt"
    p.unlink()
    os.symlink(site / "secret.txt", p)
    e = open_file(t)
    assert isinstance(e, StaticError) and e.status in (403, 404)


def test_method_error() -> None:
    assert method_error("GET") is None
    assert method_error("HEAD") is None
    assert method_error("POST") is None  # nginx looks the file up first
    e = method_error("POST", found=True)
    assert e is not None and e.status == 405 and ("Allow", "GET, HEAD") in e.headers
    e = method_error("DELETE")
    assert e is not None and e.status == 405


# --------------------------------------------------------------------------------------
# index, directory redirect
# --------------------------------------------------------------------------------------


def test_index_candidates() -> None:
    assert index_candidates("/d/", ["index.html", "index.htm", "/fallback.html"]) == [
        "/d/index.html", "/d/index.htm", "/fallback.html"]


def test_find_index(site: Path) -> None:
    root = str(site / "public")
    r = find_index("/static/dir/", root + "/static/dir/", ["index.htm", "index.html"],
                   root_dir=root)
    assert r == IndexRedirect("/static/dir/index.html")


def test_find_index_none_is_403(site: Path) -> None:
    root = str(site / "public")
    r = find_index("/static/empty/", root + "/static/empty/", ["index.html"], root_dir=root)
    assert isinstance(r, StaticError) and r.status == 403


def test_find_index_absolute_fallback(site: Path) -> None:
    root = str(site / "public")
    r = find_index("/static/empty/", root + "/static/empty/", ["index.html", "/last.html"],
                   root_dir=root)
    assert r == IndexRedirect("/last.html")


def test_find_index_missing_dir_is_404(site: Path) -> None:
    root = str(site / "public")
    r = find_index("/nodir/", root + "/nodir/", ["index.html"], root_dir=root)
    assert isinstance(r, StaticError) and r.status == 404
    r = find_index("/static/hello.txt/", root + "/static/hello.txt/", ["index.html"],
                   root_dir=root)
    assert isinstance(r, StaticError) and r.status == 404


def test_find_index_escaping_symlink_is_403(site: Path) -> None:
    root = str(site / "public" / "static")
    os.symlink(site / "secret.txt", site / "public" / "static" / "empty" / "index.html")
    r = find_index("/empty/", root + "/empty/", ["index.html"], root_dir=root)
    assert isinstance(r, StaticError) and r.status == 403


@pytest.mark.parametrize(
    ("args", "scheme", "host", "port", "default", "absolute", "expected"),
    [
        (None, "http", "evil.example", 18080, 80, False, "/static/dir/"),  # F10: relative
        ("", "http", "h", 80, 80, False, "/static/dir/"),
        ("a=1&b=2", "http", "h", 80, 80, False, "/static/dir/?a=1&b=2"),
        (None, "http", "example.com", 80, 80, True, "http://example.com/static/dir/"),
        (None, "http", "example.com", 8080, 80, True, "http://example.com:8080/static/dir/"),
        (None, "https", "example.com", 443, 443, True, "https://example.com/static/dir/"),
        ("x=1", "https", "example.com", 8443, 443, True,
         "https://example.com:8443/static/dir/?x=1"),
        (None, "http", "example.com", None, 80, True, "http://example.com/static/dir/"),
    ],
)
def test_dir_redirect_location(args: str | None, scheme: str, host: str, port: int | None,
                               default: int, absolute: bool, expected: str) -> None:
    assert dir_redirect_location("/static/dir", args, scheme, host, port, default,
                                 absolute) == expected


def test_dir_redirect_location_escapes_controls() -> None:
    loc = dir_redirect_location("/a\r\nSet-Cookie: x", None, "http", "h", 80, 80, False)
    assert "\r" not in loc and "\n" not in loc and " " not in loc
    assert loc == "/a%0D%0ASet-Cookie:%20x/"
    assert dir_redirect_location("/q?#%", None, "http", "h", 80, 80, False) == "/q%3F%23%25/"


# --------------------------------------------------------------------------------------
# try_files
# --------------------------------------------------------------------------------------


def tf(site: Path, cands: list[str], fallback: str) -> TryFilesResult:
    root = str(site / "public")
    return try_files(cands, fallback, root_dir=root,
                     to_path=lambda u: map_path(u, root=root, alias=None, location_prefix="/"))


def test_try_files_file(site: Path) -> None:
    assert tf(site, ["/static/hello.txt", "/static/hello.txt/"], "=404") == TryFilesResult(
        "file", uri="/static/hello.txt")


def test_try_files_dir_entry(site: Path) -> None:
    # $uri is a directory: the file test skips it; $uri/ matches it, slash stripped (nginx)
    r = tf(site, ["/static/dir", "/static/dir/"], "=404")
    assert r == TryFilesResult("file", uri="/static/dir", is_dir=True)
    # a dir-test entry does not match a file
    assert tf(site, ["/static/hello.txt/"], "=404").kind == "code"


def test_try_files_fallbacks(site: Path) -> None:
    assert tf(site, ["/nope"], "=404") == TryFilesResult("code", code=404)
    assert tf(site, ["/nope"], "@app") == TryFilesResult("named", uri="@app")
    assert tf(site, ["/nope"], "/index.php?q=1") == TryFilesResult("uri", uri="/index.php",
                                                                   args="q=1")
    assert tf(site, ["/nope"], "/index.php") == TryFilesResult("uri", uri="/index.php")
    with pytest.raises(ValueError):
        tf(site, ["/nope"], "=abc")


def test_try_files_skips_escaping_symlink(site: Path) -> None:
    r = tf(site, ["/static/link-to-secret", "/static/hello.txt"], "=404")
    assert r == TryFilesResult("file", uri="/static/hello.txt")


def test_try_files_with_alias(site: Path) -> None:
    alias = str(site / "public" / "static") + "/"

    def to_path(u: str) -> str:
        return map_path(u, root="/unused", alias=alias, location_prefix="/assets/")

    r = try_files(["/assets/hello.txt"], "=404", to_path=to_path, root_dir=alias)
    assert r == TryFilesResult("file", uri="/assets/hello.txt")


# --------------------------------------------------------------------------------------
# dates, mime, etag
# --------------------------------------------------------------------------------------


def test_http_date() -> None:
    assert http_date(MTIME) == LM
    assert http_date(MTIME + 0.999) == LM
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    for ts in (784111777, 951782400, 1_000_000_000, 2_147_483_647, 4_102_444_800):
        assert http_date(ts) == email.utils.formatdate(ts, usegmt=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 784111777),
        ("Sun Nov  6 08:49:37 1994", 784111777),
        ("Sun Nov 16 08:49:37 1994", 784111777 + 10 * 86400),
        (LM, MTIME),
        ("Tue, 29 Feb 2000 00:00:00 GMT", 951782400),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
        ("Thu, 31 Dec 2037 23:55:55 GMT", calendar.timegm((2037, 12, 31, 23, 55, 55))),
        ("Xyz, 06 Nov 1994 08:49:37", 784111777),  # nginx checks neither weekday nor zone
        ("Tue, 29 Feb 2001 00:00:00 GMT", None),
        ("Tue, 31 Apr 2001 00:00:00 GMT", None),
        ("Sun, 06 Nov 1994 24:00:00 GMT", None),
        ("garbage", None),
        ("", None),
        ("Sun, 06 Xov 1994 08:49:37 GMT", None),
        ("Sun, 6 Nov 1994 08:49:37 GMT", None),
    ],
)
def test_parse_http_date(text: str, expected: int | None) -> None:
    assert parse_http_date(text) == expected


def test_parse_http_date_roundtrip() -> None:
    for ts in range(0, 4_000_000_000, 86_400 * 37 + 3_607):
        assert parse_http_date(http_date(ts)) == ts


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b.html", "text/html"),
        ("/a/B.HTML", "text/html"),
        ("/a/b.tar.gz", "application/gzip"),
        ("/a/.txt", "application/octet-stream"),  # dot starts the segment: no extension
        ("/a.txt/b", "application/octet-stream"),
        ("/a/b.", "application/octet-stream"),
        ("/a/b.unknown", "application/octet-stream"),
        ("/x", "application/octet-stream"),
        ("/a/b..png", "image/png"),
    ],
)
def test_mime_for(path: str, expected: str) -> None:
    assert mime_for(path, TYPES, "application/octet-stream") == expected


def test_etag_format(site: Path) -> None:
    st = big(site)
    assert etag_for(st) == f'"{MTIME:x}-{1024:x}"'
    assert etag_for(st) == '"6553f100-400"'


# --------------------------------------------------------------------------------------
# plan_response: 200, conditionals
# --------------------------------------------------------------------------------------

ETAG = '"6553f100-400"'


def test_plain_200(site: Path) -> None:
    p = plan_response("GET", {}, big(site), "application/octet-stream")
    assert p.status == 200
    assert p.headers == [("Content-Type", "application/octet-stream"),
                         ("Content-Length", "1024"), ("Last-Modified", LM),
                         ("ETag", ETAG), ("Accept-Ranges", "bytes")]
    assert p.n_fixed == 3
    assert p.body == [(0, 1024)] and p.content_length == 1024 and not p.special


def test_head_same_headers_no_body(site: Path) -> None:
    g = plan_response("GET", {}, big(site), "text/plain")
    h = plan_response("HEAD", {}, big(site), "text/plain")
    assert h.headers == g.headers and h.status == 200 and h.body == []
    hr = plan_response("HEAD", {"range": "bytes=0-4"}, big(site), "text/plain")
    assert hr.status == 206 and hr.body == [] and hdict(hr)["Content-Length"] == "5"


def test_etag_off_and_filter_headers_order(site: Path) -> None:
    exp = expires_headers(_spec("1h"), now=MTIME)
    p = plan_response("GET", {}, big(site), "text/plain", etag_on=False, filter_headers=exp)
    assert names(p) == ["Content-Type", "Content-Length", "Last-Modified", "Expires",
                        "Cache-Control", "Accept-Ranges"]
    p = plan_response("GET", {}, big(site), "text/plain", filter_headers=exp)
    assert names(p) == ["Content-Type", "Content-Length", "Last-Modified", "ETag", "Expires",
                        "Cache-Control", "Accept-Ranges"]


def test_empty_mime_has_no_content_type(site: Path) -> None:
    p = plan_response("GET", {}, big(site), "")
    assert "Content-Type" not in hdict(p) and p.n_fixed == 2


def test_empty_file(site: Path) -> None:
    f = site / "e"
    f.write_bytes(b"")
    p = plan_response("GET", {"range": "bytes=0-"}, fstat(f), "text/plain")
    assert p.status == 200 and p.body == [] and hdict(p)["Content-Length"] == "0"


def test_if_modified_since_exact(site: Path) -> None:  # F20, F21, F22
    p = plan_response("GET", {"if-modified-since": LM}, big(site), "text/plain")
    assert p.status == 304
    assert p.headers == [("Last-Modified", LM), ("ETag", ETAG)]
    assert p.body == [] and p.n_fixed == 1
    later = http_date(MTIME + 86400)
    assert plan_response("GET", {"if-modified-since": later}, big(site), "t").status == 200
    assert plan_response("GET", {"if-modified-since": later}, big(site), "t",
                         if_modified_since="before").status == 304
    assert plan_response("GET", {"if-modified-since": LM}, big(site), "t",
                         if_modified_since="off").status == 200
    assert plan_response("GET", {"if-modified-since": "garbage"}, big(site), "t").status == 200


@pytest.mark.parametrize(
    ("inm", "status"),
    [
        ("*", 304),  # F23
        (ETAG, 304),
        ("W/" + ETAG, 304),  # weak comparison
        ('"x", ' + ETAG, 304),
        ('"x",' + ETAG + " ", 304),
        ('"x"', 200),
        (ETAG[:-1], 200),
        (ETAG + "x", 200),
        ("", 200),
    ],
)
def test_if_none_match(site: Path, inm: str, status: int) -> None:
    assert plan_response("GET", {"if-none-match": inm}, big(site), "t").status == status


def test_if_none_match_and_ims_both_must_match(site: Path) -> None:
    st = big(site)
    assert plan_response("GET", {"if-none-match": ETAG, "if-modified-since": LM}, st,
                         "t").status == 304
    assert plan_response("GET", {"if-none-match": '"x"', "if-modified-since": LM}, st,
                         "t").status == 200
    assert plan_response("GET", {"if-none-match": ETAG, "if-modified-since": "bad"}, st,
                         "t").status == 200


def test_if_none_match_without_etag(site: Path) -> None:
    st = big(site)
    assert plan_response("GET", {"if-none-match": ETAG}, st, "t", etag_on=False).status == 200
    p = plan_response("GET", {"if-none-match": "*"}, st, "t", etag_on=False)
    assert p.status == 304 and p.headers == [("Last-Modified", LM)]


def test_304_carries_expires(site: Path) -> None:
    exp = expires_headers(_spec("max"), now=0)
    p = plan_response("GET", {"if-none-match": "*"}, big(site), "t", filter_headers=exp)
    assert names(p) == ["Last-Modified", "ETag", "Expires", "Cache-Control"]


@pytest.mark.parametrize(
    ("hdrs", "status"),
    [
        ({"if-match": ETAG}, 200),
        ({"if-match": "*"}, 200),
        ({"if-match": '"a", ' + ETAG}, 200),
        ({"if-match": '"nope"'}, 412),
        ({"if-match": "W/" + ETAG}, 412),  # If-Match is a strong comparison
        ({"if-unmodified-since": LM}, 200),
        ({"if-unmodified-since": http_date(MTIME + 10)}, 200),
        ({"if-unmodified-since": http_date(MTIME - 1)}, 412),
        ({"if-unmodified-since": "garbage"}, 412),  # nginx: unparsable -> -1 -> 412
        ({"if-match": '"nope"', "if-none-match": "*"}, 412),  # 412 checks come first
        ({"if-unmodified-since": http_date(MTIME - 1), "range": "bytes=0-1"}, 412),
    ],
)
def test_preconditions(site: Path, hdrs: dict[str, str], status: int) -> None:
    p = plan_response("GET", hdrs, big(site), "t")
    assert p.status == status
    if status == 412:
        assert p.special and p.headers == [] and p.body == []


def test_if_match_without_etag_is_412(site: Path) -> None:
    assert plan_response("GET", {"if-match": ETAG}, big(site), "t",
                         etag_on=False).status == 412


# --------------------------------------------------------------------------------------
# plan_response: ranges
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rng", "start", "end"),
    [
        ("bytes=0-4", 0, 4),  # F11
        ("bytes=1000-", 1000, 1023),
        ("bytes=-24", 1000, 1023),
        ("bytes=-5000", 0, 1023),
        ("bytes=10-99999", 10, 1023),
        ("bytes=0-99999999999999999", 0, 1023),
        ("BYTES=3-3", 3, 3),
        ("bytes= 3 - 7 ", 3, 7),
        ("bytes=1023-1023", 1023, 1023),
        ("bytes=5-2,0-1", 0, 1),  # the invalid range is skipped (nginx)
    ],
)
def test_single_range(site: Path, rng: str, start: int, end: int) -> None:
    p = plan_response("GET", {"range": rng}, big(site), "text/plain")
    assert p.status == 206
    n = end - start + 1
    assert p.headers == [("Content-Type", "text/plain"), ("Content-Length", str(n)),
                         ("Last-Modified", LM), ("ETag", ETAG),
                         ("Content-Range", f"bytes {start}-{end}/1024")]
    assert p.body == [(start, n)] and p.content_length == n
    assert body_bytes(p) == DATA[start:end + 1]


@pytest.mark.parametrize(
    "rng",
    [
        "bytes=200000-",  # F15
        "bytes=5-2",  # F16
        "bytes=-0",  # F17
        "bytes=0-99999999999999999999999",  # F18: overflow -> 416, like nginx
        "bytes=99999999999999999999999-",
        "bytes=1024-",
        "bytes=abc",
        "bytes=0-4;x",
        "bytes=0-4,",
        "bytes=,0-4",
        "bytes=--1",
        "bytes=0-\t4",
    ],
)
def test_unsatisfiable(site: Path, rng: str) -> None:
    p = plan_response("GET", {"range": rng}, big(site), "text/plain")
    assert p.status == 416 and p.special
    assert p.headers == [("Content-Range", "bytes */1024")]
    assert p.body == []


def test_416_keeps_expires_like_nginx(site: Path) -> None:
    exp = [("Expires", "x"), ("Cache-Control", "max-age=1")]
    p = plan_response("GET", {"range": "bytes=5000-"}, big(site), "t", filter_headers=exp)
    assert p.headers == [*exp, ("Content-Range", "bytes */1024")]


@pytest.mark.parametrize(
    "rng",
    [
        "items=0-5",  # F19: unknown unit
        "bytes=",  # too short
        "bytes",
        "bytes=0-",  # the whole file is still one range: 206
    ],
)
def test_range_ignored(site: Path, rng: str) -> None:
    p = plan_response("GET", {"range": rng}, big(site), "text/plain")
    if rng == "bytes=0-":
        # a range covering the whole file is still a 206 in nginx
        assert p.status == 206 and hdict(p)["Content-Range"] == "bytes 0-1023/1024"
    else:
        assert p.status == 200 and hdict(p)["Accept-Ranges"] == "bytes"


def test_range_sum_exceeding_size_gives_200(site: Path) -> None:  # F14
    p = plan_response("GET", {"range": "bytes=" + ",".join(["0-"] * 50)}, big(site), "t")
    assert p.status == 200 and p.body == [(0, 1024)]


def test_too_many_ranges_gives_200(site: Path) -> None:  # F13
    many = "bytes=" + ",".join(f"{i * 2}-{i * 2}" for i in range(200))
    assert plan_response("GET", {"range": many}, big(site), "t").status == 200
    sixteen = "bytes=" + ",".join(f"{i * 2}-{i * 2}" for i in range(16))
    assert plan_response("GET", {"range": sixteen}, big(site), "t").status == 206
    seventeen = "bytes=" + ",".join(f"{i * 2}-{i * 2}" for i in range(17))
    assert plan_response("GET", {"range": seventeen}, big(site), "t").status == 200
    assert plan_response("GET", {"range": many}, big(site), "t",
                         max_ranges=1000).status == 206
    assert plan_response("GET", {"range": "bytes=0-1,4-5"}, big(site), "t",
                         max_ranges=1).status == 200


def test_max_ranges_zero_disables_ranges(site: Path) -> None:
    p = plan_response("GET", {"range": "bytes=0-4"}, big(site), "t", max_ranges=0)
    assert p.status == 200 and "Accept-Ranges" not in hdict(p)


def test_multipart(site: Path) -> None:  # F12
    p = plan_response("GET", {"range": "bytes=0-4,2-8"}, big(site), "text/plain",
                      boundary=1)
    b = "00000000000000000001"
    assert p.status == 206
    assert p.headers == [("Content-Type", f"multipart/byteranges; boundary={b}"),
                         ("Content-Length", str(p.content_length)),
                         ("Last-Modified", LM), ("ETag", ETAG)]
    expected = (
        f"\r\n--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-4/1024\r\n\r\n"
    ).encode() + DATA[0:5] + (
        f"\r\n--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 2-8/1024\r\n\r\n"
    ).encode() + DATA[2:9] + f"\r\n--{b}--\r\n".encode()
    assert body_bytes(p) == expected
    assert p.content_length == len(expected)
    assert [x for x in p.body if isinstance(x, tuple)] == [(0, 5), (2, 7)]


def test_multipart_without_content_type_and_default_boundary(site: Path) -> None:
    p1 = plan_response("GET", {"range": "bytes=0-0,-1"}, big(site), "")
    p2 = plan_response("GET", {"range": "bytes=0-0,-1"}, big(site), "")
    b1 = re.search(r"boundary=(\d{20})$", hdict(p1)["Content-Type"])
    b2 = re.search(r"boundary=(\d{20})$", hdict(p2)["Content-Type"])
    assert b1 and b2 and b1.group(1) != b2.group(1)
    body = body_bytes(p1)
    assert b"Content-Type" not in body
    assert body.endswith(f"\r\n--{b1.group(1)}--\r\n".encode())
    assert p1.content_length == len(body)


def test_multipart_head(site: Path) -> None:
    p = plan_response("HEAD", {"range": "bytes=0-1,5-6"}, big(site), "t", boundary=7)
    g = plan_response("GET", {"range": "bytes=0-1,5-6"}, big(site), "t", boundary=7)
    assert p.headers == g.headers and p.body == [] and p.content_length == g.content_length


@pytest.mark.parametrize(
    ("if_range", "status"),
    [
        (ETAG, 206),
        ('"nope"', 200),  # F24
        ("W/" + ETAG, 200),  # strong comparison
        (LM, 206),
        (http_date(MTIME + 1), 200),
        ("garbage", 200),
    ],
)
def test_if_range(site: Path, if_range: str, status: int) -> None:
    p = plan_response("GET", {"range": "bytes=0-4", "if-range": if_range}, big(site), "t")
    assert p.status == status


def test_if_range_etag_without_etag_on(site: Path) -> None:
    p = plan_response("GET", {"range": "bytes=0-4", "if-range": ETAG}, big(site), "t",
                      etag_on=False)
    assert p.status == 200


def test_not_modified_wins_over_range(site: Path) -> None:
    p = plan_response("GET", {"range": "bytes=0-4", "if-none-match": ETAG}, big(site), "t")
    assert p.status == 304


# --------------------------------------------------------------------------------------
# expires
# --------------------------------------------------------------------------------------

NOW = 1_700_000_000.5


def test_expires_statuses() -> None:
    assert EXPIRES_STATUSES == {200, 201, 204, 206, 301, 302, 303, 304, 307, 308}
    assert 404 not in EXPIRES_STATUSES and 416 not in EXPIRES_STATUSES


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("off", []),
        ("epoch", [("Expires", "Thu, 01 Jan 1970 00:00:01 GMT"),
                   ("Cache-Control", "no-cache")]),
        ("max", [("Expires", "Thu, 31 Dec 2037 23:55:55 GMT"),
                 ("Cache-Control", "max-age=315360000")]),
        ("30d", [("Expires", http_date(MTIME + 30 * 86400)),
                 ("Cache-Control", "max-age=2592000")]),
        ("+1h", [("Expires", http_date(MTIME + 3600)), ("Cache-Control", "max-age=3600")]),
        ("1h30m", [("Expires", http_date(MTIME + 5400)), ("Cache-Control", "max-age=5400")]),
        ("600", [("Expires", http_date(MTIME + 600)), ("Cache-Control", "max-age=600")]),
        ("1y", [("Expires", http_date(MTIME + 365 * 86400)),
                ("Cache-Control", "max-age=31536000")]),
        ("-1", [("Expires", http_date(MTIME - 1)), ("Cache-Control", "no-cache")]),
        ("-1d", [("Expires", http_date(MTIME - 86400)), ("Cache-Control", "no-cache")]),
        ("0", [("Expires", http_date(MTIME)), ("Cache-Control", "max-age=0")]),
    ],
)
def test_expires(spec: str, expected: list[tuple[str, str]]) -> None:
    assert expires_headers(_spec(spec), NOW) == expected


def test_expires_modified() -> None:
    mtime = NOW - 1800
    assert expires_headers(_spec("+1h", True), NOW, mtime) == [
        ("Expires", http_date(mtime + 3600)), ("Cache-Control", "max-age=1800")]
    # already past: no-cache
    assert expires_headers(_spec("1h", True), NOW, NOW - 7200) == [
        ("Expires", http_date(NOW - 3600)), ("Cache-Control", "no-cache")]
    # no mtime known: counts from access time
    assert expires_headers(_spec("1h", True), NOW) == [
        ("Expires", http_date(MTIME + 3600)), ("Cache-Control", "max-age=3600")]


def test_expires_daily() -> None:
    h = expires_headers(_spec("@15h30m"), NOW)
    assert [k for k, _ in h] == ["Expires", "Cache-Control"]
    exp = parse_http_date(h[0][1])
    assert exp is not None and MTIME < exp <= MTIME + 86400 + 3600
    assert h[1][1] == f"max-age={int(exp) - MTIME}"


def test_http_date_cache_is_per_second() -> None:
    static._DATE.sec = -1
    a = http_date(NOW)
    assert (static._DATE.sec, static._DATE.text) == (MTIME, a)
    assert http_date(NOW + 0.4) is a


# --------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------

_RANGE_TEXT = hs.text(alphabet="0123456789-, =bytes\t", max_size=60)


@settings(max_examples=400, deadline=None)
@given(spec=_RANGE_TEXT, size=hs.integers(min_value=0, max_value=5000))
def test_any_range_header_is_bounded(spec: str, size: int) -> None:
    st = os.stat_result((0o100644, 1, 1, 1, 0, 0, size, MTIME, MTIME, MTIME))
    p = plan_response("GET", {"range": "bytes=" + spec}, st, "t")
    assert p.status in (200, 206, 416)
    file_bytes = sum(n for part in p.body if isinstance(part, tuple) for _, n in [part])
    assert file_bytes <= size  # never more file data than the file holds (F13/F14)
    for part in p.body:
        if isinstance(part, tuple):
            off, n = part
            assert 0 <= off and n > 0 and off + n <= size
    if p.status != 416:
        assert sum(len(x) if isinstance(x, bytes) else x[1] for x in p.body) == p.content_length
        assert hdict(p)["Content-Length"] == str(p.content_length)


@settings(max_examples=300, deadline=None)
@given(hs.text(max_size=40))
def test_parse_http_date_never_raises(text: str) -> None:
    r = parse_http_date(text)
    assert r is None or isinstance(r, float)
