"""Backups as the admin sees them: make one at a target (a folder or the S3 bucket), keep the
newest BACKUP_KEEP there, list what a target holds, and find the newest backup in it.

A target holds timestamped backups (`20261129T140501Z/`, what `backup_name()` makes). The
running engine's schedule, `nexus backup` and `nexus backup list` all go through here; the
snapshot and the checked restore themselves are in `engine.backup`.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

from engine.aws.clients import aws_errors
from engine.backup import (
    BACKUP_NAME,
    BackupError,
    backup_name,
    backups_in,
    prune,
    snapshot,
    temporary_folder,
)
from engine.settings import Settings

_MANIFEST_CAP = 32 * 2**20


def s3_prefix(settings: Settings) -> str:
    return f"backups/{settings.school_id or socket.gethostname()}"


def run_backup(
    settings: Settings, to: str | None = None, include_secrets: bool = False, progress=None
) -> dict:
    """Back up to a folder or to S3 (`to="s3"`), then keep the newest BACKUP_KEEP there.

    Raises:
        BackupError: the backup or its upload failed (nothing half-made is kept).
    """
    from engine.app import build_engine, build_s3

    engine = build_engine(settings)
    name = backup_name()
    if to == "s3":
        s3 = build_s3(settings)
        if s3 is None:
            raise BackupError("--to s3 needs S3_BUCKET_NAME")
        folder = temporary_folder() / name
        try:
            result = snapshot(engine, folder, include_secrets, progress)
            prefix = f"{s3_prefix(settings)}/{name}"
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                s3.upload_file(path, f"{prefix}/{path.relative_to(folder).as_posix()}")
            backups = _s3_backup_names(s3, settings)
            older = backups[: -settings.backup_keep]
            for old in older:
                for key in s3.list_keys(f"{s3_prefix(settings)}/{old}/"):
                    s3.client.delete_object(Bucket=s3.bucket, Key=s3.key(key))
            return vars(result) | {
                "location": f"s3://{s3.bucket}/{s3.key(prefix)}/",
                "pruned": older,
            }
        except aws_errors() as exc:
            raise BackupError(f"the backup to S3 failed: {exc}") from exc
        finally:
            shutil.rmtree(folder.parent, ignore_errors=True)
    parent = Path(to) if to else settings.backup_dir
    result = snapshot(engine, parent / name, include_secrets, progress)
    try:
        pruned = prune(parent, settings.backup_keep)
    except OSError as exc:
        raise BackupError(f"the backup is done, but pruning old ones failed: {exc}") from exc
    return vars(result) | {"pruned": [p.name for p in pruned]}


def _s3_backup_names(s3, settings: Settings) -> list[str]:
    names = {k.split("/")[2] for k in s3.list_keys(s3_prefix(settings) + "/") if k.count("/") > 2}
    return sorted(n for n in names if BACKUP_NAME.fullmatch(n))


def list_backups(settings: Settings, to: str | None = None) -> list[dict]:
    """The backups at a target, oldest first: name, location, created_at, host, chunks.

    Only the small manifest of each is read (capped); `complete` is false when it is missing
    or unreadable. Nothing here is trusted: a restore checks everything again.
    """
    if to == "s3":
        from engine.app import build_s3

        s3 = build_s3(settings)
        if s3 is None:
            raise BackupError("--to s3 needs S3_BUCKET_NAME")
        found = []
        for name in _s3_backup_names(s3, settings):
            key = f"{s3_prefix(settings)}/{name}"
            try:
                answer = s3.client.get_object(
                    Bucket=s3.bucket,
                    Key=s3.key(f"{key}/manifest.json"),
                    Range=f"bytes=0-{_MANIFEST_CAP - 1}",  # capped: the bucket is not trusted
                )
                manifest = json.loads(answer["Body"].read(_MANIFEST_CAP))
            except (*aws_errors(), ValueError):
                manifest = None
            found.append(_row(name, f"s3://{s3.bucket}/{s3.key(key)}/", manifest))
        return found
    return _folder_backups(Path(to) if to else settings.backup_dir)


def _folder_backups(parent: Path) -> list[dict]:
    rows = []
    for folder in backups_in(parent):
        try:
            with (folder / "manifest.json").open("rb") as fh:
                manifest = json.loads(fh.read(_MANIFEST_CAP))
        except (OSError, ValueError):
            manifest = None
        rows.append(_row(folder.name, str(folder), manifest))
    return rows


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


def newest_in(folder: Path) -> Path | None:
    """The newest complete backup inside a backup target folder, or None if it holds none."""
    rows = [r for r in _folder_backups(folder) if r["complete"]]
    return Path(rows[-1]["location"]) if rows else None
