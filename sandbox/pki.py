"""The sandbox's own CA, its TLS server certificate, and the token signing key.

Everything lives in the state directory and is reused across restarts, so that a CA bundle handed
to clients stays valid and tokens issued before a restart still verify:

- ``ca.pem`` / ``ca-key.pem`` (0600): a self-signed CA.
- ``server.pem`` / ``server-key.pem`` (0600): the TLS certificate for ``127.0.0.1`` (IP SAN) and
  ``localhost`` (DNS SAN), signed by the CA; reissued when missing, not signed by the current CA,
  or close to expiry.
- ``ca-bundle.pem``: the system CA bundle plus the sandbox CA, for ``REQUESTS_CA_BUNDLE``.
- ``signing-key.pem`` (0600) / ``signing-cert.pem``: the RSA key that signs access tokens, with a
  self-signed certificate so the JWKS can carry ``x5c`` / ``x5t`` as Microsoft's does.
- ``signing-previous-<n>-key.pem`` / ``-cert.pem``: keys that signed before a rotation
  (``POST /_sandbox/keys/rotate``), still published in the JWKS so that the tokens they signed stay
  valid until they expire, as Microsoft keeps a rolled-over key published for a while
  (learn.microsoft.com/entra/identity-platform/signing-key-rollover). The newest
  ``PREVIOUS_KEYS_KEPT`` are kept.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SYSTEM_CA_BUNDLE_FALLBACK = "/etc/ssl/certs/ca-certificates.crt"
_RENEW_BEFORE = dt.timedelta(days=30)
PREVIOUS_KEYS_KEPT = 3


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_key(path: Path) -> rsa.RSAPrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, rsa.RSAPrivateKey) else None


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _same_public_key(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def _fresh(cert: x509.Certificate) -> bool:
    """Valid now and for a while yet. A certificate made under a clock moved forward (a test run
    under libfaketime) is not yet valid once the clock is back: it is made again, as is one that
    expired or is about to."""
    now = _now()
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - now > _RENEW_BEFORE


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    public_key = ca.public_key()
    if cert.issuer != ca.subject or not isinstance(public_key, rsa.RSAPublicKey):
        return False
    hash_algorithm = cert.signature_hash_algorithm
    if hash_algorithm is None:
        return False
    try:
        public_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hash_algorithm)
    except InvalidSignature:
        return False
    return True


def _make_ca(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Microsoft cloud sandbox local CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sandbox (not Microsoft)")])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_server_cert(key: rsa.RSAPrivateKey, ca: x509.Certificate, ca_key: rsa.RSAPrivateKey) -> x509.Certificate:
    now = _now()
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _make_signing_cert(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.sandbox.local")])
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )


def system_ca_bundle_path() -> Path | None:
    """The system CA bundle: certifi's file if certifi is installed, else Debian's bundle."""
    candidates: list[str] = []
    with contextlib.suppress(ImportError):
        import certifi

        candidates.append(certifi.where())
    candidates.append(SYSTEM_CA_BUNDLE_FALLBACK)
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class SigningKey:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    kid: str  # = x5t, base64url SHA-1 of the certificate, as Microsoft's keys have

    @classmethod
    def of(cls, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> SigningKey:
        kid = b64url(hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest())  # noqa: S324 - x5t is SHA-1 by definition (RFC 7515)
        return cls(key, cert, kid)

    @property
    def private_pem(self) -> bytes:
        return _key_pem(self.key)

    def jwk(self) -> dict[str, object]:
        numbers = self.key.public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        der = self.cert.public_bytes(serialization.Encoding.DER)
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": b64url(n), "e": b64url(e),
                "x5c": [base64.b64encode(der).decode("ascii")], "alg": "RS256"}


def _signing_paths(state_dir: Path, index: int) -> tuple[Path, Path]:
    """(key, certificate) files: index 0 is the current key, 1.. the previous ones, newest first."""
    if index == 0:
        return state_dir / "signing-key.pem", state_dir / "signing-cert.pem"
    return state_dir / f"signing-previous-{index}-key.pem", state_dir / f"signing-previous-{index}-cert.pem"


def _load_signing_key(state_dir: Path, index: int) -> SigningKey | None:
    key_path, cert_path = _signing_paths(state_dir, index)
    key, cert = _load_key(key_path), _load_cert(cert_path)
    if key is None or cert is None or not _same_public_key(cert, key) or not _fresh(cert):
        return None
    return SigningKey.of(key, cert)


def _new_signing_key() -> SigningKey:
    key = _new_key()
    return SigningKey.of(key, _make_signing_cert(key))


class SigningKeys:
    """The token signing keys: the current one signs new tokens; it and the previous ones are
    published in every tenant's JWKS, and any published key verifies a token it signed."""

    def __init__(self, state_dir: Path, current: SigningKey, previous: list[SigningKey]):
        self._state_dir = state_dir
        self._lock = threading.Lock()
        self._keys = [current, *previous[:PREVIOUS_KEYS_KEPT]]

    @classmethod
    def load(cls, state_dir: Path) -> SigningKeys:
        current = _load_signing_key(state_dir, 0)
        if current is None:
            keys = cls(state_dir, _new_signing_key(), [])
            keys._save()
            return keys
        previous = [k for i in range(1, PREVIOUS_KEYS_KEPT + 1) if (k := _load_signing_key(state_dir, i))]
        return cls(state_dir, current, previous)

    @property
    def current(self) -> SigningKey:
        return self._keys[0]

    @property
    def published(self) -> list[SigningKey]:
        """Current first, then the previous keys, newest first."""
        return list(self._keys)

    def find(self, kid: object) -> SigningKey | None:
        return next((k for k in self._keys if k.kid == kid), None)

    def rotate(self) -> SigningKey:
        """A new current key; the one before stays published (and verifying) as a previous key."""
        new = _new_signing_key()
        with self._lock:
            self._keys = [new, *self._keys[:PREVIOUS_KEYS_KEPT]]
            self._save()
        return new

    def _save(self) -> None:
        for index in range(PREVIOUS_KEYS_KEPT + 1):
            key_path, cert_path = _signing_paths(self._state_dir, index)
            if index < len(self._keys):
                write_private(key_path, self._keys[index].private_pem)
                write_public(cert_path, self._keys[index].cert.public_bytes(serialization.Encoding.PEM))
            else:
                for path in (key_path, cert_path):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()


@dataclass(frozen=True)
class Pki:
    state_dir: Path
    ca_cert_path: Path
    ca_key_path: Path
    server_cert_path: Path
    server_key_path: Path
    ca_bundle_path: Path
    keys: SigningKeys = field(repr=False)

    @property
    def signing(self) -> SigningKey:
        """The key that signs new tokens."""
        return self.keys.current


def ensure_pki(state_dir: Path) -> Pki:
    """Create or reuse the CA, server certificate, CA bundle and signing keys in ``state_dir``."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert_path, ca_key_path = state_dir / "ca.pem", state_dir / "ca-key.pem"
    server_cert_path, server_key_path = state_dir / "server.pem", state_dir / "server-key.pem"
    bundle_path = state_dir / "ca-bundle.pem"

    ca_key = _load_key(ca_key_path)
    ca = _load_cert(ca_cert_path)
    if ca_key is None or ca is None or not _same_public_key(ca, ca_key) or not _fresh(ca):
        ca_key = _new_key()
        ca = _make_ca(ca_key)
        write_private(ca_key_path, _key_pem(ca_key))
        write_public(ca_cert_path, ca.public_bytes(serialization.Encoding.PEM))
    os.chmod(ca_key_path, 0o600)

    server_key = _load_key(server_key_path)
    server = _load_cert(server_cert_path)
    if (server_key is None or server is None or not _same_public_key(server, server_key)
            or not _fresh(server) or not _signed_by(server, ca)):
        server_key = _new_key()
        server = _make_server_cert(server_key, ca, ca_key)
        write_private(server_key_path, _key_pem(server_key))
        write_public(server_cert_path, server.public_bytes(serialization.Encoding.PEM))

    system = system_ca_bundle_path()
    parts = [system.read_bytes().rstrip(b"\n") + b"\n"] if system else []
    parts.append(b"# Microsoft cloud sandbox local CA\n" + ca.public_bytes(serialization.Encoding.PEM))
    write_public(bundle_path, b"".join(parts))

    return Pki(state_dir, ca_cert_path, ca_key_path, server_cert_path, server_key_path, bundle_path,
               SigningKeys.load(state_dir))
