"""Ed25519 keys for package signatures: the admin signs, school servers trust public keys.

One key signs two kinds of message, each behind its own prefix (`MANIFEST`, `CATALOGUE`), so a
signature made for one can never be passed off as the other.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.settings import Settings

log = logging.getLogger(__name__)

MANIFEST = b"nexus-vkp-manifest-v2\n"
CATALOGUE = b"nexus-vkp-catalogue-v2\n"


def keygen(folder: Path) -> tuple[Path, Path]:
    """Write `vkp_signing.key` (private, mode 600) and `vkp_signing.pub` into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / "vkp_signing.key", folder / "vkp_signing.pub"
    if private_path.exists():
        raise FileExistsError(f"{private_path} exists; move it away to make a new key")
    key = Ed25519PrivateKey.generate()
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(private_path, 0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def private_key(settings: Settings) -> Ed25519PrivateKey:
    """The admin's signing key (VKP_SIGNING_KEY, default `<data>/keys/vkp_signing.key`)."""
    path = settings.vkp_signing_key or settings.data_dir / "keys" / "vkp_signing.key"
    if not Path(path).exists():
        raise FileNotFoundError(f"no signing key at {path}: run `nexus vkp keygen`")
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 key")
    return key


def signer(settings: Settings):
    return private_key(settings).sign


def trusted_keys(settings: Settings) -> list[Ed25519PublicKey]:
    paths = (
        [Path(p) for p in settings.vkp_trusted_keys.split(",") if p.strip()]
        if settings.vkp_trusted_keys
        else sorted((settings.data_dir / "keys").glob("*.pub"))
    )
    missing = [p for p in paths if not p.exists()]
    for path in missing:
        log.warning("trusted key %s does not exist; ignored", path)
    return [serialization.load_pem_public_key(p.read_bytes()) for p in paths if p.exists()]


def key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key (hex of the SHA-256 of its raw bytes)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signing_key(
    message: bytes, signature: bytes, keys: list[Ed25519PublicKey]
) -> Ed25519PublicKey | None:
    """The trusted key that made `signature` over `message`, or None."""
    for key in keys:
        try:
            key.verify(signature, message)
            return key
        except (InvalidSignature, ValueError, TypeError):
            continue
    return None


def verify(message: bytes, signature: bytes, keys: list[Ed25519PublicKey]) -> bool:
    return signing_key(message, signature, keys) is not None
