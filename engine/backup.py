"""Backup and restore of a whole installation (the seed's `run_backup`).

A backup is a folder (or the same files under `s3://<bucket>/backups/<host>/<timestamp>/`):

    nexus.db                  SQLite through its online backup API (never a file copy)
    chroma/<collection>/      every collection: meta.json, chunks.jsonl, vectors.f32
    inbox/, text/, vkp/       the teachers' PDFs, extracted text, built/published/installed packages
    keys/                     public keys; private keys and salts only with --include-secrets
    manifest.json             written last: every file's size and sha256, the original paths

It is taken under the ingestion lock, so the database and Chroma agree (a running job is
waited for). A restore checks the whole manifest before writing anything.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.ingest.layout import sha256_file
from engine.settings import Settings
from engine.vkp.package import Chunk, load_chunks, save_chunks

log = logging.getLogger(__name__)

SECRET_NAMES = ("vkp_signing.key", "telemetry.salt", "admin_password")
Progress = Callable[[str, int, int], None]


class BackupError(Exception):
    """A backup that cannot be used (corrupt, partial) or a restore that is refused."""


@dataclass
class BackupResult:
    location: str
    files: int
    bytes: int
    collections: int
    chunks: int


def snapshot(
    engine, folder: Path, include_secrets: bool = False, progress: Progress | None = None
) -> BackupResult:
    """Write a consistent backup of `engine`'s installation into the new folder `folder`."""
    settings: Settings = engine.settings
    folder.mkdir(parents=True, exist_ok=False)
    chunks = 0
    with engine.ingestor.writer_lock():
        source = sqlite3.connect(settings.db_path)
        target = sqlite3.connect(folder / "nexus.db")
        with target:
            source.backup(target)
        source.close()
        target.close()
        collections = engine.store.collections()
        for number, info in enumerate(collections, start=1):
            stored = engine.store.get_chunks(info.name)
            save_chunks(
                folder / "chroma" / info.name,
                [Chunk(c.id, c.text, c.metadata, c.vector) for c in stored],
            )
            meta = {
                "grade": info.grade,
                "subject": info.subject,
                "model_key": info.model_key,
                "model_id": info.model_id,
                "vkp_version": info.vkp_version,
            }
            (folder / "chroma" / info.name / "meta.json").write_text(json.dumps(meta))
            chunks += len(stored)
            if progress:
                progress("collections", number, len(collections))
        copies = {"inbox": settings.inbox_dir, "text": settings.text_dir, "vkp": settings.vkp_dir}
        for name, path in copies.items():
            if path.exists():
                shutil.copytree(
                    path, folder / name, ignore=shutil.ignore_patterns("*.part", "downloads")
                )
        keys = settings.data_dir / "keys"
        for key in sorted(keys.glob("*")) if keys.exists() else []:
            if key.name not in SECRET_NAMES or include_secrets:
                (folder / "keys").mkdir(exist_ok=True)
                shutil.copy2(key, folder / "keys" / key.name)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {
        "format": 1,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "inbox": str(settings.inbox_dir.resolve()),
        "includes_secrets": include_secrets,
        "collections": len(collections),
        "chunks": chunks,
        "files": {},
    }
    for number, path in enumerate(files, start=1):
        manifest["files"][path.relative_to(folder).as_posix()] = {
            "size": path.stat().st_size,
            "sha256": sha256_file(path),
        }
        if progress:
            progress("checksums", number, len(files))
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    total = sum(f["size"] for f in manifest["files"].values())
    return BackupResult(str(folder), len(files), total, len(collections), chunks)


def verify(folder: Path, progress: Progress | None = None) -> dict:
    """The manifest of a complete, intact backup (raises BackupError otherwise)."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise BackupError(f"{folder} has no manifest.json: not a backup, or an unfinished one")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as exc:
        raise BackupError(f"{manifest_path} is damaged: {exc}") from exc
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {
        "manifest.json"
    }
    if missing := sorted(set(manifest["files"]) - present):
        raise BackupError(
            f"the backup is incomplete: {len(missing)} file(s) missing, e.g. {missing[0]}"
        )
    if extra := sorted(present - set(manifest["files"])):
        raise BackupError(f"the backup holds files its manifest does not list, e.g. {extra[0]}")
    for number, (name, expected) in enumerate(sorted(manifest["files"].items()), start=1):
        path = folder / name
        if path.stat().st_size != expected["size"] or sha256_file(path) != expected["sha256"]:
            raise BackupError(f"{name} does not match its checksum: the backup is corrupt")
        if progress:
            progress("verify", number, len(manifest["files"]))
    return manifest


def restore(
    folder: Path, settings: Settings, force: bool = False, progress: Progress | None = None
) -> dict:
    """Restore the backup in `folder` into `settings.data_dir` (verified first)."""
    from engine.app import build_engine

    manifest = verify(folder, progress)
    data = settings.data_dir
    if data.exists() and any(data.iterdir()) and not force:
        raise BackupError(f"{data} is not empty; restore into an empty folder or pass --force")
    data.mkdir(parents=True, exist_ok=True)
    for name in ("inbox", "text", "vkp", "keys"):
        if (folder / name).exists():
            shutil.copytree(
                folder / name,
                data / name if name != "inbox" else settings.inbox_dir,
                dirs_exist_ok=True,
            )
    tmp_db = data / "nexus.db.restoring"
    shutil.copy2(folder / "nexus.db", tmp_db)
    for suffix in ("-wal", "-shm"):
        Path(f"{settings.db_path}{suffix}").unlink(missing_ok=True)
    os.replace(tmp_db, settings.db_path)
    old_inbox, new_inbox = (
        manifest["inbox"].rstrip("/") + "/",
        str(settings.inbox_dir.resolve()) + "/",
    )
    with sqlite3.connect(settings.db_path) as db:  # documents follow the inbox to its new place
        db.execute(
            "UPDATE documents SET path = ? || substr(path, ?) WHERE substr(path, 1, ?) = ?",
            (new_inbox, len(old_inbox) + 1, len(old_inbox), old_inbox),
        )
    engine = build_engine(settings)
    from engine.store.chroma import StoredChunk

    collections = sorted((folder / "chroma").iterdir()) if (folder / "chroma").exists() else []
    for number, path in enumerate(collections, start=1):
        meta = json.loads((path / "meta.json").read_text())
        engine.store.drop(path.name)
        stored = [StoredChunk(c.id, c.text, c.metadata, c.vector) for c in load_chunks(path)]
        name = engine.store.add(
            meta["grade"],
            meta["subject"],
            meta["model_id"],
            meta["model_key"],
            stored,
            meta["vkp_version"],
        )
        if name != path.name:
            raise BackupError(f"collection {path.name} came back as {name}")
        if progress:
            progress("collections", number, len(collections))
    engine.ingestor.sync_lexical()
    return manifest


def prune(parent: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups in `parent`."""
    backups = (
        sorted(p for p in parent.iterdir() if (p / "manifest.json").exists())
        if parent.exists()
        else []
    )
    doomed = backups[:-keep] if keep else []
    for path in doomed:
        shutil.rmtree(path)
    return doomed


def backup_name() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def temporary_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="nexus-backup-"))
