"""S3 publishing of processed curriculum, with a durable local outbox for offline schools.

Every object is first staged in the outbox (`<data>/outbox/`: the bytes plus a small JSON
record of its key), then delivered. A delivery that fails leaves the object staged, so it is
sent by the next run or by `nexus aws flush`, even after a restart. Unchanged objects (same
SHA-256 as the one in the bucket) are not uploaded again; large files go up in parts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from engine.aws.clients import AwsUnavailable, aws_errors
from engine.util import sha256_file

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    sent: list[str]
    unchanged: list[str]
    pending: int
    error: str = ""


class S3StorageManager:
    """Uploads to one bucket under one prefix, skipping objects the bucket already has."""

    def __init__(self, client, bucket: str, prefix: str = "", multipart_threshold_mb: int = 16):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.multipart_threshold = multipart_threshold_mb * 1024 * 1024

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def upload_file(self, path: Path, relative_key: str, sha256: str | None = None) -> bool:
        """Upload `path` unless the bucket holds the same bytes; True when uploaded.

        Raises:
            AwsUnavailable: S3 could not be reached or refused the upload.
        """
        from boto3.s3.transfer import TransferConfig

        key = self.key(relative_key)
        sha256 = sha256 or sha256_file(path)
        try:
            if self.remote_sha256(key) == sha256:
                return False
            self.client.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs={"Metadata": {"sha256": sha256}, "ChecksumAlgorithm": "SHA256"},
                Config=TransferConfig(
                    multipart_threshold=self.multipart_threshold,
                    multipart_chunksize=max(self.multipart_threshold // 2, 5 * 1024 * 1024),
                ),
            )
        except aws_errors() as exc:
            raise AwsUnavailable(f"S3 upload of {key} failed: {exc}") from exc
        return True

    def list_keys(self, relative_prefix: str) -> list[str]:
        """Relative keys under a prefix."""
        paginator = self.client.get_paginator("list_objects_v2")
        keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key(relative_prefix)):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        strip = len(self.key("")) if self.prefix else 0
        return [k[strip:] for k in keys]

    def get_bytes(self, relative_key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.key(relative_key))["Body"].read()

    def remote_sha256(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head.get("Metadata", {}).get("sha256")


class Outbox:
    """Objects waiting to be delivered to S3, on disk so they survive restarts."""

    def __init__(self, folder: Path):
        self.folder = folder

    def stage_bytes(self, relative_key: str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        blob = self.folder / f"{name}.blob"
        blob.write_bytes(data)
        self._write_record(name, relative_key, hashlib.sha256(data).hexdigest())

    def stage_file(self, relative_key: str, source: Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        blob = self.folder / f"{name}.blob"
        tmp = blob.with_suffix(".tmp")
        with source.open("rb") as src, tmp.open("wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
        os.replace(tmp, blob)
        self._write_record(name, relative_key, sha256_file(blob))

    def _write_record(self, name: str, relative_key: str, sha256: str) -> None:
        # the record is written last and atomically: a blob without one is an unfinished stage
        record = self.folder / f"{name}.json"
        tmp = record.with_suffix(".part")
        tmp.write_text(json.dumps({"key": relative_key, "sha256": sha256}))
        os.replace(tmp, record)

    def pending(self) -> list[dict]:
        if not self.folder.exists():
            return []
        records = []
        for record in sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns):
            records.append(json.loads(record.read_text()) | {"name": record.stem})
        return records

    def flush(self, s3: S3StorageManager) -> Delivery:
        """Deliver staged objects in order; stop at the first failure (AWS is down)."""
        delivery = Delivery(sent=[], unchanged=[], pending=0)
        for record in self.pending():
            blob = self.folder / f"{record['name']}.blob"
            try:
                uploaded = s3.upload_file(blob, record["key"], record["sha256"])
            except AwsUnavailable as exc:
                delivery.error = str(exc)
                break
            (delivery.sent if uploaded else delivery.unchanged).append(record["key"])
            (self.folder / f"{record['name']}.json").unlink()
            blob.unlink(missing_ok=True)
        delivery.pending = len(self.pending())
        if delivery.error:
            log.warning(
                "S3 unreachable, %d object(s) wait in the outbox: %s",
                delivery.pending,
                delivery.error,
            )
        return delivery
