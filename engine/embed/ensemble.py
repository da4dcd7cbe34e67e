"""An ensemble of local encoders as one model: each part's cosine, weighted, in one vector.

A chunk's vector is the concatenation of its parts' L2-normalised vectors, each scaled by the
square root of its weight (weights sum to 1), and so is a question's (each part embeds the
question its own way, e.g. E5's "query: " prefix). The cosine of two such vectors is exactly
the weighted mean of the parts' cosines: the models are fused per model, score by score, while
the engine still stores one vector per chunk in one collection, under one model key that says
which parts and weights made it (so a package built with the ensemble is only ever queried
with the same ensemble).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine.embed.base import Embedder, EmbeddingResult, ModelInfo


class EnsembleEmbedder(Embedder):
    batch_size = 32
    batches_per_call = 4

    def __init__(self, parts: Sequence[tuple[Embedder, float]], key: str, model_id: str = ""):
        """
        Args:
            parts: (embedder, weight) pairs; weights are normalised to sum to 1.
            key: the model key of the combined vectors (must change with parts or weights).
            model_id: the id shown to users (default: the parts' ids joined by "+").
        """
        total = sum(weight for _, weight in parts) or 1.0
        self.parts = [(embedder, weight / total) for embedder, weight in parts]
        self._info = ModelInfo(model_id or "+".join(e.model.model_id for e, _ in self.parts), key)

    @property
    def model(self) -> ModelInfo:
        return self._info

    def _combine(self, results: list[EmbeddingResult]) -> EmbeddingResult:
        blocks = []
        for (_, weight), result in zip(self.parts, results, strict=True):
            block = np.asarray(result.vectors, dtype=np.float32)
            norms = np.linalg.norm(block, axis=1, keepdims=True)
            blocks.append(block / np.where(norms == 0, 1.0, norms) * math.sqrt(weight))
        vectors = np.concatenate(blocks, axis=1) if blocks else np.zeros((0, 0))
        return EmbeddingResult(
            vectors=vectors.tolist(),
            model=self._info,
            input_tokens=sum(r.input_tokens for r in results),
        )

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        return self._combine([embedder.embed(texts) for embedder, _ in self.parts])

    def embed_queries(self, texts: Sequence[str]) -> EmbeddingResult:
        return self._combine([embedder.embed_queries(texts) for embedder, _ in self.parts])

    def warm(self) -> None:
        for embedder, _ in self.parts:
            embedder.warm()

    def status(self) -> dict:
        return super().status() | {"parts": [e.status() for e, _ in self.parts]}
