"""The embedder interface.

As in simonw/llm's `EmbeddingModel`, a backend implements only `embed_batch`; grouping,
progress, concurrency and retries live once here in `embed`. A backend describes itself with
class attributes the base class reads:

- `batch_size`: texts per model batch; `batches_per_call`: how many of them one `embed_batch`
  call gets (a local encoder pads less when it can sort a larger group by length).
- `concurrency`: how many `embed_batch` calls may run at once on a shared thread pool (1 =
  in the caller's thread). With a `pacer` (see `engine.embed.pacing`) that is the ceiling and
  the pacer adapts below it and caps the request rate.
- `max_attempts`, `retry_backoff_s`: a backend raises `EmbeddingThrottled` when the service
  says "too many requests"; the call is tried again after an exponential, jittered back-off
  (and the pacer lowers the concurrency). Any other failure is `EmbeddingUnavailable` at once.

Every result says which model made its vectors, because vectors of different models must never
share a collection (see `engine.store`).
"""

from __future__ import annotations

import random
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from engine.embed.pacing import Pacer


class EmbeddingUnavailable(Exception):
    """The embedding service cannot be used right now (unreachable, no credentials, failing)."""


class EmbeddingThrottled(EmbeddingUnavailable):
    """The service refused for now because of its rate limits: worth retrying after a pause.

    A subclass of `EmbeddingUnavailable`, so a caller of `embed_batch` that does not retry
    (a search's single query) treats it like any other outage.
    """


@dataclass(frozen=True)
class ModelInfo:
    """Identity of an embedding model.

    Attributes:
        model_id: the id users know (`amazon.titan-embed-text-v2:0`, a local model name/path).
        key: short, collection-name-safe id that also separates incompatible settings
            (e.g. Titan's dimensions): `titan-embed-text-v2-1024`, `all-minilm-l6-v2`.
    """

    model_id: str
    key: str

    @staticmethod
    def make_key(text: str) -> str:
        return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-.")[:80]


@dataclass
class EmbeddingResult:
    vectors: list[list[float]]
    model: ModelInfo
    input_tokens: int = 0
    fallback_reason: str = ""  # set by the hybrid embedder when it used the local model
    notes: list[str] = field(default_factory=list)


Progress = Callable[[int], None]  # called with the number of texts just embedded

_POOL_LOCK = threading.Lock()


class Embedder(ABC):
    """Turns texts into vectors. Subclasses implement `embed_batch` and describe their model."""

    batch_size: int = 32
    batches_per_call: int = 1
    concurrency: int = 1
    pacer: Pacer | None = None
    max_attempts: int = 5
    retry_backoff_s: float = 0.1  # first retry waits up to this; doubles, capped below
    retry_backoff_max_s: float = 10.0
    remote: bool = False  # a service called over the network (Bedrock): nothing to load ahead

    @property
    @abstractmethod
    def model(self) -> ModelInfo:
        """The model whose vectors `embed` returns (for hybrid: the preferred one)."""

    @property
    def max_tokens(self) -> int | None:
        """Input limit in the model's tokens, or None when chunks can never reach it."""
        return None

    def count_tokens(self, text: str) -> int:
        """Tokens `text` costs in this model (only used when `max_tokens` is set)."""
        return len(text.split())

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        """Embed up to `batch_size * batches_per_call` texts in one go.

        Raises:
            EmbeddingThrottled: the service asked to slow down (the base class retries).
            EmbeddingUnavailable: any other failure to embed.
        """

    def embed_queries(self, texts: Sequence[str]) -> EmbeddingResult:
        """Embed search questions. Models that embed a question differently from a passage
        (E5's "query: " prefix, Cohere's `search_query`) override this; the default embeds
        them like passages."""
        return self.embed_batch(texts)

    def warm(self) -> None:
        """Do now what the first question would wait for: a local model reads and checks its
        files and builds its query encoder. A remote service is not called (it has nothing to
        load, and a call can cost money). Composite embedders warm their parts."""
        if not self.remote:
            self.embed_queries(["pemanasan"])

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> EmbeddingResult:
        """Embed any number of texts, group by group, in order, reporting progress.

        Groups run `concurrency` at a time (paced when the backend has a pacer); a throttled
        group is retried with back-off up to `max_attempts` tries.

        Raises:
            EmbeddingUnavailable: a group failed, or was still throttled after its last try.
        """
        size = max(1, self.batch_size * self.batches_per_call)
        groups = [texts[start : start + size] for start in range(0, len(texts), size)]
        result = EmbeddingResult(vectors=[], model=self.model)

        def add(batch: EmbeddingResult) -> None:
            result.vectors.extend(batch.vectors)
            result.input_tokens += batch.input_tokens
            result.model = batch.model
            if progress:
                progress(len(batch.vectors))

        if self.concurrency <= 1 or len(groups) <= 1:
            for group in groups:
                add(self._embed_with_retries(group))
            return result
        futures: list[Future[EmbeddingResult]] = [
            self._executor().submit(self._embed_with_retries, group) for group in groups
        ]
        try:
            for future in futures:
                add(future.result())
        finally:
            for future in futures:
                future.cancel()  # after a failure, groups not yet started are dropped
        return result

    def _embed_with_retries(self, texts: Sequence[str]) -> EmbeddingResult:
        pacer = self.pacer
        attempts = max(1, self.max_attempts)
        for attempt in range(1, attempts + 1):
            ticket = pacer.acquire() if pacer else None
            try:
                batch = self.embed_batch(texts)
            except EmbeddingThrottled as exc:
                if pacer:
                    pacer.throttled(ticket)
                if attempt == attempts:
                    raise EmbeddingUnavailable(
                        f"still throttled after {attempts} tries: {exc}"
                    ) from exc
                time.sleep(self._backoff(attempt))
            except BaseException:
                if pacer:
                    pacer.failed(ticket)
                raise
            else:
                if pacer:
                    pacer.succeeded(ticket)
                return batch
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int) -> float:
        """Full-jitter exponential back-off before retry `attempt` (1-based)."""
        ceiling = min(self.retry_backoff_max_s, self.retry_backoff_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def _executor(self) -> ThreadPoolExecutor:
        """This embedder's worker threads (made on first use, `concurrency` of them)."""
        with _POOL_LOCK:
            pool = self.__dict__.get("_pool")
            if pool is None:
                name = type(self).__name__.lower()
                pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=name)
                self.__dict__["_pool"] = pool
            return pool

    def for_model(self, key: str) -> Embedder | None:
        """The embedder able to embed queries for a collection of model `key`, if any."""
        return self if key == self.model.key else None

    def query_embedder(self, key: str) -> Embedder | None:
        """The embedder a search uses for a collection of model `key`: `for_model`'s, or, while
        a local model switch is under way, the previous model for its not yet re-embedded
        chunks (engine.embed.switching). Ingestion asks `for_model`, so those are re-embedded."""
        return self.for_model(key)

    def status(self) -> dict:
        """What the panel and `nexus aws status` show about this embedder."""
        status = {"model": self.model.model_id, "key": self.model.key}
        if self.pacer:
            status["pacing"] = self.pacer.stats()
        return status
