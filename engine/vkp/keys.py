"""Ed25519 keys for package signatures: the admin signs, school servers trust public keys.

One key signs two kinds of message, each behind its own prefix (`MANIFEST`, `CATALOGUE`), so a
signature made for one can never be passed off as the other.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.settings import Settings
from engine.util import SecretError, read_secret, write_private

log = logging.getLogger(__name__)

MANIFEST = b"nexus-vkp-manifest-v2\n"
CATALOGUE = b"nexus-vkp-catalogue-v2\n"


# A PEM Ed25519 key is about 120 bytes; anything much bigger is not one.
_MAX_KEY_BYTES = 4096


def keygen(folder: Path) -> tuple[Path, Path]:
    """Write `vkp_signing.key` (private, mode 600 from creation) and `vkp_signing.pub` into
    `folder`, each whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / "vkp_signing.key", folder / "vkp_signing.pub"
    if private_path.exists():
        raise FileExistsError(f"{private_path} exists; move it away to make a new key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if not write_private(private_path, private_pem, exclusive=True):
        raise FileExistsError(f"{private_path} exists; move it away to make a new key")
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_private(public_path, public_pem)
    public_path.chmod(0o644)  # public: copied to every school server
    return private_path, public_path


def _pem(path: Path, what: str, marker: bytes) -> bytes:
    return read_secret(
        path,
        max_bytes=_MAX_KEY_BYTES,
        valid=lambda data: data.lstrip().startswith(marker),
        what=what,
    )


def private_key(settings: Settings) -> Ed25519PrivateKey:
    """The admin's signing key (VKP_SIGNING_KEY, default `<data>/keys/vkp_signing.key`).

    Raises:
        FileNotFoundError: there is none (`nexus vkp keygen` makes one).
        SecretError: the file is a link, empty, too big or not an Ed25519 private key.
    """
    path = Path(settings.vkp_signing_key or settings.data_dir / "keys" / "vkp_signing.key")
    try:
        pem = _pem(path, "the VKP signing key", b"-----BEGIN PRIVATE KEY-----")
    except FileNotFoundError:
        raise FileNotFoundError(f"no signing key at {path}: run `nexus vkp keygen`") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise SecretError(f"the VKP signing key at {path} is not an Ed25519 private key")
    return key


def signer(settings: Settings):
    return private_key(settings).sign


def trusted_keys(settings: Settings) -> list[Ed25519PublicKey]:
    """The public keys packages may be signed with.

    Raises:
        SecretError: a trusted key file is a link, empty or not an Ed25519 public key (no
            package is trusted until it is repaired or removed).
    """
    paths = (
        [Path(p) for p in settings.vkp_trusted_keys.split(",") if p.strip()]
        if settings.vkp_trusted_keys
        else sorted((settings.data_dir / "keys").glob("*.pub"))
    )
    keys = []
    for path in paths:
        try:
            pem = _pem(path, "a trusted VKP key", b"-----BEGIN PUBLIC KEY-----")
        except FileNotFoundError:
            log.warning("trusted key %s does not exist; ignored", path)
            continue
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, Ed25519PublicKey):
            raise SecretError(f"the trusted VKP key at {path} is not an Ed25519 public key")
        keys.append(key)
    return keys


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
