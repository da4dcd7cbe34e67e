"""Publishing a grade/subject to S3 in the seed's layout, through the durable outbox.

    processed/<subject>/<grade>/text/<file>.txt            extracted text (pages split by \\f)
    processed/<subject>/<grade>/metadata/summary.json       files, pages, chunks, models
    processed/<subject>/<grade>/metadata/quality_report.json  every file's latest status/reason
    processed/<subject>/<grade>/chromadb/<model>.json       portable export: ids, texts,
                                                            metadata, vectors
    vkp/<grade>__<subject>__v<version>.vkp                  knowledge packages and the signed
    vkp/index.json                                          catalogue (engine/publish/packages.py)

Grade and subject are checked with `engine.names` before they go into a key: the seed's
`processed/<subject>/<grade>` layout stays, and since a name never holds `/` it is unambiguous.
After delivery, one CloudFront invalidation covers every path that changed. The bucket is a
`BlobStore` given by the composition root: an `S3Store`, or a `NullStore` when S3_BUCKET_NAME is
not set, whose refusal leaves the objects in the outbox just as an outage does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from engine.aws.clients import AwsUnavailable
from engine.aws.cloudfront import CloudFrontManager
from engine.aws.s3 import Outbox
from engine.blobs import BlobStore
from engine.documents.catalog import Catalog
from engine.jobs.base import JobRecord, JobTracker
from engine.jobs.costs import s3_request_cost
from engine.names import BadName, check_grade_subject
from engine.settings import Settings
from engine.store.chroma import ChunkStore

log = logging.getLogger(__name__)

MAX_EXPORT_BYTES = 512 * 2**20  # a subject's Chroma export (~20k chunks at 1024 dimensions)


@dataclass
class PublishReport:
    staged: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pending: int = 0
    invalidation_id: str = ""
    error: str = ""

    def to_dict(self) -> dict:
        return vars(self).copy()


def prefix_for(grade: str, subject: str) -> str:
    """`processed/<subject>/<grade>`; raises `BadName` for names that break the rule."""
    check_grade_subject(grade, subject)
    return f"processed/{subject}/{grade}"


class Publisher:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        store: ChunkStore,
        tracker: JobTracker,
        outbox: Outbox,
        remote: BlobStore,
        cloudfront: CloudFrontManager | None,
    ):
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self.tracker = tracker
        self.outbox = outbox
        self.remote = remote
        self.cloudfront = cloudfront

    def publish(self, grade: str, subject: str) -> PublishReport:
        """Stage the grade/subject's objects, then try to deliver everything staged."""
        staged = self.stage(grade, subject)
        report = self.deliver()
        report.staged = staged
        return report

    def publish_job(self, files: list, job: JobRecord | None = None) -> PublishReport:
        """Publish every grade/subject a job changed (ingested or removed files); the S3
        requests it made are added to the job's estimated cost."""
        changed = sorted(
            {(f.grade, f.subject) for f in files if str(f.status) in ("ingested", "removed")}
        )
        staged = []
        for grade, subject in changed:
            try:
                staged += self.stage(grade, subject)
            except BadName as exc:
                log.warning("not published: %s", exc)
        report = self.deliver()
        report.staged = staged
        if job is not None and report.sent:
            job.estimated_cost = round(
                job.estimated_cost + s3_request_cost(self.settings, len(report.sent)), 8
            )
            self.tracker.save_job(job)
        return report

    def stage(self, grade: str, subject: str) -> list[str]:
        prefix = prefix_for(grade, subject)
        docs = [d for d in self.catalog.all() if (d.grade, d.subject) == (grade, subject)]
        keys = []
        for doc in docs:
            text = self.settings.text_dir / f"{doc.sha256}.txt"
            if text.exists():
                key = f"{prefix}/text/{Path(doc.file_name).stem}.txt"
                self.outbox.stage_file(key, text)
                keys.append(key)
        metadata = {
            "summary.json": self._summary(grade, subject, docs),
            "quality_report.json": self._quality_report(grade, subject),
        }
        for name, content in metadata.items():
            key = f"{prefix}/metadata/{name}"
            self.outbox.stage_bytes(key, json.dumps(content, ensure_ascii=False, indent=1).encode())
            keys.append(key)
        for collection in self.store.collections(grade, subject):
            chunks = sorted(self.store.get_chunks(collection.name), key=lambda c: c.id)
            export = {
                "collection": collection.name,
                "grade": grade,
                "subject": subject,
                "model_id": collection.model_id,
                "model_key": collection.model_key,
                "ids": [c.id for c in chunks],
                "documents": [c.text for c in chunks],
                "metadatas": [c.metadata for c in chunks],
                "embeddings": [c.vector for c in chunks],
            }
            key = f"{prefix}/chromadb/{collection.model_key}.json"
            self.outbox.stage_bytes(
                key, json.dumps(export, ensure_ascii=False, sort_keys=True).encode()
            )
            keys.append(key)
        return keys

    def deliver(self) -> PublishReport:
        """Flush the outbox to S3 and invalidate what changed in CloudFront."""
        delivery = self.outbox.flush(self.remote)
        report = PublishReport()
        report.sent, report.unchanged = delivery.sent, delivery.unchanged
        report.pending, report.error = delivery.pending, delivery.error
        if report.sent and self.cloudfront is not None:
            try:
                report.invalidation_id = self.cloudfront.invalidate(
                    [self.remote.full_key(k) for k in report.sent]
                )
            except AwsUnavailable as exc:
                report.error = report.error or str(exc)
        return report

    def load_export(self, grade: str, subject: str, inbox: Path) -> int:
        """Load the grade/subject's published Chroma export into this (empty) installation.

        Used by the Lambda processor, whose /tmp starts empty: documents come back into the
        store, the catalogue (as files of `inbox`, so a re-uploaded file replaces its old
        version) and the lexical index. Returns the number of chunks loaded.
        """
        from engine.documents.catalog import documents_from_chunks
        from engine.store.chunks import StoredChunk

        if not self.remote.configured:
            return 0  # without a bucket nothing was published to load
        loaded = 0
        for key in self.remote.list_keys(f"{prefix_for(grade, subject)}/chromadb/"):
            export = json.loads(self.remote.get_bytes(key, max_bytes=MAX_EXPORT_BYTES))
            chunks = [
                StoredChunk(i, t, m, v)
                for i, t, m, v in zip(
                    export["ids"],
                    export["documents"],
                    export["metadatas"],
                    export["embeddings"],
                    strict=True,
                )
            ]
            collection = self.store.add(
                grade, subject, export["model_id"], export["model_key"], chunks
            )
            for document, _ in documents_from_chunks(
                chunks,
                folder=f"{inbox / grade / subject}/",
                grade=grade,
                subject=subject,
                collection=collection,
            ):
                self.catalog.put(document)
            loaded += len(chunks)
        return loaded

    def _summary(self, grade: str, subject: str, docs: list) -> dict:
        return {
            "grade": grade,
            "subject": subject,
            # deterministic content: republishing an unchanged subject uploads nothing
            "updated_at": max((d.updated_at for d in docs), default=""),
            "files": len(docs),
            "pages": sum(d.pages for d in docs),
            "chunks": sum(d.chunks for d in docs),
            "embedding_models": sorted(
                {c.model_id for c in self.store.collections(grade, subject)}
            ),
            "documents": [
                {"file": d.file_name, "sha256": d.sha256, "pages": d.pages, "chunks": d.chunks}
                for d in docs
            ],
        }

    def _quality_report(self, grade: str, subject: str, recent_jobs: int = 200) -> dict:
        """The latest status of every file of this grade/subject seen in recent jobs."""
        latest: dict[str, dict] = {}
        for job in self.tracker.list_jobs(recent_jobs):
            for result in self.tracker.job_files(job.job_id):
                if (result.grade, result.subject) == (grade, subject) and result.path not in latest:
                    latest[result.path] = {
                        "file": Path(result.path).name,
                        "status": str(result.status),
                        "reason": result.reason,
                        "pages": result.pages,
                        "chunks": result.chunks,
                        "checked_at": result.finished_at,
                    }
        files = sorted(latest.values(), key=lambda f: f["file"])
        failures = [f for f in files if f["status"] not in ("ingested", "skipped", "removed")]
        return {"grade": grade, "subject": subject, "files": files, "failures": failures}
