"""Entry point of the `nexus` console script."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from engine import __version__
from engine.cli import (
    admin_cmds,
    api_cmds,
    aws_cmds,
    backup_cmds,
    ingest_cmds,
    query_cmds,
    telemetry_cmds,
    vkp_cmds,
)
from engine.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nexus", description="OpenClass Nexus: curriculum PDFs in, searchable knowledge out."
    )
    parser.add_argument("--version", action="version", version=f"nexus {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    ingest_cmds.register(sub)
    query_cmds.register(sub)
    aws_cmds.register(sub)
    telemetry_cmds.register(sub)
    admin_cmds.register(sub)
    vkp_cmds.register(sub)
    backup_cmds.register(sub)
    api_cmds.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"nexus: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "chromadb", "sentence_transformers", "urllib3", "botocore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args, settings)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
