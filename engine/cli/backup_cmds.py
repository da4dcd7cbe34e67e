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
from engine.aws.clients import AwsUnavailable, aws_errors
from engine.backup import (
    BACKUP_NAME,
    BackupError,
    backup_name,
    filesystem_message,
    prune,
    restore,
    snapshot,
    temporary_folder,
)
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
            names = {k.split("/")[2] for k in s3.list_keys(s3_prefix(settings) + "/")}
            backups = sorted(n for n in names if BACKUP_NAME.fullmatch(n))
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


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    bars = Bars()
    try:
        result = run_backup(settings, args.to, args.include_secrets, bars)
    except (BackupError, AwsUnavailable) as exc:
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


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    if args.data_dir:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    bars = Bars()
    try:
        if args.source.startswith("s3://"):
            manifest = restore(args.source, settings, args.force, bars, s3=build_s3(settings))
        else:
            manifest = restore(Path(args.source), settings, args.force, bars)
    except OSError as exc:  # e.g. the data dir cannot even be listed
        print(f"nexus restore: {filesystem_message(exc, settings.data_dir)}", file=sys.stderr)
        return 1
    except BackupError as exc:
        print(f"nexus restore: refused: {exc}", file=sys.stderr)
        return 1
    finally:
        bars.close()
    origin = f"{manifest['host']} from {manifest['created_at']}"
    print(f"restored the backup of {origin} into {settings.data_dir}")
    return 0
