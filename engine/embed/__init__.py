"""Embedding models behind one small interface: local, Bedrock, and hybrid."""

from engine.embed.base import (
    Embedder,
    EmbeddingResult,
    EmbeddingThrottled,
    EmbeddingUnavailable,
    ModelInfo,
)

__all__ = ["Embedder", "EmbeddingResult", "EmbeddingThrottled", "EmbeddingUnavailable", "ModelInfo"]
