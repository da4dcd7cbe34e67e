"""Search over the ingested chunks: vector, lexical (BM25), or both fused (the default).

Hybrid search takes the best candidates of each side, gives every candidate both scores
(the cosine similarity of its stored vector, and its BM25 score, 0 when no term matches),
scales each side to 0..1 within the candidates, and ranks by the weighted sum
(FUSION_VECTOR_WEIGHT, FUSION_LEXICAL_WEIGHT; defaults chosen on the development set, see
bench/retrieval.py). Words carry Indonesian questions well; vectors catch paraphrase.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from engine.embed.base import Embedder, EmbeddingUnavailable
from engine.lexical.index import LexicalIndex
from engine.store.chroma import ChunkStore

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "vector", "lexical"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "lexical")


@dataclass
class SearchHit:
    text: str
    source: str
    page: int
    pages: str
    grade: str
    subject: str
    score: float  # what the hits are ranked by in this mode
    vector_score: float | None = None  # cosine similarity
    lexical_score: float | None = None  # BM25 (0 = no term in common)
    chunk_id: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class Searcher:
    def __init__(
        self,
        embedder: Embedder,
        store: ChunkStore,
        lexical: LexicalIndex,
        *,
        vector_weight: float = 0.2,
        lexical_weight: float = 0.8,
        candidates: int = 30,
        on_query: Callable[[float, bool], None] | None = None,
        active_packages: Callable[[], set[str]] = set,
    ):
        self.embedder = embedder
        self.store = store
        self.lexical = lexical
        self.vector_weight = vector_weight
        self.lexical_weight = lexical_weight
        self.candidates = candidates
        self.on_query = on_query  # telemetry: (latency in ms, failed?) of every search
        self.active_packages = active_packages  # collections of the installed package versions

    def search(
        self,
        question: str,
        *,
        grade: str | None = None,
        subject: str | None = None,
        k: int = 5,
        mode: Mode = "hybrid",
    ) -> list[SearchHit]:
        """Top-k chunks for `question`, best first."""
        started = time.perf_counter()
        failed = True
        try:
            hits = self._search(question, grade, subject, k, mode)
            failed = False
            return hits
        finally:
            if self.on_query is not None:
                self.on_query((time.perf_counter() - started) * 1000, failed)

    def _search(
        self, question: str, grade: str | None, subject: str | None, k: int, mode: Mode
    ) -> list[SearchHit]:
        if mode == "vector":
            return self._vector(question, grade, subject, k)[:k]
        if mode == "lexical":
            return [
                self._from_lexical(h)
                for h in self.lexical.search(question, grade=grade, subject=subject, k=k)
            ]
        if mode != "hybrid":
            raise ValueError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        return self._hybrid(question, grade, subject, k)

    # --- vector side --------------------------------------------------------------------------
    def _vector(
        self,
        question: str,
        grade: str | None,
        subject: str | None,
        n: int,
        vectors: dict | None = None,
    ) -> list[SearchHit]:
        """Top-n by cosine across collections, each queried with the model that embedded it."""
        vectors = {} if vectors is None else vectors
        hits: dict[tuple, SearchHit] = {}
        for collection in self._collections(grade, subject):
            if collection.count == 0:
                continue
            vector = self._query_vector(question, collection.model_key, vectors)
            if vector is None:
                continue
            for hit in self.store.query(collection.name, vector, min(n, collection.count)):
                found = self._from_vector(hit.text, hit.metadata, hit.score, hit.id)
                key = (found.grade, found.subject, found.chunk_id)
                if key not in hits or hits[key].score < found.score:
                    hits[key] = found
        return sorted(hits.values(), key=lambda h: h.score, reverse=True)[:n]

    def _collections(self, grade: str | None, subject: str | None) -> list:
        """Collections to search: ingested ones and the installed version of each package."""
        collections = self.store.collections(grade, subject)
        if any(c.vkp_version for c in collections):
            active = self.active_packages()
            collections = [c for c in collections if not c.vkp_version or c.name in active]
        return collections

    def _query_vector(self, question: str, model_key: str, cache: dict) -> list[float] | None:
        if model_key not in cache:
            embedder = self.embedder.for_model(model_key)
            if embedder is None:
                log.info("no embedder configured for collections of model %s; skipped", model_key)
                cache[model_key] = None
            else:
                try:
                    cache[model_key] = embedder.embed_batch([question]).vectors[0]
                except EmbeddingUnavailable as exc:
                    log.warning("cannot search %s collections: %s", model_key, exc)
                    cache[model_key] = None
        return cache[model_key]

    @staticmethod
    def _from_vector(text: str, meta: dict, score: float, chunk_id: str) -> SearchHit:
        return SearchHit(
            text=text,
            source=meta["source"],
            page=int(meta["page"]),
            pages=str(meta.get("pages", meta["page"])),
            grade=meta["grade"],
            subject=meta["subject"],
            score=score,
            vector_score=score,
            chunk_id=chunk_id,
        )

    @staticmethod
    def _from_lexical(hit) -> SearchHit:
        return SearchHit(
            text=hit.text,
            source=hit.source,
            page=int(hit.page),
            pages=str(hit.pages),
            grade=hit.grade,
            subject=hit.subject,
            score=round(hit.score, 4),
            lexical_score=hit.score,
            chunk_id=hit.chunk_id,
        )

    # --- fusion -------------------------------------------------------------------------------
    def _hybrid(
        self, question: str, grade: str | None, subject: str | None, k: int
    ) -> list[SearchHit]:
        n = max(k, self.candidates)
        query_vectors: dict = {}
        candidates: dict[tuple, SearchHit] = {
            (h.grade, h.subject, h.chunk_id): h
            for h in self._vector(question, grade, subject, n, query_vectors)
        }
        for hit in self.lexical.search(question, grade=grade, subject=subject, k=n):
            key = (hit.grade, hit.subject, hit.chunk_id)
            if key in candidates:
                candidates[key].lexical_score = hit.score
            else:
                candidates[key] = self._from_lexical(hit)
        if not candidates:
            return []
        self._fill_vector_scores(candidates, query_vectors)
        self._fill_lexical_scores(question, candidates)

        hits = list(candidates.values())
        vec = _scale([h.vector_score for h in hits], floor_at_min=True)
        lex = _scale([h.lexical_score for h in hits], floor_at_min=False)
        for hit, v, lx in zip(hits, vec, lex, strict=True):
            hit.score = round(self.vector_weight * v + self.lexical_weight * lx, 4)
        hits.sort(key=lambda h: h.score, reverse=True)
        return hits[:k]

    def _fill_vector_scores(self, candidates: dict[tuple, SearchHit], query_vectors: dict) -> None:
        """Cosine similarity for candidates that only the lexical side found."""
        missing: dict[tuple[str, str], list[str]] = {}
        for (grade, subject, chunk_id), hit in candidates.items():
            if hit.vector_score is None:
                missing.setdefault((grade, subject), []).append(chunk_id)
        for (grade, subject), ids in missing.items():
            for collection in self._collections(grade, subject):
                vector = query_vectors.get(collection.model_key)
                if vector is None:
                    continue
                stored = self.store.get_vectors(collection.name, ids)
                query = np.asarray(vector, dtype=np.float32)
                for chunk_id, stored_vector in stored.items():
                    candidate = np.asarray(stored_vector, dtype=np.float32)
                    cosine = float(
                        query
                        @ candidate
                        / (np.linalg.norm(query) * np.linalg.norm(candidate) or 1.0)
                    )
                    hit = candidates[(grade, subject, chunk_id)]
                    hit.vector_score = round(max(hit.vector_score or -1.0, cosine), 4)

    def _fill_lexical_scores(self, question: str, candidates: dict[tuple, SearchHit]) -> None:
        """BM25 for candidates that only the vector side found (0 when no term matches)."""
        missing: dict[tuple[str, str], list[str]] = {}
        for (grade, subject, chunk_id), hit in candidates.items():
            if hit.lexical_score is None:
                missing.setdefault((grade, subject), []).append(chunk_id)
                hit.lexical_score = 0.0
        for (grade, subject), ids in missing.items():
            for found in self.lexical.search(
                question, grade=grade, subject=subject, k=len(ids), chunk_ids=ids
            ):
                candidates[(grade, subject, found.chunk_id)].lexical_score = found.score


def _scale(values: list[float | None], *, floor_at_min: bool) -> list[float]:
    """Scale scores to 0..1 within the candidates (missing scores count as the worst).

    Cosine similarities are min-max scaled (their floor is arbitrary); BM25 is divided by the
    best score, so a candidate without any question term stays at 0.
    """
    known = [v for v in values if v is not None]
    if not known:
        return [0.0] * len(values)
    top = max(known)
    bottom = min(known) if floor_at_min else 0.0
    span = top - bottom
    if span <= 0:
        return [1.0 if v is not None and top > 0 else 0.0 for v in values]
    return [0.0 if v is None else (v - bottom) / span for v in values]
