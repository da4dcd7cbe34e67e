"""What the CLI prints for machines (`--json`) and how it talks to people (stderr, bars).

The JSON shapes are built here, once, so that the same fact has the same key in every command
(README, "Machine output (--json)"):

- a job and its files use the `JobRecord`/`FileResult` field names, as `nexus jobs --json`
  and the DynamoDB jobs table do;
- in a delivery, `sent`, `pending`, `staged` and `unchanged` are counts; the S3 keys
  themselves are in `sent_keys`, `staged_keys` and `unchanged_keys`;
- `error` is "" when nothing went wrong;
- a key is never left out: null, 0, "" or [] say that nothing happened.

Failures are said on stderr; stdout carries only the answer. Progress bars are drawn only when
stderr is a terminal, so `nexus ingest > out.json 2> log` leaves no bar frames in the log.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from engine.jobs.base import FileResult, FileStatus, JobRecord

# JobRecord fields that only a job that really ran has.
_RUN_ONLY = ("job_id", "timestamp", "created_at", "completed_at", "pid", "host")


def emit(data: Any) -> None:
    """Print one JSON document on stdout."""
    print(json.dumps(data, ensure_ascii=False, indent=2))


def fail(command: str, message: str) -> None:
    """Say on stderr why `command` failed (the caller returns the exit code)."""
    print(f"{command}: {message}", file=sys.stderr)


def on_terminal() -> bool:
    """True when progress bars may be drawn: stderr is a terminal, not a log file or pipe."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def job_json(job: JobRecord, files: Iterable[FileResult]) -> dict:
    """A job with every file's result: `nexus jobs show --json` and `nexus ingest --json`."""
    results = [f.to_dict() for f in files]
    skipped = sum(f["chunks"] for f in results if f["status"] == FileStatus.SKIPPED)
    return job.to_dict() | {"chunks_skipped": skipped, "files": results}


def no_job_json(job_type: str, input_dir: str) -> dict:
    """The same keys as `job_json` when nothing needed doing (no job was recorded)."""
    record = JobRecord(job_type=job_type, input_dir=input_dir, status="completed", pid=0, host="")
    return record.to_dict() | dict.fromkeys(_RUN_ONLY) | {"chunks_skipped": 0, "files": []}


def delivery_json(report) -> dict:
    """An S3 delivery (`engine.publish.exports.PublishReport`): counts, keys, what still waits."""
    return {
        "staged": len(report.staged),
        "staged_keys": list(report.staged),
        "sent": len(report.sent),
        "sent_keys": list(report.sent),
        "unchanged": len(report.unchanged),
        "unchanged_keys": list(report.unchanged),
        "pending": report.pending,
        "invalidation_id": report.invalidation_id,
        "error": report.error,
    }


def delivery_failed(result: dict) -> bool:
    """True when something asked to be delivered is still waiting because of an error."""
    return bool(result["pending"] and result["error"])
