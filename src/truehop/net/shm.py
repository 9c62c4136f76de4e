"""A table of fixed-size records in memory shared by the master and every worker: the state
of `limit_req_zone` and `limit_conn_zone` (nginx's shared memory zones, ngx_shm_zone_t).

Theory of operation
-------------------
nginx's master maps each zone before it forks the workers, and a worker's view of it is the
same memory; a spin lock in the zone (ngx_shmtx_t) serialises changes. Here:

* the memory is a `memfd` (an unlinked temporary file where there is none), grown to the
  table's size and mapped with MAP_SHARED by the process that builds the runtime: the
  master, before it forks. Forked workers inherit the mapping and the descriptor, so all of
  them read and write the same bytes. Nothing is ever written to disk.
* the lock is a POSIX record lock (`fcntl.lockf`) on the first byte of that same
  descriptor. The kernel drops it when its holder dies, so a worker killed while holding it
  cannot freeze the others (nginx has to force-unlock a crashed worker's mutex). Record locks
  belong to a process, not to a descriptor: they exclude other processes, and one process
  never waits for itself. The lock is held for a few struct reads and writes, never across
  an `await`. It costs two system calls per critical section (about 1-2 µs here).
* the table is a chained hash table over a fixed number of records (`capacity`, from the
  zone's size as nginx's documentation counts states: 64 bytes each), with a free list and
  an LRU list (most recent first), the shape of nginx's rbtree + queue. A record is found by
  a 64-bit digest of its key (blake2b): two keys differ in their digests but with a
  probability of 2^-64, so the key text itself (nginx allows 65535 bytes) need not fit a
  fixed-size record.

Layout (little-endian):

    header   magic 8s, capacity q, buckets q, free q, lru_head q, lru_tail q, used q,
             fresh q (records from here on were never used: the free list starts empty
             and grows as records are freed, so making a big zone costs nothing)
    buckets  i32 per bucket: the first record of its chain, -1 for none
    records  key q, a q, b q, count i32, chain i32, prev i32, next i32

`a`, `b` and `count` are the users' (limit_req: excess in milli-requests, last time in ms,
requests being accounted; limit_conn: `count` connections).

Nothing here knows what a limit is: proxy.limits holds nginx's algorithms over these
records.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
import weakref
from typing import Final

_MAGIC: Final = b"thzone01"
_HEADER: Final = struct.Struct("<8sqqqqqqq")
_HEADER_SIZE: Final = 72
_I32: Final = struct.Struct("<i")
_Q: Final = struct.Struct("<q")
_RECORD: Final = struct.Struct("<qqqiiii")
RECORD_SIZE: Final = _RECORD.size      # 40
STATE_SIZE: Final = 64                 # what nginx's documentation counts per state

# offsets of the header fields and of a record's fields
_H_FREE: Final = 24
_H_LRU_HEAD: Final = 32
_H_LRU_TAIL: Final = 40
_H_USED: Final = 48
_H_FRESH: Final = 56
_R_KEY: Final = 0
_R_A: Final = 8
_R_B: Final = 16
_R_COUNT: Final = 24
_R_CHAIN: Final = 28
_R_PREV: Final = 32
_R_NEXT: Final = 36

NONE: Final = -1


def digest(key: bytes) -> int:
    """The 64-bit digest a record is found by."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little",
                          signed=True)


def capacity_for(size: int) -> int:
    """How many states a zone of `size` bytes keeps (nginx: about 16 thousand 64-byte
    states per megabyte)."""
    return max(1, size // STATE_SIZE)


class SharedTable:
    """The table over one shared mapping. Every method but `lock`/`unlock` expects the lock
    held (`with table:`)."""

    __slots__ = ("fd", "mem", "capacity", "buckets", "_mask", "_records", "_finalizer",
                 "__weakref__")

    def __init__(self, capacity: int, name: str = "zone") -> None:
        nb = 1
        while nb < capacity:
            nb <<= 1
        self.capacity = capacity
        self.buckets = nb
        self._mask = nb - 1
        self._records = _HEADER_SIZE + 4 * nb
        size = self._records + RECORD_SIZE * capacity
        self.fd = _shared_fd(name)
        os.ftruncate(self.fd, size)
        self.mem = mmap.mmap(self.fd, size, flags=mmap.MAP_SHARED,
                             prot=mmap.PROT_READ | mmap.PROT_WRITE)
        # a zone a reload dropped is unmapped and its descriptor closed once nothing in
        # this process uses it (the processes that still do keep their own)
        self._finalizer = weakref.finalize(self, _release, self.mem, self.fd)
        self.reset()

    def reset(self) -> None:
        """Empty the table: no record in use."""
        mem = self.mem
        _HEADER.pack_into(mem, 0, _MAGIC, self.capacity, self.buckets, NONE, NONE, NONE, 0,
                          0)
        mem[_HEADER_SIZE:self._records] = b"\xff" * (4 * self.buckets)

    def close(self) -> None:
        """This process's mapping and descriptor (the others keep theirs)."""
        self._finalizer()

    # -- the lock -----------------------------------------------------------------------

    def __enter__(self) -> SharedTable:
        fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, 0)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, 0)

    # -- fields -------------------------------------------------------------------------

    def _off(self, i: int) -> int:
        return self._records + i * RECORD_SIZE

    def _hget(self, off: int) -> int:
        v: int = _Q.unpack_from(self.mem, off)[0]
        return v

    def _hset(self, off: int, v: int) -> None:
        _Q.pack_into(self.mem, off, v)

    def _get32(self, off: int) -> int:
        v: int = _I32.unpack_from(self.mem, off)[0]
        return v

    def _set32(self, off: int, v: int) -> None:
        _I32.pack_into(self.mem, off, v)

    def get_a(self, i: int) -> int:
        return self._hget(self._off(i) + _R_A)

    def set_a(self, i: int, v: int) -> None:
        self._hset(self._off(i) + _R_A, v)

    def get_b(self, i: int) -> int:
        return self._hget(self._off(i) + _R_B)

    def set_b(self, i: int, v: int) -> None:
        self._hset(self._off(i) + _R_B, v)

    def get_count(self, i: int) -> int:
        return self._get32(self._off(i) + _R_COUNT)

    def set_count(self, i: int, v: int) -> None:
        self._set32(self._off(i) + _R_COUNT, v)

    @property
    def used(self) -> int:
        return self._hget(_H_USED)

    # -- lookup, allocation ---------------------------------------------------------------

    def _bucket(self, key: int) -> int:
        return _HEADER_SIZE + 4 * (key & self._mask)

    def find(self, key: int) -> int:
        """The record of `key`, or NONE."""
        i = self._get32(self._bucket(key))
        while i != NONE:
            off = self._off(i)
            if self._hget(off + _R_KEY) == key:
                return i
            i = self._get32(off + _R_CHAIN)
        return NONE

    def alloc(self, key: int) -> int:
        """A new record for `key` (a, b, count zero), at the head of the LRU list; NONE when
        every record is in use."""
        i = self._hget(_H_FREE)
        if i != NONE:
            off = self._off(i)
            self._hset(_H_FREE, self._get32(off + _R_CHAIN))
        else:
            i = self._hget(_H_FRESH)
            if i >= self.capacity:
                return NONE
            self._hset(_H_FRESH, i + 1)
            off = self._off(i)
        b = self._bucket(key)
        _RECORD.pack_into(self.mem, off, key, 0, 0, 0, self._get32(b), NONE, NONE)
        self._set32(b, i)
        self._lru_push(i)
        self._hset(_H_USED, self._hget(_H_USED) + 1)
        return i

    def free(self, i: int) -> None:
        """Remove record `i` from its chain and the LRU list; back on the free list."""
        off = self._off(i)
        key = self._hget(off + _R_KEY)
        b = self._bucket(key)
        j = self._get32(b)
        nxt = self._get32(off + _R_CHAIN)
        if j == i:
            self._set32(b, nxt)
        else:
            while j != NONE:
                joff = self._off(j) + _R_CHAIN
                k = self._get32(joff)
                if k == i:
                    self._set32(joff, nxt)
                    break
                j = k
        self._lru_remove(i)
        self._set32(off + _R_CHAIN, self._hget(_H_FREE))
        self._hset(_H_FREE, i)
        self._hset(_H_USED, self._hget(_H_USED) - 1)

    # -- the LRU list (nginx's ngx_queue of states, most recent first) ---------------------

    def _lru_push(self, i: int) -> None:
        off = self._off(i)
        head = self._hget(_H_LRU_HEAD)
        self._set32(off + _R_PREV, NONE)
        self._set32(off + _R_NEXT, head)
        if head != NONE:
            self._set32(self._off(head) + _R_PREV, i)
        else:
            self._hset(_H_LRU_TAIL, i)
        self._hset(_H_LRU_HEAD, i)

    def _lru_remove(self, i: int) -> None:
        off = self._off(i)
        prev = self._get32(off + _R_PREV)
        nxt = self._get32(off + _R_NEXT)
        if prev != NONE:
            self._set32(self._off(prev) + _R_NEXT, nxt)
        else:
            self._hset(_H_LRU_HEAD, nxt)
        if nxt != NONE:
            self._set32(self._off(nxt) + _R_PREV, prev)
        else:
            self._hset(_H_LRU_TAIL, prev)

    def touch(self, i: int) -> None:
        """Move record `i` to the head of the LRU list (just used)."""
        if self._hget(_H_LRU_HEAD) != i:
            self._lru_remove(i)
            self._lru_push(i)

    def oldest(self) -> int:
        """The least recently used record, or NONE."""
        return self._hget(_H_LRU_TAIL)


def _release(mem: mmap.mmap, fd: int) -> None:
    try:
        mem.close()
    finally:
        os.close(fd)


def _shared_fd(name: str) -> int:
    """A descriptor of anonymous memory that survives fork: a memfd, else an unlinked
    temporary file."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        try:
            fd: int = memfd(f"truehop-{name}", 0)    # not MFD_CLOEXEC: nothing is exec'd
            return fd
        except OSError:
            pass
    f = tempfile.TemporaryFile(prefix="truehop-zone-")
    return os.dup(f.fileno())
