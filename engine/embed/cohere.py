"""Cohere embeddings through Bedrock's InvokeModel API: Embed Multilingual v3 and Embed v4.

Titan Text Embeddings v2 is described by AWS as optimised for English; Cohere's models were
trained for retrieval in 100+ languages, Indonesian among them, and embed a question
(`input_type: search_query`) differently from a passage (`search_document`), which this
embedder does through `embed_queries` / `embed_batch`.

- `cohere.embed-multilingual-v3`: 1024-d, 512 tokens per text (longer ones are cut at the end);
- `cohere.embed-v4:0`: 256, 512, 1024 or 1536-d (BEDROCK_DIMENSIONS; 1536 is its default),
  128k tokens per text.

Both take up to 96 texts per call, so `batch_size` is 96 and one paced request carries 96
chunks; pacing, retries and throttling are the Titan backend's (`engine.embed.bedrock`).
Input tokens come from Bedrock's `x-amzn-bedrock-input-token-count` header and are priced with
BEDROCK_PRICES like Titan's. Bedrock batch inference jobs (BEDROCK_BATCH_MIN_CHUNKS) are only
written in Titan's record format here, so Cohere always uses InvokeModel. Vectors are
L2-normalised, under the key `<model>-<dimensions>` (e.g. `embed-multilingual-v3-1024`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from engine.embed.base import EmbeddingResult, EmbeddingUnavailable, ModelInfo
from engine.embed.bedrock import BedrockEmbedder

log = logging.getLogger(__name__)

MULTILINGUAL_V3 = "cohere.embed-multilingual-v3"
EMBED_V4 = "cohere.embed-v4:0"
MAX_TEXTS_PER_CALL = 96
V4_DIMENSIONS = (256, 512, 1024, 1536)


def is_cohere(model_id: str) -> bool:
    """A Cohere embedding model id, or a cross-region inference profile of one (`us.cohere...`)."""
    return model_id.startswith("cohere.") or ".cohere." in model_id


def _is_v4(model_id: str) -> bool:
    return "embed-v4" in model_id


class CohereEmbedder(BedrockEmbedder):
    batch_size = MAX_TEXTS_PER_CALL

    def __init__(self, client, *, model_id: str = MULTILINGUAL_V3, dimensions: int = 1024, **kw):
        """
        Args:
            client: a boto3 `bedrock-runtime` client.
            model_id: a Cohere embedding model (or inference profile) id.
            dimensions: 1024 for Embed Multilingual v3; 256, 512, 1024 or 1536 for Embed v4.
            **kw: pacing and retry settings, as for `BedrockEmbedder`.

        Raises:
            ValueError: the model does not offer `dimensions`.
        """
        if _is_v4(model_id) and dimensions not in V4_DIMENSIONS:
            raise ValueError(f"{model_id} offers {', '.join(map(str, V4_DIMENSIONS))} dimensions")
        if not _is_v4(model_id) and dimensions != 1024:
            raise ValueError(f"{model_id} embeds in 1024 dimensions; set BEDROCK_DIMENSIONS=1024")
        if kw.pop("batch", None) is not None or kw.pop("batch_min_chunks", 0):
            log.warning("Bedrock batch inference is not used for %s (InvokeModel only)", model_id)
        super().__init__(client, model_id=model_id, dimensions=dimensions, **kw)
        base = model_id.split("cohere.", 1)[-1].split(":")[0]  # embed-multilingual-v3
        self._info = ModelInfo(model_id, ModelInfo.make_key(f"{base}-{dimensions}"))

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        return self._embed(texts, "search_document")

    def embed_queries(self, texts: Sequence[str]) -> EmbeddingResult:
        return self._embed(texts, "search_query")

    def _embed(self, texts: Sequence[str], input_type: str) -> EmbeddingResult:
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), MAX_TEXTS_PER_CALL):
            part = list(texts[start : start + MAX_TEXTS_PER_CALL])
            body = {
                "texts": part,
                "input_type": input_type,
                "truncate": "END",
                "embedding_types": ["float"],
            }
            if _is_v4(self.model_id):
                body["output_dimension"] = self.dimensions
            payload, counted = self._invoke_json(body)
            try:
                found = payload["embeddings"]
                found = found["float"] if isinstance(found, dict) else found
                if len(found) != len(part):
                    raise ValueError(f"{len(found)} vectors for {len(part)} texts")
                vectors.extend(_unit(v) for v in found)
            except (KeyError, TypeError, ValueError) as exc:
                raise EmbeddingUnavailable(f"Bedrock sent an unexpected answer: {exc!r}") from exc
            tokens += counted
        return EmbeddingResult(vectors=vectors, model=self._info, input_tokens=tokens)


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(float(x) * float(x) for x in vector)) or 1.0
    return [float(x) / norm for x in vector]
