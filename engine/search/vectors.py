"""The vector side of searches, answered for the questions that arrive together.

Each question needs a query vector per embedding model of the collections it searches, then the
nearest chunks of each collection. Asked one by one, a class of questions pays the encoder's and
Chroma's fixed cost once per question and collection; here a `MicroBatcher` hands the questions
waiting at the same moment to one call: the encoder embeds them together (one call per model),
and each collection is asked once for all of them (`ChunkStore.nearest_many`, which gives every
question exactly the hits of a query of its own: ids and scores, the searcher reads the texts of
the hits it keeps). A question asked alone is embedded and
queried alone, as before.

Embedding together is not bit-for-bit the same as embedding alone: a batched encoder sums in a
different order, and a vector can move by about 1e-7 (scores are rounded to 1e-4; see the README,
Performance). `together=False` embeds every question alone and keeps only the batched queries,
which are exact.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from engine.embed.base import Embedder, EmbeddingUnavailable
from engine.search.batching import MicroBatcher
from engine.search.lexical.index import LexicalIndex
from engine.search.lexical.rows import LexicalChunk
from engine.store.chroma import ChunkStore, CollectionInfo, Nearest

log = logging.getLogger(__name__)

Vector = list[float]
_SPREAD_FROM = 4  # collections a batch asks before their queries are spread over threads


@dataclass(frozen=True)
class VectorRequest:
    question: str
    collections: tuple[CollectionInfo, ...]  # the non-empty collections to search
    n: int  # hits wanted from each collection


@dataclass
class VectorAnswer:
    vectors: dict[str, Vector | None]  # the question's vector per model key (None: unavailable)
    hits: list[tuple[CollectionInfo, list[Nearest]]] = field(default_factory=list)  # in order


class VectorQueries:
    """Embeds and queries for searches, in micro-batches.

    Args:
        embedder: the engine's embedder (its `query_embedder(model_key)` embeds questions for
            the collections of each model).
        store: the chunk store.
        max_batch: most questions per batch (1: every question alone).
        threads: threads a batch's collections are asked on. One batch runs at a time: its
            Chroma calls take every core already, and a second batch beside it only contends
            (16 clients: 73 vs 68 searches/s, 18 vs 21 ms of CPU each; README, Performance).
            A remote encoder embeds a batch's questions concurrently itself (Bedrock's
            `embed_queries`), so one batch waiting on it costs a round trip or two.
        together: embed a batch's questions in one encoder call (False: each alone).
    """

    def __init__(
        self,
        embedder: Embedder,
        store: ChunkStore,
        *,
        max_batch: int = 16,
        threads: int = 2,
        together: bool = True,
    ):
        self.embedder = embedder
        self.store = store
        self.together = together
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None  # started at the first wide question
        self._pool_lock = threading.Lock()
        self.batcher: MicroBatcher[VectorRequest, VectorAnswer] = MicroBatcher(
            self._answer, max_batch=max_batch, parallel=1
        )

    def ask(self, question: str, collections: Sequence[CollectionInfo], n: int) -> VectorAnswer:
        """The question's vectors and its `n` nearest chunks in each non-empty collection."""
        wanted = tuple(c for c in collections if c.count > 0)
        return self.batcher.submit(VectorRequest(question, wanted, n))

    def _answer(self, requests: list[VectorRequest]) -> list[VectorAnswer]:
        answers = [VectorAnswer(vectors) for vectors in self._embed(requests)]
        # one Chroma call per collection (and number of hits) for every question asking it
        asking: dict[tuple[str, int], list[int]] = {}
        for i, request in enumerate(requests):
            for collection in request.collections:
                if answers[i].vectors[collection.model_key] is not None:
                    k = min(request.n, collection.count)
                    asking.setdefault((collection.name, k), []).append(i)

        def nearest(item: tuple[tuple[str, int], list[int]]) -> list[list[Nearest]]:
            (name, k), asked = item
            vectors = [answers[i].vectors[_model_of(requests[i], name)] for i in asked]
            return self.store.nearest_many(name, vectors, k)

        found: dict[tuple[int, str], list[Nearest]] = {}
        for ((name, _), asked), hits in zip(
            asking.items(), self.map(nearest, list(asking.items())), strict=True
        ):
            for i, nearest_hits in zip(asked, hits, strict=True):
                found[(i, name)] = nearest_hits
        for i, request in enumerate(requests):
            answers[i].hits = [
                (c, found[(i, c.name)]) for c in request.collections if (i, c.name) in found
            ]
        return answers

    def map(self, function: Callable, items: list) -> list:
        """`function` over `items` (Chroma calls, one per collection), on up to `threads`
        threads when there are many: Chroma releases the GIL while it searches, so a question
        over 50 grade/subjects is answered by every core instead of one collection after
        another."""
        if self.threads < 2 or len(items) < _SPREAD_FROM:
            return [function(item) for item in items]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="nearest")
        return list(self._pool.map(function, items))

    def _embed(self, requests: list[VectorRequest]) -> list[dict[str, Vector | None]]:
        """Every request's question vector for each model of its collections."""
        questions: dict[str, list[str]] = {}  # model key -> its distinct questions, in order
        for request in requests:
            for collection in request.collections:
                wanted = questions.setdefault(collection.model_key, [])
                if request.question not in wanted:
                    wanted.append(request.question)
        vectors = {
            model_key: self._embed_model(model_key, asked) for model_key, asked in questions.items()
        }
        return [
            {c.model_key: vectors[c.model_key][request.question] for c in request.collections}
            for request in requests
        ]

    def _embed_model(self, model_key: str, questions: list[str]) -> dict[str, Vector | None]:
        embedder = self.embedder.query_embedder(model_key)
        if embedder is None:
            log.info("no embedder configured for collections of model %s; skipped", model_key)
            return dict.fromkeys(questions)
        try:
            if self.together:
                embedded = embedder.embed_queries(questions).vectors
            else:
                embedded = [embedder.embed_queries([q]).vectors[0] for q in questions]
        except EmbeddingUnavailable as exc:
            log.warning("cannot search %s collections: %s", model_key, exc)
            return dict.fromkeys(questions)
        return dict(zip(questions, embedded, strict=True))


def _model_of(request: VectorRequest, name: str) -> str:
    return next(c.model_key for c in request.collections if c.name == name)


def cite(
    lexical: LexicalIndex,
    store: ChunkStore,
    found: list[tuple[tuple, tuple[float, CollectionInfo]]],
) -> dict[tuple, LexicalChunk]:
    """Text and citation of vector hits (`found`: (grade, subject, chunk id) and (score,
    collection)), by key: from the lexical index, which holds the committed chunks of each
    document's collection, and from the hit's collection for the others (a document whose
    ingest has stored its chunks but not committed yet, or one whose rows were cut for another
    collection)."""
    cited = lexical.chunks({key: collection.name for key, (_, collection) in found})
    missing: dict[str, tuple[CollectionInfo, list[str]]] = {}
    for key, (_, collection) in found:
        if key not in cited:
            missing.setdefault(collection.name, (collection, []))[1].append(key[2])
    for name, (collection, ids) in missing.items():
        for chunk in store.texts(name, ids):
            cited[(collection.grade, collection.subject, chunk.id)] = LexicalChunk.of(chunk)
    return cited
