"""What the ingestion pipeline passes around: one file's work in progress, a job's outcome,
and the progress interface the CLI and the panel implement."""

from __future__ import annotations

import os
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engine.documents.catalog import Document
from engine.embed.base import EmbeddingResult
from engine.inbox.layout import Placement
from engine.ingest.chunk import Chunk
from engine.jobs.base import FileResult, JobRecord
from engine.store.chunks import ChunkMeta, StoredChunk, chunk_id


class Progress(Protocol):
    """What the CLI and the panel are told while a job runs."""

    def file_started(self, path: str, number: int, total: int) -> None: ...
    def chunks_embedded(self, count: int, total: int) -> None: ...
    def file_done(self, result: FileResult) -> None: ...


class Silent:
    def file_started(self, path: str, number: int, total: int) -> None:
        pass

    def chunks_embedded(self, count: int, total: int) -> None:
        pass

    def file_done(self, result: FileResult) -> None:
        pass


@dataclass
class FileWork:
    """One file between its cheap checks and its ingestion.

    `action` is "ingest" (its PDF is being read in `extraction`), "remove" (it left the
    inbox), or "report" (the result is already decided: skipped, bad location, too large...).
    """

    path: Path  # the entry in the inbox (perhaps a link); result.path is its key
    result: FileResult
    started: float
    action: str = "report"
    source: Path | None = None  # what is opened: the entry, or the file a link points to
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


def stored_chunks(work: FileWork) -> list[StoredChunk]:
    """The embedded chunks of `work` as the store keeps them, with every citation field."""
    result, placement, model = work.result, work.placement, work.embedded.model
    return [
        StoredChunk(
            id=chunk_id(result.sha256, c.index),
            text=c.text,
            vector=vector,
            metadata=ChunkMeta(
                grade=placement.grade,
                subject=placement.subject,
                source=Path(result.path).name,
                file_sha256=result.sha256,
                page=c.page_start,
                page_end=c.page_end,
                pages=c.pages,
                chunk_index=c.index,
                embedding_model=model.model_id,
                section=c.section,
                page_label=c.page_label or str(c.page_start),
                kind=c.kind,
            ).to_metadata(),
        )
        for c, vector in zip(work.chunks, work.embedded.vectors, strict=True)
    ]
