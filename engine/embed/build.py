"""Which embedder EMBEDDING_STRATEGY, the data dir's model record and the backend settings ask
for, built from settings (the composition root, `engine.app`, asks here for its embedder).

Backends are imported lazily: a Bedrock-only install never imports the local encoders, and a
local one never builds a boto3 client.
"""

from __future__ import annotations

import logging

from engine.embed.base import Embedder
from engine.settings import Settings

log = logging.getLogger(__name__)


def build_embedder(settings: Settings) -> Embedder:
    """The embedder for EMBEDDING_STRATEGY."""
    match settings.embedding_strategy:
        case "local":
            return _local(settings)
        case "bedrock":
            return bedrock_embedder(settings)
        case "hybrid":
            from engine.embed.hybrid import HybridEmbedder

            return HybridEmbedder(
                bedrock_embedder(settings),
                _local(settings),
                fallback_enabled=settings.fallback_enabled,
                retry_after_s=settings.bedrock_retry_after_s,
            )
    raise ValueError(f"unknown EMBEDDING_STRATEGY {settings.embedding_strategy!r}")


def _local(settings: Settings) -> Embedder:
    """The local model of this data dir; during a switch, with the previous one for queries."""
    from engine.embed.choice import local_model, previous_model

    model = local_model(settings)
    embedder = _local_model(settings, model)
    previous = previous_model(settings.data_dir)
    if previous and previous != model:
        from engine.embed.switching import SwitchingEmbedder

        try:
            return SwitchingEmbedder(embedder, _local_model(settings, previous))
        except (ModuleNotFoundError, ValueError) as exc:
            log.warning("the previous model %s cannot answer for its chunks: %s", previous, exc)
    return embedder


def _local_model(settings: Settings, model: str) -> Embedder:
    from engine.embed.choice import MINILM
    from engine.embed.packaged import PACKAGED, packaged_embedder

    if model in PACKAGED:
        if settings.local_embedding_backend != "auto":
            raise ValueError(
                f"LOCAL_EMBEDDING_MODEL={model} runs on its own CPU encoder; "
                "leave LOCAL_EMBEDDING_BACKEND at auto"
            )
        if settings.local_embedding_device == "cuda":
            log.warning("LOCAL_EMBEDDING_DEVICE=cuda: %s runs on the CPU only", model)
        return packaged_embedder(model, batch_size=settings.embedding_batch_size)
    custom = "" if model == MINILM else model

    from engine.embed.onnx import choose_backend

    backend = choose_backend(
        settings.local_embedding_backend, settings.local_embedding_device, custom_model=custom
    )
    if backend != "torch":
        if custom:
            raise ValueError("LOCAL_EMBEDDING_BACKEND=onnx* runs only the packaged model")
        from engine.embed.onnx import OnnxEmbedder, OpenVinoEmbedder, cache_dir_for

        if backend == "openvino":
            return OpenVinoEmbedder(
                cache_dir_for(settings.data_dir), batch_size=settings.embedding_batch_size
            )
        return OnnxEmbedder(
            cache_dir_for(settings.data_dir),
            quantized=backend == "onnx-int8",
            batch_size=settings.embedding_batch_size,
        )
    from engine.embed.local import LocalEmbedder

    return LocalEmbedder(
        custom,
        device=settings.local_embedding_device,
        batch_size=settings.embedding_batch_size,
    )


def bedrock_embedder(settings: Settings) -> Embedder:
    from engine.aws.clients import bedrock_client
    from engine.embed.bedrock import BedrockEmbedder
    from engine.embed.cohere import CohereEmbedder, is_cohere

    client = bedrock_client(settings)
    kind = CohereEmbedder if is_cohere(settings.bedrock_model_id) else BedrockEmbedder
    return kind(
        client,
        model_id=settings.bedrock_model_id,
        dimensions=settings.bedrock_dimensions,
        normalize=settings.bedrock_normalize,
        concurrency=settings.bedrock_concurrency,
        max_rpm=settings.bedrock_max_rpm,
        max_attempts=settings.bedrock_max_attempts,
        batch=(
            _bedrock_batch(settings)
            if settings.bedrock_batch_min_chunks and kind is BedrockEmbedder
            else None
        ),
        batch_min_chunks=settings.bedrock_batch_min_chunks,
    )


def _bedrock_batch(settings: Settings):
    """Batch inference jobs (JSONL in S3_BUCKET_NAME), waited for across restarts."""
    from engine.aws.clients import client
    from engine.embed.bedrock_batch import BatchInference

    return BatchInference(
        client(settings, "bedrock"),
        client(settings, "s3", transfer=True),
        bucket=settings.s3_bucket_name,
        prefix=settings.s3_prefix,
        role_arn=settings.bedrock_batch_role_arn,
        model_id=settings.bedrock_model_id,
        dimensions=settings.bedrock_dimensions,
        normalize=settings.bedrock_normalize,
        state_dir=settings.data_dir / "bedrock-batch",
        poll_s=settings.bedrock_batch_poll_s,
        timeout_s=settings.bedrock_batch_timeout_h * 3600,
    )
