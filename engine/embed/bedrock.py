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

Large uploads: with a `BatchInference` (BEDROCK_BATCH_MIN_CHUNKS > 0), `embed` is overridden
to hand a call of at least `batch_min_chunks` texts to one Bedrock batch inference job
(`engine.embed.bedrock_batch`) instead of the base class's grouping; the records that job fails
go back through the base class's `embed` (paced InvokeModel calls with retries). The override
keeps the base contract: same arguments, vectors in order, `EmbeddingUnavailable` on failure;
progress is reported once, when the job's vectors arrive.
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
    Progress,
)
from engine.embed.bedrock_batch import BatchInference
from engine.embed.pacing import Pacer

log = logging.getLogger(__name__)

# Error codes that mean "slow down" (Bedrock answers ThrottlingException with HTTP 429).
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "Throttling", "RequestLimitExceeded"}
)


class BedrockEmbedder(Embedder):
    """Titan v2 embeddings, `dimensions` and `normalize` as configured."""

    batch_size = 1  # Titan v2 embeds one text per InvokeModel call
    remote = True

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
        batch: BatchInference | None = None,
        batch_min_chunks: int = 0,
    ):
        """
        Args:
            client: a boto3 `bedrock-runtime` client (see `engine.aws.clients.bedrock_client`).
            concurrency: most calls in flight; the pacer adapts below it.
            max_rpm: requests per minute never to exceed (0 = no rate limit).
            max_attempts: tries per text while Bedrock throttles.
            batch: batch inference for large calls, used when `batch_min_chunks` > 0.
            batch_min_chunks: texts in one `embed` call from which `batch` is used.
        """
        if "titan-embed-text-v2" in model_id and dimensions not in (256, 512, 1024):
            raise ValueError("Titan v2 offers 256, 512 or 1024 dimensions (BEDROCK_DIMENSIONS)")
        self.client = client
        self.batch = batch if batch_min_chunks > 0 else None
        self.batch_min_chunks = batch_min_chunks
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

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> EmbeddingResult:
        """As `Embedder.embed`; a large call goes to one batch inference job (module docstring)."""
        if self.batch is None or len(texts) < self.batch_min_chunks:
            return super().embed(texts, progress)
        log.info("embedding %d texts with a Bedrock batch inference job", len(texts))

        def reembed(failed: list[str]) -> tuple[list[list[float]], int]:
            result = super(BedrockEmbedder, self).embed(failed)
            return result.vectors, result.input_tokens

        vectors, tokens = self.batch.embed(texts, reembed)
        if progress:
            progress(len(vectors))
        return EmbeddingResult(vectors=vectors, model=self._info, input_tokens=tokens)

    def embed_queries(self, texts: Sequence[str]) -> EmbeddingResult:
        """Questions that arrive together (a search's micro-batch) are asked like chunks:
        concurrently, paced and retried, so a class's 16 questions cost about two round trips
        instead of 16 in a row; never as a batch inference job."""
        return super().embed(texts)

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
        payload, tokens = self._invoke_json(body)
        try:
            return payload["embedding"], int(payload.get("inputTextTokenCount", tokens))
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingUnavailable(f"Bedrock sent an unexpected answer: {exc!r}") from exc

    def _invoke_json(self, body: dict) -> tuple[dict, int]:
        """One InvokeModel call: the JSON answer, and the input tokens Bedrock counted (its
        `x-amzn-bedrock-input-token-count` header; 0 when absent).

        Raises:
            EmbeddingThrottled: Bedrock asked to slow down.
            EmbeddingUnavailable: any other failure, or an answer that is not JSON.
        """
        try:
            response = self.client.invoke_model(
                modelId=self.model_id,
                body=json.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
            payload = json.loads(response["body"].read())
            headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            return payload, int(headers.get("x-amzn-bedrock-input-token-count") or 0)
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
            "batch_min_chunks": self.batch_min_chunks if self.batch else 0,
        }
