"""What the lexical index stores for a chunk (`LexicalChunk`) and returns for a hit
(`LexicalHit`)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.store.chunks import StoredChunk


@dataclass
class LexicalChunk:
    chunk_id: str
    text: str
    source: str
    page: int
    pages: str
    section: str = ""  # heading the chunk sits under, when the extractor knows it
    kind: str = ""  # "toc" for table-of-contents chunks (not indexed for BM25)

    @classmethod
    def of(cls, chunk: StoredChunk) -> LexicalChunk:
        """A stored chunk's text and citation, as the index keeps them."""
        meta = chunk.meta
        return cls(
            chunk.id,
            chunk.text,
            meta.source,
            meta.page,
            meta.pages,
            section=meta.section,
            kind=meta.kind,
        )


@dataclass
class LexicalHit:
    chunk_id: str
    grade: str
    subject: str
    text: str
    source: str
    page: int
    pages: str
    score: float  # BM25 within the hit's grade/subject, higher is better
    coverage: float = 0.0  # score / score of an ideal chunk for this question in that subject
    section: str = ""
    kind: str = ""
