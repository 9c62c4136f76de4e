"""A buffered response read on while the client is slow (`proxy_buffering on`), as nginx's
event pipe (ngx_event_pipe) does it.

Theory of operation. The relay (proxy.relay) writes the upstream's body straight to the
client while the client keeps up. When the client's side says "wait" (`write_blocked`), a
buffered response attaches its `Spool`, which then takes the upstream's events itself, from
the connection's callbacks (net.upstream's `EventSink`), while the relay waits on the
client; once the client has caught up (all sent, drained) the spool detaches and the relay
relays directly again (the next wait attaches it again, the same file kept):

* what arrives is kept in memory up to `proxy_buffers` (number x size) not yet sent;
* past that, what memory holds is written to a temporary file under `proxy_temp_path`
  (created on first use, unlinked at once: nothing is left on disk whatever ends the
  worker), `proxy_temp_file_write_size` at a time, until the file reaches
  `proxy_max_temp_file_size`; nginx's `[warn] an upstream response is buffered to a
  temporary file ... while reading upstream` is logged when the file is made;
* with memory full and no room in the file (or `proxy_max_temp_file_size 0`), reading from
  the upstream stops (`hold`) until the client has taken some: the upstream is then read as
  fast as the client takes it, as nginx does;
* the moment the response's end is read, the upstream connection is let go (`on_end`: back
  to the keep-alive pool when reusable, the peer freed, $upstream_response_time ended) while
  the client is still fed, from the file first (its bytes come before memory's), then from
  memory.

Order: the bytes in the file not yet sent always come before those in memory, since memory
is only ever appended to the file's end. Memory per response is bounded by `proxy_buffers`
plus one read from the upstream (and a response already spooling puts its tail in the
file at the end, so a client that stopped reading holds none); the client's side is handed
at most `WRITE_MAX` at a time.

This is also where a response body could be kept whole (a cache writing the temp file as its
entry, as nginx's p->cacheable): the events arrive in `upstream_ready`, in order.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
import os
import time
from collections.abc import Callable
from typing import Final

from truehop.http.events import Data, EndOfMessage
from truehop.net.upstream import EventSink, UpstreamConnection, UpstreamError
from truehop.proxy.request_body import BodyFile, BodyFileError, TempPath

# at most this much is handed to the client's side in one write (fairness: no connection
# keeps the loop long; memory: what a stalled client's transport holds stays small)
WRITE_MAX: Final = 64 * 1024
# sendfile from the temp file at most this much a call (nginx's sendfile_max_chunk is 2m)
SENDFILE_MAX: Final = 1 << 20

# glibc keeps the pages of freed large reads (up to 256 KiB each) in its heap, so the RSS a
# burst of spooling leaves behind stayed at its peak: they are handed back with malloc_trim
# once a burst is over (at most every TRIM_EVERY seconds), where the C library has it
_LIBC_NAME = ctypes.util.find_library("c")
_TRIM: Final = getattr(ctypes.CDLL(_LIBC_NAME), "malloc_trim", None) if _LIBC_NAME else None
TRIM_EVERY: Final = 0.5


class _Trim:
    __slots__ = ("last", "pending")

    def __init__(self) -> None:
        self.last = 0.0
        self.pending = False    # a trim is due at the end of the window


_TRIMMED: Final = _Trim()


def give_back_memory() -> None:
    """malloc_trim(0), at most every TRIM_EVERY seconds; one asked for within the window
    runs at its end, so the last of a burst is never skipped."""
    if _TRIM is None:
        return
    tr = _TRIMMED
    wait = tr.last + TRIM_EVERY - time.monotonic()
    if wait <= 0:
        _trim_now()
    elif not tr.pending:
        tr.pending = True
        asyncio.get_running_loop().call_later(wait, _trim_now)


def _trim_now() -> None:
    tr = _TRIMMED
    tr.pending = False
    tr.last = time.monotonic()
    if _TRIM is not None:
        _TRIM(0)


PREMATURE: Final = "upstream prematurely closed connection while reading upstream"
TIMED_OUT: Final = "upstream timed out (110: Connection timed out) while reading upstream"


def spool_limits(buffer_size: int, buffers: tuple[int, int], max_temp: int,
                 write_size: int) -> tuple[int, int, int]:
    """(memory limit, file limit, write size) as nginx's proxy merge computes them: the
    write size unset (0) is twice the larger of proxy_buffer_size and one buffer, and at
    least that larger size."""
    n, size = buffers
    unit = max(buffer_size, size)
    if write_size <= 0:
        write_size = 2 * unit
    return max(n * size, unit), max(max_temp, 0), max(write_size, unit)


class Spool(EventSink):
    """One response's body between the upstream and a slow client (module docstring)."""

    __slots__ = ("conn", "mem", "mem_bytes", "head_off", "limit", "max_file", "write_size",
                 "temp", "file", "file_sent", "done", "error", "read_timeout", "upstream",
                 "received", "on_end", "warn", "crit")

    def __init__(self, conn: UpstreamConnection, limit: int, max_file: int, write_size: int,
                 temp: TempPath, read_timeout: float,
                 on_end: Callable[[UpstreamConnection], None],
                 warn: Callable[[str], None], crit: Callable[[str], None]) -> None:
        self.conn: UpstreamConnection | None = conn    # while attached
        self.upstream: UpstreamConnection | None = conn  # until its response has ended
        self.mem: collections.deque[bytes] = collections.deque()
        self.mem_bytes = 0          # in `mem`, less what `head_off` says was taken
        self.head_off = 0           # how much of mem[0] was already handed on
        self.limit = limit
        self.max_file = max_file
        self.write_size = write_size
        self.temp = temp
        self.file: BodyFile | None = None
        self.file_sent = 0          # the file's bytes handed on (sendfile's offset)
        self.done = False           # the upstream's response has ended
        self.error: UpstreamError | None = None
        self.read_timeout = read_timeout
        self.received = 0           # body bytes read from the upstream since the start
        self.on_end = on_end
        self.warn = warn
        self.crit = crit

    # -- the upstream's side (connection callbacks) ----------------------------------------

    def attach(self, first: bytes) -> None:
        """Take over the connection's events (again, after a `detach`); `first`: bytes the
        relay had not sent, ahead of them."""
        conn = self.conn = self.upstream
        assert conn is not None
        if first:
            self.mem.append(first)
            self.mem_bytes += len(first)
        conn.sink = self
        self.upstream_ready()       # what was already parsed, then the deadline

    def upstream_ready(self) -> None:
        conn = self.conn
        if conn is None:
            return
        mem = self.mem
        end = False
        while True:
            ev = conn.pop_event()
            if ev is None:
                break
            if type(ev) is Data:
                data = ev.data
                self.received += len(data)
                mem.append(data)
                self.mem_bytes += len(data)
            elif type(ev) is EndOfMessage:
                end = True
                break
        if self.mem_bytes > self.limit or (end and self.mem_bytes and self.file is not None):
            # at the end, a response already spooling puts its tail in the file too: a
            # client that stopped reading then holds no buffers at all
            self._overflow(conn, end)
        if end:
            self._upstream_end(conn)
        elif conn.error is not None:
            self._fail(conn, conn.error if isinstance(conn.error, UpstreamError)
                       else UpstreamError("error", PREMATURE))
        elif conn.is_closed():
            self._fail(conn, UpstreamError("error", PREMATURE))
        else:
            if not conn.held:
                conn.arm_read_timeout(self.read_timeout)

    def upstream_timed_out(self) -> None:
        conn = self.conn
        if conn is not None:
            self._fail(conn, UpstreamError("timeout", TIMED_OUT))

    def _fail(self, conn: UpstreamConnection, e: UpstreamError) -> None:
        if e.message.endswith("while reading response header from upstream"):
            e = UpstreamError(e.kind, e.message.replace("reading response header from upstream",
                                                        "reading upstream"))
        self.error = e
        self.detach()
        self.upstream = None
        conn.abort()

    def _upstream_end(self, conn: UpstreamConnection) -> None:
        self.done = True
        self.detach()
        self.upstream = None
        self.on_end(conn)
        give_back_memory()

    def detach(self) -> None:
        """Give the connection back its own event handling (reading resumed)."""
        conn = self.conn
        if conn is None:
            return
        self.conn = None
        conn.sink = None
        conn.clear_read_timeout()
        conn.unhold()

    def _overflow(self, conn: UpstreamConnection, end: bool = False) -> None:
        """Memory holds more than `limit`: to the file while it has room, else stop reading
        (nginx's ngx_event_pipe_read_upstream with no free buffer)."""
        room = self.max_file - (self.file.length if self.file is not None else 0)
        if room > 0:
            try:
                self._to_file(min(room, self.mem_bytes))
            except BodyFileError as e:
                # the file cannot be written: no more file for this response, memory only
                self.crit(e.message)
                self.max_file = 0
        if self.mem_bytes > self.limit and not end:
            conn.hold()

    def _to_file(self, n: int) -> None:
        """Move the first `n` bytes of memory to the end of the file, `write_size` at a time."""
        f = self.file
        if f is None:
            f = self.file = BodyFile.create(self.temp, False, False)
            self.file_sent = 0
            self.warn(f"an upstream response is buffered to a temporary file {f.name} "
                      "while reading upstream")
        mem = self.mem
        ws = self.write_size
        while n > 0:
            parts: list[memoryview] = []
            want = min(ws, n)
            got = 0
            while got < want:
                head = mem[0]
                off = self.head_off
                take = min(len(head) - off, want - got)
                parts.append(memoryview(head)[off:off + take])
                got += take
                if off + take == len(head):
                    mem.popleft()
                    self.head_off = 0
                else:
                    self.head_off = off + take
            _writev(f, parts, got)
            self.mem_bytes -= got
            n -= got


    # -- the client's side (the relay) -----------------------------------------------------

    def file_pending(self) -> int:
        f = self.file
        return f.length - self.file_sent if f is not None else 0

    def fileno(self) -> int:
        """For the client's `sendfile`."""
        f = self.file
        assert f is not None
        return f.fd

    def file_sent_more(self, n: int) -> None:
        self.file_sent += n
        self._room()

    def take(self) -> bytes:
        """Up to WRITE_MAX bytes from memory (b"" when it is empty)."""
        mem = self.mem
        if not mem:
            return b""
        head = mem[0]
        off = self.head_off
        if off == 0 and len(head) <= WRITE_MAX:
            mem.popleft()
            data = head
        else:
            end = min(len(head), off + WRITE_MAX)
            data = head[off:end]
            if end == len(head):
                mem.popleft()
                self.head_off = 0
            else:
                self.head_off = end
        self.mem_bytes -= len(data)
        self._room()
        return data

    def _room(self) -> None:
        """Bytes were handed on: a held upstream is read again once memory has room."""
        conn = self.conn
        if conn is not None and conn.held and self.mem_bytes <= self.limit:
            conn.unhold()
            conn.arm_read_timeout(self.read_timeout)

    def close(self) -> None:
        """The relay is done (however it ended): let the connection go if still held (the
        caller aborts it), close the file, drop what memory held."""
        self.detach()
        f = self.file
        if f is not None:
            f.close()
        self.mem.clear()
        self.mem_bytes = 0
        give_back_memory()


def _writev(f: BodyFile, parts: list[memoryview], total: int) -> None:
    """Append `parts` to the file (short writes finished, as ngx_writev_file)."""
    try:
        n = os.writev(f.fd, parts)
        if n < total:
            rest = memoryview(b"".join(parts))[n:]
            while rest:
                rest = rest[os.write(f.fd, rest):]
    except OSError as e:
        raise BodyFileError(f'writev() "{f.name}" failed ({e.errno}: {e.strerror})') from None
    f.length += total
