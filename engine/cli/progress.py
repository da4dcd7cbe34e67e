"""Progress display for ingestion on stderr (stdout stays clean for --json).

Bars only on a terminal (`nexus ingest` picks `LineProgress` otherwise, so a log file gets one
plain line per file and never a bar frame).
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from engine.cli.output import on_terminal
from engine.jobs.base import FileResult


def describe(result: FileResult) -> str:
    line = f"{result.status:<14} {result.path}"
    if result.chunks:
        line += f"  ({result.pages} pages, {result.chunks} chunks)"
    if result.reason:
        line += f"  - {result.reason}"
    return line


class BarProgress:
    """A files bar and a chunks bar for `nexus ingest`, drawn only on a terminal."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = on_terminal() if enabled is None else enabled
        self.files: tqdm | None = None
        self.chunks: tqdm | None = None

    def file_started(self, path: str, number: int, total: int) -> None:
        if not self.enabled:
            return
        if self.files is None:
            self.files = tqdm(total=total, unit="file", desc="files", file=sys.stderr, position=0)
        self.files.set_postfix_str(path.rsplit("/", 1)[-1][:40])

    def chunks_embedded(self, count: int, total: int) -> None:
        if not self.enabled:
            return
        if self.chunks is None or self.chunks.total != total or self.chunks.n >= total:
            if self.chunks is not None:
                self.chunks.close()
            self.chunks = tqdm(
                total=total, unit="chunk", desc="embed", file=sys.stderr, position=1, leave=False
            )
        self.chunks.update(count)

    def file_done(self, result: FileResult) -> None:
        if not self.enabled:
            return
        if self.chunks is not None:
            self.chunks.close()
            self.chunks = None
        assert self.files is not None
        self.files.write(describe(result), file=sys.stderr)
        self.files.update(1)

    def close(self) -> None:
        for bar in (self.chunks, self.files):
            if bar is not None:
                bar.close()


class LineProgress:
    """One line per file, for the long-running watcher's log."""

    def file_started(self, path: str, number: int, total: int) -> None:
        print(f"[{number}/{total}] reading {path}", file=sys.stderr, flush=True)

    def chunks_embedded(self, count: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass

    def file_done(self, result: FileResult) -> None:
        print(describe(result), file=sys.stderr, flush=True)
