"""Login throttling for the panel: who is trying, and how often they may.

Failed logins are throttled per client (`LoginThrottle`): growing delays, capped, forgotten
after a quiet hour; on top, a ceiling on failed logins per minute for the whole installation
(an attacker who rotates addresses gains nothing), and at most `MAX_CONCURRENT_CHECKS` scrypt
checks at once (each takes 128 MiB). `nexus admin unlock` clears the counts.

Who a client is (`throttle_client`) follows UI_TRUSTED_PROXIES: forwarded headers are believed
only from the proxies the admin names.
"""

from __future__ import annotations

import ipaddress
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.auth.password import MalformedHash, parse_hash, verify_password
from engine.db import single_table
from engine.settings import Settings

log = logging.getLogger(__name__)


def wall_clock() -> float:
    """Seconds since the epoch. Tests replace `engine.auth.throttle.wall_clock` to move time."""
    return time.time()


@dataclass(frozen=True)
class LoginResult:
    """What a login attempt got: `ok`, or a refusal; `wait_s` > 0 means "locked, try later"."""

    ok: bool
    wait_s: float = 0.0
    malformed: str = ""  # why the stored hash cannot be used (nobody can log in)


# Each check holds 128 MiB for ~0.3 s; parallel tries beyond this wait for a free slot.
MAX_CONCURRENT_CHECKS = 2
_CHECK_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_CHECKS)
_SLOT_WAIT_S = 2.0
# The row that counts the whole installation's tries of the current minute (client ids are
# "local", "forwarded" or "ip:…", so it cannot collide with one).
_INSTALLATION = "*installation*"
# The bucket of clients on this machine (loopback, an SSH tunnel): never held by the ceiling,
# so an attack from outside cannot keep the admin out.
LOCAL_CLIENT = "local"
_WINDOW_S = 60.0


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
        max_failures_per_min: int = 10,
        clock: Callable[[], float] | None = None,
    ):
        self.path = path
        self.free_attempts = free_attempts
        self.max_failures_per_min = max_failures_per_min
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

    def _installation_wait(self, conn: sqlite3.Connection, now: float) -> tuple[int, float]:
        """(tries counted in the current minute, seconds until it ends) for the installation."""
        row = conn.execute(
            "SELECT failures, last_failure FROM login_attempts WHERE client = ?", (_INSTALLATION,)
        ).fetchone()
        if row is None or not 0 <= now - row[1] < _WINDOW_S:
            return 0, 0.0
        return row[0], row[1] + _WINDOW_S - now

    def _count_try(self, client: str, now: float) -> tuple[LoginResult | None, int]:
        """Count one try of `client` (and of the installation, unless the client is on this
        machine): (a refusal if either is locked, the client's failures so far)."""
        with self._db() as conn:
            failures, locked_until = self._row(conn, client, now)
            if locked_until > now:
                return LoginResult(ok=False, wait_s=locked_until - now), failures
            failures += 1
            rows = [(client, failures, now, now + self.delay_after(failures))]
            if client != LOCAL_CLIENT:  # an attack from outside never locks out this machine
                tries, window_left = self._installation_wait(conn, now)
                if tries >= self.max_failures_per_min:
                    log.warning("admin logins paused: %d failed in the last minute", tries)
                    return LoginResult(ok=False, wait_s=window_left), failures - 1
                window_start = now - (_WINDOW_S - window_left) if tries else now
                rows.append((_INSTALLATION, tries + 1, window_start, 0.0))
            conn.executemany("INSERT OR REPLACE INTO login_attempts VALUES (?, ?, ?, ?)", rows)
        return None, failures

    def login(self, client: str, password: str, stored: str) -> LoginResult:
        """Check `password` for `client` unless it is locked out; count the try.

        A malformed `stored` hash refuses every login (`malformed` says why) without counting.
        When every check slot stays busy for a while, the try is refused, not counted, with a
        short wait.
        """
        try:
            parse_hash(stored)
        except MalformedHash as exc:
            log.error("admin login refused: %s", exc)
            return LoginResult(ok=False, malformed=str(exc))
        if not _CHECK_SLOTS.acquire(timeout=_SLOT_WAIT_S):
            return LoginResult(ok=False, wait_s=1.0)
        try:
            refused, failures = self._count_try(client, self._now())
            if refused is not None:
                return refused
            correct = verify_password(password, stored)
        finally:
            _CHECK_SLOTS.release()
        if correct:
            self._forget(client)
            return LoginResult(ok=True)
        log.warning("failed admin login from %s (%d in a row)", client, failures)
        return LoginResult(ok=False, wait_s=self.delay_after(failures))

    def _forget(self, client: str) -> None:
        """After a right password: the client starts afresh and its try is not a failure."""
        with self._db() as conn:
            conn.execute("DELETE FROM login_attempts WHERE client = ?", (client,))
            if client != LOCAL_CLIENT:
                conn.execute(
                    "UPDATE login_attempts SET failures = max(failures - 1, 0) WHERE client = ?",
                    (_INSTALLATION,),
                )

    def reset(self, client: str | None = None) -> None:
        """Forget the failures of `client`, or of every client."""
        with self._db() as conn:
            if client is None:
                conn.execute("DELETE FROM login_attempts")
            else:
                conn.execute("DELETE FROM login_attempts WHERE client = ?", (client,))


_FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def throttle_client(address: str | None, headers: dict[str, str], trusted_proxies: str) -> str:
    """The throttle bucket of a login try: `local`, `forwarded`, or `ip:<address or /64>`.

    Args:
        address: the client address the web server reports (None for loopback).
        headers: the request's headers, names in lower case.
        trusted_proxies: UI_TRUSTED_PROXIES; when empty, no forwarding header is believed and
            every client that sends one shares the `forwarded` bucket, so rotating the header
            value cannot buy fresh tries. When set, the server resolved `address` from the
            header of a trusted proxy.

    IPv6 clients are bucketed by their /64, the block one subscriber usually holds.
    """
    if not trusted_proxies.strip() and any(name in headers for name in _FORWARDING_HEADERS):
        return "forwarded"
    if not isinstance(address, str) or not address:
        return LOCAL_CLIENT
    try:
        parsed = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return f"ip:{address[:64]}"
    if parsed.version == 6:
        if parsed.ipv4_mapped is not None:
            return f"ip:{parsed.ipv4_mapped}"
        return f"ip:{ipaddress.ip_network(f'{parsed}/64', strict=False)}"
    return f"ip:{parsed}"


def forwarded_allow_ips(trusted_proxies: str) -> str:
    """FORWARDED_ALLOW_IPS for the panel's web server: UI_TRUSTED_PROXIES (checked and
    normalised by Settings), or a name no peer can have, so that nobody is trusted."""
    return trusted_proxies or "no-trusted-proxy.invalid"


def login_throttle(settings: Settings, clock: Callable[[], float] | None = None) -> LoginThrottle:
    """The panel's throttle, configured from settings, stored in `<data>/login_attempts.db`."""
    return LoginThrottle(
        settings.data_dir / "login_attempts.db",
        free_attempts=settings.admin_login_free_attempts,
        max_delay_s=settings.admin_login_max_delay_s,
        max_failures_per_min=settings.admin_login_max_failures_per_min,
        clock=clock,
    )
