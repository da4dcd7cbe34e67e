"""Admin password for the panel: scrypt hashes, never a plain-text default.

The hash comes from NEXUS_ADMIN_PASSWORD_HASH, or from `<data>/keys/admin_password` written by
`nexus admin set-password`. Without either, nobody can log in (the panel says how to set one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from engine.settings import Settings

_N, _R, _P = 2**14, 8, 1
MIN_LENGTH = 10


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    salt_b64, digest_b64 = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${_N}${_R}${_P}${salt_b64}${digest_b64}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


def stored_hash(settings: Settings) -> str | None:
    if settings.admin_password_hash:
        return settings.admin_password_hash
    path = settings.data_dir / "keys" / "admin_password"
    return path.read_text().strip() if path.exists() else None


def set_password(settings: Settings, password: str) -> None:
    """Store the hash of `password` in the data dir (readable by the owner only)."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"the password must be at least {MIN_LENGTH} characters")
    path = settings.data_dir / "keys" / "admin_password"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(hash_password(password))
    tmp.chmod(0o600)
    os.replace(tmp, path)
