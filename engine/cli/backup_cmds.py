"""`nexus backup` and `nexus restore`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from engine.app import build_engine, build_s3
from engine.aws.clients import AwsUnavailable, aws_errors
from engine.backup import BackupError, filesystem_message, restore
from engine.backup.runs import list_backups, newest_in, run_backup
from engine.cli.output import emit, on_terminal
from engine.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="a consistent backup of this installation")
    p.add_argument("--to", help="a folder, or s3 (default BACKUP_DIR)")
    p.add_argument("--include-secrets", action="store_true", help="also the private signing key")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backup)
    backup_sub = p.add_subparsers(dest="backup_command")
    q = backup_sub.add_parser("list", help="the backups at a target, oldest first")
    q.add_argument("--to", help="a folder, or s3 (default BACKUP_DIR)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_backup_list)
    p = sub.add_parser(
        "restore",
        help="restore a backup (a backup folder, a target folder holding backups — the newest"
        " complete one is used — or s3://...) into a data dir",
    )
    p.add_argument("source")
    p.add_argument("--data-dir", type=Path, help="default NEXUS_DATA_DIR")
    p.add_argument("--force", action="store_true", help="restore into a non-empty data dir")
    p.add_argument(
        "--trust-keys",
        action="store_true",
        help="also restore keys/ (trusted package keys, admin password, secrets): only for a"
        " backup you made yourself, since whoever can write to its folder or bucket could"
        " plant keys there",
    )
    p.set_defaults(func=cmd_restore)


class Bars:
    """One progress bar per phase, on stderr, drawn only when stderr is a terminal."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.bars:
            self.bars[phase] = tqdm(
                total=total, desc=phase, file=sys.stderr, disable=not on_terminal()
            )
        bar = self.bars[phase]
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    bars = Bars()
    try:
        result = run_backup(build_engine(settings), args.to, args.include_secrets, bars)
    except (BackupError, AwsUnavailable) as exc:
        print(f"nexus backup: {exc}", file=sys.stderr)
        return 1
    finally:
        bars.close()
    if args.json:
        emit(result)
    else:
        size = result["bytes"] / 2**20
        print(f"backup {result['location']}: {result['files']} files, {size:.1f} MB")
    return 0


def cmd_backup_list(args: argparse.Namespace, settings: Settings) -> int:
    try:
        rows = list_backups(build_engine(settings), args.to)
    except (BackupError, *aws_errors()) as exc:
        print(f"nexus backup list: {exc}", file=sys.stderr)
        return 1
    if args.json:
        emit(rows)
    elif not rows:
        print("no backups there", file=sys.stderr)
    for row in [] if args.json else rows:
        state = "" if row["complete"] else "  (incomplete: no readable manifest)"
        chunks = f"{row['chunks'] or 0} chunks"
        print(f"{row['name']}  {row['host']}  {chunks}  {row['location']}{state}")
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    if args.data_dir:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    bars = Bars()
    try:
        if args.source.startswith("s3://"):
            manifest = restore(
                args.source,
                settings,
                args.force,
                bars,
                s3=build_s3(settings),
                trust_keys=args.trust_keys,
            )
        else:
            source = Path(args.source)
            if not (source / "manifest.json").exists() and (newest := newest_in(source)):
                print(f"restoring the newest backup in {source}: {newest.name}", file=sys.stderr)
                source = newest
            manifest = restore(source, settings, args.force, bars, trust_keys=args.trust_keys)
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
    if manifest["skipped_keys"]:
        print(
            "not restored (keys are trusted only with --trust-keys; check them first):",
            file=sys.stderr,
        )
        for key in manifest["skipped_keys"]:
            print(f"  {key['name']}  sha256 {key['sha256']}", file=sys.stderr)
    return 0
