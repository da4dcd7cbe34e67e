"""DynamoDB backend of the job tracker, and the syncing tracker that keeps SQLite as truth.

Table `ETLPipelineJobs` (DYNAMODB_JOBS_TABLE): partition key `job_id`, sort key `timestamp`,
the seed's attributes. Per-file results are items of the same job with sort key
`file#<path>`. A sparse global secondary index `by_day` (partition `job_day`
= YYYY-MM-DD, sort `timestamp`), set only on job items, answers "recent jobs" and "cost over
N days" with one query per day instead of a scan.

Offline-first: `SyncedJobTracker` writes every record to SQLite first (the panel and CLI read
from there) and then to DynamoDB; a record DynamoDB did not take is queued and sent by the
next save or by `nexus aws flush`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from engine.aws.clients import aws_errors
from engine.jobs.base import FileResult, FileStatus, JobRecord, JobTracker
from engine.jobs.sqlite import SqliteJobTracker
from engine.util import utc_now

log = logging.getLogger(__name__)

DAY_INDEX = "by_day"
_JOB_FIELDS = [f.name for f in fields(JobRecord)]
_FILE_FIELDS = [f.name for f in fields(FileResult)]


def table_definition(name: str) -> dict:
    """create_table arguments for the jobs table (used by `nexus aws setup` and tests)."""
    return {
        "TableName": name,
        "KeySchema": [
            {"AttributeName": "job_id", "KeyType": "HASH"},
            {"AttributeName": "timestamp", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "job_id", "AttributeType": "S"},
            {"AttributeName": "timestamp", "AttributeType": "S"},
            {"AttributeName": "job_day", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": DAY_INDEX,
                "KeySchema": [
                    {"AttributeName": "job_day", "KeyType": "HASH"},
                    {"AttributeName": "timestamp", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def _to_item(data: dict) -> dict:
    """DynamoDB wants Decimal for numbers and no empty-set surprises: round-trip via JSON."""
    return json.loads(json.dumps(data), parse_float=Decimal)


def _from_item(item: dict) -> dict:
    return json.loads(json.dumps(item, default=lambda d: float(d) if d % 1 else int(d)))


class DynamoJobTracker(JobTracker):
    def __init__(self, table):
        self.table = table  # a boto3 DynamoDB Table resource

    def save_job(self, job: JobRecord) -> None:
        item = job.to_dict() | {"job_day": job.timestamp[:10], "kind": "job"}
        self.table.put_item(Item=_to_item(item))

    def save_file(self, job_id: str, result: FileResult) -> None:
        item = result.to_dict() | {
            "job_id": job_id,
            "timestamp": f"file#{result.path}",
            "kind": "file",
            "file_timestamp": result.finished_at,
        }
        self.table.put_item(Item=_to_item(item))

    def list_jobs(self, limit: int = 50) -> list[JobRecord]:
        jobs: list[JobRecord] = []
        day = datetime.now(UTC).date()
        for _ in range(366):  # one query per day, newest first, at most a year back
            jobs.extend(self._day(day.isoformat(), newest_first=True))
            if len(jobs) >= limit:
                break
            day -= timedelta(days=1)
        return jobs[:limit]

    def jobs_since(self, since: str) -> list[JobRecord]:
        start = datetime.fromisoformat(since[:10]).date()
        today = datetime.now(UTC).date()
        jobs = []
        for offset in range((today - start).days + 1):
            day = (start + timedelta(days=offset)).isoformat()
            jobs.extend(j for j in self._day(day, newest_first=False) if j.timestamp >= since)
        return jobs

    def _day(self, day: str, newest_first: bool) -> list[JobRecord]:
        from boto3.dynamodb.conditions import Key

        kwargs = {
            "IndexName": DAY_INDEX,
            "KeyConditionExpression": Key("job_day").eq(day),
            "ScanIndexForward": not newest_first,
        }
        items = []
        while True:
            page = self.table.query(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return [self._job(i) for i in items]

    def get_job(self, job_id: str) -> JobRecord | None:
        from boto3.dynamodb.conditions import Key

        items = self.table.query(KeyConditionExpression=Key("job_id").eq(job_id))["Items"]
        jobs = [i for i in items if i.get("kind") == "job"]
        return self._job(jobs[0]) if jobs else None

    def job_files(self, job_id: str) -> list[FileResult]:
        from boto3.dynamodb.conditions import Key

        items = self.table.query(KeyConditionExpression=Key("job_id").eq(job_id))["Items"]
        files = sorted(
            (i for i in items if i.get("kind") == "file"), key=lambda i: i["file_timestamp"]
        )
        return [
            FileResult(
                **{k: v for k, v in _from_item(i).items() if k in _FILE_FIELDS}
                | {"status": FileStatus(i["status"])}
            )
            for i in files
        ]

    def mark_interrupted(self) -> list[str]:
        return []  # the local tracker knows which processes died; see SyncedJobTracker

    @staticmethod
    def _job(item: dict) -> JobRecord:
        data = _from_item(item)
        return JobRecord(**{k: v for k, v in data.items() if k in _JOB_FIELDS})


class SyncedJobTracker(JobTracker):
    """SQLite first (always), DynamoDB when reachable; reads come from SQLite."""

    def __init__(self, local: SqliteJobTracker, remote: DynamoJobTracker):
        self.local = local
        self.remote = remote

    def save_job(self, job: JobRecord) -> None:
        self.local.save_job(job)
        self._queue(job.job_id)
        if job.status != "running":  # progress updates stay local; final records go out
            self.sync()

    def save_file(self, job_id: str, result: FileResult) -> None:
        self.local.save_file(job_id, result)
        self._queue(job_id)

    def list_jobs(self, limit: int = 50) -> list[JobRecord]:
        return self.local.list_jobs(limit)

    def get_job(self, job_id: str) -> JobRecord | None:
        return self.local.get_job(job_id)

    def job_files(self, job_id: str) -> list[FileResult]:
        return self.local.job_files(job_id)

    def jobs_since(self, since: str) -> list[JobRecord]:
        return self.local.jobs_since(since)

    def jobs_touching(
        self, grade: str | None, subject: str | None, limit: int = 10_000
    ) -> set[str]:
        return self.local.jobs_touching(grade, subject, limit)

    def mark_interrupted(self) -> list[str]:
        dead = self.local.mark_interrupted()
        for job_id in dead:
            self._queue(job_id)
        self.sync()
        return dead

    def pending(self) -> int:
        return self.local.conn.execute("SELECT count(*) FROM sync_queue").fetchone()[0]

    def _queue(self, job_id: str) -> None:
        with self.local.db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO sync_queue (job_id, queued_at) VALUES (?, ?)",
                (job_id, utc_now()),
            )

    def sync(self) -> tuple[int, str]:
        """Send queued jobs (with their files) to DynamoDB; (sent, error) — error "" if all went.

        Writes are puts of whole items, so sending a job twice is harmless.
        """
        rows = self.local.conn.execute(
            "SELECT job_id FROM sync_queue ORDER BY queued_at"
        ).fetchall()
        sent = 0
        for (job_id,) in rows:
            job = self.local.get_job(job_id)
            try:
                if job is not None:
                    self.remote.save_job(job)
                    for result in self.local.job_files(job_id):
                        self.remote.save_file(job_id, result)
            except aws_errors() as exc:
                log.warning(
                    "DynamoDB unreachable; %d job record(s) kept locally: %s", len(rows) - sent, exc
                )
                return sent, str(exc)
            with self.local.db.write() as conn:
                conn.execute("DELETE FROM sync_queue WHERE job_id = ?", (job_id,))
            sent += 1
        return sent, ""
