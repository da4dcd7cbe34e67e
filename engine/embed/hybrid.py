"""Hybrid embeddings: Bedrock first, the local model when Bedrock is unreachable or failing.

A whole document is embedded by one model (its vectors go to that model's collection). After a
fallback, Bedrock is left alone for `retry_after_s` so an offline school does not wait on
timeouts for every file; the result and `status()` say which model ran and why.

Unlike a backend, this embedder overrides `embed`: it wraps the two embedders' own `embed`, so
each keeps its grouping, concurrency, pacing and retries (a throttled Bedrock is retried and
slowed down there; only what still fails comes here as `EmbeddingUnavailable`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from engine.embed.base import Embedder, EmbeddingResult, EmbeddingUnavailable, ModelInfo, Progress

log = logging.getLogger(__name__)


class HybridEmbedder(Embedder):
    def __init__(
        self,
        primary: Embedder,
        fallback: Embedder,
        *,
        fallback_enabled: bool = True,
        retry_after_s: float = 300.0,
    ):
        self.primary = primary
        self.fallback = fallback
        self.fallback_enabled = fallback_enabled
        self.retry_after_s = retry_after_s
        self.batch_size = primary.batch_size
        self._down_until = 0.0
        self._last_reason = ""
        self._lock = threading.Lock()

    @property
    def model(self) -> ModelInfo:
        return self.primary.model

    # Chunks must fit the stricter of the two models so a fallback never truncates.
    @property
    def max_tokens(self) -> int | None:
        return self.fallback.max_tokens if self.fallback_enabled else self.primary.max_tokens

    def count_tokens(self, text: str) -> int:
        source = self.fallback if self.fallback_enabled else self.primary
        return source.count_tokens(text)

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        return self.embed(texts)

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> EmbeddingResult:
        if not self._primary_down():
            try:
                result = self.primary.embed(texts, progress)
                with self._lock:
                    self._last_reason = ""
                return result
            except EmbeddingUnavailable as exc:
                if not self.fallback_enabled:
                    raise
                with self._lock:
                    self._down_until = time.monotonic() + self.retry_after_s
                    self._last_reason = str(exc)
                log.warning("Bedrock unavailable, using the local model: %s", exc)
        result = self.fallback.embed(texts, progress)
        result.fallback_reason = self._last_reason
        return result

    def _primary_down(self) -> bool:
        with self._lock:
            return time.monotonic() < self._down_until

    def warm(self) -> None:
        self.primary.warm()
        self.fallback.warm()

    def for_model(self, key: str) -> Embedder | None:
        return self.primary.for_model(key) or self.fallback.for_model(key)

    def query_embedder(self, key: str) -> Embedder | None:
        return self.primary.query_embedder(key) or self.fallback.query_embedder(key)

    def status(self) -> dict:
        return self.primary.status() | {
            "fallback": self.fallback.status(),
            "fallen_back": self._primary_down(),
            "fallback_reason": self._last_reason,
        }
