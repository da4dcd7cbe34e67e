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
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.catalog import Catalog, Document
from engine.embed.base import Embedder, EmbeddingUnavailable
from engine.ingest.chunk import chunk_pages
from engine.ingest.extract import ExtractionError, PdfExtractor
from engine.ingest.layout import BadLocation, is_candidate, place, sha256_file
from engine.jobs.base import FileResult, FileStatus, JobRecord, JobTracker
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
class JobOutcome:
    job: JobRecord
    files: list[FileResult]


class Ingestor:
    """Runs ingestion jobs. Only one process writes at a time (a lock file in the data dir)."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: ChunkStore,
        catalog: Catalog,
        tracker: JobTracker,
    ):
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.catalog = catalog
        self.tracker = tracker

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
            with PdfExtractor(
                max_pages=self.settings.max_pages,
                timeout_s=self.settings.extract_timeout_s,
                memory_mb=self.settings.extract_memory_mb,
            ) as extractor:
                for number, path in enumerate(targets, start=1):
                    job.current_file = str(path)
                    self.tracker.save_job(job)
                    progress.file_started(str(path), number, len(targets))
                    result, model_key, fallback = self._process_safely(
                        path, root, extractor, progress, job
                    )
                    if model_key:
                        models.add(model_key)
                    if fallback:
                        job.fallback_reason = fallback
                    job.count(result)
                    job.strategy_used = ",".join(sorted(models))
                    self.tracker.save_file(job.job_id, result)
                    self.tracker.save_job(job)
                    results.append(result)
                    progress.file_done(result)
            job.finish(started, time.monotonic())
            self.tracker.save_job(job)
            return JobOutcome(job, results)

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

    def vanished(self, root: Path) -> list[Path]:
        """Catalogued files under `root` that no longer exist (deleted while nobody watched)."""
        return [Path(p) for p in self.catalog.paths_under(root) if not Path(p).exists()]

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

    def recover(self) -> list[str]:
        """After a crash: mark dead jobs interrupted and delete chunks no document refers to."""
        with self.writer_lock():
            interrupted = self.tracker.mark_interrupted()
            for collection in self.store.collections():
                orphans = self.store.document_shas(collection.name) - self.catalog.referenced_shas(
                    collection.name
                )
                for sha in orphans:
                    log.info("removing orphaned chunks of %s from %s", sha[:12], collection.name)
                    self.store.delete_document(collection.name, sha)
            return interrupted

    # --- one file ---------------------------------------------------------------------------
    def _process_safely(
        self, path: Path, root: Path, extractor: PdfExtractor, progress: Progress, job: JobRecord
    ) -> tuple[FileResult, str, str]:
        started = time.monotonic()
        try:
            result, model_key, fallback = self._process(path, root, extractor, progress, job)
        except Exception as exc:  # one bad file must never stop the engine
            log.exception("failed to ingest %s", path)
            result, model_key, fallback = (
                FileResult(str(path), FileStatus.FAILED, f"{type(exc).__name__}: {exc}"),
                "",
                "",
            )
        result.seconds = round(time.monotonic() - started, 3)
        return result, model_key, fallback

    def _process(
        self, path: Path, root: Path, extractor: PdfExtractor, progress: Progress, job: JobRecord
    ) -> tuple[FileResult, str, str]:
        key = str(path)
        if not path.exists():
            return self._remove(key), "", ""
        try:
            placement = place(path, root)
        except BadLocation as exc:
            return FileResult(key, FileStatus.BAD_LOCATION, str(exc)), "", ""
        result = FileResult(
            key, FileStatus.FAILED, grade=placement.grade, subject=placement.subject
        )
        before = path.stat()
        limit = self.settings.max_file_mb * 1024 * 1024
        if before.st_size == 0:
            return self._failed(result, FileStatus.EMPTY, "the file is empty (0 bytes)"), "", ""
        if before.st_size > limit:
            size_mb, limit_mb = before.st_size / 2**20, self.settings.max_file_mb
            reason = f"{size_mb:.1f} MB, more than the limit of {limit_mb:g} MB"
            return self._failed(result, FileStatus.TOO_LARGE, reason), "", ""

        result.sha256 = sha256_file(path)
        previous = self.catalog.get(key)
        if previous and previous.sha256 == result.sha256 and previous.status == "ingested":
            result.status, result.reason = FileStatus.SKIPPED, "unchanged since last ingest"
            result.pages, result.chunks = previous.pages, previous.chunks
            return result, "", ""
        copy = self.catalog.stored_copy(placement.grade, placement.subject, result.sha256, key)
        if copy:
            self._record(
                result, FileStatus.SKIPPED, copy.collection, copy.pages, copy.chunks, previous
            )
            result.reason = f"same content as {copy.path}, already ingested"
            return result, "", ""

        try:
            extracted = extractor.extract(path)
        except ExtractionError as exc:
            return self._failed(result, exc.status, exc.reason), "", ""
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            return (
                self._failed(
                    result,
                    FileStatus.FAILED,
                    "the file changed while it was read; it will be read again",
                ),
                "",
                "",
            )

        chunks = chunk_pages(
            extracted.pages,
            size=self.settings.chunk_size,
            overlap=self.settings.chunk_overlap,
            max_tokens=self.embedder.max_tokens,
            count_tokens=self.embedder.count_tokens,
        )
        texts = [c.text for c in chunks]
        try:
            embedded = self.embedder.embed(texts, lambda n: progress.chunks_embedded(n, len(texts)))
        except EmbeddingUnavailable as exc:
            return self._failed(result, FileStatus.FAILED, f"embedding failed: {exc}"), "", ""
        job.input_tokens += embedded.input_tokens
        job.total_embeddings += len(embedded.vectors)

        model = embedded.model
        stored = [
            StoredChunk(
                id=chunk_id(result.sha256, c.index),
                text=c.text,
                vector=vector,
                metadata={
                    "grade": placement.grade,
                    "subject": placement.subject,
                    "source": path.name,
                    "source_path": str(path.relative_to(root)),
                    "file_sha256": result.sha256,
                    "page": c.page_start,
                    "page_end": c.page_end,
                    "pages": c.pages,
                    "chunk_index": c.index,
                    "embedding_model": model.model_id,
                },
            )
            for c, vector in zip(chunks, embedded.vectors, strict=True)
        ]
        collection = self.store.add(
            placement.grade, placement.subject, model.model_id, model.key, stored
        )
        self._record(
            result, FileStatus.INGESTED, collection, len(extracted.pages), len(stored), previous
        )
        result.reason = extracted.note
        return result, model.key, embedded.fallback_reason

    # --- catalogue bookkeeping --------------------------------------------------------------
    def _record(
        self,
        result: FileResult,
        status: FileStatus,
        collection: str,
        pages: int,
        chunks: int,
        previous: Document | None,
    ) -> None:
        """Point the catalogue at the new version, then release the old version's chunks."""
        result.status, result.pages, result.chunks = status, pages, chunks
        path = Path(result.path)
        self.catalog.put(
            Document(
                path=result.path,
                grade=result.grade,
                subject=result.subject,
                file_name=path.name,
                sha256=result.sha256,
                size=path.stat().st_size,
                status="ingested",
                reason=result.reason,
                pages=pages,
                chunks=chunks,
                collection=collection,
            )
        )
        if previous:
            self._release(previous)

    @staticmethod
    def _failed(result: FileResult, status: FileStatus, reason: str) -> FileResult:
        """A failure is reported in the job only: the catalogue keeps the last good version,
        whose chunks go on answering searches until a readable version arrives."""
        result.status, result.reason = status, reason
        return result

    def _remove(self, key: str) -> FileResult:
        previous = self.catalog.get(key)
        self.catalog.remove(key)
        if previous:
            self._release(previous)
        return FileResult(
            key,
            FileStatus.REMOVED,
            "the file left the inbox; its chunks were removed",
            grade=previous.grade if previous else "",
            subject=previous.subject if previous else "",
            sha256=previous.sha256 if previous else "",
        )

    def _release(self, doc: Document) -> None:
        """Delete a document version's chunks unless a catalogue row still uses them."""
        if doc.collection and doc.sha256 not in self.catalog.referenced_shas(doc.collection):
            self.store.delete_document(doc.collection, doc.sha256)

    def _job_config(self) -> dict:
        s = self.settings
        return {
            "embedding_strategy": s.embedding_strategy,
            "embedding_model": self.embedder.model.model_id,
            "chunk_size": s.chunk_size,
            "chunk_overlap": s.chunk_overlap,
        }
