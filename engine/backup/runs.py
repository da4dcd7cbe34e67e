"""Backups as the admin sees them: make one at a target (a folder or the S3 bucket), keep the
newest BACKUP_KEEP there, list what a target holds, and find the newest backup in it.

A target is a blob store (`Engine.backup_store`: a `FolderStore`, or the bucket under
`backups/<SCHOOL_ID or host>/`) and one code path serves both. It holds timestamped backups
(`20261129T140501Z/...`, what `backup_name()` makes); the snapshot is prepared in the store's
staging folder and put there with `manifest.json` last, so a backup with a manifest is whole (a
folder target gets it by one rename). A backup without a manifest (an interrupted upload) is
listed as incomplete and pruned once it is older than the oldest complete backup kept. The
running engine's schedule, `nexus backup` and `nexus backup list` all go through here; the
snapshot and the checked restore themselves are in `engine.backup` (a restore from S3 still
reads the bucket through its own checked path, `engine.backup.staging.stage_s3`). The caller
hands over the engine whose parts are backed up: the running engine its own, the CLI the one
it built.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from engine.backup import BACKUP_NAME, BackupError, backup_name, snapshot
from engine.backup.copy import filesystem_message
from engine.blobs import BlobError, BlobStore, FolderStore, StoreUnavailable

if TYPE_CHECKING:
    from engine.app import Engine

_MANIFEST_CAP = 32 * 2**20
MANIFEST = "manifest.json"


def run_backup(
    engine: Engine,
    to: str | None = None,
    include_secrets: bool = False,
    progress=None,
    *,
    now: Callable[[], datetime] | None = None,
) -> dict:
    """Back up to a folder or to S3 (`to="s3"`), then keep the newest BACKUP_KEEP there.

    Raises:
        BackupError: the backup or its upload failed (nothing half-made is kept in a folder;
            an upload cut short has no manifest, so it is never taken for a whole backup).
    """
    settings = engine.settings
    store = _target(engine, to or str(settings.backup_dir))
    name = backup_name(now)
    try:
        with store.staging() as staging:
            result = snapshot(engine, staging / name, include_secrets, progress)
            store.put_tree(name, staging / name, last=MANIFEST)
    except StoreUnavailable as exc:
        raise BackupError(_failure(exc, store.url(name))) from exc
    try:
        pruned = _prune(store, settings.backup_keep)
    except BlobError as exc:
        raise BackupError(f"the backup is done, but pruning old ones failed: {exc}") from exc
    return vars(result) | {"location": store.url(f"{name}/"), "pruned": pruned}


def list_backups(engine: Engine, to: str | None = None) -> list[dict]:
    """The backups at a target, oldest first: name, location, created_at, host, chunks.

    Only the small manifest of each is read (capped); `complete` is false when it is missing
    or unreadable. Nothing here is trusted: a restore checks everything again.
    """
    store = _target(engine, to)
    try:
        return _rows(store)
    except StoreUnavailable as exc:
        raise BackupError(f"cannot list the backups at {store.url()}: {exc}") from exc


def newest_in(folder: Path) -> Path | None:
    """The newest complete backup inside a backup target folder, or None if it holds none."""
    rows = [r for r in _rows(FolderStore(folder)) if r["complete"]]
    return Path(rows[-1]["location"]) if rows else None


def _target(engine, to: str | None) -> BlobStore:
    store = engine.backup_store(to)
    if not store.configured:
        raise BackupError("--to s3 needs S3_BUCKET_NAME")
    return store


def _backups(store: BlobStore) -> tuple[list[str], list[str]]:
    """(every backup, complete ones), oldest first: the first parts of the store's keys named
    like `backup_name()`; a complete one has a manifest. Links are not listed by a store."""
    keys = set(store.list_keys())
    names = sorted({k.split("/", 1)[0] for k in keys if "/" in k})
    names = [n for n in names if BACKUP_NAME.fullmatch(n)]
    return names, [n for n in names if f"{n}/{MANIFEST}" in keys]


def _rows(store: BlobStore) -> list[dict]:
    rows = []
    for name in _backups(store)[0]:
        try:
            manifest = json.loads(store.get_bytes(f"{name}/{MANIFEST}", max_bytes=_MANIFEST_CAP))
        except (BlobError, ValueError):  # missing, too large, unreadable: not complete
            manifest = None
        # a prefix: a folder's path as given, or s3://bucket/.../<name>/
        rows.append(_row(name, store.url(f"{name}/"), manifest))
    return rows


def _prune(store: BlobStore, keep: int) -> list[str]:
    """Delete every backup older than the newest `keep` complete ones; their names."""
    names, complete = _backups(store)
    if not keep or len(complete) <= keep:
        return []
    doomed = [n for n in names if n < complete[-keep]]
    for name in doomed:
        store.delete_prefix(f"{name}/")
    return doomed


def _failure(exc: StoreUnavailable, where: str) -> str:
    if isinstance(exc.__cause__, OSError):  # a folder: permission denied, disk full...
        return filesystem_message(exc.__cause__, where)
    return f"the backup to {where} failed: {exc}"


def _row(name: str, location: str, manifest: dict | None) -> dict:
    manifest = manifest if isinstance(manifest, dict) else {}
    return {
        "name": name,
        "location": location,
        "complete": bool(manifest.get("files")),
        "created_at": str(manifest.get("created_at", "")),
        "host": str(manifest.get("host", "")),
        "chunks": manifest.get("chunks") if isinstance(manifest.get("chunks"), int) else None,
    }
