"""A deterministic fake embedder for fast unit tests (like simonw/llm's EmbedDemo)."""

from __future__ import annotations

from collections.abc import Sequence

from devtools.bedrock_stub import hashed_vector
from engine.embed.base import Embedder, EmbeddingResult, EmbeddingUnavailable, ModelInfo


class FakeEmbedder(Embedder):
    """Hashed bag-of-words vectors; `fail` makes it raise like an unreachable service."""

    def __init__(self, key: str = "fake-64", dimensions: int = 64, max_tokens: int | None = None):
        self._info = ModelInfo(f"fake/{key}", key)
        self.dimensions = dimensions
        self._max_tokens = max_tokens
        self.fail = False
        self.calls = 0
        self.batch_size = 16

    @property
    def model(self) -> ModelInfo:
        return self._info

    @property
    def max_tokens(self) -> int | None:
        return self._max_tokens

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        self.calls += 1
        if self.fail:
            raise EmbeddingUnavailable("fake outage")
        vectors = [hashed_vector(t, self.dimensions) for t in texts]
        return EmbeddingResult(vectors=vectors, model=self._info, input_tokens=len(texts))
