"""Vector search over the ingested chunks, across grades, subjects and embedding models."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from engine.embed.base import Embedder, EmbeddingUnavailable
from engine.store.chroma import ChunkStore

log = logging.getLogger(__name__)


@dataclass
class SearchHit:
    text: str
    source: str
    page: int
    pages: str
    grade: str
    subject: str
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


class Searcher:
    def __init__(self, embedder: Embedder, store: ChunkStore):
        self.embedder = embedder
        self.store = store

    def search(
        self, question: str, *, grade: str | None = None, subject: str | None = None, k: int = 5
    ) -> list[SearchHit]:
        """Top-k chunks for `question`, best first.

        Each collection is queried with the model that embedded it (a hybrid install may hold
        both Bedrock and local collections); collections whose model is unavailable are skipped.
        """
        hits: list[SearchHit] = []
        query_vectors: dict[str, list[float] | None] = {}
        for collection in self.store.collections(grade, subject):
            if collection.count == 0:
                continue
            if collection.model_key not in query_vectors:
                query_vectors[collection.model_key] = self._embed_query(
                    question, collection.model_key
                )
            vector = query_vectors[collection.model_key]
            if vector is None:
                continue
            for hit in self.store.query(collection.name, vector, min(k, collection.count)):
                meta = hit.metadata
                hits.append(
                    SearchHit(
                        text=hit.text,
                        source=meta["source"],
                        page=int(meta["page"]),
                        pages=str(meta.get("pages", meta["page"])),
                        grade=meta["grade"],
                        subject=meta["subject"],
                        score=hit.score,
                    )
                )
        hits.sort(key=lambda h: h.score, reverse=True)
        return hits[:k]

    def _embed_query(self, question: str, model_key: str) -> list[float] | None:
        embedder = self.embedder.for_model(model_key)
        if embedder is None:
            log.info("no embedder configured for collections of model %s; skipped", model_key)
            return None
        try:
            return embedder.embed_batch([question]).vectors[0]
        except EmbeddingUnavailable as exc:
            log.warning("cannot search %s collections: %s", model_key, exc)
            return None
