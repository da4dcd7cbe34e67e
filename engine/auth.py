"""Admin password for the panel: scrypt hashes, never a plain-text default.

The hash comes from NEXUS_ADMIN_PASSWORD_HASH, or from `<data>/keys/admin_password` written by
`nexus admin set-password`. Without either, nobody can log in (the panel says how to set one).

Failed logins are throttled per client (`LoginThrottle`): growing delays, capped, forgotten
after a quiet hour; `nexus admin unlock` clears them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.settings import Settings

log = logging.getLogger(__name__)

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


# --- login throttling ---------------------------------------------------------------------------


def wall_clock() -> float:
    """Seconds since the epoch. Tests replace `engine.auth.wall_clock` to move time."""
    return time.time()


@dataclass(frozen=True)
class LoginResult:
    """What a login attempt got: `ok`, or a refusal; `wait_s` > 0 means "locked, try later"."""

    ok: bool
    wait_s: float = 0.0


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

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS login_attempts (client TEXT PRIMARY KEY,"
                " failures INTEGER NOT NULL, last_failure REAL NOT NULL,"
                " locked_until REAL NOT NULL)"
            )
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

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
        """Check `password` for `client` unless it is locked out; count the try."""
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
