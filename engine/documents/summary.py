"""What the admin panel's overview shows about the library, gathered from the catalogue and jobs.

The pages stay thin: they format and draw what these functions return. Nothing here writes.

- `library_summary`: what is in the library, per grade and subject.
- `needs_attention`: files whose latest result was a failure, with what to do about each.
  The failure statuses come from `FileStatus` itself (everything that is not `.ok`), so a new
  status shows up here without a second list to keep in step.
- `ingest_activity`: files ingested and failed per day, for a chart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from engine.documents.catalog import Catalog, Document
from engine.jobs.base import FileResult, FileStatus, JobTracker
from engine.names import SEPARATOR

FAILURE_STATUSES: tuple[FileStatus, ...] = tuple(s for s in FileStatus if not s.ok)

# What an admin does about each failure; a status missing here gets the default ("rerun").
_ACTIONS: dict[FileStatus, str] = {
    FileStatus.ENCRYPTED: "unlock",  # save a password-free copy
    FileStatus.NEEDS_OCR: "ocr",  # replace with a PDF that has a text layer
    FileStatus.EMPTY: "replace",
    FileStatus.CORRUPT: "replace",
    FileStatus.NOT_PDF: "replace",
    FileStatus.TOO_LARGE: "split",
    FileStatus.TOO_MANY_PAGES: "split",
    FileStatus.BAD_LOCATION: "move",  # into <grade>/<subject>/
    FileStatus.NOT_A_FILE: "real_file",
    FileStatus.OUTSIDE_INBOX: "real_file",
}
DEFAULT_ACTION = "rerun"
ACTIONS: tuple[str, ...] = tuple(sorted({*_ACTIONS.values(), DEFAULT_ACTION}))


def action_for(status: FileStatus | str) -> str:
    """The action key (`rerun`, `replace`, `unlock`, `move`, ...) for a failure status."""
    try:
        return _ACTIONS.get(FileStatus(status), DEFAULT_ACTION)
    except ValueError:  # a status this version does not know (e.g. from a newer engine)
        return DEFAULT_ACTION


# --- where a file sits --------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxPlace:
    """A file path as the admin knows it: grade folder, subject folder, the rest."""

    grade: str
    subject: str
    file: str

    def __str__(self) -> str:
        return "/".join(p for p in (self.grade, self.subject, self.file) if p)


def inbox_place(path: str, inbox: Path) -> InboxPlace:
    """Split `path` (a catalogue or job key) into grade, subject and file below `inbox`.

    A file directly in the inbox or in a grade folder has empty subject (and grade); a path
    outside the inbox is returned whole as `file`.
    """
    root = str(inbox.resolve()).rstrip("/") + "/"
    if not path.startswith(root):
        return InboxPlace("", "", path)
    parts = path.removeprefix(root).split("/")
    if len(parts) < 3:
        return InboxPlace(parts[0] if len(parts) == 2 else "", "", parts[-1])
    return InboxPlace(parts[0], parts[1], "/".join(parts[2:]))


# --- the library ------------------------------------------------------------------------------


@dataclass
class LibraryRow:
    """One grade + subject of the library."""

    grade: str
    subject: str
    documents: int
    pages: int
    chunks: int
    last_update: str  # ISO timestamp of the newest document
    models: list[str]


def model_of(collection: str) -> str:
    """The embedding model key in a collection name (`nexus__kelas_10__ipa__<model>[__vkp-…]`)."""
    parts = collection.split(SEPARATOR)
    return parts[3] if len(parts) >= 4 else ""


def library_summary(catalog: Catalog) -> list[LibraryRow]:
    """Each grade and subject in the catalogue: documents, pages, chunks, newest update, models.

    Identical files within a grade/subject share their chunks, so chunks are counted once per
    content (collection + sha256) while every file counts as a document with its pages.
    """
    groups: dict[tuple[str, str], list[Document]] = defaultdict(list)
    for document in catalog.all():
        groups[(document.grade, document.subject)].append(document)
    rows = []
    for (grade, subject), documents in sorted(groups.items()):
        contents = {(d.collection, d.sha256): d for d in documents}
        rows.append(
            LibraryRow(
                grade=grade,
                subject=subject,
                documents=len(documents),
                pages=sum(d.pages for d in documents),
                chunks=sum(d.chunks for d in contents.values()),
                last_update=max(d.updated_at for d in documents),
                models=sorted({model_of(d.collection) for d in documents} - {""}),
            )
        )
    return rows


def packages_without_vectors(installed: dict, embedder) -> dict[str, str]:
    """Installed packages (name -> record) whose vectors `embedder` cannot query, with the
    model key each was built with: only keyword search finds their passages here."""
    models = {name: model_of(row.collection) for name, row in installed.items()}
    return {
        name: model for name, model in models.items() if model and embedder.for_model(model) is None
    }


# --- what needs attention -----------------------------------------------------------------------


@dataclass
class AttentionItem:
    """A file whose latest result was a failure."""

    path: str
    place: InboxPlace
    status: str
    reason: str
    action: str
    finished_at: str
    still_searchable: bool  # an earlier good version still answers searches
    reason_code: str = ""  # `engine.jobs.reasons`, for the panel to translate
    reason_params: dict = field(default_factory=dict)


def needs_attention(
    tracker: JobTracker,
    catalog: Catalog,
    *,
    inbox: Path,
    jobs: int = 200,
    exists: Callable[[str], bool] | None = None,
) -> list[AttentionItem]:
    """Files whose most recent result (over the last `jobs` jobs) was a failure, newest first.

    A file that failed and was fixed later (ingested, skipped, removed) is not listed, and
    neither is one that is no longer there (`exists`, default: the path exists on disk).
    """
    exists = exists or (lambda path: Path(path).exists() or Path(path).is_symlink())
    latest: dict[str, FileResult] = {}
    for job in tracker.list_jobs(jobs):
        for result in tracker.job_files(job.job_id):
            seen = latest.get(result.path)
            if seen is None or result.finished_at > seen.finished_at:
                latest[result.path] = result
    failures = {str(s) for s in FAILURE_STATUSES}
    items = []
    for path, result in latest.items():
        status = str(result.status)
        if status not in failures or not exists(path):
            continue
        known = catalog.get(path)
        items.append(
            AttentionItem(
                path=path,
                place=inbox_place(path, inbox),
                status=status,
                reason=result.reason,
                action=action_for(status),
                finished_at=result.finished_at,
                still_searchable=bool(known and known.status == "ingested"),
                reason_code=result.reason_code,
                reason_params=result.reason_params,
            )
        )
    return sorted(items, key=lambda i: i.finished_at, reverse=True)


# --- activity -----------------------------------------------------------------------------------


def ingest_activity(
    tracker: JobTracker, days: int = 30, *, today: date | None = None
) -> list[dict]:
    """Files ingested and failed per day over the last `days` days (oldest first, no gaps)."""
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    per_day = {first + timedelta(days=n): [0, 0] for n in range(days)}
    for job in tracker.jobs_since(first.isoformat()):
        day = datetime.fromisoformat(job.timestamp).date()
        if day in per_day:
            per_day[day][0] += job.successful_files
            per_day[day][1] += job.failed_files
    return [{"date": d, "ingested": ok, "failed": bad} for d, (ok, bad) in per_day.items()]
