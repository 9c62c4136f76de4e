"""The buffered request body (`proxy_request_buffering on`), kept as nginx keeps it.

Theory of operation. A body is read from its `BodyStream` (HTTP/1.x or HTTP/2 alike) before
the upstream is chosen, so that it can be sent again to the next peer
(`proxy_next_upstream`). nginx keeps at most `client_body_buffer_size` of it in memory:

* a body that fits stays in memory, as `bytes`: nothing here costs more than the plain
  read-and-join it replaced (no file, no extra await);
* a body that does not fit goes to a temporary file under `client_body_temp_path`, all of
  it (the part already in memory first), as ngx_http_write_request_body does, so that
  `$request_body_file` names a file holding the whole body. Memory per request stays below
  `client_body_buffer_size` plus one chunk read from the client;
* `client_body_in_file_only on|clean` sends every body, even a small or empty one, to the
  file, and keeps it named (`on`: after the request too; `clean`: removed when it ends).
  Without it the file is unlinked as soon as it is created (ngx_open_tempfile without
  `persistent`): nothing is left on disk, whatever ends the request or the worker.

The file is sent to the upstream by `BodyFile.send`, 64 KiB at a time from offset 0 with the
connection's back-pressure, so each try re-reads it whole. `BodyFile.close` (the proxy calls
it when the request ends, however it ends) closes the descriptor and, for `clean`, removes
the name.

File names are nginx's: ten digits from a per-worker counter, under the level directories
`client_body_temp_path path 1 2` asks for (taken from the end of the name, as
ngx_create_hashed_filename does); a name already taken (another worker, a kept file) moves
the counter on by a random step, as ngx_next_temp_number(1) does.
"""

from __future__ import annotations

import os
import random
from typing import Protocol

from truehop.http.events import ProtocolError
from truehop.http.exchange import BodyStream

CHUNK = 64 * 1024       # read from the file and written to the upstream at a time

# client_body_in_file_only
FILE_ONLY_OFF = "off"
FILE_ONLY_ON = "on"
FILE_ONLY_CLEAN = "clean"

TempPath = tuple[str, tuple[int, ...]]   # client_body_temp_path: directory, levels


class BodyFileError(Exception):
    """The temp file could not be created, written or read. `message` is nginx's [crit]
    line (`open() "/path/0000000001" failed (13: Permission denied)`); the request is a 500."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class Sink(Protocol):
    """What `BodyFile.send` writes to: an upstream connection (net.upstream)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self, timeout: float) -> None: ...


class _Counter:
    """The temp-file number of this process (nginx's ngx_temp_number, not shared between
    workers here: a collision is seen by O_EXCL and skipped)."""

    def __init__(self) -> None:
        self.pid = 0
        self.n = 0

    def next(self, collision: bool) -> int:
        pid = os.getpid()
        if pid != self.pid:
            # a new (forked) worker starts somewhere else than its siblings
            self.pid = pid
            self.n = random.randrange(1 << 32)
        self.n = (self.n + (random.randrange(1, 1 << 16) if collision else 1)) & 0xFFFFFFFF
        return self.n


_COUNTER = _Counter()


def temp_name(path: str, levels: tuple[int, ...], n: int) -> str:
    """`path/[levels/]0000000042`: each level is that many characters taken from the end of
    the name, the first level the last characters (ngx_create_hashed_filename)."""
    name = f"{n:010d}"
    if not levels:
        return f"{path}/{name}"
    parts = [path]
    end = len(name)
    for lv in levels:
        parts.append(name[end - lv:end])
        end -= lv
    parts.append(name)
    return "/".join(parts)


def _os_error(call: str, name: str, e: OSError) -> BodyFileError:
    return BodyFileError(f'{call} "{name}" failed ({e.errno}: {e.strerror})')


class BodyFile:
    """A request body in a temp file. `name` is `$request_body_file`; `fd` is -1 once
    closed. `persistent`: the name stays on disk while the request runs (in_file_only);
    `clean`: and is removed when it ends."""

    __slots__ = ("fd", "name", "length", "persistent", "clean")

    def __init__(self, fd: int, name: str, persistent: bool, clean: bool) -> None:
        self.fd = fd
        self.name = name
        self.length = 0
        self.persistent = persistent
        self.clean = clean

    @classmethod
    def create(cls, temp: TempPath, persistent: bool, clean: bool) -> BodyFile:
        path, levels = temp
        collision = False
        name = ""
        while True:
            if name == "":
                name = temp_name(path, levels, _COUNTER.next(collision))
            try:
                fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:
                collision = True
                name = ""
            except FileNotFoundError as e:
                if not levels or os.path.isdir(os.path.dirname(name)):
                    raise _os_error("open()", name, e) from None
                # the level directories are made on first use (ngx_create_full_path),
                # then the same name is tried again
                _make_levels(name, path)
            except OSError as e:
                raise _os_error("open()", name, e) from None
        if not persistent:
            # as ngx_open_tempfile: the name goes at once, the data lives while fd is open
            try:
                os.unlink(name)
            except OSError:
                pass
        return cls(fd, name, persistent, clean)

    def write(self, parts: list[bytes]) -> None:
        """Append `parts` (one writev; short writes are finished, as ngx_writev_file)."""
        fd = self.fd
        total = 0
        for p in parts:
            total += len(p)
        try:
            n = os.writev(fd, parts)
            if n < total:
                rest = memoryview(b"".join(parts))[n:]
                while rest:
                    rest = rest[os.write(fd, rest):]
        except OSError as e:
            raise _os_error("writev()", self.name, e) from None
        self.length += total

    async def send(self, conn: Sink, timeout: float) -> None:
        """Write the whole body to `conn`, from the start, a chunk at a time, waiting for the
        connection to drain between chunks. Stops quietly if the request ended meanwhile (a
        sender left running after the response: the descriptor may be reused by then)."""
        off = 0
        length = self.length
        while off < length:
            fd = self.fd
            if fd < 0:
                return
            try:
                data = os.pread(fd, min(CHUNK, length - off), off)
            except OSError as e:
                raise _os_error("pread()", self.name, e) from None
            if not data:
                raise BodyFileError(f'pread() "{self.name}" read only {off} of {length} bytes')
            off += len(data)
            conn.write(data)
            await conn.drain(timeout)

    def read(self) -> bytes:
        """The whole body (tests and small files only)."""
        return os.pread(self.fd, self.length, 0) if self.length else b""

    def __del__(self) -> None:
        # a backstop: the proxy closes it when the exchange ends
        if self.fd >= 0:
            try:
                self.close()
            except Exception:
                pass

    def close(self) -> None:
        """Release the file: close it; remove its name for `clean` (kept for `on`)."""
        fd = self.fd
        if fd < 0:
            return
        self.fd = -1
        os.close(fd)
        if self.persistent and self.clean:
            try:
                os.unlink(self.name)
            except OSError:
                pass


def _make_levels(name: str, path: str) -> None:
    d = os.path.dirname(name)
    todo = []
    while d != path and len(d) > len(path):
        todo.append(d)
        d = os.path.dirname(d)
    for sub in reversed(todo):
        try:
            os.mkdir(sub, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise _os_error("mkdir()", sub, e) from None


async def read_body(stream: BodyStream, limit: int, timeout: float | None, buffer_size: int,
                    file_only: str, temp: TempPath) -> bytes | BodyFile:
    """Read the whole body: `bytes` when it fits in `buffer_size` (and `file_only` is off),
    else a `BodyFile` holding all of it. Raises ProtocolError(413) past `limit`, and the
    stream's own errors (client timeout, bad chunk, client gone); the file is released then.
    BodyFileError when the file cannot be made or written."""
    parts: list[bytes] = []
    total = 0
    held = 0             # bytes in `parts`
    bf: BodyFile | None = None
    if file_only != FILE_ONLY_OFF:
        bf = BodyFile.create(temp, True, file_only == FILE_ONLY_CLEAN)
    try:
        while True:
            chunk = await stream.read(timeout)
            if chunk is None:
                break
            total += len(chunk)
            if total > limit:
                raise ProtocolError(413, "client intended to send too large body")
            parts.append(chunk)
            held += len(chunk)
            if held > buffer_size:
                # the buffer is full: what it holds and all that follows goes to the file
                if bf is None:
                    bf = BodyFile.create(temp, False, False)
                bf.write(parts)
                parts = []
                held = 0
        if bf is None:
            return parts[0] if len(parts) == 1 else b"".join(parts)
        if parts:
            bf.write(parts)
        return bf
    except BaseException:
        if bf is not None:
            bf.close()
            if bf.persistent and not bf.clean:
                # `on` keeps a complete body's file; a body that never arrived whole is not
                # one (nginx leaves it behind; nobody could tell it was cut short)
                try:
                    os.unlink(bf.name)
                except OSError:
                    pass
        raise
