"""Composition root: the one place that turns settings into working parts.

Backends are chosen here (the embedder's in `engine.embed.build`) and imported lazily, so a
local-only install never imports boto3 machinery it does not use, and tests build an engine
from their own settings. Every part is typed; the types are imported for checkers only, so
`nexus jobs` still never imports a model, Chroma or boto3.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from engine.blobs import BlobStore, FolderStore, NullStore
from engine.documents.catalog import Catalog
from engine.embed.base import Embedder
from engine.embed.build import build_embedder
from engine.jobs.base import JobTracker
from engine.settings import Settings
from engine.store.chroma import ChunkStore

if TYPE_CHECKING:
    from engine.aws.cloudfront import CloudFrontManager
    from engine.aws.s3 import S3Store
    from engine.db import Database
    from engine.documents.records import DocumentRecords
    from engine.ingest.pipeline import Ingestor
    from engine.publish.exports import Publisher
    from engine.publish.packages import CataloguePublisher
    from engine.search.lexical.index import LexicalIndex
    from engine.search.searcher import Searcher
    from engine.telemetry.service import Telemetry
    from engine.vkp.build import PackageBuilder
    from engine.vkp.install import PackageInstaller
    from engine.vkp.transfer import Source

log = logging.getLogger(__name__)


def build_tracker(settings: Settings, database: Database | None = None) -> JobTracker:
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
        from engine.store.changes import ChangeMarker
        from engine.store.client import make_chroma_client

        # listings and handles kept until a writer of this data dir marks a change
        changes = ChangeMarker(self.settings.run_dir / "chunks.changed")
        return ChunkStore(make_chroma_client(self.settings), changes)

    @cached_property
    def tracker(self) -> JobTracker:
        return build_tracker(self.settings, self.database)

    @cached_property
    def database(self) -> Database:
        """The engine database: one write path for catalogue, lexical index, jobs, telemetry."""
        from engine.db import Database

        return Database(self.settings.db_path)

    @cached_property
    def catalog(self) -> Catalog:
        catalog = Catalog(self.database, self.settings.inbox_dir)
        catalog.adopt_paths(self.settings.inbox_dir)
        return catalog

    @cached_property
    def ingestor(self) -> Ingestor:
        from engine.ingest.pipeline import Ingestor

        return Ingestor(self.settings, self.embedder, self.tracker, self.records)

    @cached_property
    def records(self) -> DocumentRecords:
        """The one owner of document versions: catalogue, chunks, lexical index, recovery."""
        from engine.documents.records import DocumentRecords

        return DocumentRecords(
            self.settings, self.embedder, self.store, self.catalog, self.tracker, self.lexical
        )

    @cached_property
    def publisher(self) -> Publisher:
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

    @property
    def package_catalogue(self) -> CataloguePublisher:
        """Publishes built packages in the signed VKP catalogue: the publish folder, and S3
        through the outbox (not to be confused with `catalog`, the documents ingested here).
        Made afresh on every use, so a signing key replaced while the panel runs is read."""
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
    def lexical(self) -> LexicalIndex:
        from engine.search.lexical.index import LexicalIndex

        return LexicalIndex(self.database, cache_bytes=self.settings.lexical_cache_mb * 2**20)

    @cached_property
    def searcher(self) -> Searcher:
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
            batch=self.settings.search_batch_max,
            batch_encoder=self.settings.search_batch_encoder,
        )

    @cached_property
    def installer(self) -> PackageInstaller:
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

    def vkp_source(self, location: str) -> Source:
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
    def builder(self) -> PackageBuilder:
        from engine.vkp.build import PackageBuilder
        from engine.vkp.keys import signer

        return PackageBuilder(
            self.settings, self.store, self.embedder.model.key, signer(self.settings)
        )

    @cached_property
    def telemetry(self) -> Telemetry:
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


def build_s3(settings: Settings) -> S3Store | None:
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


def build_cloudfront(settings: Settings) -> CloudFrontManager | None:
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
