"""Telemetry: count queries, roll them up per hour, guard, queue and upload.

Only aggregates are kept: for each search, its hour, latency and whether it failed — never the
question, never who asked. Each completed hour becomes one payload in the seed's shape
(`school_id_hash`, `timestamp`, `metrics`); it must pass the PII guard to be queued, and only
the queue is ever uploaded. The queue lives in SQLite, survives restarts and is capped.

Nothing is dropped silently: an hour the guard refuses keeps its raw rows and its reasons
(`telemetry_state` rows keyed `refused:<hour>`, so no schema change is needed; the migrations
in engine/db.py belong to the whole engine) until a later roll-up can send it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import sqlite3
import statistics
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.aws.clients import aws_errors
from engine.db import Database
from engine.telemetry.pii import METRICS, check_payload, model_label
from engine.telemetry.sinks import TelemetrySink
from engine.util import every, looks_random, read_or_make_secret, utc_now

log = logging.getLogger(__name__)

_REFUSED = "refused:"  # telemetry_state key prefix: why an hour was not sent


def hour_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:00:00Z")


class Telemetry:
    def __init__(
        self,
        database: Database,
        *,
        enabled: bool,
        school_id: str,
        salt_file: Path,
        queue_max: int,
        sink: TelemetrySink | None,
        describe: Callable[[], dict],
    ):
        self.db = database
        self.enabled = enabled
        self.school_id = school_id
        self.salt_file = salt_file
        self.queue_max = queue_max
        self.sink = sink
        self.describe = describe  # -> dict of model_version, embedding_strategy, storage, vkp

    # --- collect ------------------------------------------------------------------------------
    def record_query(self, latency_ms: float, error: bool, when: datetime | None = None) -> None:
        if not self.enabled:
            return
        with self.db.write():
            self.conn.execute(
                "INSERT INTO telemetry_queries (hour, latency_ms, error) VALUES (?, ?, ?)",
                (hour_of(when or datetime.now(UTC)), float(latency_ms), int(error)),
            )

    # --- build, guard, queue ------------------------------------------------------------------
    def school_id_hash(self) -> str:
        return hashlib.sha256(f"{self._salt()}:{self.school_id}".encode()).hexdigest()

    def _salt(self) -> str:
        """A random per-deployment salt, made once and kept in the data dir."""
        salt = read_or_make_secret(
            self.salt_file,
            lambda: secrets.token_hex(32).encode(),
            max_bytes=65,
            valid=lambda data: (
                re.fullmatch(rb"[0-9a-f]{64}\n?", data) is not None and looks_random(data)
            ),
            what="the telemetry salt",
        )
        return salt.decode().strip()

    def build(self, now: datetime | None = None) -> list[dict]:
        """Payloads for every completed hour that has queries and is not queued yet."""
        current = hour_of(now or datetime.now(UTC))
        hours = self.conn.execute(
            "SELECT hour, count(*), sum(error), avg(latency_ms) FROM telemetry_queries"
            " WHERE hour < ? GROUP BY hour ORDER BY hour",
            (current,),
        ).fetchall()
        state = self.describe()
        return [
            self._payload(hour, count, errors, average, state)
            for hour, count, errors, average in hours
        ]

    def current_hour(self, now: datetime | None = None) -> dict | None:
        """The payload the hour in progress would become if it ended now, or None if it has
        no searches yet. Nothing is queued: the hour is rolled up and sent once it is over."""
        if not self.enabled:
            return None
        hour = hour_of(now or datetime.now(UTC))
        count, errors, average = self.conn.execute(
            "SELECT count(*), sum(error), avg(latency_ms) FROM telemetry_queries WHERE hour = ?",
            (hour,),
        ).fetchone()
        if not count:
            return None
        return self._payload(hour, count, errors, average, self.describe())

    def _payload(self, hour: str, count: int, errors: int, average: float, state: dict) -> dict:
        """One hour's payload in the seed's shape, from its raw rows and the engine's state."""
        latencies = [
            r[0]
            for r in self.conn.execute(
                "SELECT latency_ms FROM telemetry_queries WHERE hour = ?", (hour,)
            )
        ]
        p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0]
        return {
            "school_id_hash": self.school_id_hash(),
            "timestamp": hour,
            "metrics": {
                "query_count": count,
                "avg_latency_ms": round(average, 1),
                "p95_latency_ms": round(p95, 1),
                "error_count": errors,
                "storage_usage_mb": round(state["storage_usage_mb"], 1),
                "model_version": model_label(state["model_version"], self._salt()),
                "embedding_strategy": state["embedding_strategy"],
                "vkp_versions": state["vkp_versions"],
            },
        }

    def roll_up(self, now: datetime | None = None) -> dict:
        """Move completed hours into the queue, each through the PII guard.

        An hour the guard refuses keeps its raw rows (so it is retried on every roll-up, and
        goes out once the cause is fixed) and its reasons are recorded for `status()`; only a
        queued hour's raw rows are deleted.
        """
        if not self.enabled:
            return {"queued": 0, "refused": 0}
        queued = refused = 0
        for payload in self.build(now):
            hour = payload["timestamp"]
            problems = check_payload(payload)
            with self.db.write():
                if problems:
                    refused += 1
                    self._refuse(hour, problems, "raw")
                    continue
                queued += 1
                self.conn.execute(
                    "INSERT OR REPLACE INTO telemetry_queue (hour, payload, created_at)"
                    " VALUES (?, ?, ?)",
                    (hour, json.dumps(payload), utc_now()),
                )
                self.conn.execute(
                    "INSERT OR REPLACE INTO telemetry_history (hour, payload) VALUES (?, ?)",
                    (hour, json.dumps(payload)),
                )
                self._set("last_pii_check", {"ok": True, "at": utc_now(), "problems": []})
                self.conn.execute("DELETE FROM telemetry_queries WHERE hour = ?", (hour,))
                self.conn.execute("DELETE FROM telemetry_state WHERE key = ?", (_REFUSED + hour,))
        self._cap()
        return {"queued": queued, "refused": refused}

    def _refuse(self, hour: str, problems: list[str], kept: str) -> None:
        """Record why `hour` was not sent (`kept`: "raw" rows or the "queue" entry)."""
        previous = self._get(_REFUSED + hour)
        if previous is None or previous["problems"] != problems:
            log.error("telemetry for %s not sent: %s", hour, "; ".join(problems))
        self._set(_REFUSED + hour, {"at": utc_now(), "problems": problems, "kept": kept})
        self._set("last_pii_check", {"ok": False, "at": utc_now(), "problems": problems})

    def refused(self) -> list[dict]:
        """Hours the guard refused, oldest first: `hour`, `problems`, `at`, `kept`, `queries`."""
        rows = self.conn.execute(
            "SELECT key, value FROM telemetry_state WHERE key LIKE ? ORDER BY key",
            (_REFUSED + "%",),
        ).fetchall()
        found = []
        for key, value in rows:
            hour = key.removeprefix(_REFUSED)
            (count,) = self.conn.execute(
                "SELECT count(*) FROM telemetry_queries WHERE hour = ?", (hour,)
            ).fetchone()
            found.append({"hour": hour, **json.loads(value), "queries": count})
        return found

    def _cap(self) -> None:
        with self.db.write():
            self.conn.execute(
                "DELETE FROM telemetry_queue WHERE hour NOT IN"
                " (SELECT hour FROM telemetry_queue ORDER BY hour DESC LIMIT ?)",
                (self.queue_max,),
            )

    def queued(self) -> list[dict]:
        """Exactly what the next upload sends."""
        rows = self.conn.execute("SELECT payload FROM telemetry_queue ORDER BY hour")
        return [json.loads(r[0]) for r in rows]

    def history(self, days: int = 30) -> list[dict]:
        """Rolled-up hours of the last `days` days (kept locally for charts), oldest first."""
        since = hour_of(datetime.now(UTC) - timedelta(days=days))
        rows = self.conn.execute(
            "SELECT payload FROM telemetry_history WHERE hour >= ? ORDER BY hour", (since,)
        )
        return [json.loads(r[0]) for r in rows]

    # --- upload -------------------------------------------------------------------------------
    def upload(self, now: datetime | None = None) -> dict:
        """Roll up, then send the queue; on failure the queue stays for the next try."""
        if not self.enabled:
            return {"sent": 0, "pending": 0, "error": "telemetry is disabled"}
        self.roll_up(now)
        payloads = self.queued()
        if not payloads:
            return {"sent": 0, "pending": 0, "error": ""}
        if self.sink is None:
            return {"sent": 0, "pending": len(payloads), "error": "no telemetry table configured"}
        # guard again at the door: the queue could have been edited on disk. A payload that
        # fails now stays queued (never sent, never silently dropped) with its reasons.
        safe = []
        for payload in payloads:
            problems = check_payload(payload)
            if problems:
                with self.db.write():
                    self._refuse(str(payload.get("timestamp", "?"))[:40], problems, "queue")
            else:
                safe.append(payload)
        if not safe:
            return {"sent": 0, "pending": len(payloads), "error": "the PII guard refused them"}
        try:
            self.sink.send(safe)
        except aws_errors() as exc:
            return {"sent": 0, "pending": len(payloads), "error": str(exc)}
        with self.db.write():
            self.conn.executemany(
                "DELETE FROM telemetry_queue WHERE hour = ?", [(p["timestamp"],) for p in safe]
            )
            self._set("last_upload", {"at": utc_now(), "sent": len(safe)})
        return {"sent": len(safe), "pending": len(self.queued()), "error": ""}

    # --- privacy status for the panel -----------------------------------------------------------
    def status(self) -> dict:
        return {
            "enabled": self.enabled,
            "sends": ["school_id_hash", "timestamp", *(f"metrics.{m}" for m in sorted(METRICS))],
            "queue_length": len(self.queued()),
            "last_pii_check": self._get("last_pii_check"),
            "last_upload": self._get("last_upload"),
            "refused_hours": self.refused(),
            "destination": "DynamoDB" if self.sink else "local queue only",
            "destination_code": "dynamodb" if self.sink else "local",
        }

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def _set(self, key: str, value: dict) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO telemetry_state (key, value) VALUES (?, ?)",
                (key, json.dumps(value)),
            )

    def _get(self, key: str) -> dict | None:
        row = self.conn.execute(
            "SELECT value FROM telemetry_state WHERE key = ?", (key,)
        ).fetchone()
        return json.loads(row[0]) if row else None


def every_hour(
    telemetry: Telemetry, stop: threading.Event, interval_s: float = 3600
) -> threading.Thread:
    """The seed's telemetry_upload_cron: upload on a background thread until `stop` is set."""
    return every(
        interval_s, lambda: log.info("telemetry: %s", telemetry.upload()), stop, "telemetry"
    )
