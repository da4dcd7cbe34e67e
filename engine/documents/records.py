"""The one owner of a document's versions: `replace` stores a new version's chunks and switches
the catalogue, the lexical index and the extracted text to it; `remove` and `release` retire a
version; `recover` cleans up after a crash.

The order matters for crash safety: a catalogue row switches to a new version (with its
lexical rows, in one transaction) only after that version's chunks are stored, and an old
version's chunks are released only after that. `Ingestor` holds one `DocumentRecords` and
asks it, so each module stays readable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from engine.documents.catalog import Catalog, Document
from engine.embed.base import Embedder, ModelInfo
from engine.inbox.scan import expand
from engine.jobs.base import FileResult, FileStatus, JobRecord, JobTracker
from engine.locking import writer_lock
from engine.paths import clean_text, path_for_key, path_key
from engine.search.lexical.index import LexicalIndex
from engine.search.lexical.rows import LexicalChunk
from engine.settings import Settings
from engine.store.chroma import ChunkStore
from engine.store.chunks import FILE_SHA256, StoredChunk

log = logging.getLogger(__name__)


class DocumentRecords:
    """Catalogue, lexical index, job results and recovery: what the pipeline writes besides
    chunks. `Ingestor` holds one and asks it; `recover`, `vanished` and `sync_lexical` are also
    used by the running engine, backups and the Lambda processor (through the ingestor)."""

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

    def save_result(self, job: JobRecord, result: FileResult) -> None:
        """Count and record one file's result; a result that cannot be saved is replaced by a
        `failed` one saying why, so the job's counters and its file list agree."""
        for name in ("path", "reason", "grade", "subject"):
            setattr(result, name, clean_text(getattr(result, name)))
        try:
            self.tracker.save_file(job.job_id, result)
        except Exception as exc:  # one bad record must never stop the job
            log.exception("cannot record the result of %s", result.path)
            result.status = FileStatus.FAILED
            result.reason = clean_text(f"the result could not be recorded: {exc}")
            try:
                self.tracker.save_file(job.job_id, result)
            except Exception:
                log.exception("cannot record the failure of %s either", result.path)
        job.count(result)

    def save_progress(self, job: JobRecord) -> None:
        """Progress updates are best effort: the final save of the job is what counts."""
        try:
            self.tracker.save_job(job)
        except Exception:
            log.exception("cannot save the progress of job %s", job.job_id)

    def collect(self, paths: Iterable[Path], root: Path) -> list[Path]:
        """Every inbox entry in `paths` (folders are walked), whatever its kind, plus vanished
        paths the catalogue knows (deletions). Entries are keyed by `path_key`."""
        entries, folders = expand(paths, root)
        found: dict[str, Path] = {}
        for entry in entries:
            key = path_key(entry)
            if os.path.lexists(entry):
                found.setdefault(key, entry)
                continue
            # gone: a deleted file, or a deleted folder of files
            known = [key] if self.catalog.get(key) else []
            for gone in known + self.catalog.paths_under(entry):
                found.setdefault(gone, path_for_key(gone))
        for folder in folders:
            for gone in self.vanished(folder):
                found.setdefault(path_key(gone), gone)
        return list(found.values())

    def vanished(self, root: Path) -> list[Path]:
        """Catalogued files under `root` that no longer exist (deleted while nobody watched).

        Catalogue paths are keys (`path_key`); the real paths are returned. A broken link is
        still there: it is reported as `not_a_file`, not removed.
        """
        paths = [path_for_key(key) for key in self.catalog.paths_under(root)]
        return [p for p in paths if not os.path.lexists(p)]

    def recover(self) -> list[str]:
        """After a crash: mark dead jobs interrupted and delete chunks no document refers to."""
        with writer_lock(self.settings.run_dir):
            interrupted = self.tracker.mark_interrupted()
            for collection in self.store.collections():
                if collection.vkp_version:  # installed packages: managed by the installer
                    continue
                orphans = self.store.document_shas(collection.name) - self.catalog.referenced_shas(
                    collection.name
                )
                for sha in orphans:
                    log.info("removing orphaned chunks of %s from %s", sha[:12], collection.name)
                    self.store.delete_document(collection.name, sha)
            self.sync_lexical()
            return interrupted

    def sync_lexical(self) -> int:
        """Make the lexical index hold exactly the catalogued documents' chunks.

        Rows of documents the catalogue no longer has are dropped; documents it lacks (an
        index from before it existed, a restored backup, an installed package) are indexed
        from their chunks in Chroma; template counts that disagree with the rows are counted
        again first. Returns the number of documents (re)indexed.
        """
        for grade, subject in self.lexical.recount_templates():
            log.warning(
                "template counts of %s/%s disagreed with its rows: counted again", grade, subject
            )
        wanted = {(d.grade, d.subject, d.sha256): d for d in self.catalog.all()}
        indexed = self.lexical.documents()
        for key in indexed - wanted.keys():
            self.lexical.remove(*key)
        added = 0
        for (grade, subject, sha), doc in wanted.items():
            if (grade, subject, sha) in indexed or not doc.collection:
                continue
            stored = self.store.get_chunks(doc.collection, where={FILE_SHA256: sha})
            self.lexical.add(grade, subject, sha, [LexicalChunk.of(c) for c in stored])
            added += 1
        return added

    def replace(
        self,
        result: FileResult,
        grade: str,
        subject: str,
        *,
        chunks: list[StoredChunk],
        model: ModelInfo,
        pages: int,
        page_texts: list[str],
        previous: Document | None,
        size: int,
    ) -> None:
        """Make `chunks` the searchable version of the file `result.path`: the one place that
        replaces a document version. A copy already stored in this grade/subject (checked now,
        not when planning: the previous file may have been this one's twin) is recorded as a
        duplicate instead; otherwise the text is kept, the chunks are stored, and only then does
        the catalogue switch to them (`record`)."""
        copy = self.catalog.stored_copy(grade, subject, result.sha256, result.path)
        if copy:
            self.record(
                result,
                FileStatus.SKIPPED,
                copy.collection,
                copy.pages,
                copy.chunks,
                previous,
                size=size,
            )
            result.because("duplicate", path=copy.path)
            return
        self.save_text(result.sha256, page_texts)
        collection = self.store.add(grade, subject, model.model_id, model.key, chunks)
        self.record(
            result,
            FileStatus.INGESTED,
            collection,
            pages,
            len(chunks),
            previous,
            size=size,
            lexical=[LexicalChunk.of(c) for c in chunks],
        )

    def record(
        self,
        result: FileResult,
        status: FileStatus,
        collection: str,
        pages: int,
        chunks: int,
        previous: Document | None,
        *,
        size: int,
        lexical: list[LexicalChunk] | None = None,
    ) -> None:
        """Point the catalogue (and the lexical index, in the same transaction) at the new
        version, then release the old version's chunks. `result.path` is the file's key."""
        result.status, result.pages, result.chunks = status, pages, chunks
        document = Document(
            path=result.path,
            grade=result.grade,
            subject=result.subject,
            file_name=Path(result.path).name,
            sha256=result.sha256,
            size=size,
            status="ingested",
            reason=result.reason,
            pages=pages,
            chunks=chunks,
            collection=collection,
        )
        with self.catalog.transaction():
            self.catalog.put(document)
            if lexical is not None:
                self.lexical.add(result.grade, result.subject, result.sha256, lexical)
        if previous:
            self.release(previous)

    def remove(self, key: str) -> FileResult:
        previous = self.catalog.get(key)
        self.catalog.remove(key)
        if previous:
            self.release(previous)
        return FileResult(
            key,
            FileStatus.REMOVED,
            "the file left the inbox; its chunks were removed",
            grade=previous.grade if previous else "",
            subject=previous.subject if previous else "",
            sha256=previous.sha256 if previous else "",
        )

    def release(self, doc: Document) -> None:
        """Delete a document version's chunks unless another catalogue row still uses them.

        When a copy remains under another name (the same PDF in two places), its chunks are
        relabelled with the surviving file name so search results never cite a file that is gone.
        """
        copies = self.catalog.copies(doc.grade, doc.subject, doc.sha256)
        if doc.collection and not any(c.collection == doc.collection for c in copies):
            self.store.delete_document(doc.collection, doc.sha256)
        if not copies:
            self.lexical.remove(doc.grade, doc.subject, doc.sha256)
        elif doc.file_name not in {c.file_name for c in copies}:
            survivor = copies[0]
            self.lexical.relabel(doc.grade, doc.subject, doc.sha256, survivor.file_name)
            if survivor.collection == doc.collection:
                self.store.relabel_document(doc.collection, doc.sha256, source=survivor.file_name)

    def save_text(self, sha256: str, pages: list[str]) -> None:
        """Keep the extracted text (pages separated by form feeds) for publishing."""
        self.settings.text_dir.mkdir(parents=True, exist_ok=True)
        target = self.settings.text_dir / f"{sha256}.txt"
        tmp = target.with_suffix(".tmp")
        tmp.write_text("\f".join(pages), encoding="utf-8")
        os.replace(tmp, target)

    def searchable(self, doc: Document) -> bool:
        """Are this document's chunks in a collection the current embedder can query?

        When EMBEDDING_STRATEGY changes model, unchanged files are embedded again with it.
        """
        model_key = doc.collection.rsplit("__", 1)[-1]
        return self.embedder.for_model(model_key) is not None
