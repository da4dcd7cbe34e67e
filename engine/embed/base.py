"""The embedder interface.

As in simonw/llm's `EmbeddingModel`, a backend implements only `embed_batch`; batching and
progress live once here in `embed`. Every result says which model made its vectors, because
vectors of different models must never share a collection (see `engine.store`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


class EmbeddingUnavailable(Exception):
    """The embedding service cannot be used right now (unreachable, no credentials, failing)."""


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


class Embedder(ABC):
    """Turns texts into vectors. Subclasses implement `embed_batch` and describe their model."""

    batch_size: int = 32

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
        """Embed up to `batch_size` texts in one go."""

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> EmbeddingResult:
        """Embed any number of texts, batch by batch, reporting progress."""
        result = EmbeddingResult(vectors=[], model=self.model)
        for start in range(0, len(texts), self.batch_size):
            batch = self.embed_batch(texts[start : start + self.batch_size])
            result.vectors.extend(batch.vectors)
            result.input_tokens += batch.input_tokens
            result.model = batch.model
            if progress:
                progress(len(batch.vectors))
        return result

    def for_model(self, key: str) -> Embedder | None:
        """The embedder able to embed queries for a collection of model `key`, if any."""
        return self if key == self.model.key else None

    def status(self) -> dict:
        """What the panel and `nexus aws status` show about this embedder."""
        return {"model": self.model.model_id, "key": self.model.key}
