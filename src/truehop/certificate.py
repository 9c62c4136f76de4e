"""A client certificate (mTLS), parsed and formatted as nginx prints its $ssl_client_*
variables; read from the TLS connection's SSLObject on first use, once per connection.

What Python's ssl module allows, and so what truehop does (README, "Client certificates"):

* A server with `ssl_verify_client on` or `optional` gets a context with CERT_OPTIONAL and its
  CA files loaded: OpenSSL asks the client for a certificate and verifies one if sent. A
  client that sends none completes the handshake, and nginx's check (proxy.pipeline,
  `client_cert_refusal`) answers its request (496, sent as "400 No required SSL certificate
  was sent") when the server says `on`.
* A certificate that fails verification fails the handshake (a TLS alert): nginx instead
  completes it and answers 495 ("400 The SSL certificate error"), because its OpenSSL verify
  callback lets every error through; Python has no verify callback. The one check truehop
  makes itself, after the handshake, is `ssl_verify_depth` (Python cannot set OpenSSL's
  depth): a chain with more intermediate CAs than allowed is "FAILED:certificate chain too
  long" and answered 495, as nginx does.
* `optional_no_ca` (ask, don't verify) also needs that callback: it is refused when the
  configuration is read.

The variables are computed from the certificate's DER on first use (nginx's formats, checked
against ngx_event_openssl.c): a request that reads none of them costs nothing, and a TLS
connection whose context asks for no certificate has none (net.connection_info attaches it).
A leaf: it knows ssl and DER, nothing of connections or requests.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from calendar import timegm
from typing import Any, Final
from urllib.parse import quote

DEPTH_ATTR: Final = "truehop_verify_depth"     # ssl_verify_depth, kept on the server's SSLContext
CHAIN_TOO_LONG: Final = "certificate chain too long"     # X509_verify_cert_error_string(22)

# --- DER ---------------------------------------------------------------------------------


def _tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
    """The DER element at `pos`: (tag, start of its contents, end of its contents)."""
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte tag")
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if not 0 < k <= 4:
            raise ValueError("bad length")
        n = int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    if pos + n > len(buf):
        raise ValueError("truncated")
    return tag, pos, pos + n


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The elements inside a constructed one: (tag, element start, contents start, end)."""
    out = []
    while start < end:
        tag, c0, c1 = _tlv(buf, start)
        out.append((tag, start, c0, c1))
        start = c1
    return out


def _oid_text(content: bytes) -> str:
    first = content[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    v = 0
    for b in content[1:]:
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(v)
            v = 0
    return ".".join(map(str, parts))


class CertFields:
    """What the variables need from a certificate, split out of its DER (RFC 5280
    TBSCertificate: [0] version, serialNumber, signature, issuer, validity, subject)."""

    __slots__ = ("serial", "issuer", "not_before", "not_after", "subject")

    def __init__(self, der: bytes) -> None:
        _, c0, c1 = _tlv(der, 0)                       # Certificate
        _, t0, t1 = _tlv(der, c0)                      # tbsCertificate
        items = _children(der, t0, t1)
        if items and items[0][0] == 0xA0:              # explicit version
            items = items[1:]
        serial, _alg, issuer, validity, subject = items[:5]
        self.serial = der[serial[2]:serial[3]]
        self.issuer = der[issuer[1]:issuer[3]]
        times = _children(der, validity[2], validity[3])
        self.not_before = (times[0][0], der[times[0][2]:times[0][3]])
        self.not_after = (times[1][0], der[times[1][2]:times[1][3]])
        self.subject = der[subject[1]:subject[3]]


# --- nginx's formats ---------------------------------------------------------------------

# the string types X509_NAME_print_ex prints (tag2nbyte in OpenSSL's a_strex.c): their width
# in bytes, 0 for UTF8String; any other type is dumped as #hex of its DER
_WIDTH: Final = {12: 0, 18: 1, 19: 1, 20: 1, 22: 1, 23: 1, 24: 1, 26: 1, 28: 4, 30: 2}
_ESCAPED: Final = frozenset(b',+"\\<>;')
_SHORT_NAMES: dict[str, str | None] = {}


def _short_name(oid: str) -> str | None:
    """OpenSSL's short name of an attribute type (CN, O, emailAddress...), None when
    OpenSSL does not know the OID (it then prints the OID and dumps the value)."""
    try:
        return _SHORT_NAMES[oid]
    except KeyError:
        pass
    try:
        sn: str | None = ssl._ASN1Object(oid).shortname    # OpenSSL's own OBJ_nid2sn table
    except ValueError:
        sn = None
    if len(_SHORT_NAMES) < 256:
        _SHORT_NAMES[oid] = sn
    return sn


def _escape_value(tag: int, content: bytes) -> str:
    """An attribute value as ASN1_STRFLGS_RFC2253 prints it: converted to UTF-8, bytes above
    0x7f and control characters as \\XX, RFC 2253's specials with a backslash (# only first,
    a space only first or last)."""
    width = _WIDTH[tag]
    if width == 0:
        chars: list[int] = list(content)       # UTF8String: read byte by byte, not converted
    elif width == 1:
        chars = list(content)
    else:
        chars = [int.from_bytes(content[i:i + width], "big")
                 for i in range(0, len(content) - width + 1, width)]
    out: list[str] = []
    last = len(chars) - 1
    for i, c in enumerate(chars):
        if c > 0x7F:
            data = bytes([c]) if width == 0 else chr(c).encode("utf-8", "surrogatepass")
            out.extend(f"\\{b:02X}" for b in data)
        elif c in _ESCAPED or (c == 0x23 and i == 0) or (c == 0x20 and (i == 0 or i == last)):
            out.append("\\" + chr(c))
        elif c < 0x20 or c == 0x7F:
            out.append(f"\\{c:02X}")
        else:
            out.append(chr(c))
    return "".join(out)


def format_dn(name: bytes) -> str:
    """A DER Name as nginx prints $ssl_client_s_dn / $ssl_client_i_dn (nginx >= 1.11.6:
    X509_NAME_print_ex with XN_FLAG_RFC2253): RDNs last first, joined by ",", the values of
    a multi-valued RDN by "+", attribute types by OpenSSL's short names."""
    _, c0, c1 = _tlv(name, 0)
    entries: list[tuple[int, str]] = []        # (RDN index, "type=value"), in DER order
    for n, (_, _s, r0, r1) in enumerate(_children(name, c0, c1)):
        for _, _s2, a0, a1 in _children(name, r0, r1):
            (_, _, o0, o1), (vtag, v_start, v0, v1) = _children(name, a0, a1)[:2]
            oid = _oid_text(name[o0:o1])
            sn = _short_name(oid)
            if sn is None or vtag not in _WIDTH:
                # XN_FLAG_DUMP_UNKNOWN_FIELDS / ASN1_STRFLGS_DUMP_UNKNOWN: # and the DER
                value = "#" + name[v_start:v1].hex().upper()
            else:
                value = _escape_value(vtag, name[v0:v1])
            entries.append((n, f"{sn or oid}={value}"))
    out: list[str] = []
    prev = -1
    for n, text in reversed(entries):            # XN_FLAG_DN_REV reverses every entry
        if prev != -1:
            out.append("+" if n == prev else ",")
        out.append(text)
        prev = n
    return "".join(out)


def format_serial(content: bytes) -> str:
    """An INTEGER's contents as i2a_ASN1_INTEGER prints them ($ssl_client_serial): upper-case
    hex of the magnitude, "-" before a negative one, a "\\" line break every 35 bytes."""
    v = int.from_bytes(content, "big", signed=True) if content else 0
    mag = abs(v)
    data = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "big")
    hexed = "\\\n".join(data[i:i + 35].hex().upper() for i in range(0, len(data), 35))
    return ("-" if v < 0 else "") + hexed


_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _time_parts(tag: int, content: bytes) -> tuple[int, int, int, int, int, int, str]:
    s = content.decode("ascii")
    if tag == 23:                                # UTCTime: YYMMDDHHMMSSZ (RFC 5280)
        yy = int(s[0:2])
        year, s = (1900 + yy if yy >= 50 else 2000 + yy), s[2:]
    else:                                        # GeneralizedTime: YYYYMMDDHHMMSS[.f]Z
        year, s = int(s[0:4]), s[4:]
    frac = ""
    if len(s) > 10 and s[10] == ".":
        end = 11
        while end < len(s) and s[end].isdigit():
            end += 1
        frac = s[10:end]
    return year, int(s[0:2]), int(s[2:4]), int(s[4:6]), int(s[6:8]), int(s[8:10]), frac


def format_time(tag: int, content: bytes) -> str:
    """A certificate time as ASN1_TIME_print writes it ($ssl_client_v_start/_v_end), e.g.
    "Feb  3 00:55:52 2015 GMT"."""
    y, mo, d, h, mi, sec, frac = _time_parts(tag, content)
    return f"{_MONTHS[mo - 1]} {d:2d} {h:02d}:{mi:02d}:{sec:02d}{frac} {y} GMT"


def days_remaining(tag: int, content: bytes, now: float) -> str:
    """$ssl_client_v_remain: whole days until the end of validity, 0 in its last day."""
    y, mo, d, h, mi, sec, _ = _time_parts(tag, content)
    end = timegm((y, mo, d, h, mi, sec, 0, 0, 0))
    now_s = int(now)
    if end < now_s + 86400:
        return "0"
    return str((end - now_s) // 86400)


def tabbed_pem(pem: str) -> str:
    """$ssl_client_cert (deprecated): the PEM without its final newline, each line after the
    first starting with a tab (ngx_ssl_get_certificate)."""
    return pem[:-1].replace("\n", "\n\t")


def escaped_pem(pem: str) -> str:
    """$ssl_client_escaped_cert: the PEM escaped as a URI component (NGX_ESCAPE_URI_COMPONENT
    keeps letters, digits and -._~ only, the same set as `quote` with nothing extra safe)."""
    return quote(pem, safe="")


# --- one connection ----------------------------------------------------------------------


class ClientCert:
    """The client certificate of one TLS connection, read and formatted on first use."""

    __slots__ = ("so", "_der", "_fields", "_pem", "_verify", "_fingerprint")

    def __init__(self, so: ssl.SSLObject) -> None:
        self.so = so
        self._der: bytes | None | bool = False      # False: not read yet
        self._fields: CertFields | None = None
        self._pem: str | None = None
        self._verify: str | None = None
        self._fingerprint: str | None = None

    def der(self) -> bytes | None:
        d = self._der
        if d is False:
            try:
                d = self._der = self.so.getpeercert(binary_form=True)
            except (ValueError, ssl.SSLError):
                d = self._der = None
        return d if isinstance(d, bytes) else None

    def fields(self) -> CertFields | None:
        f = self._fields
        if f is None:
            der = self.der()
            if der is None:
                return None
            try:
                f = self._fields = CertFields(der)
            except (ValueError, IndexError):
                return None
        return f

    def verify(self) -> str:
        """$ssl_client_verify: NONE, SUCCESS or FAILED:reason. OpenSSL verified the chain in
        the handshake (a failure ends it); ssl_verify_depth is checked here, on the chain
        OpenSSL built: OpenSSL 1.1+ counts intermediate CAs, leaf and trust anchor apart."""
        v = self._verify
        if v is None:
            if self.der() is None:
                v = "NONE"
            else:
                v = "SUCCESS"
                depth = getattr(self.so.context, DEPTH_ATTR, None)
                if depth is not None:
                    chain = verified_chain(self.so)
                    if chain is not None and len(chain) - 2 > depth:
                        v = "FAILED:" + CHAIN_TOO_LONG
            self._verify = v
        return v

    def pem(self) -> str:
        p = self._pem
        if p is None:
            der = self.der()
            p = self._pem = ssl.DER_cert_to_PEM_cert(der) if der is not None else ""
        return p

    def tabbed_pem(self) -> str:
        p = self.pem()
        return tabbed_pem(p) if p else ""

    def escaped_pem(self) -> str:
        return escaped_pem(self.pem())

    def fingerprint(self) -> str:
        f = self._fingerprint
        if f is None:
            der = self.der()
            f = self._fingerprint = hashlib.sha1(der).hexdigest() if der is not None else ""
        return f

    def subject_dn(self) -> str:
        f = self.fields()
        return _safe(format_dn, f.subject) if f is not None else ""

    def issuer_dn(self) -> str:
        f = self.fields()
        return _safe(format_dn, f.issuer) if f is not None else ""

    def serial(self) -> str:
        f = self.fields()
        return format_serial(f.serial) if f is not None else ""

    def v_start(self) -> str:
        f = self.fields()
        return _safe(format_time, *f.not_before) if f is not None else ""

    def v_end(self) -> str:
        f = self.fields()
        return _safe(format_time, *f.not_after) if f is not None else ""

    def v_remain(self) -> str:
        f = self.fields()
        return _safe(days_remaining, *f.not_after, time.time()) if f is not None else ""


def _safe(fn: Any, *args: Any) -> str:
    """A malformed field gives an empty value (not found), never a failed request."""
    try:
        return str(fn(*args))
    except (ValueError, IndexError, UnicodeDecodeError, OverflowError):
        return ""


def verified_chain(so: ssl.SSLObject) -> list[Any] | None:
    """The chain OpenSSL verified, leaf first (SSLObject.get_verified_chain is public from
    Python 3.13; 3.10-3.12 have it on the C object). None when this Python has neither."""
    get = getattr(so, "get_verified_chain", None) or \
        getattr(getattr(so, "_sslobj", None), "get_verified_chain", None)
    if get is None:
        return None
    try:
        chain = get()
    except (ValueError, ssl.SSLError):
        return None
    # a resumed session keeps the peer's certificate but not the chain: it was verified when
    # the session was made
    return list(chain) if chain else None
