"""SQLite backend of the job tracker (the local default)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from dataclasses import fields
from pathlib import Path

from engine import db
from engine.jobs.base import FileResult, FileStatus, JobRecord, JobTracker
from engine.util import pid_alive, utc_now

_JSON_FIELDS = ("config", "errors", "tokens_by_subject")
_JOB_COLUMNS = [f.name for f in fields(JobRecord)]
_FILE_COLUMNS = [f.name for f in fields(FileResult)]


def _params(row: sqlite3.Row) -> dict:
    """A file's reason parameters (an object, or none when the stored text is not one)."""
    try:
        params = json.loads(row["reason_params"] or "{}")
    except (TypeError, ValueError):
        return {}
    return params if isinstance(params, dict) else {}


class SqliteJobTracker(JobTracker):
    """Jobs in the engine's SQLite database (WAL: the panel reads while the engine writes)."""

    def __init__(self, database: db.Database | Path):
        self.db = database if isinstance(database, db.Database) else db.Database(database)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def save_job(self, job: JobRecord) -> None:
        row = job.to_dict()
        for name in _JSON_FIELDS:
            row[name] = json.dumps(row[name], ensure_ascii=False)
        placeholders = ", ".join(f":{c}" for c in _JOB_COLUMNS)
        with self.db.write() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({placeholders})",
                row,
            )

    def save_file(self, job_id: str, result: FileResult) -> None:
        row = result.to_dict() | {"job_id": job_id}
        row["reason_params"] = json.dumps(row["reason_params"], ensure_ascii=False)
        columns = ["job_id", *_FILE_COLUMNS]
        with self.db.write() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO job_files ({', '.join(columns)}) "
                f"VALUES ({', '.join(':' + c for c in columns)})",
                row,
            )

    def list_jobs(self, limit: int = 50) -> list[JobRecord]:
        rows = self.conn.execute(
            "SELECT * FROM jobs ORDER BY timestamp DESC LIMIT ?", (limit,)
        ).fetchall()
        return [self._job(r) for r in rows]

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self.conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def job_files(self, job_id: str) -> list[FileResult]:
        rows = self.conn.execute(
            "SELECT * FROM job_files WHERE job_id = ? ORDER BY finished_at, rowid", (job_id,)
        ).fetchall()
        return [
            FileResult(
                **{c: r[c] for c in _FILE_COLUMNS}
                | {"status": FileStatus(r["status"]), "reason_params": _params(r)}
            )
            for r in rows
        ]

    def jobs_since(self, since: str) -> list[JobRecord]:
        rows = self.conn.execute(
            "SELECT * FROM jobs WHERE timestamp >= ? ORDER BY timestamp", (since,)
        ).fetchall()
        return [self._job(r) for r in rows]

    def jobs_touching(
        self, grade: str | None, subject: str | None, limit: int = 10_000
    ) -> set[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT job_id FROM job_files WHERE (? IS NULL OR grade = ?)"
            " AND (? IS NULL OR subject = ?) LIMIT ?",
            (grade, grade, subject, subject, limit),
        )
        return {r[0] for r in rows}

    def mark_interrupted(self) -> list[str]:
        host = socket.gethostname()
        rows = self.conn.execute(
            "SELECT job_id, pid FROM jobs WHERE status = 'running' AND host = ?", (host,)
        ).fetchall()
        dead = [r["job_id"] for r in rows if r["pid"] != os.getpid() and not pid_alive(r["pid"])]
        with self.db.write() as conn:
            for job_id in dead:
                conn.execute(
                    "UPDATE jobs SET status = 'interrupted', completed_at = ?, current_file = '' "
                    "WHERE job_id = ?",
                    (utc_now(), job_id),
                )
        return dead

    @staticmethod
    def _job(row: sqlite3.Row) -> JobRecord:
        data = {c: row[c] for c in _JOB_COLUMNS}
        data["config"] = json.loads(row["config"] or "{}")
        data["errors"] = json.loads(row["errors"] or "[]")
        data["tokens_by_subject"] = json.loads(row["tokens_by_subject"] or "{}")
        return JobRecord(**data)
