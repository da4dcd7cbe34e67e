"""Composition root: the one place that turns settings into working parts.

Backends are chosen here with `match` and imported lazily, so a local-only install never
imports boto3 machinery it does not use, and tests build an engine from their own settings.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from engine.blobs import BlobStore, FolderStore, NullStore
from engine.documents.catalog import Catalog
from engine.embed.base import Embedder
from engine.jobs.base import JobTracker
from engine.settings import Settings
from engine.store.chroma import ChunkStore

log = logging.getLogger(__name__)


def build_embedder(settings: Settings) -> Embedder:
    """The embedder for EMBEDDING_STRATEGY."""
    match settings.embedding_strategy:
        case "local":
            return _local(settings)
        case "bedrock":
            return _bedrock(settings)
        case "hybrid":
            from engine.embed.hybrid import HybridEmbedder

            return HybridEmbedder(
                _bedrock(settings),
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


def _bedrock(settings: Settings) -> Embedder:
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


def build_tracker(settings: Settings, database=None) -> JobTracker:
    """SQLite, plus DynamoDB when DYNAMODB_JOBS_TABLE is set (records synced when reachable)."""
    from engine.jobs.sqlite import SqliteJobTracker

    local = SqliteJobTracker(database or settings.db_path)
    if not settings.configured("DYNAMODB_JOBS_TABLE"):
        return local
    from engine.aws.clients import dynamodb_table
    from engine.jobs.dynamodb import DynamoJobTracker, SyncedJobTracker

    return SyncedJobTracker(
        local, DynamoJobTracker(dynamodb_table(settings, settings.dynamodb_jobs_table))
    )


@dataclass
class Engine:
    """Everything a command or the panel needs, built lazily from settings.

    Parts are only built when first used: `nexus jobs` never loads a model or opens Chroma.
    Tests may pass ready-made parts (e.g. a fake embedder) through `overrides`.
    """

    settings: Settings

    @cached_property
    def embedder(self) -> Embedder:
        return build_embedder(self.settings)

    @cached_property
    def store(self) -> ChunkStore:
        from engine.store.client import make_chroma_client

        return ChunkStore(make_chroma_client(self.settings))

    @cached_property
    def tracker(self) -> JobTracker:
        return build_tracker(self.settings, self.database)

    @cached_property
    def database(self):
        """The engine database: one write path for catalogue, lexical index, jobs, telemetry."""
        from engine.db import Database

        return Database(self.settings.db_path)

    @cached_property
    def catalog(self) -> Catalog:
        catalog = Catalog(self.database, self.settings.inbox_dir)
        catalog.adopt_paths(self.settings.inbox_dir)
        return catalog

    @cached_property
    def ingestor(self):
        from engine.ingest.pipeline import Ingestor

        return Ingestor(
            self.settings,
            self.embedder,
            self.store,
            self.catalog,
            self.tracker,
            self.lexical,
            records=self.records,
        )

    @cached_property
    def records(self):
        """Catalogue, lexical index and recovery: what ingestion writes besides chunks."""
        from engine.documents.records import DocumentRecords

        return DocumentRecords(
            self.settings, self.embedder, self.store, self.catalog, self.tracker, self.lexical
        )

    @cached_property
    def publisher(self):
        from engine.aws.s3 import Outbox
        from engine.publish.exports import Publisher

        return Publisher(
            self.settings,
            self.catalog,
            self.store,
            self.tracker,
            Outbox(self.settings.outbox_dir),
            self.stores.remote,
            build_cloudfront(self.settings),
        )

    @cached_property
    def stores(self) -> Stores:
        return build_stores(self.settings)

    @cached_property
    def catalogue(self):
        """The VKP catalogue publisher: the publish folder, and S3 through the outbox."""
        from engine.publish.packages import CataloguePublisher

        return CataloguePublisher(self.settings, self.publisher, store=self.stores.publish)

    def backup_store(self, to: str | None) -> BlobStore:
        """Where backups go: `s3` is the bucket under `backups/<SCHOOL_ID or host>/`, anything
        else a folder (default BACKUP_DIR). A bucket that is not configured is a `NullStore`."""
        if to == "s3":
            import socket

            host = self.settings.school_id or socket.gethostname()
            return self.stores.remote.within(f"backups/{host}")
        return FolderStore(Path(to) if to else self.settings.backup_dir)

    def get_cost_summary(self, days: int = 7) -> dict:
        """Totals and per-day/per-subject cost series of the last `days` days (for the panel)."""
        from engine.jobs.costs import get_cost_summary

        return get_cost_summary(self.tracker, self.settings, days)

    @cached_property
    def lexical(self):
        from engine.search.lexical.index import LexicalIndex

        return LexicalIndex(self.database)

    @cached_property
    def searcher(self):
        from engine.search.lexical.boilerplate import BoilerplateShares
        from engine.search.searcher import Searcher

        return Searcher(
            self.embedder,
            self.store,
            self.lexical,
            vector_weight=self.settings.fusion_vector_weight,
            lexical_weight=self.settings.fusion_lexical_weight,
            candidates=self.settings.search_candidates,
            on_query=self.telemetry.record_query,
            active_packages=self.installer.active_collections,
            boilerplate=BoilerplateShares(self.lexical),
            document_of=self.catalog.document_id_of,
        )

    @cached_property
    def installer(self):
        from functools import partial

        from engine.locking import writer_lock
        from engine.vkp.install import PackageInstaller
        from engine.vkp.keys import trusted_keys

        return PackageInstaller(
            self.store,
            self.catalog,
            self.lexical,
            partial(trusted_keys, self.settings),  # read when a package is checked
            self.settings.vkp_dir / "installed",
            lock=partial(writer_lock, self.settings.run_dir),
        )

    def vkp_source(self, location: str):
        """Where `nexus vkp pull` reads: a URL, a folder, or "cloudfront" (signed URLs)."""
        from engine.vkp.transfer import Source, TransferError

        if location == "cloudfront":
            cloudfront = build_cloudfront(self.settings)
            if cloudfront is None:
                raise TransferError(
                    "VKP source 'cloudfront' needs CLOUDFRONT_DISTRIBUTION_ID and URL"
                )
            return Source(self.settings.cloudfront_distribution_url, sign=cloudfront.signed_url)
        if not location:
            raise TransferError("no source: pass --source URL|FOLDER|cloudfront or set VKP_SOURCE")
        return Source(location)

    @cached_property
    def builder(self):
        from engine.vkp.build import PackageBuilder
        from engine.vkp.keys import signer

        return PackageBuilder(
            self.settings, self.store, self.embedder.model.key, signer(self.settings)
        )

    @cached_property
    def telemetry(self):
        import socket

        from engine.telemetry.service import Telemetry

        sink = None
        if self.settings.configured("DYNAMODB_TELEMETRY_TABLE"):
            from engine.aws.clients import dynamodb_table
            from engine.telemetry.sinks import DynamoTelemetrySink

            sink = DynamoTelemetrySink(
                dynamodb_table(self.settings, self.settings.dynamodb_telemetry_table)
            )
        return Telemetry(
            self.database,
            enabled=self.settings.telemetry_enabled,
            school_id=self.settings.school_id or socket.gethostname(),
            salt_file=self.settings.data_dir / "keys" / "telemetry.salt",
            queue_max=self.settings.telemetry_queue_max,
            sink=sink,
            describe=self._telemetry_state,
        )

    def _telemetry_state(self) -> dict:
        """The non-query metrics of a telemetry payload."""
        from engine.util import folder_mb

        return {
            "storage_usage_mb": folder_mb(self.settings.data_dir),
            "model_version": self.embedder.model.model_id,
            "embedding_strategy": self.settings.embedding_strategy,
            "vkp_versions": {
                re.sub(r"[^a-z0-9_-]+", "-", name.lower()): row.version
                for name, row in self.installer.installed().items()
            },
        }


@dataclass(frozen=True)
class Stores:
    """The blob stores an engine writes to (see `engine.blobs`)."""

    publish: FolderStore  # <data>/vkp/publish: what `nexus vkp serve` shares; always there
    remote: BlobStore  # the bucket under S3_PREFIX, or a NullStore saying S3 is not set up


def build_stores(settings: Settings) -> Stores:
    return Stores(
        publish=FolderStore(settings.vkp_dir / "publish"),
        remote=build_s3(settings) or NullStore("S3 is not configured (set S3_BUCKET_NAME)"),
    )


def build_s3(settings: Settings):
    """The bucket as an `S3Store` under S3_PREFIX, or None when S3_BUCKET_NAME is not set
    (the engine then uses a `NullStore`; `restore` takes this for s3:// sources)."""
    if not settings.configured("S3_BUCKET_NAME"):
        return None
    from engine.aws.clients import client
    from engine.aws.s3 import S3Store

    return S3Store(
        client(settings, "s3", transfer=True),
        settings.s3_bucket_name,
        settings.s3_prefix,
        settings.s3_multipart_threshold_mb,
    )


def build_cloudfront(settings: Settings):
    """The CloudFront manager, or None when CLOUDFRONT_DISTRIBUTION_ID is not set."""
    if not settings.cloudfront_distribution_id:
        return None
    from engine.aws.clients import client
    from engine.aws.cloudfront import CloudFrontManager

    return CloudFrontManager(
        client(settings, "cloudfront"),
        settings.cloudfront_distribution_id,
        url=settings.cloudfront_distribution_url,
        key_pair_id=settings.cloudfront_key_pair_id,
        private_key_path=settings.cloudfront_private_key_path,
        url_expiry_s=settings.cloudfront_url_expiry_s,
    )


def build_engine(settings: Settings | None = None, **parts: object) -> Engine:
    """Build an engine; `parts` (embedder=..., store=...) replace the ones settings would pick."""
    engine = Engine(settings or Settings())
    for name, part in parts.items():
        setattr(engine, name, part)  # fills the cached_property slot
    return engine
