"""The ingestion pipeline: file → text → chunks → vectors → Chroma, recorded as a job.

Crash safety comes from the order of writes and from content-addressed chunk ids:
1. new chunks are upserted (ids derive from the file's sha256, so a retry overwrites);
2. the catalogue row is switched to the new sha256 in one SQLite statement;
3. only then are the old version's chunks deleted.
A kill between any two steps leaves either a file the catalogue does not mark as done (it is
processed again on restart) or chunks no catalogue row refers to (`reconcile` deletes them).
The teacher's file is only ever opened for reading.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engine.catalog import Catalog, Document
from engine.costs import bedrock_cost
from engine.embed.base import Embedder, EmbeddingResult, EmbeddingUnavailable
from engine.ingest.chunk import Chunk, chunk_pages
from engine.ingest.extract import ExtractionError, PdfExtractor
from engine.ingest.layout import BadLocation, Placement, is_candidate, place, sha256_file
from engine.ingest.records import DocumentRecords, lexical_chunk
from engine.jobs.base import FileResult, FileStatus, JobRecord, JobTracker
from engine.lexical.index import LexicalIndex
from engine.settings import Settings
from engine.store.chroma import ChunkStore, StoredChunk, chunk_id

log = logging.getLogger(__name__)


class Progress(Protocol):
    """What the CLI and the panel are told while a job runs."""

    def file_started(self, path: str, number: int, total: int) -> None: ...
    def chunks_embedded(self, count: int, total: int) -> None: ...
    def file_done(self, result: FileResult) -> None: ...


class _Silent:
    def file_started(self, path: str, number: int, total: int) -> None:
        pass

    def chunks_embedded(self, count: int, total: int) -> None:
        pass

    def file_done(self, result: FileResult) -> None:
        pass


@dataclass
class _FileWork:
    """One file between its cheap checks and its ingestion.

    `action` is "ingest" (its PDF is being read in `extraction`), "remove" (it left the
    inbox), or "report" (the result is already decided: skipped, bad location, too large...).
    """

    path: Path
    result: FileResult
    started: float
    action: str = "report"
    placement: Placement | None = None
    before: os.stat_result | None = None
    previous: Document | None = None
    extraction: Future | None = None
    pages: int = 0
    page_texts: list[str] = field(default_factory=list)
    note: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    embedded: EmbeddingResult | None = None


@dataclass
class JobOutcome:
    job: JobRecord
    files: list[FileResult]


class Ingestor(DocumentRecords):
    """Runs ingestion jobs. Only one process writes at a time (a lock file in the data dir)."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: ChunkStore,
        catalog: Catalog,
        tracker: JobTracker,
        lexical: LexicalIndex,
    ):
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.catalog = catalog
        self.tracker = tracker
        self.lexical = lexical
        self._pdf_extractor: PdfExtractor | None = None
        self._pdf_limits: dict = {}

    # --- jobs -------------------------------------------------------------------------------
    def run(
        self,
        paths: Iterable[Path],
        root: Path,
        *,
        job_type: str = "ingest",
        input_dir: str = "",
        progress: Progress | None = None,
    ) -> JobOutcome | None:
        """Ingest (or remove) the files at `paths` (files or folders) under `root`.

        Returns None when nothing in `paths` concerns the engine (e.g. only temp files).
        """
        progress = progress or _Silent()
        root = root.resolve()
        with self.writer_lock():
            targets = self.collect(paths)
            if not targets:
                return None
            job = JobRecord(
                job_type=job_type,
                input_dir=input_dir or str(root),
                total_files=len(targets),
                config=self._job_config(),
            )
            self.tracker.save_job(job)
            started = time.monotonic()
            results: list[FileResult] = []
            models: set[str] = set()
            extractor = self._extractor()
            with (
                ThreadPoolExecutor(1, thread_name_prefix="pdf-reader") as reader,
                ThreadPoolExecutor(1, thread_name_prefix="chunk-writer") as writer,
            ):

                def plan(path: Path) -> _FileWork:
                    return self._plan_safely(
                        path, root, lambda p: reader.submit(extractor.extract, p)
                    )

                def commit(work: _FileWork) -> None:
                    """Runs on the writer thread, in file order."""
                    self._commit_safely(work, root)

                def report(work: _FileWork, done: Future) -> None:
                    done.result()  # _commit_safely never raises; this re-raises bugs
                    result = work.result
                    result.seconds = round(time.monotonic() - work.started, 3)
                    if work.embedded and result.status is FileStatus.INGESTED:
                        models.add(work.embedded.model.key)
                        job.fallback_reason = work.embedded.fallback_reason or job.fallback_reason
                    job.count(result)
                    job.strategy_used = ",".join(sorted(models))
                    self.tracker.save_file(job.job_id, result)
                    self.tracker.save_job(job)
                    results.append(result)
                    progress.file_done(result)

                pending: deque[tuple[_FileWork, Future]] = deque()
                upcoming = plan(targets[0])
                for number, path in enumerate(targets, start=1):
                    current = upcoming
                    # Plan the next file now, so its PDF is read while this one is embedded.
                    upcoming = plan(targets[number]) if number < len(targets) else None
                    job.current_file = str(path)
                    self.tracker.save_job(job)
                    progress.file_started(str(path), number, len(targets))
                    self._embed_safely(current, progress, job)
                    # Store it on the writer thread while the next file is embedded.
                    pending.append((current, writer.submit(commit, current)))
                    while len(pending) > 1 or (pending and pending[0][1].done()):
                        report(*pending.popleft())
                while pending:
                    report(*pending.popleft())
            job.finish(started, time.monotonic())
            self.tracker.save_job(job)
            return JobOutcome(job, results)

    def _extractor(self) -> PdfExtractor:
        """The PDF reader, kept across jobs so a long-running engine starts its worker once.

        Limits are read from settings on every job, so a changed limit applies to the next one.
        """
        limits = {
            "max_pages": self.settings.max_pages,
            "timeout_s": self.settings.extract_timeout_s,
            "memory_mb": self.settings.extract_memory_mb,
        }
        if self._pdf_extractor is None or self._pdf_limits != limits:
            self.close()
            self._pdf_extractor, self._pdf_limits = PdfExtractor(**limits), limits
        return self._pdf_extractor

    def close(self) -> None:
        """Stop the PDF worker process."""
        if self._pdf_extractor is not None:
            self._pdf_extractor.close()
            self._pdf_extractor = None

    def collect(self, paths: Iterable[Path]) -> list[Path]:
        """Expand folders into PDFs; keep vanished paths the catalogue knows (deletions)."""
        found: dict[str, Path] = {}
        for path in paths:
            path = Path(path).resolve()
            if path.is_dir():
                for child in sorted(path.rglob("*.[pP][dD][fF]")):
                    if child.is_file() and is_candidate(child.relative_to(path)):
                        found.setdefault(str(child), child)
                for gone in self.vanished(path):
                    found.setdefault(str(gone), gone)
            elif path.is_file():
                if is_candidate(path):
                    found.setdefault(str(path), path)
            else:  # gone: a deleted file, or a deleted folder of files
                known = [str(path)] if self.catalog.get(str(path)) else []
                for key in known + self.catalog.paths_under(path):
                    found.setdefault(key, Path(key))
        return list(found.values())

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Serialise writers across processes (`nexus watch` and a one-shot `nexus ingest`)."""
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.settings.run_dir / "writer.lock").open("w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another ingestion in this data dir to finish")
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # --- one file: plan (cheap checks, start reading), then finish (embed, store) ---------
    def _plan_safely(self, path: Path, root: Path, read: Callable[[Path], Future]) -> _FileWork:
        plan = _FileWork(path, FileResult(str(path), FileStatus.FAILED), started=time.monotonic())
        try:
            self._plan(plan, root, read)
        except Exception as exc:  # one bad file must never stop the engine
            log.exception("failed to check %s", path)
            plan.result.reason = f"{type(exc).__name__}: {exc}"
            plan.action = "report"
        return plan

    def _plan(self, plan: _FileWork, root: Path, read: Callable[[Path], Future]) -> None:
        path, result = plan.path, plan.result
        if not path.exists():
            plan.action = "remove"
            return
        try:
            plan.placement = place(path, root)
        except BadLocation as exc:
            result.status, result.reason = FileStatus.BAD_LOCATION, str(exc)
            return
        result.grade, result.subject = plan.placement.grade, plan.placement.subject
        plan.before = path.stat()
        limit_mb = self.settings.max_file_mb
        if plan.before.st_size == 0:
            result.status, result.reason = FileStatus.EMPTY, "the file is empty (0 bytes)"
            return
        if plan.before.st_size > limit_mb * 2**20:
            size_mb = plan.before.st_size / 2**20
            result.status = FileStatus.TOO_LARGE
            result.reason = f"{size_mb:.1f} MB, more than the limit of {limit_mb:g} MB"
            return
        result.sha256 = sha256_file(path)
        plan.previous = self.catalog.get(str(path))
        if (
            plan.previous
            and plan.previous.sha256 == result.sha256
            and self._searchable(plan.previous)
        ):
            result.status, result.reason = FileStatus.SKIPPED, "unchanged since last ingest"
            result.pages, result.chunks = plan.previous.pages, plan.previous.chunks
            return
        plan.action = "ingest"
        plan.extraction = read(path)

    def _embed_safely(self, work: _FileWork, progress: Progress, job: JobRecord) -> None:
        if work.action != "ingest":
            return
        try:
            self._embed(work, progress, job)
        except Exception as exc:  # one bad file must never stop the engine
            log.exception("failed to ingest %s", work.path)
            self._fail(work, FileStatus.FAILED, f"{type(exc).__name__}: {exc}")

    def _embed(self, work: _FileWork, progress: Progress, job: JobRecord) -> None:
        """Wait for the text, chunk it, embed the chunks (main thread)."""
        try:
            extracted = work.extraction.result()
        except ExtractionError as exc:
            return self._fail(work, exc.status, exc.reason)
        after = work.path.stat()
        if (after.st_size, after.st_mtime_ns) != (work.before.st_size, work.before.st_mtime_ns):
            reason = "the file changed while it was read; it will be read again"
            return self._fail(work, FileStatus.FAILED, reason)
        work.pages, work.note = len(extracted.pages), extracted.note
        work.page_texts = extracted.pages
        work.chunks = chunk_pages(
            extracted.pages,
            size=self.settings.chunk_size,
            overlap=self.settings.chunk_overlap,
            max_tokens=self.embedder.max_tokens,
            count_tokens=self.embedder.count_tokens,
        )
        texts = [c.text for c in work.chunks]
        try:
            work.embedded = self.embedder.embed(
                texts, lambda n: progress.chunks_embedded(n, len(texts))
            )
        except EmbeddingUnavailable as exc:
            return self._fail(work, FileStatus.FAILED, f"embedding failed: {exc}")
        job.input_tokens += work.embedded.input_tokens
        job.total_embeddings += len(work.embedded.vectors)
        if work.embedded.input_tokens:
            subject = f"{work.placement.grade}/{work.placement.subject}"
            tokens = job.tokens_by_subject.get(subject, 0) + work.embedded.input_tokens
            job.tokens_by_subject[subject] = tokens
            job.estimated_cost = round(bedrock_cost(self.settings, job.input_tokens), 8)

    def _commit_safely(self, work: _FileWork, root: Path) -> None:
        try:
            self._commit(work, root)
        except Exception as exc:  # one bad file must never stop the engine
            log.exception("failed to store %s", work.path)
            work.result.status = FileStatus.FAILED
            work.result.reason = f"{type(exc).__name__}: {exc}"

    def _commit(self, work: _FileWork, root: Path) -> None:
        """Store the chunks and switch the catalogue to them (writer thread, in file order)."""
        if work.action == "remove":
            work.result = self._remove(str(work.path))
            return
        if work.action != "ingest":
            return
        result, placement = work.result, work.placement
        # checked here, not when planning: the previous file may have been this one's twin
        copy = self.catalog.stored_copy(
            placement.grade, placement.subject, result.sha256, str(work.path)
        )
        if copy:
            self._record(
                result, FileStatus.SKIPPED, copy.collection, copy.pages, copy.chunks, work.previous
            )
            result.reason = f"same content as {copy.path}, already ingested"
            return
        self._save_text(result.sha256, work.page_texts)
        model = work.embedded.model
        stored = [
            StoredChunk(
                id=chunk_id(result.sha256, c.index),
                text=c.text,
                vector=vector,
                metadata={
                    "grade": placement.grade,
                    "subject": placement.subject,
                    "source": work.path.name,
                    "file_sha256": result.sha256,
                    "page": c.page_start,
                    "page_end": c.page_end,
                    "pages": c.pages,
                    "chunk_index": c.index,
                    "embedding_model": model.model_id,
                },
            )
            for c, vector in zip(work.chunks, work.embedded.vectors, strict=True)
        ]
        collection = self.store.add(
            placement.grade, placement.subject, model.model_id, model.key, stored
        )
        self._record(
            result,
            FileStatus.INGESTED,
            collection,
            work.pages,
            len(stored),
            work.previous,
            lexical=[lexical_chunk(c) for c in stored],
        )
        result.reason = work.note

    # --- catalogue bookkeeping --------------------------------------------------------------
    @staticmethod
    def _fail(work: _FileWork, status: FileStatus, reason: str) -> None:
        """A failure is reported in the job only: the catalogue keeps the last good version,
        whose chunks go on answering searches until a readable version arrives."""
        work.result.status, work.result.reason = status, reason
        work.action = "report"

    def _job_config(self) -> dict:
        s = self.settings
        return {
            "embedding_strategy": s.embedding_strategy,
            "embedding_model": self.embedder.model.model_id,
            "chunk_size": s.chunk_size,
            "chunk_overlap": s.chunk_overlap,
        }
