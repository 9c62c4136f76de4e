"""Password files as nginx's auth_basic reads them (ngx_http_auth_basic_module, ngx_crypt.c):
finding a user's line, and checking a password against what the line stores.

nginx checks four schemes itself, and hands every other string to the C library's crypt(3):

    {PLAIN}pass      the password as is
    {SHA}b64         base64 of the SHA-1 of the password (htpasswd -s)
    {SSHA}b64        base64 of SHA-1(password + salt) followed by the salt
    $apr1$salt$h     Apache's MD5 (htpasswd -m, the htpasswd default)

On Linux crypt(3) is glibc's, or libxcrypt's on Debian: MD5-crypt `$1$`, SHA-crypt `$5$` and
`$6$`, bcrypt `$2b$`/`$2y$` (htpasswd -B), yescrypt `$y$`, DES (htpasswd -d). truehop calls
the same library through ctypes, so a file nginx accepts is accepted here with the same
results. Where no libcrypt can be loaded, `$1$`, `$5$` and `$6$` are computed here (the
algorithms are written out below, after Poul-Henning Kamp's and Ulrich Drepper's
specifications) and the other crypt(3) schemes cannot be checked (`verify` returns None:
nginx's "crypt() failed", a 500).

A leaf: bytes in, bytes out, no file or request in sight (proxy.auth reads the file).
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import ctypes.util
import hashlib
import hmac
from collections.abc import Callable
from typing import Final

_ITOA64: Final = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _load_crypt() -> Callable[[bytes, bytes], bytes | None] | None:
    """The C library's crypt(3), or None where there is none to load."""
    try:
        lib = ctypes.CDLL("libcrypt.so.1")     # glibc's and libxcrypt's soname
    except OSError:
        # elsewhere, ask the system (find_library runs ldconfig or the compiler: only here)
        name = ctypes.util.find_library("crypt")
        if not name:
            return None
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            return None
    fn = lib.crypt
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    fn.restype = ctypes.c_char_p

    def libc_crypt(key: bytes, salt: bytes) -> bytes | None:
        # a NUL ends both strings in C: the same here (ctypes would refuse them)
        out = fn(key.split(b"\0", 1)[0], salt.split(b"\0", 1)[0])
        return out if isinstance(out, bytes) else None
    return libc_crypt


LIBC_CRYPT: Final = _load_crypt()


# --- the password file -------------------------------------------------------------------

def find_hash(data: bytes, user: bytes) -> bytes | None:
    """The stored password of `user` in a password file, as ngx_http_auth_basic_handler's
    scan finds it: the first line that starts with `user:` (a line starting with '#' or CR is
    skipped); the value ends at CR, LF or ':' (so `user:hash:comment` works). None when no
    line is the user's."""
    prefix = user + b":"
    for line in data.split(b"\n"):
        if not line.startswith(prefix) or line[:1] in (b"#", b"\r"):
            continue
        value = line[len(prefix):]
        end = len(value)
        for stop in (b"\r", b":"):
            i = value.find(stop)
            if 0 <= i < end:
                end = i
        return value[:end]
    return None


def verify(password: bytes, stored: bytes) -> bool | None:
    """Whether `password` matches the stored string: nginx's ngx_crypt, then strcmp. None
    when the scheme cannot be computed (nginx's "crypt() failed": a 500)."""
    got = crypt(password, stored)
    if got is None:
        return None
    return hmac.compare_digest(got, stored)


def crypt(key: bytes, salt: bytes) -> bytes | None:
    """ngx_crypt: the stored string `salt` names the scheme; the result is compared whole
    with it."""
    key = key.split(b"\0", 1)[0]        # nginx passes C strings
    if salt.startswith(b"$apr1$"):
        return md5_crypt(key, salt, b"$apr1$")
    if salt.startswith(b"{PLAIN}"):
        return b"{PLAIN}" + key
    if salt.startswith(b"{SSHA}"):
        return _ssha(key, salt)
    if salt.startswith(b"{SHA}"):
        return b"{SHA}" + base64.b64encode(hashlib.sha1(key).digest())
    if LIBC_CRYPT is not None:
        return LIBC_CRYPT(key, salt)
    return own_crypt(key, salt)


def own_crypt(key: bytes, salt: bytes) -> bytes | None:
    """The crypt(3) schemes computed here, for systems without a libcrypt to load."""
    if salt.startswith(b"$1$"):
        return md5_crypt(key, salt, b"$1$")
    if salt.startswith(b"$5$"):
        return sha_crypt(key, salt, b"$5$")
    if salt.startswith(b"$6$"):
        return sha_crypt(key, salt, b"$6$")
    return None


def _ssha(key: bytes, salt: bytes) -> bytes | None:
    """ngx_crypt_ssha: the salt is what follows the 20 bytes of digest in the decoded value."""
    try:
        raw = base64.b64decode(salt[6:], validate=False)
    except (binascii.Error, ValueError):
        return None
    s = raw[20:]
    return b"{SSHA}" + base64.b64encode(hashlib.sha1(key + s).digest() + s)


def _to64(v: int, n: int) -> bytes:
    out = bytearray()
    for _ in range(n):
        out.append(_ITOA64[v & 0x3F])
        v >>= 6
    return bytes(out)


def md5_crypt(key: bytes, setting: bytes, magic: bytes) -> bytes:
    """Poul-Henning Kamp's MD5-crypt (`$1$`), and Apache's variant (`$apr1$`) which differs
    only by its magic (ngx_crypt_apr1)."""
    rest = setting[len(magic):]
    end = rest.find(b"$")
    salt = (rest if end < 0 else rest[:end])[:8]
    ctx = hashlib.md5(key + magic + salt)
    alt = hashlib.md5(key + salt + key).digest()
    n = len(key)
    while n > 0:
        ctx.update(alt[:min(16, n)])
        n -= 16
    n = len(key)
    first = key[:1] or b"\0"
    while n:
        ctx.update(b"\0" if n & 1 else first)
        n >>= 1
    final = ctx.digest()
    for i in range(1000):
        c = hashlib.md5(key if i & 1 else final)
        if i % 3:
            c.update(salt)
        if i % 7:
            c.update(key)
        c.update(final if i & 1 else key)
        final = c.digest()
    f = final
    out = b"".join([
        _to64((f[0] << 16) | (f[6] << 8) | f[12], 4),
        _to64((f[1] << 16) | (f[7] << 8) | f[13], 4),
        _to64((f[2] << 16) | (f[8] << 8) | f[14], 4),
        _to64((f[3] << 16) | (f[9] << 8) | f[15], 4),
        _to64((f[4] << 16) | (f[10] << 8) | f[5], 4),
        _to64(f[11], 2),
    ])
    return magic + salt + b"$" + out


# the byte order of SHA-crypt's final encoding (Drepper's specification), 3 bytes at a time
_SHA256_ORDER: Final = ((0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
                        (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29))
_SHA512_ORDER: Final = ((0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4),
                        (47, 5, 26), (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51),
                        (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13), (56, 14, 35),
                        (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19),
                        (62, 20, 41))


def sha_crypt(key: bytes, setting: bytes, magic: bytes) -> bytes | None:
    """Ulrich Drepper's SHA-crypt: `$5$` (SHA-256) and `$6$` (SHA-512), with an optional
    `rounds=N$` (default 5000, clamped to 1000..999999999)."""
    new: Callable[..., hashlib._Hash] = hashlib.sha256 if magic == b"$5$" else hashlib.sha512
    rest = setting[len(magic):]
    rounds = 5000
    custom = False
    if rest.startswith(b"rounds="):
        num, dollar, after = rest[7:].partition(b"$")
        if not dollar or not num.isdigit():
            return None
        rounds = min(max(int(num), 1000), 999999999)
        custom = True
        rest = after
    end = rest.find(b"$")
    salt = (rest if end < 0 else rest[:end])[:16]
    size = new().digest_size
    b = new(key + salt + key).digest()
    a = new(key + salt)
    a.update((b * (len(key) // size + 1))[:len(key)])
    n = len(key)
    while n > 0:
        a.update(b if n & 1 else key)
        n >>= 1
    da = a.digest()
    dp = new(key * len(key)).digest()
    p = (dp * (len(key) // size + 1))[:len(key)]
    ds = new(salt * (16 + da[0])).digest()
    s = (ds * (len(salt) // size + 1))[:len(salt)]
    c = da
    for i in range(rounds):
        h = new(p if i & 1 else c)
        if i % 3:
            h.update(s)
        if i % 7:
            h.update(p)
        h.update(c if i & 1 else p)
        c = h.digest()
    parts = []
    for x, y, z in (_SHA256_ORDER if size == 32 else _SHA512_ORDER):
        parts.append(_to64((c[x] << 16) | (c[y] << 8) | c[z], 4))
    if size == 32:
        parts.append(_to64((c[31] << 8) | c[30], 3))
    else:
        parts.append(_to64(c[63], 2))
    head = magic + (b"rounds=%d$" % rounds if custom else b"") + salt + b"$"
    return head + b"".join(parts)
