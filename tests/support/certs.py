"""Certificates for TLS tests, made on the spot with `cryptography`: a test CA, leaves it
signs, and self-signed certificates that expire when the test says."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertificateFiles:
    """A PEM certificate and its unencrypted PEM key on disk."""

    cert_file: Path
    key_file: Path
    not_after: datetime
    common_name: str


class TestAuthority:
    """A throwaway certificate authority; `ca_file` is what a client trusts."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "opsplane test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, *, valid_days: float = 365, common_name: str = "localhost") -> CertificateFiles:
        """A server certificate for `common_name`, localhost and 127.0.0.1, signed by this CA."""
        return _certificate(self.directory, common_name, valid_days, issuer=self)


def self_signed(
    directory: Path, *, valid_days: float, common_name: str = "localhost"
) -> CertificateFiles:
    """A self-signed server certificate that expires `valid_days` from now (negative: expired)."""
    return _certificate(directory, common_name, valid_days, issuer=None)


def _certificate(
    directory: Path, common_name: str, valid_days: float, issuer: TestAuthority | None
) -> CertificateFiles:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    not_after = now + timedelta(days=valid_days)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now, not_after) - timedelta(days=30))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([
                *(x509.DNSName(name) for name in dict.fromkeys([common_name, "localhost"])),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    signer = issuer.key if issuer else key
    certificate = builder.sign(signer, hashes.SHA256())
    stem = f"{common_name}-{certificate.serial_number:x}"[:60]
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return CertificateFiles(cert_file, key_file, certificate.not_valid_after_utc, common_name)
