"""The audit signing key: an Ed25519 pair made by `opsplane events keygen`, the private half
read from the PEM file OPSPLANE_AUDIT_KEY_FILE names, never from the inventory, never logged."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from opsplane.errors import SecretError, UsageError

KEY_ENV = "OPSPLANE_AUDIT_KEY_FILE"
PRIVATE_NAME = "opsplane-audit.key.pem"
PUBLIC_NAME = "opsplane-audit.pub.pem"


def generate(directory: Path) -> tuple[Path, Path]:
    """Write a new key pair into `directory` (private 0600, public 0644); refuses to replace one."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / PRIVATE_NAME, directory / PUBLIC_NAME
    for path in (private_path, public_path):
        if path.exists():
            raise UsageError(f"{path} exists: a signing key is never replaced in place; move it away first "
                             "(archives it signed are checked with its public half)")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private)
    public_path.write_bytes(public_pem(key.public_key()))
    return private_path, public_path


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the public key's raw bytes, hex: which key signed a manifest."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def signing_key(environ: Mapping[str, str] | None = None) -> Ed25519PrivateKey:
    """The private key from the file OPSPLANE_AUDIT_KEY_FILE names; SecretError (exit 3) saying
    what is wrong, never the key."""
    env = os.environ if environ is None else environ
    named = env.get(KEY_ENV, "").strip()
    if not named:
        raise SecretError(f"{KEY_ENV} is not set: name the PEM file of the audit signing key "
                          "(`opsplane events keygen --out DIR` makes one)")
    try:
        data = Path(named).read_bytes()
    except OSError as exc:
        raise SecretError(f"{KEY_ENV}: cannot read {named}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SecretError(f"{KEY_ENV}: {named} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SecretError(f"{KEY_ENV}: {named} is not an Ed25519 key")
    return key


def public_key(path: Path) -> Ed25519PublicKey:
    """A public key from a PEM file; UsageError when it is not an Ed25519 public key."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError):
        raise UsageError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{path} is not an Ed25519 public key")
    return key


def signed_by(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
