"""The job-tracker interface and the records it stores.

Field names follow the seed's DynamoDB `ETLPipelineJobs` schema so a DynamoDB backend can store
the same record unchanged. A job is saved whole on every update (`save_job`), which keeps the
interface to a handful of methods and maps directly to a DynamoDB `put_item`.
"""

from __future__ import annotations

import os
import socket
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from engine.util import utc_now


class FileStatus(StrEnum):
    """Outcome of one file in a job. Everything but INGESTED/SKIPPED/REMOVED is a failure."""

    INGESTED = "ingested"
    SKIPPED = "skipped"  # unchanged (same sha256) or a duplicate of a file already ingested
    REMOVED = "removed"  # the file left the inbox; its chunks were deleted
    ENCRYPTED = "encrypted"
    NEEDS_OCR = "needs_ocr"
    EMPTY = "empty"  # zero bytes
    CORRUPT = "corrupt"  # truncated or damaged PDF
    NOT_PDF = "not_pdf"  # another kind of file renamed .pdf
    TOO_LARGE = "too_large"
    TOO_MANY_PAGES = "too_many_pages"
    BAD_LOCATION = "bad_location"  # not under <grade>/<subject>/, or a folder name not allowed
    NOT_A_FILE = "not_a_file"  # a folder, FIFO, device, socket or broken link with a PDF name
    OUTSIDE_INBOX = "outside_inbox"  # a link to something outside the inbox (never followed)
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    FAILED = "failed"  # anything else (embedding or storage error), reason says what

    @property
    def ok(self) -> bool:
        return self in (FileStatus.INGESTED, FileStatus.SKIPPED, FileStatus.REMOVED)


@dataclass
class FileResult:
    """What happened to one file."""

    path: str
    status: FileStatus
    reason: str = ""
    grade: str = ""
    subject: str = ""
    sha256: str = ""
    pages: int = 0
    chunks: int = 0
    seconds: float = 0.0
    finished_at: str = field(default_factory=utc_now)
    ocr_pages: int = 0  # pages whose text was read by OCR
    reason_code: str = ""  # `engine.jobs.reasons`: what the panel translates
    reason_params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["status"] = str(self.status)
        return data

    def because(self, code: str, **params: object) -> None:
        """Set the reason from a code of `engine.jobs.reasons` and its parameters."""
        from engine.jobs.reasons import sentence

        self.reason_code, self.reason_params = code, params
        self.reason = sentence(code, params)


@dataclass
class JobRecord:
    """One job, in the seed's schema plus progress fields used by the CLI and panel."""

    job_type: str
    input_dir: str = ""
    config: dict = field(default_factory=dict)
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: str = field(default_factory=utc_now)
    status: str = "running"  # running | completed | partial | failed | interrupted
    total_files: int = 0
    processed_files: int = 0
    successful_files: int = 0
    failed_files: int = 0
    skipped_files: int = 0
    total_chunks: int = 0
    total_embeddings: int = 0
    input_tokens: int = 0
    processing_time: float = 0.0
    estimated_cost: float = 0.0
    errors: list[str] = field(default_factory=list)
    tokens_by_subject: dict[str, int] = field(default_factory=dict)  # "grade/subject" -> tokens
    strategy_used: str = ""
    fallback_reason: str = ""
    current_file: str = ""
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    created_at: str = field(default_factory=utc_now)
    completed_at: str | None = None

    def count(self, result: FileResult) -> None:
        """Fold one file's result into the job's counters."""
        self.processed_files += 1
        if result.status is FileStatus.SKIPPED:
            self.skipped_files += 1
        elif result.status.ok:
            self.successful_files += 1
        else:
            self.failed_files += 1
            self.errors.append(f"{result.path}: {result.status}: {result.reason}")
        if result.status is FileStatus.INGESTED:
            self.total_chunks += result.chunks

    def finish(self, started_monotonic_s: float, now_monotonic_s: float) -> None:
        """Set the final status from the counters.

        A job that stopped before every file was processed is never `completed`.
        """
        self.processing_time = round(now_monotonic_s - started_monotonic_s, 3)
        self.completed_at = utc_now()
        self.current_file = ""
        if self.processed_files < self.total_files:
            self.errors.append(
                f"{self.total_files - self.processed_files} file(s) were not processed"
            )
            self.status = "partial" if self.successful_files or self.skipped_files else "failed"
        elif self.failed_files == 0:
            self.status = "completed"
        elif self.successful_files or self.skipped_files:
            self.status = "partial"
        else:
            self.status = "failed"

    def to_dict(self) -> dict:
        return asdict(self)


class JobTracker(ABC):
    """Stores jobs and per-file results. Local (SQLite) and AWS (DynamoDB) backends."""

    @abstractmethod
    def save_job(self, job: JobRecord) -> None:
        """Insert or replace the whole job record."""

    @abstractmethod
    def save_file(self, job_id: str, result: FileResult) -> None:
        """Record one file's outcome within a job."""

    @abstractmethod
    def list_jobs(self, limit: int = 50) -> list[JobRecord]:
        """Most recent jobs first."""

    @abstractmethod
    def get_job(self, job_id: str) -> JobRecord | None:
        """One job by id."""

    @abstractmethod
    def job_files(self, job_id: str) -> list[FileResult]:
        """The files of one job, in the order they finished."""

    @abstractmethod
    def jobs_since(self, since: str) -> list[JobRecord]:
        """Jobs started at or after the ISO timestamp `since`, oldest first."""

    def jobs_touching(
        self, grade: str | None, subject: str | None, limit: int = 10_000
    ) -> set[str]:
        """Ids of recent jobs that had a file of this grade and/or subject."""
        return {
            job.job_id
            for job in self.list_jobs(limit)
            if any(
                (not grade or f.grade == grade) and (not subject or f.subject == subject)
                for f in self.job_files(job.job_id)
            )
        }

    @abstractmethod
    def mark_interrupted(self) -> list[str]:
        """Mark running jobs whose process is gone as interrupted; return their ids."""
