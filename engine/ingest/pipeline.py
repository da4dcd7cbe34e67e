"""The ingestion pipeline: file → text → chunks → vectors → Chroma, recorded as a job.

Crash safety comes from the order of writes and from content-addressed chunk ids:
1. new chunks are upserted (ids derive from the file's sha256, so a retry overwrites);
2. the catalogue row is switched to the new sha256 in one SQLite statement;
3. only then are the old version's chunks deleted.
A kill between any two steps leaves either a file the catalogue does not mark as done (it is
processed again on restart) or chunks no catalogue row refers to (`reconcile` deletes them).
The teacher's file is only ever opened for reading.

Every entry of the inbox is hostile (see `engine.inbox.scan`): each one gets a result, every
error of one file becomes that file's `failed` status, and a job is always finished.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from engine.documents.records import DocumentRecords
from engine.embed.base import Embedder, EmbeddingUnavailable
from engine.inbox.layout import BadLocation, Placement, place
from engine.inbox.scan import NotRegularFile, Refused, open_regular, regular_source
from engine.ingest.chunk import chunk_pages
from engine.ingest.work import FileWork, JobOutcome, Progress, Silent, stored_chunks
from engine.jobs.base import FileResult, FileStatus, JobRecord, JobTracker
from engine.jobs.costs import bedrock_cost
from engine.locking import writer_lock
from engine.paths import clean_text, path_key
from engine.pdf.extract import ExtractionError, PdfExtractor
from engine.settings import Settings
from engine.util import sha256_stream

log = logging.getLogger(__name__)


class Ingestor:
    """Runs ingestion jobs. Only one process writes at a time (a lock file in the data dir)."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        tracker: JobTracker,
        records: DocumentRecords,
    ):
        self.settings = settings
        self.embedder = embedder
        self.tracker = tracker
        self.records = records  # every write to the catalogue, chunks and lexical index
        self.catalog = records.catalog  # read when planning: what is already stored
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
        placement: Placement | None = None,
    ) -> JobOutcome | None:
        """Ingest (or remove) the files at `paths` (files or folders) under `root`.

        Grade and subject come from each file's folders below `root`, or, with `placement`,
        are that label for every file (`nexus ingest --grade G --subject S`).

        Every file gets a result, whatever goes wrong with it, and the job is always finished
        (`completed`, `partial` or `failed`) and saved, even when an error escapes the loop (it
        is then re-raised). Returns None when nothing in `paths` concerns the engine (e.g. only
        temp files).
        """
        progress = progress or Silent()
        root = root.resolve()
        with self.writer_lock():
            targets = self.records.collect(paths, root)
            if not targets:
                return None
            job = JobRecord(
                job_type=job_type,
                input_dir=path_key(input_dir or root),
                total_files=len(targets),
                config=self._job_config(),
            )
            self.tracker.save_job(job)
            started = time.monotonic()
            results: list[FileResult] = []
            try:
                self._run_files(job, targets, root, progress, results, placement)
            except Exception as exc:
                log.exception("job %s stopped early", job.job_id)
                job.errors.append(clean_text(f"job stopped early: {type(exc).__name__}: {exc}"))
                raise
            finally:
                job.finish(started, time.monotonic())
                self.tracker.save_job(job)
            return JobOutcome(job, results)

    def _run_files(
        self,
        job: JobRecord,
        targets: list[Path],
        root: Path,
        progress: Progress,
        results: list[FileResult],
        placement: Placement | None = None,
    ) -> None:
        """Plan, embed, store and report each file; the next file's PDF is read meanwhile."""
        models: set[str] = set()
        extractor = self._extractor()
        with (
            ThreadPoolExecutor(1, thread_name_prefix="pdf-reader") as reader,
            ThreadPoolExecutor(1, thread_name_prefix="chunk-writer") as writer,
        ):

            def plan(path: Path) -> FileWork:
                return self._plan_safely(
                    path, root, lambda p: reader.submit(extractor.extract, p), placement
                )

            def commit(work: FileWork) -> None:
                """Runs on the writer thread, in file order."""
                self._commit_safely(work)

            def report(work: FileWork, done: Future) -> None:
                done.result()  # _commit_safely never raises; this re-raises bugs
                result = work.result
                result.seconds = round(time.monotonic() - work.started, 3)
                if work.embedded and result.status is FileStatus.INGESTED:
                    models.add(work.embedded.model.key)
                    job.fallback_reason = work.embedded.fallback_reason or job.fallback_reason
                self.records.save_result(job, result)
                job.strategy_used = ",".join(sorted(models))
                self.records.save_progress(job)
                results.append(result)
                progress.file_done(result)

            pending: deque[tuple[FileWork, Future]] = deque()
            upcoming = plan(targets[0])
            for number in range(1, len(targets) + 1):
                current = upcoming
                # Plan the next file now, so its PDF is read while this one is embedded.
                upcoming = plan(targets[number]) if number < len(targets) else None
                job.current_file = current.result.path
                self.records.save_progress(job)
                progress.file_started(current.result.path, number, len(targets))
                self._embed_safely(current, progress, job)
                # Store it on the writer thread while the next file is embedded.
                pending.append((current, writer.submit(commit, current)))
                while len(pending) > 1 or (pending and pending[0][1].done()):
                    report(*pending.popleft())
            while pending:
                report(*pending.popleft())

    def _extractor(self) -> PdfExtractor:
        """The PDF reader, kept across jobs so a long-running engine starts its worker once.

        Limits are read from settings on every job, so a changed limit applies to the next one.
        """
        limits = {
            "max_pages": self.settings.max_pages,
            "max_page_chars": self.settings.max_page_chars,
            "max_file_chars": self.settings.max_file_chars,
            "timeout_s": self.settings.extract_timeout_s,
            "memory_mb": self.settings.extract_memory_mb,
            "ocr_enabled": self.settings.ocr_enabled,
            "ocr_languages": self.settings.ocr_languages,
            "ocr_dpi": self.settings.ocr_dpi,
            "ocr_page_timeout_s": self.settings.ocr_page_timeout_s,
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

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Serialise writers across processes (`nexus watch` and a one-shot `nexus ingest`)."""
        with writer_lock(self.settings.run_dir):
            yield

    # --- one file: plan (cheap checks, start reading), then finish (embed, store) ---------
    def _plan_safely(
        self,
        path: Path,
        root: Path,
        read: Callable[[Path], Future],
        placement: Placement | None = None,
    ) -> FileWork:
        result = FileResult(path_key(path), FileStatus.FAILED)
        plan = FileWork(path, result, started=time.monotonic())
        try:
            self._plan(plan, root, read, placement)
        except Exception as exc:  # one bad file must never stop the engine
            log.exception("failed to check %s", result.path)
            plan.result.reason = f"{type(exc).__name__}: {exc}"
            plan.action = "report"
        return plan

    def _plan(
        self,
        plan: FileWork,
        root: Path,
        read: Callable[[Path], Future],
        placement: Placement | None = None,
    ) -> None:
        path, result = plan.path, plan.result
        if not os.path.lexists(path):
            plan.action = "remove"
            return
        try:
            plan.source = regular_source(path, root)
            plan.placement = placement or place(path, root)
        except Refused as exc:
            exc.record(result)
            return
        except BadLocation as exc:
            result.status, result.reason = FileStatus.BAD_LOCATION, str(exc)
            result.reason_code, result.reason_params = exc.code, exc.params
            return
        result.grade, result.subject = plan.placement.grade, plan.placement.subject
        try:
            fh = open_regular(plan.source, root)
        except NotRegularFile as exc:
            result.status, result.reason = FileStatus.NOT_A_FILE, str(exc)
            return
        except Refused as exc:
            exc.record(result)
            return
        with fh:
            plan.before = os.fstat(fh.fileno())
            limit_mb = self.settings.max_file_mb
            if plan.before.st_size == 0:
                result.status = FileStatus.EMPTY
                result.because("empty")
                return
            if plan.before.st_size > limit_mb * 2**20:
                result.status = FileStatus.TOO_LARGE
                result.because("too_large", size_mb=plan.before.st_size / 2**20, limit_mb=limit_mb)
                return
            result.sha256 = sha256_stream(fh)
        plan.previous = self.catalog.get(result.path)
        if (
            plan.previous
            and plan.previous.sha256 == result.sha256
            and (plan.previous.grade, plan.previous.subject) == (result.grade, result.subject)
            and self.records.searchable(plan.previous)
        ):  # a new grade/subject for the same file (a relabelled import) is stored again
            result.status = FileStatus.SKIPPED
            result.because("unchanged")
            result.pages, result.chunks = plan.previous.pages, plan.previous.chunks
            return
        plan.action = "ingest"
        plan.extraction = read(plan.source)

    def _embed_safely(self, work: FileWork, progress: Progress, job: JobRecord) -> None:
        if work.action != "ingest":
            return
        try:
            self._embed(work, progress, job)
        except Exception as exc:  # one bad file must never stop the engine
            log.exception("failed to ingest %s", work.result.path)
            self._fail(work, FileStatus.FAILED, f"{type(exc).__name__}: {exc}")

    def _embed(self, work: FileWork, progress: Progress, job: JobRecord) -> None:
        """Wait for the text, chunk it, embed the chunks (main thread)."""
        try:
            extracted = work.extraction.result()
        except ExtractionError as exc:
            self._fail(work, exc.status, exc.reason)
            if exc.code:
                work.result.because(exc.code)
            return
        after = os.stat(work.source)
        before = work.before
        if extracted.file_id not in (None, (before.st_dev, before.st_ino)) or (
            after.st_dev,
            after.st_ino,
            after.st_size,
            after.st_mtime_ns,
        ) != (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns):
            self._fail(work, FileStatus.FAILED, "")
            work.result.because("changed_while_read")
            return
        work.pages, work.note = len(extracted.pages), extracted.note
        work.result.ocr_pages = extracted.ocr_pages
        work.page_texts = extracted.pages
        work.chunks = chunk_pages(
            extracted.layout or extracted.pages,
            size=self.settings.chunk_size,
            overlap=self.settings.chunk_overlap,
            max_tokens=self.embedder.max_tokens,
            count_tokens=self.embedder.count_tokens,
        )
        texts = [c.text for c in work.chunks]
        if self.settings.embed_document_title:
            from engine.ingest.context import document_title, with_context

            title = document_title(work.result.path)
            texts = [with_context(title, c.section, c.text) for c in work.chunks]
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

    def _commit_safely(self, work: FileWork) -> None:
        try:
            self._commit(work)
        except Exception as exc:  # one bad file must never stop the engine
            log.exception("failed to store %s", work.result.path)
            work.result.status = FileStatus.FAILED
            work.result.reason = f"{type(exc).__name__}: {exc}"

    def _commit(self, work: FileWork) -> None:
        """Store the chunks and switch the catalogue to them (writer thread, in file order)."""
        if work.action == "remove":
            work.result = self.records.remove(work.result.path)
            return
        if work.action != "ingest":
            return
        self.records.replace(
            work.result,
            work.placement.grade,
            work.placement.subject,
            chunks=stored_chunks(work),
            model=work.embedded.model,
            pages=work.pages,
            page_texts=work.page_texts,
            previous=work.previous,
            size=work.before.st_size,
        )
        if work.result.status == FileStatus.INGESTED:
            work.result.reason = work.note

    # --- catalogue bookkeeping --------------------------------------------------------------
    @staticmethod
    def _fail(work: FileWork, status: FileStatus, reason: str) -> None:
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
