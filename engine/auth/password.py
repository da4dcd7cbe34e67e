"""Admin password for the panel: scrypt hashes, never a plain-text default.

The hash comes from NEXUS_ADMIN_PASSWORD_HASH, or from `<data>/keys/admin_password` written by
`nexus admin set-password`. Without either, nobody can log in (the panel says how to set one).

Hashes carry their parameters (`scrypt$n=131072,r=8,p=1$<salt>$<hash>`) and are checked with
them, so raising the cost never locks anyone out: an older, cheaper hash (including the first
format, `scrypt$16384$8$1$<salt>$<hash>`) still verifies and is rewritten at today's cost on the
next successful login. A hash that cannot be read refuses every login with a message.

Failed logins are throttled in `engine.auth.throttle`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from engine.settings import Settings
from engine.util import SecretError, read_secret, write_private

log = logging.getLogger(__name__)

MIN_LENGTH = 10

# OWASP's minimum for scrypt (Password Storage Cheat Sheet): N=2^17, r=8, p=1 (128 MiB, ~0.3 s).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
_DKLEN = 32
# Stored parameters are checked before use: a hash edited to N=2^40 must not eat the server.
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16


class MalformedHash(ValueError):
    """The stored admin password hash cannot be read; nobody can log in until it is reset."""


@dataclass(frozen=True)
class ScryptHash:
    """A parsed stored hash: its cost parameters, salt and digest."""

    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @property
    def outdated(self) -> bool:
        """True when the cost is below today's parameters (re-hash at the next login)."""
        return self.n * self.r < SCRYPT_N * SCRYPT_R or self.p < SCRYPT_P


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # OpenSSL needs about 128 * r * (n + p + 2) bytes; its default cap (32 MiB) is too low
    maxmem = 128 * r * (n + p + 2) + 2**20
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem)


def hash_password(password: str) -> str:
    """`scrypt$n=131072,r=8,p=1$<salt b64>$<digest b64>`: the parameters travel with the hash."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, _DKLEN)
    salt_b64, digest_b64 = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}${salt_b64}${digest_b64}"


def parse_hash(stored: str) -> ScryptHash:
    """Read a stored hash: today's `scrypt$n=..,r=..,p=..$salt$digest`, or the older
    `scrypt$N$r$p$salt$digest`.

    Raises:
        MalformedHash: not a scrypt hash this code can check, or parameters out of bounds.
    """
    parts = stored.strip().split("$")
    try:
        if len(parts) == 4 and parts[0] == "scrypt":
            params = dict(item.split("=", 1) for item in parts[1].split(","))
            if set(params) != {"n", "r", "p"}:
                raise ValueError("parameters must be n, r and p")
            n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
        elif len(parts) == 6 and parts[0] == "scrypt":
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        else:
            raise ValueError("not a scrypt$<parameters>$<salt>$<hash> value")
        salt = base64.b64decode(parts[-2], validate=True)
        digest = base64.b64decode(parts[-1], validate=True)
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise MalformedHash(f"the stored admin password hash is malformed ({exc})") from None
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_R and 0 < p <= _MAX_P):
        raise MalformedHash(f"the stored hash has parameters out of bounds (n={n}, r={r}, p={p})")
    if len(salt) < 8 or len(digest) < 16:
        raise MalformedHash("the stored hash's salt or digest is too short")
    return ScryptHash(n, r, p, salt, digest)


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`, checked with the stored parameters.

    Raises:
        MalformedHash: `stored` cannot be read.
    """
    parsed = parse_hash(stored)
    actual = _scrypt(password, parsed.salt, parsed.n, parsed.r, parsed.p, len(parsed.digest))
    return hmac.compare_digest(actual, parsed.digest)


def hash_source(settings: Settings) -> Path | None:
    """The file the admin hash is read from, or None when it comes from the environment."""
    if settings.admin_password_hash:
        return None
    return settings.data_dir / "keys" / "admin_password"


def stored_hash(settings: Settings) -> str | None:
    """The admin's scrypt hash, or None when none is set. A file that is a link, too big or
    unreadable yields "" (a hash that refuses every login, with the reason in the log)."""
    if settings.admin_password_hash:
        return settings.admin_password_hash
    path = settings.data_dir / "keys" / "admin_password"
    try:
        return read_secret(path, max_bytes=1024, valid=bool, what="the admin password hash").decode(
            "ascii"
        )
    except FileNotFoundError:
        return None
    except (SecretError, UnicodeDecodeError) as exc:
        log.error("admin logins refused: %s", exc)
        return ""


def set_password(settings: Settings, password: str) -> None:
    """Store the hash of `password` in the data dir (readable by the owner only)."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"the password must be at least {MIN_LENGTH} characters")
    _write_hash(settings.data_dir / "keys" / "admin_password", hash_password(password))


def _write_hash(path: Path, value: str) -> None:
    write_private(path, value.encode())


def upgrade_hash(settings: Settings, password: str, stored: str) -> bool:
    """After a successful login: re-hash with today's cost if `stored` is weaker.

    Only the data-dir file can be rewritten; a hash from NEXUS_ADMIN_PASSWORD_HASH is left as
    it is (with a warning in the log). Returns True when the stored hash was rewritten.
    """
    try:
        if not parse_hash(stored).outdated:
            return False
    except MalformedHash:
        return False
    path = hash_source(settings)
    if path is None:
        log.warning(
            "NEXUS_ADMIN_PASSWORD_HASH uses an outdated scrypt cost; "
            "run `nexus admin set-password` to store a stronger hash"
        )
        return False
    try:
        _write_hash(path, hash_password(password))
    except OSError as exc:  # the login itself succeeded; try again next time
        log.warning("could not upgrade the admin password hash in %s: %s", path, exc)
        return False
    log.info(
        "admin password hash upgraded to scrypt n=%d, r=%d, p=%d", SCRYPT_N, SCRYPT_R, SCRYPT_P
    )
    return True
