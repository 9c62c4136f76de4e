"""The proxy cache's entries on disk, shared by every worker (the filesystem is the index),
and the manager and loader the master runs (nginx's cache manager and cache loader).

An entry is one file, named by the md5 of its key under the zone's `levels`:

    HEADER (fixed, see _HEAD)   magic, valid_until, stored, stale windows, body offset and
                                length, status, and the lengths of the next three parts
    key                         the cache key (checked on read: an md5 collision is a miss)
    vary                        the Vary names, "\\n"-joined, then "\\0" and the variant md5
    head                        the upstream's status line and fields as received, CRLF
    body                        at `body_start`, sent with sendfile

An entry with no head (length 0) is an upstream error that error_page intercepted (nginx
keeps it as node->error in the zone's memory): a hit on it is answered with that status,
through error_page again.

It is written to a temp file in the zone's directory and renamed into place once the body
is complete, so no reader ever sees half an entry (use_temp_path is not needed: the temp
file is always on the cache's filesystem). A revalidation rewrites the fixed header in
place (ngx_http_file_cache_update_header).

Locks are files beside the entry (`<entry>.lock`, created with O_EXCL): held by the one
request that fills a missing entry (proxy_cache_lock) or refreshes an expired one (nginx's
node->updating); a lock older than proxy_cache_lock_age is taken over. Within one worker
the waiters also wait on a future, woken as soon as the entry is there.

Each worker keeps an in-memory index of the keys it has seen (`Zone`), bounded by the zone's
size (nginx: about 8000 keys per megabyte): the parsed head of each entry it served (so a
hit does not parse it again while the file is unchanged) and its use count
(proxy_cache_min_uses, counted per worker). A hit marks the file used (its atime) at most
once a minute per key, which the manager reads for `inactive`.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import os
import struct
import time
from typing import BinaryIO, Final

from truehop.conf.ast import ConfigError
from truehop.conf.model import CachePath, Config, Settings
from truehop.http.events import ResponseHead
from truehop.proxy.cache.policy import entry_path

MAGIC: Final = b"THCACHE1"
# magic, valid_until, stored, updating_sec, error_sec, body_start, body_len, status,
# key length, vary length, head length
_HEAD: Final = struct.Struct("<8sddddqqIIII")
_TOUCH_EVERY: Final = 60.0
TEMP_PREFIX: Final = ".tmp-"
LOCK_SUFFIX: Final = ".lock"


class Entry:
    """An entry opened for reading: its metadata and the open file (the caller closes it)."""

    __slots__ = ("path", "fd", "valid_until", "stored", "updating_sec", "error_sec",
                 "body_start", "body_len", "status", "key", "vary", "variant", "head",
                 "ino", "mtime_ns", "error")

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.valid_until = 0.0
        self.stored = 0.0
        self.updating_sec = 0.0
        self.error_sec = 0.0
        self.body_start = 0
        self.body_len = 0
        self.status = 0
        self.key = ""
        self.vary: tuple[str, ...] = ()
        self.variant = ""
        self.head: ResponseHead | None = None
        self.ino = 0
        self.mtime_ns = 0
        self.error = False      # an intercepted error (no head, no body)

    def fileno(self) -> int:
        return self.fd     # what sendfile takes

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def header_value(self, name: str) -> str | None:
        h = self.head
        return h.get(name) if h is not None else None


class _Meta:
    """What a worker remembers of an entry file it read (so a hit skips the parsing)."""

    __slots__ = ("ino", "mtime_ns", "valid_until", "stored", "updating_sec", "error_sec",
                 "body_start", "body_len", "status", "key", "vary", "variant", "head",
                 "touched", "error")

    def __init__(self, e: Entry) -> None:
        self.ino = e.ino
        self.mtime_ns = e.mtime_ns
        self.valid_until = e.valid_until
        self.stored = e.stored
        self.updating_sec = e.updating_sec
        self.error_sec = e.error_sec
        self.body_start = e.body_start
        self.body_len = e.body_len
        self.status = e.status
        self.key = e.key
        self.vary = e.vary
        self.variant = e.variant
        self.head = e.head
        self.touched = 0.0
        self.error = e.error


def parse_head(raw: bytes) -> ResponseHead:
    """The stored upstream head ("HTTP/1.1 200 OK\\r\\nName: value\\r\\n...")."""
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    version = parts[0][5:] if parts[0].startswith("HTTP/") else "1.1"
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 200
    reason = parts[2] if len(parts) > 2 else ""
    headers: list[tuple[str, str]] = []
    for ln in lines[1:]:
        if not ln:
            continue
        k, _, v = ln.partition(":")
        headers.append((k, v.strip()))
    return ResponseHead(status, reason, version, headers, None, False, True)


def serialize_head(h: ResponseHead) -> bytes:
    out = [f"HTTP/{h.version} {h.status} {h.reason}\r\n"]
    for k, v in h.headers:
        out.append(f"{k}: {v}\r\n")
    return "".join(out).encode("latin-1", "replace")


class Zone:
    """One cache zone as a worker sees it: the configured path, the in-memory index (LRU,
    bounded by the zone's size), the locks this worker holds and who waits on them."""

    __slots__ = ("conf", "index", "inflight", "uses", "temp_seq", "max_keys")

    def __init__(self, conf: CachePath) -> None:
        self.conf = conf
        self.index: collections.OrderedDict[str, _Meta] = collections.OrderedDict()
        # hex key -> the future waiters in this worker wake on (lock held here)
        self.inflight: dict[str, asyncio.Future[None]] = {}
        self.uses: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.temp_seq = 0
        self.max_keys = conf.max_keys

    def path_of(self, hexkey: str) -> str:
        return entry_path(self.conf.path, self.conf.levels, hexkey)

    # -- uses (proxy_cache_min_uses) ----------------------------------------------------

    def use(self, hexkey: str) -> int:
        n = self.uses.get(hexkey, 0) + 1
        self.uses[hexkey] = n
        self.uses.move_to_end(hexkey)
        if len(self.uses) > self.max_keys:
            self.uses.popitem(last=False)
        return n

    # -- reading ---------------------------------------------------------------------------

    def open(self, hexkey: str, key: str, now: float) -> Entry | None:
        """The entry of `hexkey`, opened, or None (missing, unreadable, another key's)."""
        path = self.path_of(hexkey)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.index.pop(hexkey, None)
            return None
        e = Entry(path, fd)
        try:
            st = os.fstat(fd)
            e.ino = st.st_ino
            e.mtime_ns = st.st_mtime_ns
            meta = self.index.get(hexkey)
            if meta is not None and meta.ino == e.ino and meta.mtime_ns == e.mtime_ns:
                _fill(e, meta)
                self.index.move_to_end(hexkey)
            else:
                if not _read(e, st.st_size):
                    e.close()
                    return None
                meta = _Meta(e)
                self.index[hexkey] = meta
                if len(self.index) > self.max_keys:
                    self.index.popitem(last=False)
            if e.key != key:
                e.close()
                return None
            if now - meta.touched >= _TOUCH_EVERY:
                # the manager's `inactive` reads the last use from the file's atime
                meta.touched = now
                try:
                    os.utime(path, ns=(int(now * 1e9), e.mtime_ns))
                except OSError:
                    pass
        except OSError:
            e.close()
            return None
        return e

    # -- writing ---------------------------------------------------------------------------

    def store_error(self, hexkey: str, key: str, status: int, valid_until: float) -> None:
        """An intercepted upstream error remembered until `valid_until` (an entry with no
        head and no body, see the module docstring)."""
        head = ResponseHead(status, "", "1.1", [], None, False, True)
        w = self.writer(hexkey, key, head, valid_until, 0.0, 0.0, (), "", error=True)
        if w is not None:
            w.commit()

    def writer(self, hexkey: str, key: str, head: ResponseHead, valid_until: float,
               updating_sec: float, error_sec: float, vary: tuple[str, ...],
               variant_hex: str, error: bool = False) -> EntryWriter | None:
        self.temp_seq += 1
        tmp = os.path.join(self.conf.path, f"{TEMP_PREFIX}{os.getpid()}-{self.temp_seq}")
        try:
            f = open(tmp, "wb", buffering=65536)  # noqa: SIM115 (the writer closes it)
        except OSError:
            return None
        return EntryWriter(self, hexkey, tmp, f, key, head, valid_until, updating_sec,
                           error_sec, vary, variant_hex, error)

    def update_validity(self, e: Entry, valid_until: float, now: float) -> None:
        """A revalidated entry (304): its fixed header rewritten in place."""
        try:
            fd = os.open(e.path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.pwrite(fd, struct.pack("<dd", valid_until, now), 8)
        except OSError:
            pass
        finally:
            os.close(fd)
        for meta in self.index.values():
            if meta.ino == e.ino:
                meta.valid_until = valid_until
                meta.stored = now
                try:
                    meta.mtime_ns = os.stat(e.path).st_mtime_ns
                except OSError:
                    pass
                break

    # -- locks -----------------------------------------------------------------------------

    def try_lock(self, hexkey: str, age: float) -> bool:
        """Take the lock of `hexkey` (O_EXCL); one older than `age` is taken over."""
        path = self.path_of(hexkey) + LOCK_SUFFIX
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                try:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                except OSError:
                    return False
                continue
            except FileExistsError:
                try:
                    st = os.stat(path)
                except OSError:
                    continue        # released meanwhile: try again
                if time.time() - st.st_mtime < age:
                    return False
                try:
                    os.unlink(path)  # older than proxy_cache_lock_age: taken over
                except OSError:
                    pass
                continue
            except OSError:
                return False
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            loop = asyncio.get_running_loop()
            old = self.inflight.get(hexkey)
            if old is not None and not old.done():
                old.set_result(None)
            self.inflight[hexkey] = loop.create_future()
            return True
        return False

    def locked(self, hexkey: str, age: float) -> bool:
        """Someone (any worker) holds a lock younger than `age` on `hexkey`."""
        if hexkey in self.inflight:
            return True
        try:
            st = os.stat(self.path_of(hexkey) + LOCK_SUFFIX)
        except OSError:
            return False
        return time.time() - st.st_mtime < age

    def unlock(self, hexkey: str) -> None:
        try:
            os.unlink(self.path_of(hexkey) + LOCK_SUFFIX)
        except OSError:
            pass
        fut = self.inflight.pop(hexkey, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def wait_unlocked(self, hexkey: str, timeout: float) -> None:
        """Until the lock on `hexkey` goes (or `timeout`): on the future when this worker
        holds it, else by looking at the lock file every 20 ms (another worker's)."""
        fut = self.inflight.get(hexkey)
        if fut is not None:
            try:
                await asyncio.wait_for(asyncio.shield(fut), timeout)
            except TimeoutError:
                pass
            return
        path = self.path_of(hexkey) + LOCK_SUFFIX
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not os.path.exists(path):
                return
            await asyncio.sleep(0.02)


def _fill(e: Entry, m: _Meta) -> None:
    e.valid_until = m.valid_until
    e.stored = m.stored
    e.updating_sec = m.updating_sec
    e.error_sec = m.error_sec
    e.body_start = m.body_start
    e.body_len = m.body_len
    e.status = m.status
    e.key = m.key
    e.vary = m.vary
    e.variant = m.variant
    e.head = m.head
    e.error = m.error


def _read(e: Entry, size: int) -> bool:
    """Parse an entry's header (False: not an entry of ours, or cut short)."""
    first = os.pread(e.fd, 16384, 0)
    if len(first) < _HEAD.size or not first.startswith(MAGIC):
        return False
    (_, e.valid_until, e.stored, e.updating_sec, e.error_sec, e.body_start, e.body_len,
     e.status, klen, vlen, hlen) = _HEAD.unpack_from(first)
    need = _HEAD.size + klen + vlen + hlen
    if need > len(first):
        first = os.pread(e.fd, need, 0)
        if len(first) < need:
            return False
    if e.body_start + e.body_len != size:
        return False
    p = _HEAD.size
    e.key = first[p:p + klen].decode("latin-1")
    p += klen
    vary_raw = first[p:p + vlen].decode("latin-1")
    p += vlen
    names, _, e.variant = vary_raw.partition("\0")
    e.vary = tuple(n for n in names.split("\n") if n)
    if hlen:
        e.head = parse_head(first[p:p + hlen])
    else:
        e.error = True
    return True


class EntryWriter:
    """A new entry being written (the tee of a relayed body): `write` each body chunk,
    `commit` once the body is whole (renamed into place), else `discard`."""

    __slots__ = ("zone", "hexkey", "tmp", "f", "length", "failed", "done", "body_start",
                 "prefix", "header_fields")

    def __init__(self, zone: Zone, hexkey: str, tmp: str, f: BinaryIO, key: str,
                 head: ResponseHead, valid_until: float, updating_sec: float,
                 error_sec: float, vary: tuple[str, ...], variant_hex: str,
                 error: bool = False) -> None:
        self.zone = zone
        self.hexkey = hexkey
        self.tmp = tmp
        self.f = f
        self.length = 0
        self.failed = False
        self.done = False
        kb = key.encode("latin-1", "replace")
        vb = ("\n".join(vary) + "\0" + variant_hex).encode("latin-1", "replace") \
            if vary else b""
        hb = b"" if error else serialize_head(head)
        self.body_start = _HEAD.size + len(kb) + len(vb) + len(hb)
        self.header_fields = (valid_until, time.time(), updating_sec, error_sec, head.status,
                              len(kb), len(vb), len(hb))
        self.prefix = kb + vb + hb
        try:
            self._file().write(self._header(0) + self.prefix)
        except OSError:
            self.failed = True

    def _file(self) -> BinaryIO:
        return self.f

    def _header(self, body_len: int) -> bytes:
        vu, st, us, es, status, kl, vl, hl = self.header_fields
        return _HEAD.pack(MAGIC, vu, st, us, es, self.body_start, body_len, status, kl, vl, hl)

    def write(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            self._file().write(data)
            self.length += len(data)
        except OSError:
            self.failed = True

    def commit(self) -> bool:
        """The body is whole: the entry goes into place (True), or is dropped."""
        if self.done:
            return False
        self.done = True
        f = self._file()
        try:
            if self.failed:
                raise OSError("write failed")
            f.seek(0)
            f.write(self._header(self.length))
            f.close()
            final = self.zone.path_of(self.hexkey)
            try:
                os.rename(self.tmp, final)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.rename(self.tmp, final)
            return True
        except OSError:
            self._drop()
            return False

    def discard(self) -> None:
        if self.done:
            return
        self.done = True
        self._drop()

    def _drop(self) -> None:
        try:
            self._file().close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


# -- start-up: the zones' directories, checked -------------------------------------------------


def prepare(cfg: Config, uid: int | None) -> None:
    """What the runtime does with the cache zones before serving (also for `-t`): every
    `proxy_cache` names a declared zone ("zero size shared memory zone" in nginx; said here
    as the parser says it), and each zone's directory exists (ngx_create_paths), owned by
    the workers' user when the master runs as root."""
    zones = {z.zone: z for z in cfg.http.settings.proxy_cache_path}
    for s, where in _cache_settings(cfg):
        tpl = s.proxy_cache
        if tpl is not None and tpl.static is not None and tpl.static not in zones:
            raise ConfigError(f'"proxy_cache" zone "{tpl.static}" is unknown', where[0],
                              where[1])
    for z in zones.values():
        try:
            os.makedirs(z.path, 0o700, exist_ok=True)
        except OSError as e:
            raise ConfigError(f'mkdir() "{z.path}" failed ({e.errno}: {e.strerror})',
                              z.where[0], z.where[1]) from None
        if uid is not None and os.geteuid() == 0:
            try:
                os.chown(z.path, uid, -1)
            except OSError:
                pass


def _cache_settings(cfg: Config) -> list[tuple[Settings, tuple[str, int]]]:
    out: list[tuple[Settings, tuple[str, int]]] = []
    top = cfg.http.settings
    out.append((top, top.where.get("proxy_cache", ("", 0))))
    stack: list[object] = []
    for srv in cfg.http.servers:
        out.append((srv.settings, srv.settings.where.get("proxy_cache", ("", 0))))
        stack.extend(srv.locations)
        stack.extend(srv.named.values())
    while stack:
        loc = stack.pop()
        s = loc.settings  # type: ignore[attr-defined]
        out.append((s, s.where.get("proxy_cache", ("", 0))))
        stack.extend(loc.children)  # type: ignore[attr-defined]
        for op in loc.ops:  # type: ignore[attr-defined]
            inner = getattr(op, "loc", None)
            if inner is not None:
                stack.append(inner)
    return out


# -- the manager and the loader (run by the master) --------------------------------------------


class Manager:
    """nginx's cache manager and loader for every zone of a configuration, run by the
    master between signals (`tick`). The first pass over a zone is the loader: it counts
    what is on disk (and removes the temp files of dead workers) while the workers already
    serve from the files. Then, every second, `inactive` entries go, then the least
    recently used ones while the zone is over `max_size`, over its keys, or the disk has
    less than `min_free` free."""

    def __init__(self, paths: tuple[CachePath, ...], log: object | None = None) -> None:
        self.paths = paths
        self.log = log
        self.last = 0.0
        self.loaded: set[str] = set()
        self.removed = 0

    def tick(self, now: float | None = None) -> None:
        t = time.time() if now is None else now
        if t - self.last < 1.0:
            return
        self.last = t
        for z in self.paths:
            try:
                self.manage(z, t)
            except OSError:
                pass

    def manage(self, z: CachePath, now: float) -> None:
        entries, temps = scan(z.path)
        first = z.path not in self.loaded
        if first:
            self.loaded.add(z.path)
            for p in temps:
                if not _pid_alive(p):
                    _unlink(p)
            total = sum(size for _, size, _ in entries)
            notice = getattr(self.log, "notice", None)
            if notice is not None:
                notice(f"http file cache: {z.path} {total / 1048576:.3f}M, bsize: 4096")
        entries.sort()      # least recently used first
        keep: list[tuple[float, int, str]] = []
        for used, size, path in entries:
            if now - used > z.inactive:
                _unlink(path)
                self.removed += 1
            else:
                keep.append((used, size, path))
        total = sum(size for _, size, _ in keep)
        i = 0
        while i < len(keep) and ((z.max_size and total > z.max_size)
                                 or len(keep) - i > z.max_keys
                                 or (z.min_free and _free(z.path) < z.min_free)):
            _unlink(keep[i][2])
            self.removed += 1
            total -= keep[i][1]
            i += 1


def scan(root: str) -> tuple[list[tuple[float, int, str]], list[str]]:
    """Every entry under `root` as (last use, size on disk, path), and the temp files."""
    entries: list[tuple[float, int, str]] = []
    temps: list[str] = []
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for de in it:
                name = de.name
                try:
                    if de.is_dir(follow_symlinks=False):
                        stack.append(de.path)
                        continue
                    if name.startswith(TEMP_PREFIX):
                        temps.append(de.path)
                        continue
                    if name.endswith(LOCK_SUFFIX) or len(name) != 32:
                        continue
                    st = de.stat(follow_symlinks=False)
                except OSError:
                    continue
                entries.append((max(st.st_atime, st.st_mtime),
                                st.st_blocks * 512 if st.st_blocks else st.st_size, de.path))
    return entries, temps


def _pid_alive(temp_path: str) -> bool:
    name = os.path.basename(temp_path)[len(TEMP_PREFIX):]
    pid_s = name.split("-", 1)[0]
    if not pid_s.isdigit():
        return False
    try:
        os.kill(int(pid_s), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _free(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
