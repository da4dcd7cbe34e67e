"""S3 as a blob store (`S3Store`), and the durable local outbox that feeds it for offline schools.

`S3Store` is the AWS side of `engine.blobs.BlobStore` (the local side is `FolderStore`). Every
published object is first staged in the outbox (`<data>/outbox/`: the bytes plus a small JSON
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.aws.clients import AwsUnavailable, aws_errors
from engine.blobs import (
    BadKey,
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    StoreUnavailable,
    key_parts,
)
from engine.util import sha256_file

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    sent: list[str]
    unchanged: list[str]
    pending: int
    error: str = ""


class S3Unavailable(AwsUnavailable, StoreUnavailable):
    """S3 could not be reached or refused the call."""


class S3Store(BlobStore):
    """Objects in one bucket under one prefix (S3_PREFIX); uploads skip unchanged objects.

    Each object carries its SHA-256 in its metadata (`sha256`) and S3 checks it on the way in
    (`ChecksumAlgorithm`); files above the multipart threshold go up in parts.
    """

    def __init__(self, client, bucket: str, prefix: str = "", multipart_threshold_mb: int = 16):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.multipart_threshold = multipart_threshold_mb * 1024 * 1024

    def __repr__(self) -> str:
        return f"S3Store({self.url()!r})"

    def full_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.full_key(key)}"

    def within(self, prefix: str) -> S3Store:
        key_parts(prefix)
        return S3Store(
            self.client,
            self.bucket,
            self.full_key(prefix),
            self.multipart_threshold // (1024 * 1024),
        )

    def put_file(self, key: str, path: Path, sha256: str | None = None) -> bool:
        """Upload `path` unless the bucket holds the same bytes; True when uploaded.

        Raises:
            S3Unavailable: S3 could not be reached or refused the upload.
        """
        from boto3.s3.transfer import TransferConfig

        key_parts(key)
        sha256 = sha256 or sha256_file(path)
        with _aws_errors(f"S3 upload of {self.full_key(key)} failed"):
            if self.sha256(key) == sha256:
                return False
            self.client.upload_file(
                str(path),
                self.bucket,
                self.full_key(key),
                ExtraArgs={"Metadata": {"sha256": sha256}, "ChecksumAlgorithm": "SHA256"},
                Config=TransferConfig(
                    multipart_threshold=self.multipart_threshold,
                    multipart_chunksize=max(self.multipart_threshold // 2, 5 * 1024 * 1024),
                ),
            )
        return True

    def list_keys(self, prefix: str = "") -> list[str]:
        key_parts(prefix, prefix=True)
        keys = []
        with _aws_errors(f"listing {self.url(prefix)} failed"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.full_key(prefix)):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        strip = len(self.full_key(""))
        return sorted(k[strip:] for k in keys)

    def get_bytes(self, key: str, *, max_bytes: int) -> bytes:
        from botocore.exceptions import ClientError

        key_parts(key)
        with _aws_errors(f"reading {self.url(key)} failed"):
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
            except ClientError as exc:
                if not _is_missing(exc):
                    raise
                raise BlobNotFound(f"{self.url(key)} does not exist") from exc
            body = answer["Body"]
            try:
                if answer.get("ContentLength", 0) > max_bytes:
                    raise BlobTooLarge(f"{self.url(key)} is larger than {max_bytes} bytes")
                data = body.read(max_bytes + 1)  # the length above is only the server's word
            finally:
                body.close()
        if len(data) > max_bytes:
            raise BlobTooLarge(f"{self.url(key)} is larger than {max_bytes} bytes")
        return data

    def delete(self, key: str) -> None:
        key_parts(key)
        with _aws_errors(f"deleting {self.url(key)} failed"):
            self.client.delete_object(Bucket=self.bucket, Key=self.full_key(key))

    def sha256(self, key: str) -> str | None:
        head = self._head(key)
        return None if head is None else head.get("Metadata", {}).get("sha256")

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def _head(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        key_parts(key)
        with _aws_errors(f"reading {self.url(key)} failed"):
            try:
                return self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
            except ClientError as exc:
                if not _is_missing(exc):
                    raise
                return None


@contextmanager
def _aws_errors(what: str) -> Iterator[None]:
    try:
        yield
    except aws_errors() as exc:
        raise S3Unavailable(f"{what}: {exc}") from exc


def _is_missing(exc: Exception) -> bool:
    """True for a `ClientError` that says "no such object"."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("404", "NoSuchKey", "NotFound")


class Outbox:
    """Objects waiting to be delivered to a store (S3), on disk so they survive restarts."""

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

    def flush(self, store: BlobStore) -> Delivery:
        """Deliver staged objects in order; stop at the first failure (the store is down, or
        not configured: a `NullStore`)."""
        delivery = Delivery(sent=[], unchanged=[], pending=0)
        for record in self.pending():
            blob = self.folder / f"{record['name']}.blob"
            try:
                uploaded = store.put_file(record["key"], blob, record["sha256"])
            except StoreUnavailable as exc:
                delivery.error = str(exc)
                break
            except BadKey as exc:  # can never be delivered: dropped, not retried forever
                log.error("outbox entry %s dropped: %s", record["name"], exc)
            else:
                (delivery.sent if uploaded else delivery.unchanged).append(record["key"])
            (self.folder / f"{record['name']}.json").unlink()
            blob.unlink(missing_ok=True)
        delivery.pending = len(self.pending())
        if delivery.error:
            log.warning(
                "%d object(s) wait in the outbox: %s",
                delivery.pending,
                delivery.error,
            )
        return delivery
