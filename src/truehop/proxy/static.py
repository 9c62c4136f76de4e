"""Serving files from disk with the meaning of nginx's static, index, try_files, alias/root,
range, not_modified and headers (`expires`) modules.

Theory of operation
-------------------

Everything here is a decision; nothing here writes to a socket. The caller (the pipeline)
runs the steps in nginx's order and sends what the last step returns:

1. ``method_error(method)``: static content answers GET and HEAD (and POST only to
   refuse it after the file is found, as nginx does: a POST to a missing file is a 404).
2. ``map_path(uri, root=..., alias=..., location_prefix=...)``: nginx's
   ``ngx_http_map_uri_to_path``: ``root + uri``, or ``alias + uri[len(prefix):]`` in a prefix
   location, or the (variable-expanded) alias itself in a regex location.
3. A URI ending in ``/`` goes to ``find_index`` (the index module: an internal redirect to
   ``uri + index`` or 403/404); a URI given to ``try_files`` goes to ``try_files``.
4. ``resolve(path, root_dir=...)``: stat, symlink guard, directory detection. A directory
   requested without the slash is a 301 to ``dir_redirect_location(...)``.
5. ``open_file(target)``: open for ``sendfile``; returns the fd and a fresh ``fstat``.
6. ``plan_response(method, headers, st, mime)``: the not_modified filter (304/412), the
   range filter (206/416, multipart/byteranges) and the header list in nginx's order.
   ``expires_headers(...)`` produces the ``expires`` directive's headers; pass them as
   ``filter_headers`` so that they land where nginx puts them.

Deliberate, documented deviations from nginx (all of them refuse more, never less):

- **Symlinks** (nginx default ``disable_symlinks off``) — a file whose realpath leaves the
  ``root``/``alias`` directory is refused with 403 unless ``follow_symlinks_outside``.
  Symlinks that stay inside the directory are followed.
- **Off-by-slash alias** (``location /static { alias /srv/public/static/; }``) — ``map_path``
  gives the same path nginx builds (``/static../secret.txt`` -> ``/srv/public/static/../secret.txt``)
  and nginx serves ``/srv/public/secret.txt``. ``resolve`` refuses any path whose
  dot-segments leave ``root_dir`` with 404 (the lint layer warns about the config itself).
- **Range count** — nginx's ``max_ranges`` is unlimited by default; with ``max_ranges=None`` we
  allow ``DEFAULT_MAX_RANGES`` (16); more ranges give the whole file (200), which is what nginx
  does when ``max_ranges`` is exceeded.
- **Directory redirect** — the ``Location`` path is percent-escaped for controls, space,
  ``"``, ``#``, ``%``, ``?`` and bytes >= 0x80; nginx copies the decoded URI verbatim.
- **405** for POST/PUT/... carries ``Allow: GET, HEAD`` (nginx sends none).

Strings: URIs are ``str`` where each character is one byte (latin-1), as elsewhere in
truehop; filesystem paths are ``str`` built the same way and are encoded with latin-1 before
each OS call, so every byte of the URI reaches the filesystem unchanged.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat as stat_mod
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = [
    "DEFAULT_MAX_RANGES",
    "EXPIRES_STATUSES",
    "BodyPart",
    "byte_ranges",
    "multipart_body",
    "ExpiresSpec",
    "IndexRedirect",
    "StaticError",
    "StaticPlan",
    "StaticTarget",
    "TryFilesResult",
    "dir_redirect_location",
    "etag_for",
    "expires_headers",
    "find_index",
    "http_date",
    "index_candidates",
    "map_path",
    "method_error",
    "mime_for",
    "open_file",
    "parse_http_date",
    "plan_response",
    "resolve",
    "try_files",
]

DEFAULT_MAX_RANGES: Final = 16
"""Ranges allowed when the config says nothing (nginx: unlimited). More -> 200 whole file."""

EXPIRES_STATUSES: Final = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})
"""Statuses for which nginx's headers filter adds `expires` (and non-`always` add_header)."""

_NGX_MAX_OFF_T: Final = (1 << 63) - 1

# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StaticError:
    """Answer with nginx's standard error page for `status`; `headers` are added to it
    (e.g. `Allow` on 405). `reason` is the error_log text (nginx wording where there is one)."""

    status: int
    reason: str
    errno: int | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class StaticTarget:
    """A path that exists inside its root directory. `path` is as mapped (latin-1 str),
    `realpath` the resolved one (what `open_file` opens), `st` the stat (symlinks followed)."""

    path: str
    realpath: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat_mod.S_ISDIR(self.st.st_mode)

    @property
    def is_file(self) -> bool:
        return stat_mod.S_ISREG(self.st.st_mode)


@dataclass(frozen=True, slots=True)
class IndexRedirect:
    """The index module found `uri`: do an internal redirect to it (keep the args)."""

    uri: str


@dataclass(frozen=True, slots=True)
class TryFilesResult:
    """Outcome of `try_files`.

    - ``file``: a candidate exists; continue in the same location with ``uri`` as the
      request URI (no re-matching; nginx sets r->uri). A ``$uri/`` candidate that matched a
      directory also gives ``file``, with ``uri`` without the trailing slash (as nginx), and
      ``is_dir`` True: the static step will then 301 to the slash form.
    - ``code``: finalize with ``code`` (``=404``).
    - ``uri``: internal redirect to ``uri`` with ``args`` (None = keep the request's args).
    - ``named``: go to the named location ``uri`` (``@name``).
    """

    kind: Literal["file", "code", "uri", "named"]
    uri: str = ""
    args: str | None = None
    code: int = 0
    is_dir: bool = False


BodyPart = tuple[int, int] | bytes
"""A piece of the response body: ``(offset, length)`` of the file, or literal bytes."""


@dataclass(frozen=True, slots=True)
class StaticPlan:
    """What to send.

    ``headers`` are in nginx's order; the first ``n_fixed`` of them are the ones nginx's
    header filter writes itself (Content-Type, Content-Length, Last-Modified) before
    ``Connection``/``Keep-Alive``; the rest are the list headers (ETag, the
    ``filter_headers``, Accept-Ranges / Content-Range). ``Server`` and ``Date`` come first
    and are the caller's.

    ``body`` is empty for HEAD and 304. If ``special`` is True, the caller answers with
    nginx's standard error page for ``status`` (text/html body, its own Content-Type and
    Content-Length) and adds ``headers`` after its own (416's ``Content-Range``).
    """

    status: int
    headers: list[tuple[str, str]]
    body: list[BodyPart] = field(default_factory=list)
    content_length: int = 0
    n_fixed: int = 0
    special: bool = False


# --------------------------------------------------------------------------------------
# methods, paths
# --------------------------------------------------------------------------------------

_ALLOW: Final = (("Allow", "GET, HEAD"),)


def method_error(method: str, *, found: bool = False) -> StaticError | None:
    """nginx's static handler method check. Before the lookup (`found=False`) anything but
    GET/HEAD/POST is a 405; after the file is found (`found=True`) POST is a 405 too."""
    if method in ("GET", "HEAD"):
        return None
    if method == "POST" and not found:
        return None
    return StaticError(405, f"method {method} not allowed for static content", None, _ALLOW)


def map_path(uri: str, *, root: str, alias: str | None, location_prefix: str,
             location_is_regex: bool = False, alias_captures_applied: bool = False) -> str:
    """nginx's ngx_http_map_uri_to_path.

    - ``root``: ``root + uri`` (no slash squashing: ``/srv/`` + ``/x`` is ``/srv//x``); the
      merged setting, whose default (``html`` under the prefix) the directive table gives.
    - ``alias`` in a prefix location: ``alias + uri[len(location_prefix):]``. Like nginx this
      does not check where the prefix ends, so ``location /static`` + ``alias .../static/``
      maps ``/static../x`` to ``.../static/../x`` (the off-by-slash hole; `resolve` refuses it).
    - ``alias`` in a regex location: the alias is the whole path (the caller has substituted
      the captures; `alias_captures_applied` is informational — nginx uses the alias as the
      full path either way).
    """
    del alias_captures_applied
    if alias is not None:
        if location_is_regex:
            return alias
        return alias + uri[len(location_prefix):]
    return root + uri


def _fs(path: str) -> bytes:
    return path.encode("latin-1")


def _inside(child: bytes, parent: bytes) -> bool:
    if parent == b"/":
        return child.startswith(b"/")
    return child == parent or child.startswith(parent.rstrip(b"/") + b"/")


def _errno_error(err: OSError, what: str, path: str) -> StaticError:
    code = err.errno
    if code in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
        return StaticError(404, f'{what} "{path}" failed ({code}: {os.strerror(code)})', code)
    if code in (errno.EACCES, errno.EPERM, errno.ELOOP, errno.EMLINK):
        return StaticError(403, f'{what} "{path}" failed ({code}: {os.strerror(code)})', code)
    return StaticError(500, f'{what} "{path}" failed ({code}: {err.strerror})', code)


def resolve(path: str, *, root_dir: str,
            follow_symlinks_outside: bool = False) -> StaticTarget | StaticError:
    """Stat `path` (from `map_path`) and check it stays inside `root_dir` (the root, or the
    alias directory; for a regex alias, the fixed part of the alias before the first capture).

    400: NUL byte. 404: missing (ENOENT, ENOTDIR, ENAMETOOLONG), not a regular file or
    directory, or dot-segments that leave `root_dir` (off-by-slash alias). 403: EACCES,
    ELOOP, or the realpath leaves `root_dir` through a symlink (unless
    `follow_symlinks_outside`). 500: any other error.

    A directory is returned as a target (`is_dir`): the caller redirects (no slash) or runs
    the index module (slash). A trailing slash on a file gives 404 (ENOTDIR), as nginx.
    """
    if "\x00" in path or "\x00" in root_dir:
        return StaticError(400, "path contains a NUL byte")
    bpath = _fs(path)
    broot = os.path.abspath(_fs(root_dir))
    if not _inside(os.path.normpath(os.path.abspath(bpath)), os.path.normpath(broot)):
        return StaticError(404, f'"{path}" is outside of "{root_dir}" (alias/root)')
    try:
        st = os.stat(bpath)
    except OSError as err:
        return _errno_error(err, "stat()", path)
    try:
        real = os.path.realpath(bpath, strict=True)
        real_root = os.path.realpath(broot, strict=True)
    except OSError as err:
        return _errno_error(err, "realpath()", path)
    if not follow_symlinks_outside and not _inside(real, real_root):
        return StaticError(403, f'"{path}" resolves to "{real.decode("latin-1")}", '
                                f'outside of "{root_dir}" (symlink)', errno.ELOOP)
    if not (stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISDIR(st.st_mode)):
        return StaticError(404, f'"{path}" is not a regular file')
    return StaticTarget(path, real.decode("latin-1"), st)


def open_file(target: StaticTarget) -> tuple[int, os.stat_result] | StaticError:
    """Open the resolved file for sendfile. Opens the realpath with O_NOFOLLOW and checks
    with fstat that it is the same regular file `resolve` looked at (a symlink swapped in
    between is refused). The caller owns the fd."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(_fs(target.realpath), flags)
    except OSError as err:
        return _errno_error(err, "open()", target.path)
    try:
        st = os.fstat(fd)
    except OSError as err:
        os.close(fd)
        return _errno_error(err, "fstat()", target.path)
    if (st.st_dev, st.st_ino) != (target.st.st_dev, target.st.st_ino):
        os.close(fd)
        return StaticError(403, f'"{target.path}" changed while being opened', errno.ELOOP)
    if not stat_mod.S_ISREG(st.st_mode):
        os.close(fd)
        return StaticError(404, f'"{target.path}" is not a regular file')
    return fd, st


# --------------------------------------------------------------------------------------
# directories: index, redirect
# --------------------------------------------------------------------------------------


def index_candidates(dir_uri: str, index_list: Sequence[str]) -> list[str]:
    """The URIs the index module would redirect to, in order: ``dir_uri + name``, or the
    name itself when it is absolute (``index index.html /fallback.html``)."""
    return [name if name.startswith("/") else dir_uri + name for name in index_list]


def find_index(dir_uri: str, dir_path: str, index_list: Sequence[str], *, root_dir: str,
               follow_symlinks_outside: bool = False) -> IndexRedirect | StaticError:
    """nginx's index module for a URI ending in ``/``: the first existing ``index`` entry
    gives an internal redirect to ``dir_uri + name`` (an absolute entry redirects without a
    test). `dir_path` is `map_path(dir_uri, ...)`. None found -> 403 (directory index is
    forbidden, autoindex off); the directory missing -> 404; ENOTDIR (a file with a trailing
    slash) -> 404; EACCES -> 403."""
    dir_tested = False
    for name in index_list:
        if name.startswith("/"):
            return IndexRedirect(name)
        res = resolve(dir_path + name, root_dir=root_dir,
                      follow_symlinks_outside=follow_symlinks_outside)
        if isinstance(res, StaticTarget):
            return IndexRedirect(dir_uri + name)
        if res.errno != errno.ENOENT:
            return res
        if not dir_tested:
            d = resolve(dir_path, root_dir=root_dir,
                        follow_symlinks_outside=follow_symlinks_outside)
            if isinstance(d, StaticError):
                return d
            if not d.is_dir:
                return StaticError(404, f'"{dir_path}" is not a directory', errno.ENOTDIR)
            dir_tested = True
    return StaticError(403, f'directory index of "{dir_path}" is forbidden')


_LOC_SAFE: Final = bytes(c for c in range(0x21, 0x7F) if chr(c) not in '"#%?')
_LOC_ESC: Final = [chr(c) if c in _LOC_SAFE else f"%{c:02X}" for c in range(256)]


def _escape_location(path: str) -> str:
    if all(0x20 < ord(ch) < 0x7F and ch not in '"#%?' for ch in path):
        return path
    return "".join(_LOC_ESC[ord(ch) & 0xFF] for ch in path)


def dir_redirect_location(uri: str, args: str | None, scheme: str, host_for_redirect: str,
                          port: int | None, default_port: int, absolute: bool) -> str:
    """`Location` of the 301 for a directory requested without the trailing slash:
    ``uri + "/"`` (+ ``"?" + args`` when args are non-empty). With ``absolute``
    (``absolute_redirect on``) it becomes ``scheme://host[:port]/...``; `host_for_redirect`
    is the server_name (``server_name_in_redirect on``) or the request's host; `port` is
    omitted when None (``port_in_redirect off``) or equal to `default_port` (80/443)."""
    loc = _escape_location(uri) + "/"
    if args:
        loc += "?" + args
    if not absolute:
        return loc
    hostport = host_for_redirect
    if port is not None and port != default_port:
        hostport = f"{host_for_redirect}:{port}"
    return f"{scheme}://{hostport}{loc}"


# --------------------------------------------------------------------------------------
# try_files
# --------------------------------------------------------------------------------------


def _parse_fallback(fallback: str) -> TryFilesResult:
    if fallback.startswith("="):
        code = fallback[1:]
        if not code.isdigit() or not 0 < int(code) <= 999:
            raise ValueError(f'invalid code "{code}"')
        return TryFilesResult("code", code=int(code))
    if fallback.startswith("@"):
        return TryFilesResult("named", uri=fallback)
    uri, sep, args = fallback.partition("?")
    return TryFilesResult("uri", uri=uri, args=args if sep else None)


def try_files(candidates: Sequence[str], fallback: str, *, to_path: Callable[[str], str],
              root_dir: str, follow_symlinks_outside: bool = False) -> TryFilesResult:
    """nginx's try_files phase. `candidates` are the variable-expanded arguments but the
    last; `fallback` the last one (``=404``, ``@name``, or a URI with optional ``?args``).
    `to_path(uri)` maps a candidate URI to a filesystem path (usually `map_path`).

    A candidate ending in ``/`` tests for a directory (the slash is stripped, as nginx does);
    any other candidate tests for a non-directory. Errors, NUL bytes and symlinks leaving
    `root_dir` count as "missing" (nginx with disable_symlinks logs and continues).
    """
    for cand in candidates:
        test_dir = cand.endswith("/") and len(cand) > 1
        uri = cand[:-1] if test_dir else cand
        res = resolve(to_path(uri), root_dir=root_dir,
                      follow_symlinks_outside=follow_symlinks_outside)
        if isinstance(res, StaticError):
            continue
        if res.is_dir != test_dir:
            continue
        return TryFilesResult("file", uri=uri, is_dir=res.is_dir)
    return _parse_fallback(fallback)


# --------------------------------------------------------------------------------------
# dates
# --------------------------------------------------------------------------------------

_WDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _DateCache:
    """The last second formatted. An attribute of a Final instance, not a module global:
    the compiled build reads a global through the module's dict, an attribute directly."""

    __slots__ = ("sec", "text")

    def __init__(self) -> None:
        self.sec = -(1 << 62)
        self.text = ""


_DATE: Final = _DateCache()


def _format_http_date(sec: int) -> str:
    t = time.gmtime(sec)
    return (f"{_WDAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def http_date(ts: float) -> str:
    """IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``) of `ts` (truncated to the second);
    the last second formatted is cached."""
    sec = int(ts // 1)
    cache = _DATE
    if cache.sec == sec:
        return cache.text
    s = _format_http_date(sec)
    cache.sec = sec
    cache.text = s
    return s


_MDAYS: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse_http_date(s: str) -> float | None:
    """nginx's ngx_parse_http_time: RFC 1123 (``Sun, 06 Nov 1994 08:49:37 GMT``), RFC 850
    (``Sunday, 06-Nov-94 08:49:37 GMT``) and asctime (``Sun Nov  6 08:49:37 1994``), with
    nginx's leniency (weekday and zone not checked). None where nginx returns an error."""
    v = s.encode("latin-1", "replace") + b"\x00" * 24  # like C, read past the end safely
    end = len(s)
    fmt = ""
    p = 0
    while p < end:
        if v[p] == 0x2C:  # ','
            break
        if v[p] == 0x20:
            fmt = "isoc"
            break
        p += 1
    p += 1
    while p < end and v[p] == 0x20:
        p += 1
    if end - p < 18:
        return None

    def digits(at: int, n: int) -> int | None:
        r = 0
        for i in range(at, at + n):
            c = v[i]
            if not 0x30 <= c <= 0x39:
                return None
            r = r * 10 + c - 0x30
        return r

    day = 32
    year = 2038
    if fmt != "isoc":
        d = digits(p, 2)
        if d is None:
            return None
        day = d
        p += 2
        if v[p] == 0x20:
            if end - p < 18:
                return None
            fmt = "rfc822"
        elif v[p] == 0x2D:
            fmt = "rfc850"
        else:
            return None
        p += 1

    c0, c1, c2 = v[p], v[p + 1], v[p + 2]
    if c0 == ord("J"):
        month = 0 if c1 == ord("a") else 5 if c2 == ord("n") else 6
    elif c0 == ord("F"):
        month = 1
    elif c0 == ord("M"):
        month = 2 if c2 == ord("r") else 4
    elif c0 == ord("A"):
        month = 3 if c1 == ord("p") else 7
    elif c0 == ord("S"):
        month = 8
    elif c0 == ord("O"):
        month = 9
    elif c0 == ord("N"):
        month = 10
    elif c0 == ord("D"):
        month = 11
    else:
        return None
    p += 3
    if (fmt == "rfc822" and v[p] != 0x20) or (fmt == "rfc850" and v[p] != 0x2D):
        return None
    p += 1

    if fmt == "rfc822":
        y = digits(p, 4)
        if y is None:
            return None
        year = y
        p += 4
    elif fmt == "rfc850":
        y = digits(p, 2)
        if y is None:
            return None
        year = y + (2000 if y < 70 else 1900)
        p += 2

    if fmt == "isoc":
        if v[p] == 0x20:
            p += 1
        if not 0x30 <= v[p] <= 0x39:
            return None
        day = v[p] - 0x30
        p += 1
        if v[p] != 0x20:
            if not 0x30 <= v[p] <= 0x39:
                return None
            day = day * 10 + v[p] - 0x30
            p += 1
        if end - p < 14:
            return None

    if v[p] != 0x20:
        return None
    p += 1
    hour = digits(p, 2)
    if hour is None or v[p + 2] != 0x3A:
        return None
    p += 3
    minute = digits(p, 2)
    if minute is None or v[p + 2] != 0x3A:
        return None
    p += 3
    sec = digits(p, 2)
    if sec is None:
        return None
    p += 2

    if fmt == "isoc":
        if end - p < 5:
            return None
        if v[p] != 0x20:
            return None
        p += 1
        y = digits(p, 4)
        if y is None:
            return None
        year = y

    if hour > 23 or minute > 59 or sec > 59:
        return None
    if day == 29 and month == 1:
        if (year & 3) or (year % 100 == 0 and year % 400 != 0):
            return None
    elif day > _MDAYS[month]:
        return None

    # Gauss' formula, as nginx: shift the new year to March 1, months from 1
    month += 1
    month -= 2
    if month <= 0:
        month += 12
        year -= 1
    days = (365 * year + year // 4 - year // 100 + year // 400
            + 367 * month // 12 - 30 + day - 1 - 719527 + 31 + 28)
    return float(days * 86400 + hour * 3600 + minute * 60 + sec)


# --------------------------------------------------------------------------------------
# content type, etag
# --------------------------------------------------------------------------------------


def mime_for(path: str, types: Mapping[str, str], default_type: str) -> str:
    """nginx's ngx_http_set_exten + types lookup: the extension is what follows the last
    ``.`` of the last path segment, unless that dot starts the segment (``/.htaccess`` has
    none); it is lower-cased for the lookup. nginx takes it from the URI, not the file path
    (it matters with alias in a regex location): pass the URI."""
    i = len(path) - 1
    while i > 1:
        ch = path[i]
        if ch == "." and path[i - 1] != "/":
            ext = path[i + 1:]
            if not ext:
                return default_type
            return types.get(ext.lower(), default_type)
        if ch == "/":
            return default_type
        i -= 1
    return default_type


def _mtime(st: os.stat_result) -> int:
    return int(st[stat_mod.ST_MTIME])


def etag_for(st: os.stat_result) -> str:
    """nginx's ETag: ``"%xT-%xO"`` of mtime (seconds) and size, lower-case hex."""
    return f'"{_mtime(st) & 0xFFFFFFFFFFFFFFFF:x}-{st.st_size:x}"'


# --------------------------------------------------------------------------------------
# conditionals and ranges
# --------------------------------------------------------------------------------------


def _etag_matches(header: str, etag: str | None, weak: bool) -> bool:
    """nginx's ngx_http_test_if_match (weak=1 for If-None-Match)."""
    if header == "*":
        return True
    if etag is None:
        return False
    if weak and len(etag) > 2 and etag.startswith("W/"):
        etag = etag[2:]
    n = len(header)
    start = 0
    while start < n:
        if weak and n - start > 2 and header.startswith("W/", start):
            start += 2
        if len(etag) > n - start:
            return False
        if header.startswith(etag, start):
            pos = start + len(etag)
            while pos < n and header[pos] in " \t":
                pos += 1
            if pos == n or header[pos] == ",":
                return True
        while start < n and header[start] != ",":
            start += 1
        while start < n and header[start] in " \t,":
            start += 1
    return False


class _Declined(Exception):
    pass


class _Unsatisfiable(Exception):
    pass


def _parse_ranges(value: str, size: int, max_ranges: int) -> list[tuple[int, int]]:
    """nginx's ngx_http_range_parse over the text after ``bytes=``. Returns [start, end)
    pairs; raises _Declined (serve 200) or _Unsatisfiable (416)."""
    v = value + "\x00"
    p = 0
    ranges: list[tuple[int, int]] = []
    total = 0
    left = max_ranges
    cutoff, cutlim = divmod(_NGX_MAX_OFF_T, 10)

    def number(p: int) -> tuple[int, int]:
        n = 0
        while "0" <= v[p] <= "9":
            d = ord(v[p]) - 48
            if n >= cutoff and (n > cutoff or d > cutlim):
                raise _Unsatisfiable
            n = n * 10 + d
            p += 1
        return n, p

    while True:
        start = end = 0
        suffix = False
        while v[p] == " ":
            p += 1
        found = False
        if v[p] != "-":
            if not "0" <= v[p] <= "9":
                raise _Unsatisfiable
            start, p = number(p)
            while v[p] == " ":
                p += 1
            if v[p] != "-":
                raise _Unsatisfiable
            p += 1
            while v[p] == " ":
                p += 1
            if v[p] in ",\x00":
                end = size
                found = True
        else:
            suffix = True
            p += 1
        if not found:
            if not "0" <= v[p] <= "9":
                raise _Unsatisfiable
            end, p = number(p)
            while v[p] == " ":
                p += 1
            if v[p] not in ",\x00":
                raise _Unsatisfiable
            if suffix:
                start = size - end if end < size else 0
                end = size - 1
            end = size if end >= size else end + 1
        if start < end:
            ranges.append((start, end))
            total += end - start
            if left == 0:
                raise _Declined
            left -= 1
        elif start == 0:
            raise _Declined
        if v[p] != ",":
            break
        p += 1
    if not ranges:
        raise _Unsatisfiable
    if total > size:
        raise _Declined
    return ranges


_boundaries: Final = itertools.count(1)


def plan_response(method: str, headers: Mapping[str, str], st: os.stat_result, mime: str,
                  etag_on: bool = True, max_ranges: int | None = None, *,
                  filter_headers: Sequence[tuple[str, str]] = (),
                  if_modified_since: Literal["exact", "before", "off"] = "exact",
                  boundary: int | None = None) -> StaticPlan:
    """The response to a GET/HEAD for a regular file with stat `st`, as nginx's
    not_modified, headers and range filters shape it.

    `headers`: request headers, lower-cased names. `mime`: the full Content-Type value
    (with charset if any; empty = no Content-Type). `max_ranges`: nginx's directive
    (0 disables ranges and Accept-Ranges; None = DEFAULT_MAX_RANGES). `filter_headers`:
    what nginx's headers filter adds (`expires_headers(...)`, add_header); they are placed
    after ETag and only on statuses where nginx has them (200/206/304, and 416 because nginx
    adds them before the range filter runs). `boundary`: the multipart boundary number
    (default: a per-process counter, as nginx's ngx_next_temp_number).

    Order of checks (nginx): If-Unmodified-Since (unparsable -> 412), If-Match -> 412;
    then If-Modified-Since (`exact` equality by default) / If-None-Match (weak, `*`) -> 304;
    then Range (If-Range with an etag: byte equality; with a date: equality) -> 206/416/200.
    """
    size = st.st_size
    mtime = _mtime(st)
    etag = etag_for(st) if etag_on else None
    head = method == "HEAD"

    # not_modified filter
    ius = headers.get("if-unmodified-since")
    if ius is not None:
        t = parse_http_date(ius)
        if t is None or t < mtime:
            return StaticPlan(412, [], special=True)
    im = headers.get("if-match")
    if im is not None and not _etag_matches(im, etag, weak=False):
        return StaticPlan(412, [], special=True)
    ims = headers.get("if-modified-since")
    inm = headers.get("if-none-match")
    if ims is not None or inm is not None:
        modified = False
        if ims is not None and if_modified_since != "off":
            t = parse_http_date(ims)
            if t != mtime:
                modified = if_modified_since == "exact" or t is None or t < mtime
        elif ims is not None:
            modified = True
        if not modified and inm is not None and not _etag_matches(inm, etag, weak=True):
            modified = True
        if not modified:
            h = [("Last-Modified", http_date(mtime))]
            if etag is not None:
                h.append(("ETag", etag))
            h.extend(filter_headers)
            return StaticPlan(304, h, [], 0, n_fixed=1)

    fixed: list[tuple[str, str]] = []
    if mime:
        fixed.append(("Content-Type", mime))
    fixed.append(("Content-Length", str(size)))
    fixed.append(("Last-Modified", http_date(mtime)))
    listed: list[tuple[str, str]] = []
    if etag is not None:
        listed.append(("ETag", etag))
    listed.extend(filter_headers)

    def whole() -> StaticPlan:
        h = fixed + listed
        if limit != 0:
            h.append(("Accept-Ranges", "bytes"))
        body: list[BodyPart] = [] if head or size == 0 else [(0, size)]
        return StaticPlan(200, h, body, size, n_fixed=len(fixed))

    limit = DEFAULT_MAX_RANGES if max_ranges is None else max_ranges
    if limit == 0:
        return whole()
    rng = headers.get("range")
    if rng is None or len(rng) < 7 or rng[:6].lower() != "bytes=":
        return whole()
    if_range = headers.get("if-range")
    if if_range is not None:
        if len(if_range) >= 2 and if_range.endswith('"'):
            if etag is None or if_range != etag:
                return whole()
        elif parse_http_date(if_range) != mtime:
            return whole()
    try:
        ranges = _parse_ranges(rng[6:], size, limit)
    except _Declined:
        return whole()
    except _Unsatisfiable:
        return StaticPlan(416, [*filter_headers, ("Content-Range", f"bytes */{size}")],
                          special=True)

    lm = ("Last-Modified", http_date(mtime))
    if len(ranges) == 1:
        start, end = ranges[0]
        h = [*fixed[:-2], ("Content-Length", str(end - start)), lm, *listed,
             ("Content-Range", f"bytes {start}-{end - 1}/{size}")]
        return StaticPlan(206, h, [] if head else [(start, end - start)], end - start,
                          n_fixed=len(fixed))

    ctype, body, length = multipart_body(ranges, mime, size, boundary)
    h = [("Content-Type", ctype), ("Content-Length", str(length)), lm, *listed]
    return StaticPlan(206, h, [] if head else body, length, n_fixed=3)


def byte_ranges(value: str, size: int, max_ranges: int | None
                ) -> list[tuple[int, int]] | None | Literal[False]:
    """The ranges of a `Range: bytes=...` value (the text after `bytes=`) over `size`
    bytes, as nginx's range filter parses them: [start, end) pairs; None to send the
    whole response (too many ranges, overlapping more than the size); False for 416."""
    try:
        return _parse_ranges(value, size, DEFAULT_MAX_RANGES if max_ranges is None
                             else max_ranges)
    except _Declined:
        return None
    except _Unsatisfiable:
        return False


def multipart_body(ranges: Sequence[tuple[int, int]], mime: str, size: int,
                   boundary: int | None = None) -> tuple[str, list[BodyPart], int]:
    """nginx's multipart/byteranges answer (ngx_http_range_multipart_header): its
    Content-Type, the body as part heads (bytes) and (offset, length) pieces of the
    content, and its length."""
    num = next(_boundaries) if boundary is None else boundary
    bnd = f"{num:020d}"
    part_head = f"\r\n--{bnd}\r\n" + (f"Content-Type: {mime}\r\n" if mime else "")
    part_head += "Content-Range: bytes "
    body: list[BodyPart] = []
    length = 0
    for start, end in ranges:
        b = f"{part_head}{start}-{end - 1}/{size}\r\n\r\n".encode("latin-1")
        body.append(b)
        body.append((start, end - start))
        length += len(b) + end - start
    tail = f"\r\n--{bnd}--\r\n".encode("latin-1")
    body.append(tail)
    length += len(tail)
    return f"multipart/byteranges; boundary={bnd}", body, length


# --------------------------------------------------------------------------------------
# expires
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiresSpec:
    """An `expires` value as parsed by conf.values.parse_expires (the one parser).
    kind: off, epoch, max, access, modified, daily."""

    kind: str           # "off", "epoch", "max", "access", "modified" or "daily"
    seconds: int = 0


def _next_daily(now: int, secs: int) -> int:
    """nginx's ngx_next_time: the next local time of day `secs` after `now`."""
    tm = time.localtime(now)
    base = time.mktime((tm.tm_year, tm.tm_mon, tm.tm_mday, secs // 3600, (secs // 60) % 60,
                        secs % 60, 0, 0, -1))
    t = int(base)
    if t > now:
        return t
    nxt = time.mktime((tm.tm_year, tm.tm_mon, tm.tm_mday + 1, secs // 3600,
                       (secs // 60) % 60, secs % 60, 0, 0, -1))
    return int(nxt)


def expires_headers(es: ExpiresSpec, now: float,
                    mtime: float | None = None) -> list[tuple[str, str]]:
    """The headers nginx's ``expires`` adds (``Expires`` then ``Cache-Control``); apply
    them only for EXPIRES_STATUSES. `now`: the current time; `mtime`: the response's
    Last-Modified time (``modified``; without it nginx counts from access time)."""
    if es.kind == "off":
        return []
    if es.kind == "epoch":
        return [("Expires", "Thu, 01 Jan 1970 00:00:01 GMT"), ("Cache-Control", "no-cache")]
    if es.kind == "max":
        return [("Expires", "Thu, 31 Dec 2037 23:55:55 GMT"),
                ("Cache-Control", "max-age=315360000")]
    inow = int(now // 1)
    if es.seconds == 0 and es.kind != "daily":
        return [("Expires", http_date(inow)), ("Cache-Control", "max-age=0")]
    if es.kind == "daily":
        exp = _next_daily(inow, es.seconds)
        max_age = exp - inow
    elif es.kind == "access" or mtime is None:
        max_age = es.seconds
        exp = inow + es.seconds
    else:
        exp = int(mtime // 1) + es.seconds
        max_age = exp - inow
    if es.seconds < 0 or max_age < 0:
        cc = "no-cache"
    else:
        cc = f"max-age={max_age}"
    return [("Expires", http_date(exp)), ("Cache-Control", cc)]


def split_parts(body: Sequence[bytes | tuple[int, int]],
                max_chunk: int) -> Sequence[bytes | tuple[int, int]]:
    """sendfile_max_chunk: the file ranges of a planned body cut into pieces of at most
    `max_chunk` bytes (0: no limit), so that the sender can let other connections run
    between them, as nginx does between its sendfile() calls."""
    if max_chunk <= 0:
        return body
    for part in body:
        if not isinstance(part, bytes) and part[1] > max_chunk:
            break
    else:
        return body     # most files: nothing to cut
    out: list[bytes | tuple[int, int]] = []
    for part in body:
        if isinstance(part, bytes) or part[1] <= max_chunk:
            out.append(part)
            continue
        off, cnt = part
        while cnt > 0:
            n = min(cnt, max_chunk)
            out.append((off, n))
            off += n
            cnt -= n
    return out
