"""The $ssl_client_* formats of truehop.certificate, checked against OpenSSL's own printing (the
`openssl x509 -nameopt RFC2253` command uses XN_FLAG_RFC2253, as nginx does) and nginx's."""

from __future__ import annotations

import datetime
import shutil
import ssl
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier

from truehop.certificate import (
    CertFields,
    days_remaining,
    escaped_pem,
    format_dn,
    format_serial,
    format_time,
    tabbed_pem,
)
from truehop.net.tls import client_sni

_KEY = ec.generate_private_key(ec.SECP256R1())


def make_cert(subject: x509.Name, serial: int = 0x1234,
              not_after: datetime.datetime | None = None) -> x509.Certificate:
    start = datetime.datetime(2020, 2, 3, 0, 55, 52, tzinfo=datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(_KEY.public_key()).serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(not_after or datetime.datetime(2049, 12, 31, 23, 59, 59,
                                                            tzinfo=datetime.UTC))
            .sign(_KEY, hashes.SHA256()))


def attr(oid: ObjectIdentifier, value: str, typ: _ASN1Type | None = None) -> x509.NameAttribute:
    if typ is None:
        return x509.NameAttribute(oid, value)
    return x509.NameAttribute(oid, value, _type=typ)


NAMES = {
    "simple": x509.Name([attr(NameOID.COUNTRY_NAME, "DE"),
                         attr(NameOID.ORGANIZATION_NAME, "Example"),
                         attr(NameOID.COMMON_NAME, "alice")]),
    "specials": x509.Name([attr(NameOID.ORGANIZATION_NAME, 'a,b+c"d\\e<f>g;h=i'),
                           attr(NameOID.ORGANIZATIONAL_UNIT_NAME, "#not first #"),
                           attr(NameOID.COMMON_NAME, " padded ")]),
    "utf8": x509.Name([attr(NameOID.COMMON_NAME, "Jürgen Größe ☃")]),
    "bmp": x509.Name([attr(NameOID.COMMON_NAME, "Zoë", _ASN1Type.BMPString)]),
    "control": x509.Name([attr(NameOID.COMMON_NAME, "tab\there\x7f")]),
    "email": x509.Name([attr(NameOID.EMAIL_ADDRESS, "a@example.com"),
                        attr(NameOID.DOMAIN_COMPONENT, "example"),
                        attr(NameOID.USER_ID, "u1"), attr(NameOID.SERIAL_NUMBER, "42")]),
    "multi_rdn": x509.Name([
        x509.RelativeDistinguishedName([attr(NameOID.COMMON_NAME, "x"),
                                        attr(NameOID.ORGANIZATIONAL_UNIT_NAME, "y")]),
        x509.RelativeDistinguishedName([attr(NameOID.ORGANIZATION_NAME, "z")])]),
    "unknown_oid": x509.Name([attr(ObjectIdentifier("1.3.6.1.4.1.99999.1"), "opaque"),
                              attr(NameOID.COMMON_NAME, "known")]),
    "empty": x509.Name([]),
}


def openssl_subject(cert: x509.Certificate, tmp_path: Path) -> str:
    p = tmp_path / "c.pem"
    p.write_bytes(cert.public_bytes(Encoding.PEM))
    out = subprocess.run(["openssl", "x509", "-in", str(p), "-noout", "-subject",
                          "-nameopt", "RFC2253"], capture_output=True, check=True)
    line = out.stdout.decode("latin-1").rstrip("\n")
    assert line.startswith("subject=")
    return line[len("subject="):]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
@pytest.mark.parametrize("name", sorted(NAMES))
def test_dn_is_what_openssl_prints_with_rfc2253(name: str, tmp_path: Path) -> None:
    cert = make_cert(NAMES[name])
    fields = CertFields(cert.public_bytes(Encoding.DER))
    assert format_dn(fields.subject) == openssl_subject(cert, tmp_path)


def test_dn_examples() -> None:
    # written out, so the expectations do not rest on the openssl command alone
    def dn(name: str) -> str:
        return format_dn(CertFields(make_cert(NAMES[name]).public_bytes(Encoding.DER)).subject)

    assert dn("simple") == "CN=alice,O=Example,C=DE"
    assert dn("specials") == 'CN=\\ padded\\ ,OU=\\#not first #,O=a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h=i'
    assert dn("utf8") == "CN=J\\C3\\BCrgen Gr\\C3\\B6\\C3\\9Fe \\E2\\98\\83"
    assert dn("bmp") == "CN=Zo\\C3\\AB"
    assert dn("control") == "CN=tab\\09here\\7F"
    # a multi-valued RDN's values come reversed too (XN_FLAG_DN_REV reverses every entry)
    assert dn("multi_rdn") == "O=z,OU=y+CN=x"
    assert dn("unknown_oid") == "CN=known,1.3.6.1.4.1.99999.1=#0C066F7061717565"
    assert dn("empty") == ""


@pytest.mark.parametrize(("serial", "text"), [
    (0x1234, "1234"),
    (0xABC, "0ABC"),          # whole bytes, as i2a_ASN1_INTEGER prints them
    (0x80, "80"),             # DER's sign byte is not part of the value
    (1, "01"),
    (0, "00"),
    (-0x1234, "-1234"),
])
def test_serial(serial: int, text: str) -> None:
    # the INTEGER's DER contents: two's complement, with a sign byte where needed
    content = serial.to_bytes(max(1, (serial.bit_length() + 8) // 8), "big", signed=True)
    assert format_serial(content) == text


def test_serial_from_certificate_and_long_serials_break_lines() -> None:
    cert = make_cert(NAMES["simple"], serial=0x46073D20B8077548EC1D1DEF162468C13C019428)
    assert format_serial(CertFields(cert.public_bytes(Encoding.DER)).serial) == \
        "46073D20B8077548EC1D1DEF162468C13C019428"
    long = bytes(range(1, 40))
    assert format_serial(long) == long[:35].hex().upper() + "\\\n" + long[35:].hex().upper()


def test_times() -> None:
    cert = make_cert(NAMES["simple"])
    f = CertFields(cert.public_bytes(Encoding.DER))
    assert format_time(*f.not_before) == "Feb  3 00:55:52 2020 GMT"      # UTCTime
    assert format_time(*f.not_after) == "Dec 31 23:59:59 2049 GMT"
    assert format_time(24, b"20510101000000Z") == "Jan  1 00:00:00 2051 GMT"
    assert format_time(24, b"20510101000000.25Z") == "Jan  1 00:00:00.25 2051 GMT"
    end = datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.UTC).timestamp()
    assert days_remaining(*f.not_after, end - 10 * 86400 - 5) == "10"
    assert days_remaining(*f.not_after, end - 86399) == "0"       # the last day
    assert days_remaining(*f.not_after, end + 5) == "0"           # expired


def test_pem_forms() -> None:
    cert = make_cert(NAMES["simple"])
    pem = ssl.DER_cert_to_PEM_cert(cert.public_bytes(Encoding.DER))
    # PEM_write_bio_X509's layout: 64-column base64, a newline after the footer
    assert pem == cert.public_bytes(Encoding.PEM).decode()
    lines = pem.rstrip("\n").split("\n")
    assert tabbed_pem(pem) == "\n\t".join(lines)          # no final newline
    esc = escaped_pem(pem)
    assert esc.startswith("-----BEGIN%20CERTIFICATE-----%0A") and esc.endswith("-----%0A")
    assert unquote(esc) == pem
    # NGX_ESCAPE_URI_COMPONENT: only letters, digits and -._~ stay as they are
    assert set(esc) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%")
    assert escaped_pem("a+b/c=") == "a%2Bb%2Fc%3D"


def _hello(sni: str | None) -> bytes:
    """A ClientHello (as OpenSSL writes it) with or without SNI, via a memory-BIO client."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def test_client_sni() -> None:
    hello = _hello("on.example.test")
    assert client_sni(hello) == "on.example.test"
    assert client_sni(_hello(None)) == ""
    assert client_sni(hello[:20]) is None          # the rest is to come
    assert client_sni(b"GET / HTTP/1.1\r\n") is False


class _Raw:
    """The raw transport under a TlsProtocol: keeps what is written."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def test_context_is_chosen_by_sni_before_the_handshake(tmp_path: Path) -> None:
    import trustme

    from truehop.net.tls import CHOOSE_ATTR, TlsProtocol

    ca = trustme.CA()
    contexts = {}
    for name in ("a.test", "b.test"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(name).configure_cert(ctx)
        contexts[name] = ctx
    asked: list[str | None] = []

    def choose(name: str | None) -> ssl.SSLContext:
        asked.append(name)
        return contexts.get(name or "", contexts["a.test"])

    setattr(contexts["a.test"], CHOOSE_ATTR, choose)
    proto = TlsProtocol(contexts["a.test"], lambda alpn: None,  # type: ignore[arg-type,return-value]
                        handshake_timeout=0)
    raw = _Raw()
    proto.connection_made(raw)  # type: ignore[arg-type]
    hello = _hello("b.test")
    proto.data_received(hello[:40])             # not the whole ClientHello yet: wait
    assert asked == [] and proto.sslobj is None and not raw.out
    proto.data_received(hello[40:])
    assert asked == ["b.test"]
    assert proto.sslobj is not None and proto.sslobj.context is contexts["b.test"]
    assert raw.out[:1] == b"\x16"               # the ServerHello went out
