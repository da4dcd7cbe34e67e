"""Amazon Titan Text Embeddings v2 through Bedrock's InvokeModel API.

Titan takes one text per call, so calls run on a bounded thread pool (BEDROCK_CONCURRENCY).
Throttling is retried by botocore's standard retry mode with backoff; what still fails after
that becomes `EmbeddingUnavailable`, which the hybrid embedder turns into a local fallback.
The boto3 client is built by the composition root and passed in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import BotoCoreError, ClientError

from engine.embed.base import (
    Embedder,
    EmbeddingResult,
    EmbeddingUnavailable,
    ModelInfo,
    Progress,
)

log = logging.getLogger(__name__)


class BedrockEmbedder(Embedder):
    """Titan v2 embeddings, `dimensions` and `normalize` as configured."""

    def __init__(
        self,
        client,
        *,
        model_id: str = "amazon.titan-embed-text-v2:0",
        dimensions: int = 1024,
        normalize: bool = True,
        concurrency: int = 8,
    ):
        self.client = client
        self.model_id = model_id
        self.dimensions = dimensions
        self.normalize = normalize
        self.concurrency = concurrency
        self.batch_size = concurrency * 4  # only for callers of embed_batch; see embed()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bedrock")
        base = model_id.split(".", 1)[-1].split(":")[0]  # titan-embed-text-v2
        self._info = ModelInfo(model_id, ModelInfo.make_key(f"{base}-{dimensions}"))

    @property
    def model(self) -> ModelInfo:
        return self._info

    def _invoke(self, text: str) -> tuple[list[float], int]:
        body = {"inputText": text, "dimensions": self.dimensions, "normalize": self.normalize}
        response = self.client.invoke_model(
            modelId=self.model_id,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
        )
        payload = json.loads(response["body"].read())
        return payload["embedding"], int(payload.get("inputTextTokenCount", 0))

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        return self.embed(texts)

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> EmbeddingResult:
        """All texts go to the pool at once: no batch barrier leaves workers idle."""
        try:
            answers = []
            for future in [self._pool.submit(self._invoke, text) for text in texts]:
                answers.append(future.result())
                if progress:
                    progress(1)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise EmbeddingUnavailable(
                f"Bedrock refused: {error.get('Code', 'error')}: {error.get('Message', exc)}"
            ) from exc
        except BotoCoreError as exc:  # no credentials, endpoint unreachable, timeouts
            raise EmbeddingUnavailable(f"Bedrock unreachable: {exc}") from exc
        except (KeyError, ValueError) as exc:
            raise EmbeddingUnavailable(f"Bedrock sent an unexpected answer: {exc!r}") from exc
        return EmbeddingResult(
            vectors=[vector for vector, _ in answers],
            model=self._info,
            input_tokens=sum(tokens for _, tokens in answers),
        )

    def status(self) -> dict:
        return super().status() | {"dimensions": self.dimensions, "concurrency": self.concurrency}
