"""Amazon Titan Text Embeddings v2 through Bedrock's InvokeModel API.

Titan takes one text per call, so this backend's `embed_batch` embeds one text (`batch_size`
is 1) and the base class runs the calls on its thread pool, `concurrency` (BEDROCK_CONCURRENCY)
at most. A shared `Pacer` keeps them under the account's quota: a token bucket at
BEDROCK_MAX_RPM and an AIMD concurrency limit that grows while calls succeed and halves when
Bedrock throttles (see `engine.embed.pacing`). Throttling is raised as `EmbeddingThrottled`
and retried by the base class up to BEDROCK_MAX_ATTEMPTS tries; botocore itself does not
retry (`engine.aws.clients.bedrock_client`), so every request passes the rate limiter and every
throttle reaches the AIMD limit. Other failures are `EmbeddingUnavailable`, which the hybrid
embedder turns into a local fallback. The boto3 client is built by the composition root.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from engine.embed.base import (
    Embedder,
    EmbeddingResult,
    EmbeddingThrottled,
    EmbeddingUnavailable,
    ModelInfo,
)
from engine.embed.pacing import Pacer

log = logging.getLogger(__name__)

# Error codes that mean "slow down" (Bedrock answers ThrottlingException with HTTP 429).
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "Throttling", "RequestLimitExceeded"}
)


class BedrockEmbedder(Embedder):
    """Titan v2 embeddings, `dimensions` and `normalize` as configured."""

    batch_size = 1  # Titan v2 embeds one text per InvokeModel call

    def __init__(
        self,
        client,
        *,
        model_id: str = "amazon.titan-embed-text-v2:0",
        dimensions: int = 1024,
        normalize: bool = True,
        concurrency: int = 8,
        max_rpm: int = 1500,
        max_attempts: int = 5,
    ):
        """
        Args:
            client: a boto3 `bedrock-runtime` client (see `engine.aws.clients.bedrock_client`).
            concurrency: most calls in flight; the pacer adapts below it.
            max_rpm: requests per minute never to exceed (0 = no rate limit).
            max_attempts: tries per text while Bedrock throttles.
        """
        self.client = client
        self.model_id = model_id
        self.dimensions = dimensions
        self.normalize = normalize
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.max_rpm = max_rpm
        # start at half the configured concurrency: close to full speed at once, and room to
        # halve on the first throttle instead of starting from one call at a time
        self.pacer = Pacer(
            concurrency,
            max_rpm / 60 if max_rpm else None,
            initial_concurrency=max(1, concurrency // 2),
        )
        base = model_id.split(".", 1)[-1].split(":")[0]  # titan-embed-text-v2
        self._info = ModelInfo(model_id, ModelInfo.make_key(f"{base}-{dimensions}"))

    @property
    def model(self) -> ModelInfo:
        return self._info

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        """Embed `texts` one InvokeModel call each, in this thread (normally one text)."""
        vectors, tokens = [], 0
        for text in texts:
            vector, count = self._invoke(text)
            vectors.append(vector)
            tokens += count
        return EmbeddingResult(vectors=vectors, model=self._info, input_tokens=tokens)

    def _invoke(self, text: str) -> tuple[list[float], int]:
        body = {"inputText": text, "dimensions": self.dimensions, "normalize": self.normalize}
        try:
            response = self.client.invoke_model(
                modelId=self.model_id,
                body=json.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
            payload = json.loads(response["body"].read())
            return payload["embedding"], int(payload.get("inputTextTokenCount", 0))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "error")
            message = f"Bedrock refused: {code}: {error.get('Message', exc)}"
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in THROTTLING_CODES or status == 429:
                raise EmbeddingThrottled(message) from exc
            raise EmbeddingUnavailable(message) from exc
        except BotoCoreError as exc:  # no credentials, endpoint unreachable, timeouts
            raise EmbeddingUnavailable(f"Bedrock unreachable: {exc}") from exc
        except (KeyError, ValueError) as exc:
            raise EmbeddingUnavailable(f"Bedrock sent an unexpected answer: {exc!r}") from exc

    def status(self) -> dict:
        return super().status() | {
            "dimensions": self.dimensions,
            "concurrency": self.concurrency,
            "max_rpm": self.max_rpm,
        }
