"""`nexus backup` and `nexus restore`."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
from pathlib import Path

from tqdm import tqdm

from engine.app import build_engine, build_s3
from engine.backup import BackupError, backup_name, prune, restore, snapshot, temporary_folder
from engine.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="a consistent backup of this installation")
    p.add_argument("--to", help="a folder, or s3 (default BACKUP_DIR)")
    p.add_argument("--include-secrets", action="store_true", help="also the private signing key")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backup)
    p = sub.add_parser("restore", help="restore a backup (folder or s3://...) into a data dir")
    p.add_argument("source")
    p.add_argument("--data-dir", type=Path, help="default NEXUS_DATA_DIR")
    p.add_argument("--force", action="store_true", help="restore into a non-empty data dir")
    p.set_defaults(func=cmd_restore)


class Bars:
    """One progress bar per phase, on stderr."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        bar = self.bars.setdefault(phase, tqdm(total=total, desc=phase, file=sys.stderr))
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def s3_prefix(settings: Settings) -> str:
    return f"backups/{settings.school_id or socket.gethostname()}"


def run_backup(
    settings: Settings, to: str | None = None, include_secrets: bool = False, progress=None
) -> dict:
    """Back up to a folder or to S3, then keep the newest BACKUP_KEEP (also the engine's
    schedule)."""
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
            older = sorted({k.split("/")[2] for k in s3.list_keys(s3_prefix(settings) + "/")})[
                : -settings.backup_keep
            ]
            for old in older:
                for key in s3.list_keys(f"{s3_prefix(settings)}/{old}/"):
                    s3.client.delete_object(Bucket=s3.bucket, Key=s3.key(key))
            return vars(result) | {
                "location": f"s3://{s3.bucket}/{s3.key(prefix)}/",
                "pruned": older,
            }
        finally:
            shutil.rmtree(folder.parent, ignore_errors=True)
    parent = Path(to) if to else settings.backup_dir
    result = snapshot(engine, parent / name, include_secrets, progress)
    pruned = prune(parent, settings.backup_keep)
    return vars(result) | {"pruned": [p.name for p in pruned]}


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    bars = Bars()
    try:
        result = run_backup(settings, args.to, args.include_secrets, bars)
    except BackupError as exc:
        print(f"nexus backup: {exc}", file=sys.stderr)
        return 1
    finally:
        bars.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        size = result["bytes"] / 2**20
        print(f"backup {result['location']}: {result['files']} files, {size:.1f} MB")
    return 0


def _download(settings: Settings, url: str) -> Path:
    s3 = build_s3(settings)
    if s3 is None:
        raise BackupError("restoring from s3:// needs S3_BUCKET_NAME")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if bucket != s3.bucket:
        raise BackupError(f"the backup is in bucket {bucket}, S3_BUCKET_NAME is {s3.bucket}")
    prefix = prefix.rstrip("/") + "/"
    folder = temporary_folder()
    for key in s3.list_keys(prefix.removeprefix(s3.key("")) if s3.prefix else prefix):
        target = folder / key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_bytes(key))
    return folder


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    if args.data_dir:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    bars = Bars()
    try:
        source = (
            _download(settings, args.source)
            if args.source.startswith("s3://")
            else Path(args.source)
        )
        manifest = restore(source, settings, args.force, bars)
    except BackupError as exc:
        print(f"nexus restore: refused: {exc}", file=sys.stderr)
        return 1
    finally:
        bars.close()
    origin = f"{manifest['host']} from {manifest['created_at']}"
    print(f"restored the backup of {origin} into {settings.data_dir}")
    return 0
