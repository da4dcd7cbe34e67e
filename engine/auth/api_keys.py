"""API keys and per-key rate limits of the HTTP API.

Keys are 32 random bytes (URL-safe base64 with an `nxs_` prefix), shown once when created and
stored only as their SHA-256: a high-entropy token needs no slow, salted hash, since nobody can
guess one from its digest. A presented key is hashed and compared with every stored digest in
constant time (`hmac.compare_digest`), so response times say nothing about how close a guess was.

The store is its own small SQLite file, `<data>/api_keys.db` (like the panel's
`login_attempts.db`), not a migration of the engine database: it has one owner and one table,
and a server that only reads keys never touches the engine's schema. Every check reads the
file, so `nexus admin api-key revoke` takes effect on a running server at once.

Rate limits are token buckets kept in memory per key name (they reset when the server restarts,
which is fine for a guard against runaway clients).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.db import single_table
from engine.util import is_sha256_hex, utc_now

log = logging.getLogger(__name__)

KEY_PREFIX = "nxs_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LAST_USED_EVERY_S = 60.0  # write "last used" at most this often per key


class BadKeyName(ValueError):
    """A key name that is not 1–64 letters, digits, `_`, `.` or `-`."""


class KeyExists(ValueError):
    """A key of that name is already stored (revoke it first)."""


@dataclass
class ApiKeyInfo:
    """What `nexus admin api-key list` shows: never the key, never its hash."""

    name: str
    created_at: str
    last_used_at: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "created": self.created_at, "last_used": self.last_used_at}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def check_key_name(name: str) -> str:
    """Return `name` if it is a plain key name, else raise `BadKeyName`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadKeyName(
            f"key name {name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-'"
            " (starting with a letter or digit)"
        )
    return name


class ApiKeyStore:
    """Named API keys in `<data>/api_keys.db`, stored as SHA-256 digests."""

    def __init__(self, path: Path):
        self.path = path
        self._used: dict[str, float] = {}  # name -> monotonic time "last used" was written
        self._lock = threading.Lock()

    def _db(self):
        return single_table(
            self.path,
            "CREATE TABLE IF NOT EXISTS api_keys (name TEXT PRIMARY KEY,"
            " key_sha256 TEXT NOT NULL, created_at TEXT NOT NULL, last_used_at TEXT)",
        )

    def create(self, name: str) -> str:
        """Store a new key named `name` and return it (the only time it is seen).

        Raises:
            BadKeyName: `name` is not a plain key name.
            KeyExists: a key of that name exists.
        """
        check_key_name(name)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._db() as conn:
            try:
                conn.execute(
                    "INSERT INTO api_keys (name, key_sha256, created_at) VALUES (?, ?, ?)",
                    (name, hash_key(key), utc_now()),
                )
            except sqlite3.IntegrityError as exc:
                raise KeyExists(f"a key named {name!r} exists; revoke it first") from exc
        self.path.chmod(0o600)
        log.info("API key %s created", name)
        return key

    def list(self) -> list[ApiKeyInfo]:
        with self._db() as conn:
            rows = conn.execute(
                "SELECT name, created_at, last_used_at FROM api_keys ORDER BY name"
            ).fetchall()
        return [ApiKeyInfo(*row) for row in rows]

    def revoke(self, name: str) -> bool:
        """Delete the key named `name`; False when there is none."""
        with self._db() as conn:
            deleted = conn.execute("DELETE FROM api_keys WHERE name = ?", (name,)).rowcount
        if deleted:
            log.info("API key %s revoked", name)
        return bool(deleted)

    def verify(self, key: str) -> str | None:
        """The name of the stored key equal to `key`, or None. Records when it was last used."""
        if not key:
            return None
        presented = hash_key(key).encode()
        with self._db() as conn:
            rows = conn.execute("SELECT name, key_sha256 FROM api_keys").fetchall()
        found = None
        for name, stored in rows:  # no early exit: every digest is compared
            if not is_sha256_hex(stored):  # a damaged or planted row never matches
                log.error("API key %r has a malformed digest in %s; ignored", name, self.path)
                continue
            if hmac.compare_digest(presented, stored.encode()):
                found = name
        if found is not None:
            self._touch(found)
        return found

    def _touch(self, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._used.get(name, -math.inf) < LAST_USED_EVERY_S:
                return
            self._used[name] = now
        try:
            with self._db() as conn:
                conn.execute(
                    "UPDATE api_keys SET last_used_at = ? WHERE name = ?", (utc_now(), name)
                )
        except sqlite3.Error as exc:  # a busy file must not fail the request
            log.warning("could not record use of API key %s: %s", name, exc)


def api_key_store(data_dir: Path) -> ApiKeyStore:
    """The key store of the engine whose data dir is `data_dir`."""
    return ApiKeyStore(data_dir / "api_keys.db")


class RateLimiter:
    """A token bucket per key: `per_minute` requests in a burst, refilled evenly over a minute."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, name: str) -> float:
        """Spend one token of `name`'s bucket: 0.0 when allowed, else seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(name, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.refill_per_s)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                return 0.0
            self._buckets[name] = (tokens, now)
            return (1.0 - tokens) / self.refill_per_s
