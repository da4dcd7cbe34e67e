"""Entry point of the `nexus` console script.

Exit codes: 0 done; 1 the command ran but failed (a delivery that could not be made, a
refused package, no such job); 2 a usage error (argparse, invalid settings, a PATH that does
not exist or cannot be labelled); 130 interrupted. Failures are explained on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from pydantic import ValidationError

from engine import __version__
from engine.cli import (
    admin_cmds,
    api_cmds,
    aws_cmds,
    backup_cmds,
    eval_cmds,
    ingest_cmds,
    query_cmds,
    telemetry_cmds,
    vkp_cmds,
)
from engine.settings import Settings
from engine.util import SecretError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nexus", description="OpenClass Nexus: curriculum PDFs in, searchable knowledge out."
    )
    parser.add_argument("--version", action="version", version=f"nexus {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    ingest_cmds.register(sub)
    query_cmds.register(sub)
    eval_cmds.register(sub)
    aws_cmds.register(sub)
    telemetry_cmds.register(sub)
    admin_cmds.register(sub)
    vkp_cmds.register(sub)
    backup_cmds.register(sub)
    api_cmds.register(sub)
    return parser


def quiet_model_loading() -> None:
    """Keep the model libraries' progress bars ("Loading weights: 100%…") and advice out of
    the CLI's output; `-v` shows them. transformers and huggingface_hub read these variables
    when they are imported, which happens later, when a command first needs the model."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if "transformers" in sys.modules:  # already imported (main() called in-process)
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()


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
    if not args.verbose:
        quiet_model_loading()
    for noisy in ("httpx", "chromadb", "sentence_transformers", "urllib3", "botocore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args, settings)
    except SecretError as exc:  # a damaged key or salt: say which and refuse, never use it
        print(f"nexus: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
