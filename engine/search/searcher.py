"""Search over the ingested chunks: vector, lexical (BM25), or both fused (the default).

Hybrid search takes the best candidates of each side, gives every candidate both scores
(the cosine similarity of its stored vector, and its BM25 score within its own grade/subject,
0 when no term matches) and ranks them by `engine.search.fusion.fuse` (the variant and
weights chosen per embedding model on the development set, see bench/retrieval.py;
FUSION_VECTOR_WEIGHT and FUSION_LEXICAL_WEIGHT override the weights). Words carry Indonesian
questions well; vectors catch paraphrase and English.

Ranking within a grade/subject depends only on that grade/subject's chunks (BM25 statistics are
per grade/subject, cosine is per chunk, the default fusion uses no cross-candidate scaling, and
a candidate is fused with the weights of the model whose collection holds it, whatever model
the engine itself embeds with), so a filtered search gives the same hits and scores on every
machine that can query the same package.

The vector side of concurrent searches is answered in micro-batches (`engine.search.vectors`):
questions that arrive together are embedded in one encoder call and each collection is asked
once for all of them; a lone question is embedded and queried alone, as before.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from engine.embed.base import Embedder
from engine.search.fusion import Candidate, FusionConfig, fuse
from engine.search.fusion import for_model as fusion_for_model
from engine.search.lexical.index import LexicalIndex
from engine.search.lexical.rows import LexicalChunk, LexicalHit
from engine.search.vectors import VectorQueries, cite
from engine.store.chroma import ChunkStore, CollectionInfo
from engine.store.chunks import content_of, index_of

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "vector", "lexical"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "lexical")
MAX_QUESTION_CHARS = 500  # longer questions are cut (the API refuses them with 422)


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
    section: str = ""  # heading the chunk sits under ("" when the document has none)
    document_id: str | None = None  # the catalogued document it came from (None: a package's)

    def to_dict(self) -> dict:
        return asdict(self)


class Searcher:
    def __init__(
        self,
        embedder: Embedder,
        store: ChunkStore,
        lexical: LexicalIndex,
        *,
        vector_weight: float | None = None,
        lexical_weight: float | None = None,
        candidates: int = 30,
        fusion: FusionConfig | None = None,
        on_query: Callable[[float, bool], None] | None = None,
        active_packages: Callable[[], set[str]] = set,
        boilerplate=None,
        document_of: Callable[[str, str, str], str | None] | None = None,
        batch: int = 16,
        batch_encoder: bool = True,
    ):
        """See the module docstring; `batch` is the most questions answered by one vector
        batch (1: each alone), `batch_encoder` whether a batch's questions are embedded in one
        encoder call (False: each alone, only the store queries batched)."""
        self.embedder = embedder
        self.store = store
        self.lexical = lexical
        self._fusion = fusion  # None: the variant chosen for each collection's model
        self._weights = (vector_weight, lexical_weight)  # FUSION_* overrides (None: the model's)
        self.fusion = self.fusion_for(embedder.model.key)
        chosen = self._fusion or fusion_for_model(embedder.model.key)
        if (self.fusion.vector_weight, self.fusion.lexical_weight) != (
            chosen.vector_weight,
            chosen.lexical_weight,
        ):
            log.warning(
                "FUSION_VECTOR_WEIGHT/FUSION_LEXICAL_WEIGHT (%s/%s) override the weights chosen for"
                " %s (%s/%s); leave them empty to use those",
                self.fusion.vector_weight,
                self.fusion.lexical_weight,
                embedder.model.key,
                chosen.vector_weight,
                chosen.lexical_weight,
            )
        self.candidates_per_side = candidates
        self.on_query = on_query  # telemetry: (latency in ms, failed?) of every search
        self.active_packages = active_packages  # collections of the installed package versions
        self.boilerplate = boilerplate  # BoilerplateShares, when fusion weighs template text
        self.document_of = document_of  # (grade, subject, chunk id) -> document id
        self.vector_queries = VectorQueries(
            embedder,
            store,
            max_batch=batch,
            threads=max(1, min(4, len(os.sched_getaffinity(0)))),
            together=batch_encoder,
        )

    def search(
        self,
        question: str,
        *,
        grade: str | None = None,
        subject: str | None = None,
        k: int = 5,
        mode: Mode = "hybrid",
    ) -> list[SearchHit]:
        """Top-k chunks for `question` (cut at MAX_QUESTION_CHARS), best first."""
        question = question[:MAX_QUESTION_CHARS].encode("utf-8", "replace").decode("utf-8")
        started = time.perf_counter()
        failed = True
        try:
            hits = self._search(question, grade, subject, k, mode)
            if self.document_of is not None:
                for hit in hits:
                    hit.document_id = self.document_of(hit.grade, hit.subject, hit.chunk_id)
            failed = False
            return hits
        finally:
            if self.on_query is not None:
                try:
                    self.on_query((time.perf_counter() - started) * 1000, failed)
                except Exception:  # counting a search must never lose its answer
                    log.warning("the search was not counted in telemetry", exc_info=True)

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

    def fusion_for(self, model_key: str) -> FusionConfig:
        """How candidates from collections of `model_key` are fused: the variant chosen for that
        model (so a package ranks the same on every machine that can query it), with the
        FUSION_* weights when they are set."""
        fusion = self._fusion or fusion_for_model(model_key)
        vector, lexical = self._weights
        return fusion.with_weights(
            fusion.vector_weight if vector is None else vector,
            fusion.lexical_weight if lexical is None else lexical,
        )

    # --- vector side --------------------------------------------------------------------------
    def _vector(
        self,
        question: str,
        grade: str | None,
        subject: str | None,
        n: int,
        vectors: dict | None = None,
        toc: set[tuple] | None = None,
        models: dict[tuple, str] | None = None,
        collections: list | None = None,
    ) -> list[SearchHit]:
        """Top-n by cosine across `collections` (default: those of grade/subject), each queried
        with the model that embedded it (the keys of table-of-contents chunks are added to
        `toc`, the model of each hit to `models`)."""
        vectors = {} if vectors is None else vectors
        if collections is None:
            collections = self._collections(grade, subject)
        answer = self.vector_queries.ask(question, collections, n)
        vectors.update(answer.vectors)
        best: dict[tuple, tuple[float, CollectionInfo]] = {}  # the best score of each chunk
        for collection, nearest in answer.hits:
            for chunk_id, score in nearest:
                key = (collection.grade, collection.subject, chunk_id)
                if key not in best or best[key][0] < score:
                    best[key] = (score, collection)
        ranked = sorted(best.items(), key=lambda item: item[1][0], reverse=True)
        hits: list[SearchHit] = []
        while len(hits) < n and ranked:  # more when chunks were deleted since Chroma answered
            top, ranked = ranked[: n - len(hits)], ranked[n - len(hits) :]
            cited = cite(self.lexical, self.store, top)
            for key, (score, collection) in top:
                chunk = cited.get(key)
                if chunk is None:
                    continue
                if toc is not None and chunk.kind == "toc":
                    toc.add(key)
                if models is not None:
                    models[key] = collection.model_key
                hits.append(self._from_vector(chunk, key, score))
        return hits

    def _collections(self, grade: str | None, subject: str | None) -> list:
        """Collections to search: ingested ones and the installed version of each package."""
        collections = self.store.collections(grade, subject)
        if any(c.vkp_version for c in collections):
            active = self.active_packages()
            collections = [c for c in collections if not c.vkp_version or c.name in active]
        return collections

    @staticmethod
    def _from_vector(chunk: LexicalChunk, key: tuple, score: float) -> SearchHit:
        grade, subject, chunk_id = key
        return SearchHit(
            text=chunk.text,
            source=chunk.source,
            page=int(chunk.page),
            pages=str(chunk.pages),
            grade=grade,
            subject=subject,
            score=score,
            vector_score=score,
            chunk_id=chunk_id,
            section=chunk.section,
        )

    @staticmethod
    def _from_lexical(hit: LexicalHit) -> SearchHit:
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
            section=hit.section,
        )

    # --- fusion -------------------------------------------------------------------------------
    def _hybrid(
        self, question: str, grade: str | None, subject: str | None, k: int
    ) -> list[SearchHit]:
        hits, candidates = self.candidates(question, grade, subject)
        by_model: dict[str, list[int]] = {}
        for i, candidate in enumerate(candidates):
            by_model.setdefault(candidate.model, []).append(i)
        for model, picked in by_model.items():
            fusion = self.fusion_for(model) if model else self.fusion
            scores = fuse([candidates[i] for i in picked], fusion)
            for i, score in zip(picked, scores, strict=True):
                hits[i].score = round(score, 4)
        hits.sort(key=lambda h: (-h.score, h.grade, h.subject, h.chunk_id))
        return hits[:k]

    def candidates(
        self, question: str, grade: str | None = None, subject: str | None = None, n: int = 0
    ) -> tuple[list[SearchHit], list[Candidate]]:
        """The hybrid candidates (the best `n` of each side, both scores filled) and what
        fusion needs to know about each; bench/retrieval.py scores fusion variants on these."""
        n = max(n, self.candidates_per_side)
        query_vectors: dict = {}
        toc: set[tuple] = set()
        models: dict[tuple, str] = {}
        found: dict[tuple, SearchHit] = {}
        collections = self._collections(grade, subject)  # listed once per search
        for hit in self._vector(
            question, grade, subject, n, query_vectors, toc, models, collections
        ):
            found[(hit.grade, hit.subject, hit.chunk_id)] = hit
        coverage: dict[tuple, float] = {}
        # one BM25 pass gives the lexical side's best n and the vector candidates' scores
        lexical_hits, vector_candidates = self.lexical.search_with_scores(
            question, grade=grade, subject=subject, k=n, also=list(found)
        )
        for hit in lexical_hits:
            key = (hit.grade, hit.subject, hit.chunk_id)
            coverage[key] = hit.coverage
            if key in found:
                found[key].lexical_score = hit.score
            else:
                found[key] = self._from_lexical(hit)
            if hit.kind == "toc":
                toc.add(key)
        if not found:
            return [], []
        self._fill_vector_scores(found, query_vectors, models, collections)
        self._fill_lexical_scores(vector_candidates, found, coverage, toc)
        hits = list(found.values())
        shares = self._boilerplate_shares(found)
        return hits, [
            Candidate(
                vector=h.vector_score,
                lexical=h.lexical_score or 0.0,
                coverage=coverage.get(key, 0.0),
                toc=key in toc,
                document=(h.grade, h.subject, content_of(h.chunk_id)),
                index=index_of(h.chunk_id),
                model=models.get(key, ""),
                boilerplate=shares.get(key, 0.0),
            )
            for key, h in found.items()
        ]

    def _boilerplate_shares(self, found: dict[tuple, SearchHit]) -> dict[tuple, float]:
        """Template share of each candidate (none without a `BoilerplateShares`)."""
        if self.boilerplate is None:
            return {}
        texts: dict[tuple[str, str], dict[str, str]] = {}
        for (grade, subject, chunk_id), hit in found.items():
            texts.setdefault((grade, subject), {})[chunk_id] = hit.text
        out: dict[tuple, float] = {}
        for (grade, subject), chunks in texts.items():
            for chunk_id, share in self.boilerplate.of(grade, subject, chunks).items():
                out[(grade, subject, chunk_id)] = share
        return out

    def _fill_vector_scores(
        self,
        candidates: dict[tuple, SearchHit],
        query_vectors: dict,
        models: dict[tuple, str],
        collections: list,
    ) -> None:
        """Cosine similarity (and its model) for candidates that only the lexical side found."""
        missing: dict[tuple[str, str], list[str]] = {}
        for (grade, subject, chunk_id), hit in candidates.items():
            if hit.vector_score is None:
                missing.setdefault((grade, subject), []).append(chunk_id)
        asked = [
            (collection, ids)
            for collection in collections
            if query_vectors.get(collection.model_key) is not None
            and (ids := missing.get((collection.grade, collection.subject)))
        ]
        stored_vectors = self.vector_queries.map(
            lambda item: self.store.get_vectors(item[0].name, item[1]), asked
        )
        for (collection, _), stored in zip(asked, stored_vectors, strict=True):
            grade, subject = collection.grade, collection.subject
            query = np.asarray(query_vectors[collection.model_key], dtype=np.float32)
            for chunk_id, stored_vector in stored.items():
                candidate = np.asarray(stored_vector, dtype=np.float32)
                cosine = float(
                    query @ candidate / (np.linalg.norm(query) * np.linalg.norm(candidate) or 1.0)
                )
                hit = candidates[(grade, subject, chunk_id)]
                if hit.vector_score is None or cosine > hit.vector_score:
                    models[(grade, subject, chunk_id)] = collection.model_key
                hit.vector_score = round(max(hit.vector_score or -1.0, cosine), 4)

    @staticmethod
    def _fill_lexical_scores(
        scored: list[LexicalHit],
        candidates: dict[tuple, SearchHit],
        coverage: dict[tuple, float],
        toc: set[tuple],
    ) -> None:
        """BM25 for candidates that only the vector side found, from `scored` (the lexical
        pass's scores of the vector candidates; 0 when no term matches)."""
        missing = set()
        for key, hit in candidates.items():
            if hit.lexical_score is None:
                missing.add(key)
                hit.lexical_score = 0.0
        for found in scored:
            key = (found.grade, found.subject, found.chunk_id)
            if key not in missing:
                continue
            candidates[key].lexical_score = found.score
            coverage[key] = found.coverage
            if found.kind == "toc":
                toc.add(key)
