"""TLS termination done by truehop itself (ssl.SSLObject over memory BIOs), not by asyncio.

Why not `loop.create_server(ssl=...)`: nginx looks at the first byte of a connection on an
`ssl` port. A TLS handshake record starts with 0x16; anything else is a plain HTTP request
sent to the HTTPS port, which nginx reads as HTTP and answers with its 497 page ("400 The
plain HTTP request was sent to HTTPS port") before closing. asyncio's SSL layer can only fail
the handshake. So `TlsProtocol` is the protocol the loop sees; it peeks at the first byte,
then either hands the raw transport to a plain-HTTP protocol (`on_plain`), or runs the
handshake and exposes a `TlsTransport` (a transport-like object: write, close, abort,
pause/resume_reading, get_extra_info 'ssl_object' / 'peername' / 'sockname' / 'socket',
is_closing, get_write_buffer_size) to the protocol chosen by ALPN (`on_secure(alpn)`).

A failed handshake is logged at `info` with OpenSSL's reason, as nginx does, and closed; it
never raises. The SNI name the client sent is kept on the SSLObject as `.sni` (read for
$ssl_server_name); `record_sni` wraps the context's own SNI callback (which picks the
server's certificate) to do that.

Client certificates: switching contexts in the SNI callback (SSL_set_SSL_CTX) changes the
certificate and the verify store but not the verify mode, which OpenSSL copied from the first
context, nor the session cache and ticket keys. When a listener's servers ask for client
certificates, its context carries a chooser (CHOOSE_ATTR): the ClientHello is read first
(`client_sni`), and the connection is made on the context of the server its name picks.

ALPN: nginx's select callback (ngx_http_ssl_alpn_select) offers h2 only when the server the SNI
name chose has HTTP/2, plus http/1.1, http/1.0 and http/0.9, and fails the handshake with a fatal
`no_application_protocol` alert when none of the client's protocols is among them. Python's
callback answers "no ALPN" instead (SSL_TLSEXT_ERR_NOACK) and completes the handshake. So the
ClientHello is kept (`client_alpn` reads its ALPN list) until OpenSSL has answered it; if the
client offered protocols and none was selected, the server's flight is replaced by that alert.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from truehop.conf.model import SslCommand
from truehop.net.closing import CloseDeadline, close_within

# SSL_read gives at most one record's plaintext (2^14 bytes) a call: a larger size only makes
# the bytes object CPython allocates (then shrinks) for each read bigger
READ_SIZE = 16 * 1024
TLS_HANDSHAKE = 0x16

_FIRST, _HANDSHAKE, _OPEN, _PLAIN, _CLOSED = range(5)

# The bound on a ClientHello (all of the client's bytes before OpenSSL's first answer, a
# HelloRetryRequest's second hello included): beyond it the handshake fails, as OpenSSL's
# "excessive message size" (its own bound, CLIENT_HELLO_MAX_LENGTH, is 128 KiB, and the
# hello was kept here, in the BIO and in OpenSSL's buffer: 385 KiB a connection for a partial
# 120 KB hello). Real hellos are a few KiB (post-quantum key shares and PSK tickets
# included); 64 KiB leaves ample room. A hello announcing more is refused at its first bytes.
MAX_HELLO = 64 * 1024
HELLO_TOO_LARGE = ("SSL_do_handshake() failed (SSL: excessive message size) while SSL "
                   "handshaking")
# nginx accepts these besides h2 and http/1.1 (NGX_HTTP_ALPN_PROTOS); truehop's contexts do not
# offer them, so a client offering one is let through without ALPN rather than refused
_OTHER_HTTP = (b"http/1.0", b"http/0.9")
# ServerHello.random of a TLS 1.3 HelloRetryRequest (RFC 8446 4.1.3): ALPN is decided on the
# second ClientHello
_HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
# a listener's context may carry a function of the SNI name giving the context to make the
# connection on (process.runtime sets it when a server asks for client certificates: Python's
# SNI switch keeps the first context's verify mode)
CHOOSE_ATTR = "truehop_choose_context"
ALPN_REFUSED = ("SSL_do_handshake() failed (SSL: no application protocol) while SSL "
                "handshaking")


def _client_hello(data: bytes | bytearray) -> memoryview | None | bool:
    """The body of the ClientHello at the start of `data` (TLS records as they came from the
    client); None when more bytes are needed, False when `data` cannot start one."""
    msg = bytearray()
    pos = 0
    need = -1
    while need < 0 or len(msg) < need:
        if len(data) < pos + 5:
            return None
        if data[pos] != TLS_HANDSHAKE:
            return False
        n = int.from_bytes(data[pos + 3:pos + 5], "big")
        if len(data) < pos + 5 + n:
            return None
        msg += data[pos + 5:pos + 5 + n]
        pos += 5 + n
        if need < 0 and len(msg) >= 4:
            if msg[0] != 1:         # not a ClientHello
                return False
            need = 4 + int.from_bytes(msg[1:4], "big")
    return memoryview(bytes(msg[4:need]))


def _announced(data: bytes | bytearray) -> int:
    """The length the first handshake message at the start of `data` announces (its 4-byte
    header included), 0 while its header is not all here."""
    if len(data) < 9 or data[0] != TLS_HANDSHAKE or int.from_bytes(data[3:5], "big") < 4:
        return 0                # (a header split across records is left to OpenSSL)
    return 4 + int.from_bytes(data[6:9], "big")


def _hello_extension(body: memoryview, wanted: int) -> memoryview | None:
    """The data of one extension of a ClientHello body; None when it has none. Raises
    IndexError on a malformed body."""
    p = 2 + 32                                   # legacy_version, random
    p += 1 + body[p]                             # legacy_session_id
    p += 2 + int.from_bytes(body[p:p + 2], "big")    # cipher_suites
    p += 1 + body[p]                             # legacy_compression_methods
    if p >= len(body):
        return None
    end = p + 2 + int.from_bytes(body[p:p + 2], "big")
    p += 2
    while p + 4 <= end:
        typ = int.from_bytes(body[p:p + 2], "big")
        n = int.from_bytes(body[p + 2:p + 4], "big")
        p += 4
        if typ == wanted:
            return body[p:p + n]
        p += n
    return None


def client_alpn(data: bytes | bytearray) -> list[bytes] | None:
    """The ALPN protocol names of the ClientHello at the start of `data` (TLS records as they
    came from the client), `[]` when it has no ALPN extension, None when `data` does not hold
    a whole, well-formed ClientHello."""
    body = _client_hello(data)
    if not isinstance(body, memoryview):
        return None
    try:
        ext = _hello_extension(body, 16)         # application_layer_protocol_negotiation
        if ext is None:
            return []
        q, names = 2, []
        lim = min(len(ext), 2 + int.from_bytes(ext[0:2], "big"))
        while q < lim:
            ln = ext[q]
            names.append(bytes(ext[q + 1:q + 1 + ln]))
            q += 1 + ln
        return names
    except IndexError:
        return None


def client_sni(data: bytes | bytearray) -> str | None | bool:
    """The host_name in the server_name extension of the ClientHello at the start of `data`:
    "" when it has none (or an unreadable one), None when more bytes are needed, False when
    `data` does not start a ClientHello."""
    body = _client_hello(data)
    if not isinstance(body, memoryview):
        return body
    try:
        ext = _hello_extension(body, 0)          # server_name (RFC 6066 3)
        if ext is None:
            return ""
        q, end = 2, min(len(ext), 2 + int.from_bytes(ext[0:2], "big"))
        while q + 3 <= end:
            typ, ln = ext[q], int.from_bytes(ext[q + 1:q + 3], "big")
            if typ == 0:                         # host_name
                return bytes(ext[q + 3:q + 3 + ln]).decode("ascii")
            q += 3 + ln
    except (IndexError, UnicodeDecodeError):
        pass
    return ""


class _RecordsSni:
    """A context's SNI callback that keeps the client's name on the SSLObject (`.sni`), then
    calls the callback the context had (which picks the server's context). A class, not a
    closure: the compiled build cannot mark a function as already wrapped."""

    def __init__(self, inner: Callable[..., Any] | None) -> None:
        self.inner = inner

    def __call__(self, sslobj: Any, name: str | None, c: ssl.SSLContext) -> Any:
        try:
            sslobj.sni = name or ""
        except AttributeError:
            pass
        inner = self.inner
        if inner is not None:
            return inner(sslobj, name, c)
        return None


def record_sni(ctx: ssl.SSLContext) -> None:
    """Make the context remember the client's SNI name on each SSLObject (`.sni`), keeping
    whatever SNI callback it already has. Idempotent."""
    cb = ctx.sni_callback
    if isinstance(cb, _RecordsSni):
        return
    ctx.sni_callback = _RecordsSni(cb)


def ssl_detail(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    if reason:
        text = "SSL: " + str(reason).lower().replace("_", " ")
        # a client certificate that failed verification: say why (nginx would answer 495
        # and log "client SSL certificate verify error: (N:why)")
        why = getattr(e, "verify_message", None)
        return f"{text}: {why}" if why else text
    return str(e) or type(e).__name__


def handshake_error_text(e: BaseException) -> str:
    """nginx's wording: `SSL_do_handshake() failed (SSL: ...) while SSL handshaking`."""
    return f"SSL_do_handshake() failed ({ssl_detail(e)}) while SSL handshaking"


class TlsProtocol(asyncio.Protocol):
    """The protocol the event loop sees on an `ssl` listener. See the module docstring."""

    def __init__(self, ctx: ssl.SSLContext,
                 on_secure: Callable[[str | None], asyncio.Protocol],
                 on_plain: Callable[[], asyncio.Protocol] | None = None,
                 on_fail: Callable[[str, asyncio.BaseTransport], None] | None = None,
                 handshake_timeout: float = 60.0,
                 admit: Callable[[Any], bool] | None = None,
                 release: Callable[[Any], None] | None = None) -> None:
        self.ctx = ctx
        self.on_secure = on_secure
        self.on_plain = on_plain
        self.on_fail = on_fail
        self.handshake_timeout = handshake_timeout
        self.state = _FIRST
        self.raw: Any = None
        self.inner: Any = None      # the HTTP/1.x or HTTP/2 protocol (set_protocol may change it)
        self.sslobj: ssl.SSLObject | None = None
        self.tls: Any = None        # sslobj's _ssl._SSLSocket (see data_received)
        self.inbio = ssl.MemoryBIO()
        self.outbio = ssl.MemoryBIO()
        self.paused = False
        self.closing = False
        self.write_shut = False     # close_notify sent and TCP write side shut; still reading
        self.facade: TlsTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._resume_scheduled = False
        # the client's bytes until OpenSSL has answered its ClientHello (the ALPN check)
        self.hello: bytearray | None = bytearray()
        self.offered: list[bytes] | None = None
        # the first bytes while the SNI name that picks the context is not all here yet
        self.early = b""
        self._close_deadline: CloseDeadline | None = None
        # the worker_connections slot held until the handshake ends (net.listen)
        self.admit = admit
        self.release = release
        self.counted = False

    # -- raw transport callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport
        so = transport.get_extra_info("ssl_object")
        if so is not None:
            # the loop already terminated TLS (create_server(ssl=...)): pass it through
            self.state = _PLAIN
            self.inner = self.on_secure(so.selected_alpn_protocol())
            self.inner.connection_made(transport)
            return
        if self.admit is not None:
            if not self.admit(self):
                self.state = _CLOSED
                self.raw.abort()       # no slot: closed at once, as nginx's accept does
                return
            self.counted = True
        if self.handshake_timeout and self.handshake_timeout > 0:
            self._timer = asyncio.get_running_loop().call_later(
                self.handshake_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        st = self.state
        if st == _OPEN:
            self.inbio.write(data)
            self._read_app()
            return
        if st == _PLAIN:
            assert self.inner is not None
            self.inner.data_received(data)
            return
        if st == _CLOSED or not data:
            return
        if st == _FIRST:
            if data[0] != TLS_HANDSHAKE and self.on_plain is not None and not self.early:
                self._cancel_timer()
                self.state = _PLAIN
                self._release()
                self.inner = self.on_plain()
                self.inner.connection_made(self.raw)
                self.inner.data_received(data)
                return
            ctx = self.ctx
            choose = getattr(ctx, CHOOSE_ATTR, None)
            if choose is not None:
                # the context is picked by the ClientHello's SNI name before OpenSSL sees it
                early = self.early = self.early + data
                sni = client_sni(early)
                if sni is None and len(early) <= MAX_HELLO:
                    return                       # the rest of the ClientHello is to come
                ctx = choose(sni or None)
                data, self.early = bytes(early), b""
            record_sni(ctx)
            so = self.sslobj = ctx.wrap_bio(self.inbio, self.outbio, server_side=True)
            # the C object under ssl.SSLObject: its read/write/pending/do_handshake are the
            # same calls without ssl.py's interpreted wrapper around each (a Python frame per
            # record read and per write); the SSLObject itself where it has none
            self.tls = getattr(so, "_sslobj", so)
            self.state = _HANDSHAKE
        hello = self.hello
        if hello is not None:
            hello += data
            if len(hello) > MAX_HELLO or _announced(hello) > MAX_HELLO:
                self._fail(HELLO_TOO_LARGE)
                return
        self.inbio.write(data)
        self._handshake()

    def eof_received(self) -> bool | None:
        if self.inner is not None and self.state in (_OPEN, _PLAIN):
            return self.inner.eof_received()
        self._cancel_timer()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self._release()
        self._cancel_timer()
        if self._close_deadline is not None:
            self._close_deadline.cancel()
            self._close_deadline = None
        prev = self.state
        self.state = _CLOSED
        if self.inner is not None and prev in (_OPEN, _PLAIN):
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    # -- handshake -----------------------------------------------------------------------

    def _handshake(self) -> None:
        assert self.sslobj is not None
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            if self.hello is not None and self.outbio.pending and self._alpn_refused():
                return
            self._flush()
            return
        except (ssl.SSLError, ssl.CertificateError, OSError, ValueError) as e:
            self._fail(handshake_error_text(e))
            return
        self._cancel_timer()
        if self.hello is not None and self.outbio.pending and self._alpn_refused():
            return
        self._flush()
        self.state = _OPEN
        self._release()         # the HTTP connection takes its own slot
        alpn = self.sslobj.selected_alpn_protocol()
        try:
            self.inner = self.on_secure(alpn)
        except Exception:
            self.state = _CLOSED
            self.raw.abort()
            raise
        self.facade = TlsTransport(self)
        self.inner.connection_made(self.facade)
        if self.state == _OPEN:
            self._read_app()

    def _alpn_refused(self) -> bool:
        """Called once OpenSSL has written its answer to the ClientHello (not yet sent): if
        the client offered ALPN protocols and none was selected, send nginx's fatal
        no_application_protocol alert instead of that answer and fail the handshake."""
        assert self.sslobj is not None and self.hello is not None
        out = self.outbio.read()
        if self.sslobj.selected_alpn_protocol() is not None:
            # a protocol was chosen (the usual case): nothing to refuse, and the second hello
            # after a HelloRetryRequest must offer the same protocols (RFC 8446 4.1.2)
            self.hello = None
            if self.raw is not None and not self.raw.is_closing():
                self.raw.write(out)
            return False
        if self.offered is None:
            self.offered = client_alpn(self.hello)
        # a HelloRetryRequest: the ALPN answer comes with the ServerHello after the second
        # ClientHello, which must offer the same protocols (RFC 8446 4.1.2)
        hrr = len(out) >= 43 and out[0] == TLS_HANDSHAKE and out[5] == 2 and \
            out[11:43] == _HRR_RANDOM
        if not hrr:
            self.hello = None
        offered = self.offered
        if hrr or not offered or self.sslobj.selected_alpn_protocol() is not None or \
                any(p in _OTHER_HTTP for p in offered):
            if self.raw is not None and not self.raw.is_closing():
                self.raw.write(out)
            return False
        version = bytes(out[1:3]) if len(out) >= 3 and out[0] == TLS_HANDSHAKE else b"\x03\x03"
        if self.raw is not None and not self.raw.is_closing():
            # alert record: level fatal (2), description no_application_protocol (120)
            self.raw.write(b"\x15" + version + b"\x00\x02\x02\x78")
        self._fail(ALPN_REFUSED)
        return True

    def _fail(self, msg: str) -> None:
        self._cancel_timer()
        self._flush()          # the alert, if OpenSSL wrote one
        self.state = _CLOSED
        if self.on_fail is not None:
            try:
                self.on_fail(msg, self.raw)
            except Exception:
                pass
        if self.raw is not None:
            # the alert goes out within the handshake's deadline, never an unbounded wait
            self._close_deadline = close_within(self.raw, self.handshake_timeout or 60.0)

    def _handshake_expired(self) -> None:
        self._timer = None
        if self.state in (_FIRST, _HANDSHAKE):
            self._fail("client timed out (110: Connection timed out) while SSL handshaking")

    def _release(self) -> None:
        if self.counted:
            self.counted = False
            if self.release is not None:
                self.release(self)

    @property
    def reusable(self) -> bool:
        """Nothing received yet: nginx closes such a connection first when the worker is
        full (ngx_drain_connections); one in its handshake is not reusable."""
        return self.state == _FIRST and not self.early and not self.closing

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- application data ----------------------------------------------------------------

    def _read_app(self) -> None:
        sslobj = self.tls
        inbio = self.inbio
        while self.state == _OPEN and not self.paused:
            # read only while a record may be there (bytes in the BIO, or plaintext OpenSSL
            # kept): the SSLWantReadError that ends a read loop otherwise costs more than
            # the record (an exception raised and caught, ~5k instructions compiled)
            if not inbio.pending and not sslobj.pending():
                break
            try:
                chunk = sslobj.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break                            # a partial record: the rest is to come
            except ssl.SSLZeroReturnError:
                chunk = b""
            except ssl.SSLError as e:
                # a broken record after the handshake: drop the connection
                self._flush()
                if self.on_fail is not None:
                    try:
                        self.on_fail(f"SSL_read() failed ({ssl_detail(e)}) while reading "
                                     "client request", self.raw)
                    except Exception:
                        pass
                self.raw.abort()
                return
            if not chunk:
                # close_notify from the client: an EOF for the inner protocol
                self._flush()
                inner = self.inner
                keep = inner.eof_received() if inner is not None else False
                if not keep and self.state == _OPEN:
                    self.close()
                return
            assert self.inner is not None
            self.inner.data_received(chunk)
        self._flush()

    def _resume(self) -> None:
        self._resume_scheduled = False
        if self.state == _OPEN and not self.paused:
            self._read_app()

    def _flush(self) -> None:
        if self.outbio.pending and self.raw is not None and not self.raw.is_closing():
            self.raw.write(self.outbio.read())

    # -- used by TlsTransport --------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.state != _OPEN or self.closing or self.write_shut:
            return
        sslobj = self.tls
        try:
            # a memory BIO takes everything: one SSL_write, one record per 16 KiB
            n = sslobj.write(data)
            if n < len(data):
                view = memoryview(data)[n:]
                while view:
                    n = sslobj.write(view)
                    view = view[n:]
        except ssl.SSLError:
            self.raw.abort()
            return
        self._flush()

    def close(self) -> None:
        if self.closing or self.raw is None:
            return
        self.closing = True
        if self.sslobj is not None and self.state == _OPEN and not self.write_shut:
            self._close_notify()
        self.raw.close()

    def _close_notify(self) -> None:
        assert self.sslobj is not None
        try:
            self.sslobj.unwrap()     # close_notify
        except (ssl.SSLError, ValueError):
            pass
        self._flush()

    def shutdown_write(self) -> None:
        """nginx's lingering close on TLS (ngx_ssl_shutdown, then shutdown(SHUT_WR)):
        close_notify, then the TCP write side is shut once the queued bytes are out; records
        from the client are still read (and given to the inner protocol, which drops them)
        until it closes."""
        if self.closing or self.write_shut or self.raw is None:
            return
        self.write_shut = True
        if self.sslobj is not None and self.state == _OPEN:
            self._close_notify()
        if self.raw.can_write_eof():
            self.raw.write_eof()

    def abort(self) -> None:
        self.closing = True
        if self.raw is not None:
            self.raw.abort()

    def pause_reading(self) -> None:
        if not self.paused:
            self.paused = True
            if self.raw is not None and not self.raw.is_closing():
                self.raw.pause_reading()

    def resume_reading(self) -> None:
        if self.paused:
            self.paused = False
            if self.raw is not None and not self.raw.is_closing():
                self.raw.resume_reading()
            # records already decrypted-ready in the BIO need no new socket read
            if self.inbio.pending and not self._resume_scheduled:
                self._resume_scheduled = True
                asyncio.get_running_loop().call_soon(self._resume)


class TlsTransport(asyncio.Transport):
    """What the inner protocol (HTTP/1.x or HTTP/2) sees as its transport on a TLS
    connection."""

    def __init__(self, proto: TlsProtocol) -> None:
        super().__init__()
        self._proto = proto

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._proto.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._proto.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self._proto.shutdown_write()

    def close(self) -> None:
        self._proto.close()

    def abort(self) -> None:
        self._proto.abort()

    def is_closing(self) -> bool:
        p = self._proto
        return p.closing or p.raw is None or p.raw.is_closing()

    def pause_reading(self) -> None:
        self._proto.pause_reading()

    def resume_reading(self) -> None:
        self._proto.resume_reading()

    def is_reading(self) -> bool:
        return not self._proto.paused

    def get_write_buffer_size(self) -> int:
        raw = self._proto.raw
        return int(raw.get_write_buffer_size()) + self._proto.outbio.pending if raw else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        raw = self._proto.raw
        return raw.get_write_buffer_limits() if raw else (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        raw = self._proto.raw
        if raw is not None:
            raw.set_write_buffer_limits(high, low)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._proto.inner = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._proto.inner

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        p = self._proto
        so = p.sslobj
        if name == "ssl_object":
            return so
        if so is not None:
            if name == "sslcontext":
                return so.context
            if name == "cipher":
                return so.cipher()
            if name == "peercert":
                return so.getpeercert()
            if name == "compression":
                return so.compression()
        raw = p.raw
        return raw.get_extra_info(name, default) if raw is not None else default


_TLS_ORDER = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
_TLS_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
                 "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def set_protocols(ctx: ssl.SSLContext, protocols: tuple[str, ...]) -> None:
    """ssl_protocols / proxy_ssl_protocols: the range from the lowest to the highest named
    (OpenSSL's own floor still applies: this build may refuse TLSv1 whatever is asked).
    Both sides use it: the servers' contexts (process.runtime) and the upstreams'
    (proxy.upstreams)."""
    enabled = [p for p in _TLS_ORDER if p in protocols] or ["TLSv1.2", "TLSv1.3"]
    try:
        ctx.minimum_version = _TLS_VERSIONS[enabled[0]]
        ctx.maximum_version = _TLS_VERSIONS[enabled[-1]]
    except (ValueError, ssl.SSLError):
        pass


def apply_tuning(ctx: ssl.SSLContext, ecdh_curve: str, commands: Iterable[SslCommand]) -> None:
    """ssl_ecdh_curve (one group; "auto" keeps OpenSSL's default list) and the
    ssl_conf_command lines that map onto SSLContext (conf.parsers.ssl_conf_command decided
    which), applied last as nginx applies them (ngx_ssl_conf_commands runs after the
    server's other ssl_* settings)."""
    if ecdh_curve != "auto":
        ctx.set_ecdh_curve(ecdh_curve)
    for cmd in commands:
        how = cmd.how
        if how == "options":
            ctx.options = (ctx.options | cmd.set_bits) & ~cmd.clear_bits
        elif how == "ciphers":
            ctx.set_ciphers(cmd.arg)
        elif how == "groups":
            ctx.set_ecdh_curve(cmd.arg)
        elif how == "min":
            ctx.minimum_version = _PROTOCOL_BOUND.get(cmd.arg, ssl.TLSVersion.MINIMUM_SUPPORTED)
        elif how == "max":
            ctx.maximum_version = _PROTOCOL_BOUND.get(cmd.arg, ssl.TLSVersion.MAXIMUM_SUPPORTED)


_PROTOCOL_BOUND: dict[str, ssl.TLSVersion] = {
    "TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
