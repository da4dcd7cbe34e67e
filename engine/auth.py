"""Admin password for the panel: scrypt hashes, never a plain-text default.

The hash comes from NEXUS_ADMIN_PASSWORD_HASH, or from `<data>/keys/admin_password` written by
`nexus admin set-password`. Without either, nobody can log in (the panel says how to set one).

Hashes carry their parameters (`scrypt$n=131072,r=8,p=1$<salt>$<hash>`) and are checked with
them, so raising the cost never locks anyone out: an older, cheaper hash (including the first
format, `scrypt$16384$8$1$<salt>$<hash>`) still verifies and is rewritten at today's cost on the
next successful login. A hash that cannot be read refuses every login with a message.

Failed logins are throttled per client (`LoginThrottle`): growing delays, capped, forgotten
after a quiet hour; `nexus admin unlock` clears them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.db import single_table
from engine.settings import Settings
from engine.util import write_private

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
    if settings.admin_password_hash:
        return settings.admin_password_hash
    path = settings.data_dir / "keys" / "admin_password"
    return path.read_text().strip() if path.exists() else None


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


# --- login throttling ---------------------------------------------------------------------------


def wall_clock() -> float:
    """Seconds since the epoch. Tests replace `engine.auth.wall_clock` to move time."""
    return time.time()


@dataclass(frozen=True)
class LoginResult:
    """What a login attempt got: `ok`, or a refusal; `wait_s` > 0 means "locked, try later"."""

    ok: bool
    wait_s: float = 0.0
    malformed: str = ""  # why the stored hash cannot be used (nobody can log in)


class LoginThrottle:
    """Growing delays between failed logins, per client, kept in a small SQLite file.

    The first `free_attempts` failures cost nothing; after that each failure locks the client
    for `base_delay_s * 2**k`, capped at `max_delay_s`, so a guessing script gets a handful of
    tries per hour while a mistyping admin waits seconds. Failures are forgotten after
    `forget_after_s` without a new one, and a successful login clears the client's record.

    A try is counted *before* the password is checked (and cleared if it was right), so
    parallel tries from one client cannot slip past the lock while scrypt runs. The file lives
    in the data dir, so neither a new browser session nor a panel restart resets it.
    """

    def __init__(
        self,
        path: Path,
        *,
        free_attempts: int = 5,
        base_delay_s: float = 1.0,
        max_delay_s: float = 900.0,
        forget_after_s: float = 3600.0,
        clock: Callable[[], float] | None = None,
    ):
        self.path = path
        self.free_attempts = free_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = max(forget_after_s, max_delay_s)
        self._clock = clock

    def _now(self) -> float:
        return (self._clock or wall_clock)()

    def _db(self):
        return single_table(
            self.path,
            "CREATE TABLE IF NOT EXISTS login_attempts (client TEXT PRIMARY KEY,"
            " failures INTEGER NOT NULL, last_failure REAL NOT NULL,"
            " locked_until REAL NOT NULL)",
            transaction=True,
        )

    def _row(self, conn: sqlite3.Connection, client: str, now: float) -> tuple[int, float]:
        """(failures, locked_until) of `client`, after forgetting old failures."""
        row = conn.execute(
            "SELECT failures, last_failure, locked_until FROM login_attempts WHERE client = ?",
            (client,),
        ).fetchone()
        if row is None or now - row[1] > self.forget_after_s:
            return 0, 0.0
        return row[0], row[2]

    def delay_after(self, failures: int) -> float:
        """Seconds a client waits after its `failures`-th failure in a row."""
        if failures < self.free_attempts:
            return 0.0
        exponent = min(failures - self.free_attempts, 30)
        return min(self.base_delay_s * 2**exponent, self.max_delay_s)

    def wait_s(self, client: str) -> float:
        """Seconds until `client` may try again (0: now)."""
        now = self._now()
        with self._db() as conn:
            return max(0.0, self._row(conn, client, now)[1] - now)

    def login(self, client: str, password: str, stored: str) -> LoginResult:
        """Check `password` for `client` unless it is locked out; count the try.

        A malformed `stored` hash refuses every login (`malformed` says why) without counting.
        """
        try:
            parse_hash(stored)
        except MalformedHash as exc:
            log.error("admin login refused: %s", exc)
            return LoginResult(ok=False, malformed=str(exc))
        now = self._now()
        with self._db() as conn:
            failures, locked_until = self._row(conn, client, now)
            if locked_until > now:
                return LoginResult(ok=False, wait_s=locked_until - now)
            failures += 1
            conn.execute(
                "INSERT OR REPLACE INTO login_attempts VALUES (?, ?, ?, ?)",
                (client, failures, now, now + self.delay_after(failures)),
            )
        if verify_password(password, stored):
            self.reset(client)
            return LoginResult(ok=True)
        log.warning("failed admin login from %s (%d in a row)", client, failures)
        return LoginResult(ok=False, wait_s=self.delay_after(failures))

    def reset(self, client: str | None = None) -> None:
        """Forget the failures of `client`, or of every client."""
        with self._db() as conn:
            if client is None:
                conn.execute("DELETE FROM login_attempts")
            else:
                conn.execute("DELETE FROM login_attempts WHERE client = ?", (client,))


def login_throttle(settings: Settings, clock: Callable[[], float] | None = None) -> LoginThrottle:
    """The panel's throttle, configured from settings, stored in `<data>/login_attempts.db`."""
    return LoginThrottle(
        settings.data_dir / "login_attempts.db",
        free_attempts=settings.admin_login_free_attempts,
        max_delay_s=settings.admin_login_max_delay_s,
        clock=clock,
    )
