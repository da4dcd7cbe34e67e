"""What the ingestion pipeline writes besides chunks: the document catalogue, the lexical
index and extracted text, and how a crash is cleaned up (`recover`).

The order matters for crash safety: a catalogue row switches to a new version (with its
lexical rows, in one transaction) only after that version's chunks are stored, and an old
version's chunks are released only after that. A part of `Ingestor`, kept apart so that
each module stays readable.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from engine.catalog import Document
from engine.jobs.base import FileResult, FileStatus
from engine.lexical.index import LexicalChunk
from engine.store.chroma import StoredChunk

log = logging.getLogger(__name__)


def lexical_chunk(chunk: StoredChunk) -> LexicalChunk:
    meta = chunk.metadata
    return LexicalChunk(chunk.id, chunk.text, meta["source"], meta["page"], meta["pages"])


class DocumentRecords:
    """Catalogue, lexical index and recovery; mixed into `Ingestor` (which sets the parts)."""

    def vanished(self, root: Path) -> list[Path]:
        """Catalogued files under `root` that no longer exist (deleted while nobody watched)."""
        return [Path(p) for p in self.catalog.paths_under(root) if not Path(p).exists()]

    def recover(self) -> list[str]:
        """After a crash: mark dead jobs interrupted and delete chunks no document refers to."""
        with self.writer_lock():
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
        from their chunks in Chroma. Returns the number of documents (re)indexed.
        """
        wanted = {(d.grade, d.subject, d.sha256): d for d in self.catalog.all()}
        indexed = self.lexical.documents()
        for key in indexed - wanted.keys():
            self.lexical.remove(*key)
        added = 0
        for (grade, subject, sha), doc in wanted.items():
            if (grade, subject, sha) in indexed or not doc.collection:
                continue
            stored = self.store.get_chunks(doc.collection, where={"file_sha256": sha})
            self.lexical.add(grade, subject, sha, [lexical_chunk(c) for c in stored])
            added += 1
        return added

    def _record(
        self,
        result: FileResult,
        status: FileStatus,
        collection: str,
        pages: int,
        chunks: int,
        previous: Document | None,
        lexical: list[LexicalChunk] | None = None,
    ) -> None:
        """Point the catalogue (and the lexical index, in the same transaction) at the new
        version, then release the old version's chunks."""
        result.status, result.pages, result.chunks = status, pages, chunks
        path = Path(result.path)
        document = Document(
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
        with self.catalog.transaction():
            self.catalog.put(document)
            if lexical is not None:
                self.lexical.add(result.grade, result.subject, result.sha256, lexical)
        if previous:
            self._release(previous)

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

    def _save_text(self, sha256: str, pages: list[str]) -> None:
        """Keep the extracted text (pages separated by form feeds) for publishing."""
        self.settings.text_dir.mkdir(parents=True, exist_ok=True)
        target = self.settings.text_dir / f"{sha256}.txt"
        tmp = target.with_suffix(".tmp")
        tmp.write_text("\f".join(pages), encoding="utf-8")
        os.replace(tmp, target)

    def _searchable(self, doc: Document) -> bool:
        """Are this document's chunks in a collection the current embedder can query?

        When EMBEDDING_STRATEGY changes model, unchanged files are embedded again with it.
        """
        model_key = doc.collection.rsplit("__", 1)[-1]
        return self.embedder.for_model(model_key) is not None
