"""A local certificate authority for `--self-signed` and the demo, as Caddy's `tls internal`.

The first use creates a CA (an ECDSA P-256 key and a ten-year root) under the user's data
directory (`$XDG_DATA_HOME/truehop`, else `~/.local/share/truehop`; `TRUEHOP_DATA_DIR` overrides
both); it is kept, so a browser or system told once to trust it trusts every certificate
issued later. A leaf for a set of names is issued on demand, valid 90 days, and reissued when it
is missing, expires within 30 days, lacks one of the names or was signed by another CA.

Why a CA rather than one self-signed leaf: a leaf is a new exception in every browser each
time it changes, while a trusted root covers every name and every renewal; the trust command
(`trust_hint`) is one line.

A start-up helper (quick mode, the demo), never on the request path: it writes files and uses
the `cryptography` package (a runtime dependency).
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import os
import re
import socket
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 90
RENEW_BEFORE = datetime.timedelta(days=30)


def data_dir() -> str:
    """Where the CA and the issued certificates live (created 0700)."""
    path = os.environ.get("TRUEHOP_DATA_DIR")
    if not path:
        base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                               ".local", "share")
        path = os.path.join(base, "truehop")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


@dataclass(frozen=True)
class Issued:
    """A leaf certificate and its key on disk, and the CA that signed it."""

    cert: str
    key: str
    ca: str
    names: tuple[str, ...]
    created: bool           # issued by this call (False: an existing leaf was still good)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def _write_public(path: str, data: bytes) -> None:
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.chmod(path + ".tmp", 0o644)
    os.replace(path + ".tmp", path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_key(path: str) -> ec.EllipticCurvePrivateKey:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key")
    return key


def _load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def ensure_ca(directory: str | None = None) -> tuple[str, str]:
    """The CA's certificate and key paths, created on first use."""
    d = directory or data_dir()
    cert_path, key_path = os.path.join(d, "ca.pem"), os.path.join(d, "ca-key.pem")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        owner = f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:
        owner = socket.gethostname()
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "truehop local CA"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"truehop local CA ({owner})"),
    ])
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _leaf_ok(cert_path: str, key_path: str, ca: x509.Certificate,
             names: tuple[str, ...]) -> bool:
    try:
        cert = _load_cert(cert_path)
        _load_key(key_path)
    except (OSError, ValueError):
        return False
    if cert.issuer != ca.subject or cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return all(str(ipaddress.ip_address(n)) in have if _is_ip(n) else n in have for n in names)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def issue(names: list[str] | tuple[str, ...], directory: str | None = None) -> Issued:
    """A leaf for `names` (DNS names or IP addresses; the first is the subject's CN),
    signed by the local CA; an existing good leaf for the same first name is kept."""
    if not names:
        raise ValueError("a certificate needs at least one name")
    names = tuple(dict.fromkeys(names))
    d = directory or data_dir()
    ca_cert_path, ca_key_path = ensure_ca(d)
    ca_cert, ca_key = _load_cert(ca_cert_path), _load_key(ca_key_path)
    certs = os.path.join(d, "certs")
    os.makedirs(certs, mode=0o700, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", names[0])
    cert_path, key_path = os.path.join(certs, stem + ".pem"), os.path.join(certs, stem + ".key")
    if _leaf_ok(cert_path, key_path, ca_cert, names):
        return Issued(cert_path, key_path, ca_cert_path, names, False)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_private(key_path, _key_pem(key))
    # the chain nginx's ssl_certificate expects: the leaf, then the CA
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM)
                  + ca_cert.public_bytes(serialization.Encoding.PEM))
    return Issued(cert_path, key_path, ca_cert_path, names, True)


def trust_hint(ca_path: str) -> str:
    """The one-line commands that make the system and the browsers trust the local CA."""
    return (f"to trust it: sudo cp {ca_path} /usr/local/share/ca-certificates/truehop-local-ca.crt"
            f" && sudo update-ca-certificates   (Chrome/Firefox on Linux: certutil -d "
            f"sql:$HOME/.pki/nssdb -A -t C,, -n 'truehop local CA' -i {ca_path};"
            f" curl: --cacert {ca_path})")
