"""Backup and restore of a whole installation (the seed's `run_backup`).

A backup is a folder (or the same files under `s3://<bucket>/backups/<host>/<timestamp>/`):

    nexus.db                  SQLite through its online backup API (never a file copy)
    chroma/<collection>/      every collection: meta.json, chunks.jsonl, vectors.f32
    inbox/, text/, vkp/       the teachers' PDFs, extracted text, built/published/installed packages
    keys/                     public keys only; every other file in keys/ (private keys, salts,
                              passwords) only with --include-secrets
    manifest.json             written last: every file's size and sha256, the original paths

It is taken under the ingestion lock, so the database and Chroma agree (a running job is
waited for). Backups are not trusted on the way back: a restore first copies the backup into a
private folder and checks all of it there (`engine.backup.staging`); nothing in the data dir
changes until that has passed, and every file it then writes is confined to the data dir (and
the configured inbox).
"""

from __future__ import annotations

import errno
import json
import logging
import re
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.backup.copy import copy_keys, copy_tree, destination_below, filesystem_message, place
from engine.backup.database import check_contents, restored_model
from engine.backup.staging import (
    BackupError,
    private_folder,
    stage_folder,
    stage_s3,
)
from engine.embed.choice import RECORD_NAME, record_model, record_path, recorded_model
from engine.locking import writer_lock
from engine.settings import Settings
from engine.util import sha256_file
from engine.vkp.package import load_chunks, save_chunks

__all__ = [
    "BackupError",
    "BackupResult",
    "filesystem_message",
    "prune",
    "restore",
    "snapshot",
    "verify",
]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
BACKUP_NAME = re.compile(r"\d{8}T\d{6}Z")


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
    """Write a consistent backup of `engine`'s installation into the new folder `folder`.

    Raises:
        BackupError: the folder cannot be written (permissions, disk full...); a partial
            backup is removed.
    """
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
    except OSError as exc:
        raise BackupError(filesystem_message(exc, folder)) from exc
    try:
        return _snapshot(engine, folder, include_secrets, progress)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise BackupError(filesystem_message(exc, folder)) from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _snapshot(engine, folder: Path, include_secrets: bool, progress: Progress | None):
    settings: Settings = engine.settings
    chunks = 0
    with engine.ingestor.writer_lock():
        source = sqlite3.connect(settings.db_path)
        target = sqlite3.connect(folder / "nexus.db")
        try:
            with target:
                source.backup(target)
        except sqlite3.OperationalError as exc:  # the backup API's "disk full", "readonly"
            raise OSError(errno.EIO, str(exc), str(folder / "nexus.db")) from exc
        finally:
            source.close()
            target.close()
        collections = engine.store.collections()
        for number, info in enumerate(collections, start=1):
            stored = engine.store.get_chunks(info.name)
            save_chunks(folder / "chroma" / info.name, stored)
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
            if path.is_dir():
                copy_tree(path, folder / name)
        copy_keys(settings.data_dir / "keys", folder / "keys", include_secrets)
        _save_model_record(settings.data_dir, folder)
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


@contextmanager
def _staging():
    """A private temporary folder, removed whatever happens."""
    try:
        folder = private_folder()
    except OSError as exc:
        raise BackupError(filesystem_message(exc, tempfile.gettempdir())) from exc
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _stage(source: Path | str, staging: Path, s3, progress: Progress | None) -> dict:
    """Bring the backup at `source` (a folder, or s3://bucket/prefix with `s3`) into `staging`."""
    from engine.aws.clients import aws_errors

    try:
        if isinstance(source, str) and source.startswith("s3://"):
            if s3 is None:
                raise BackupError("restoring from s3:// needs S3_BUCKET_NAME")
            bucket, _, prefix = source.removeprefix("s3://").partition("/")
            if bucket != s3.bucket:
                raise BackupError(
                    f"the backup is in bucket {bucket}, S3_BUCKET_NAME is {s3.bucket}"
                )
            if not prefix.strip("/"):
                raise BackupError("give the backup's folder in the bucket, not the whole bucket")
            manifest = stage_s3(s3.client, bucket, prefix, staging, progress)
        else:
            manifest = stage_folder(Path(source), staging, progress)
        check_contents(staging, manifest)
    except aws_errors() as exc:
        raise BackupError(f"cannot read the backup {source} from S3: {exc}") from exc
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise BackupError(
            f"cannot check the backup {source}: {exc.strerror or exc}{where}"
        ) from exc
    return manifest


def verify(folder: Path, progress: Progress | None = None) -> dict:
    """The manifest of a complete, intact backup folder (raises BackupError otherwise)."""
    with _staging() as staging:
        return _stage(folder, staging, None, progress)


def restore(
    source: Path | str,
    settings: Settings,
    force: bool = False,
    progress: Progress | None = None,
    s3=None,
    trust_keys: bool = False,
) -> dict:
    """Restore the backup at `source` into `settings.data_dir`, checked in full first.

    Keys are the root of trust (a public key in keys/ is trusted to sign packages, the admin
    password hash opens the panel), and a backup folder or bucket is not trusted: whoever can
    write there could plant their own. So keys/ is restored only with `trust_keys`; otherwise
    the keys are left out and listed (with their sha256) in the returned manifest's
    `skipped_keys`, for the admin to check and restore deliberately.

    Args:
        source: a backup folder, or `s3://bucket/prefix/` (then `s3` is the storage manager).
        settings: the target installation.
        force: restore into a data dir that is not empty (files are replaced, not merged away).
        progress: called with (phase, done, total).
        s3: an `S3StorageManager` for s3:// sources.
        trust_keys: also restore keys/ (public keys, and secrets if the backup has them).

    Raises:
        BackupError: the backup is refused (nothing in the data dir has changed), or writing
            into the data dir failed (the message says so).
    """
    data = settings.data_dir
    if data.exists() and any(data.iterdir()) and not force:
        raise BackupError(f"{data} is not empty; restore into an empty folder or pass --force")
    with _staging() as staging:
        manifest = _stage(source, staging, s3, progress)
        _relocate_documents(staging / "nexus.db", manifest["inbox"], settings)
        manifest["skipped_keys"] = [] if trust_keys else _untrusted_keys(staging, manifest)
        plan = _plan(staging, manifest, settings)  # every target checked before the first write
        try:
            data.mkdir(parents=True, exist_ok=True)
            with writer_lock(settings.run_dir):
                _install(plan, staging, settings, progress)
        except OSError as exc:
            raise BackupError(
                f"{filesystem_message(exc, data)}; the data dir may be partly restored:"
                " fix that and restore again with --force"
            ) from exc
    return manifest


def _untrusted_keys(staging: Path, manifest: dict) -> list[dict]:
    """The keys/ entries of a backup, with their sha256, left out of an untrusted restore."""
    return [
        {"name": name, "sha256": sha256_file(staging / name)}
        for name in sorted(manifest["files"])
        if name.startswith("keys/")
    ]


def _relocate_documents(db_path: Path, old_inbox: str, settings: Settings) -> None:
    """Documents follow the inbox to its new place (done on the staged copy)."""
    old, new = old_inbox.rstrip("/") + "/", str(settings.inbox_dir.resolve()) + "/"
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.execute("PRAGMA trusted_schema = OFF")
            conn.execute(
                "UPDATE documents SET path = ? || substr(path, ?) WHERE substr(path, 1, ?) = ?",
                (new, len(old) + 1, len(old), old),
            )
    except sqlite3.Error as exc:
        raise BackupError(f"nexus.db in the backup cannot be used: {exc}") from exc
    finally:
        conn.close()


def _plan(staging: Path, manifest: dict, settings: Settings) -> list[tuple]:
    """(staged file, resolved root, path below it, mode or -1) for every file restored."""
    data_root = settings.data_dir.resolve()
    roots = {
        "inbox": (settings.inbox_dir, settings.inbox_dir.resolve()),
        "text": (settings.data_dir / "text", data_root),
        "vkp": (settings.data_dir / "vkp", data_root),
        "keys": (settings.data_dir / "keys", data_root),
    }
    plan = []
    skipped = {k["name"] for k in manifest.get("skipped_keys", [])}
    for name in sorted(manifest["files"]):
        area, _, rest = name.partition("/")
        if area in roots and name not in skipped:
            base, root = roots[area]
            mode = 0o600 if area == "keys" else -1
            plan.append((staging / name, root, destination_below(base / rest, root), mode))
    plan.append(
        (staging / "nexus.db", data_root, destination_below(settings.db_path, data_root), -1)
    )
    return plan


def _restore_model_record(data_dir: Path, model: str | None) -> None:
    """A fresh record of the backup's model (never the staged file's bytes: no field of it
    but the checked model name is kept), or none: then the engine's own rule picks the model
    of the restored collections, not a record left in the target by another installation."""
    if model is None:
        record_path(data_dir).unlink(missing_ok=True)
    else:
        record_model(data_dir, model)


def _save_model_record(data_dir: Path, folder: Path) -> None:
    """The data dir's embedding-model record (which model its collections were built with),
    so a restored server goes on searching with it."""
    model = recorded_model(data_dir)
    if model is not None:
        (folder / RECORD_NAME).write_text(json.dumps({"local_embedding_model": model}))


def _install(plan: list, staging: Path, settings: Settings, progress) -> None:
    """Write the planned files, then load the collections into Chroma."""
    from engine.app import build_engine

    for source, root, relative, mode in plan:
        if source == staging / "nexus.db":
            for suffix in ("-wal", "-shm"):
                (root / f"{relative}{suffix}").unlink(missing_ok=True)
        place(source, root, relative, mode)
    _restore_model_record(settings.data_dir, restored_model(staging))
    engine = build_engine(settings)
    folders = sorted((staging / "chroma").iterdir()) if (staging / "chroma").exists() else []
    for number, path in enumerate(folders, start=1):
        meta = json.loads((path / "meta.json").read_text())
        engine.store.drop(path.name)
        stored = load_chunks(path)
        name = engine.store.add(
            meta["grade"],
            meta["subject"],
            meta["model_id"],
            meta["model_key"],
            stored,
            meta.get("vkp_version") or "",
        )
        if name != path.name:
            raise BackupError(f"collection {path.name} came back as {name}")
        if progress:
            progress("collections", number, len(folders))
    engine.lexical.recount_templates(everything=True)  # derived counts: not taken from outside
    engine.records.sync_lexical()


def backups_in(parent: Path) -> list[Path]:
    """The backups in `parent`, oldest first: real folders named like `backup_name()` with a
    manifest (a planted link or oddly named folder is neither counted nor deleted)."""
    if not parent.is_dir():
        return []
    return sorted(
        p
        for p in parent.iterdir()
        if BACKUP_NAME.fullmatch(p.name)
        and not p.is_symlink()
        and p.is_dir()
        and (p / "manifest.json").is_file()
    )


def prune(parent: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups in `parent`."""
    backups = backups_in(parent)
    doomed = backups[:-keep] if keep else []
    for path in doomed:
        shutil.rmtree(path)
    return doomed


def backup_name(now: Callable[[], datetime] | None = None) -> str:
    """`20261129T140501Z`: the backup's UTC time (`now`, a clock tests can set)."""
    return (now() if now else datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
