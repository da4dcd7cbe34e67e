"""What a stored chunk is: its id and the citation it carries. The one place that writes or
reads either.

A chunk id is `<sha256[:24]>-<index:05d>`: the content of the file it came from and its
position there (`chunk_id`, read back by `content_of` and `index_of`). Its metadata (Chroma's
metadata dict, and a knowledge package's) holds a `ChunkMeta`: where the chunk is cited from.
Packages built by older versions may lack the later fields (`section`, `page_label`, `kind`,
`pages`, `page_end`), which read back with their defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

CONTENT_PREFIX = 24  # hex digits of the file's sha256 that start each of its chunk ids


def chunk_id(sha256: str, index: int) -> str:
    """The id of chunk `index` of the file whose content hashes to `sha256`."""
    return f"{sha256[:CONTENT_PREFIX]}-{index:05d}"


def content_of(chunk_id: str) -> str:
    """The sha256 prefix a chunk id starts with (which file content it came from)."""
    return chunk_id.rpartition("-")[0]


def index_of(chunk_id: str) -> int:
    """The chunk's position in its document, or -1 for an id not in the format."""
    tail = chunk_id.rpartition("-")[2]
    return int(tail) if tail.isdigit() else -1


FILE_SHA256 = "file_sha256"  # the metadata key stores filter documents by


@dataclass(frozen=True)
class ChunkMeta:
    """Where a chunk is cited from, as its metadata holds it."""

    grade: str
    subject: str
    source: str  # the file name shown in citations
    file_sha256: str
    page: int  # first page (1-based)
    page_end: int
    pages: str  # "3" or "3-4", as cited
    chunk_index: int = -1
    embedding_model: str = ""
    section: str = ""  # the chapter/section it sits under
    page_label: str = ""  # the printed page label ("iv", "41")
    kind: str = "text"  # "text" | "toc" (a table of contents)

    def to_metadata(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, metadata: Mapping) -> ChunkMeta:
        """Read back a chunk's metadata (KeyError when a citation field is missing)."""
        page = int(metadata["page"])
        return cls(
            grade=str(metadata["grade"]),
            subject=str(metadata["subject"]),
            source=str(metadata["source"]),
            file_sha256=str(metadata[FILE_SHA256]),
            page=page,
            page_end=int(metadata.get("page_end", page)),
            pages=str(metadata.get("pages", page)),
            chunk_index=int(metadata.get("chunk_index", -1)),
            embedding_model=str(metadata.get("embedding_model", "")),
            section=str(metadata.get("section") or ""),
            page_label=str(metadata.get("page_label") or ""),
            kind=str(metadata.get("kind") or "text"),
        )


@dataclass
class StoredChunk:
    """A chunk as the store keeps it: id, text, metadata (a `ChunkMeta`'s dict) and vector."""

    id: str
    text: str
    metadata: dict
    vector: list[float]

    @property
    def meta(self) -> ChunkMeta:
        return ChunkMeta.of(self.metadata)
