"""The ingestion lock: one process at a time changes a data dir's chunks and catalogue.

`nexus ingest`, `nexus watch`/`up`, `nexus vkp build`, backups and restores all take it, so a
package or a backup never mixes old and new chunks of a file.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def writer_lock(run_dir: Path) -> Iterator[None]:
    """Hold the data dir's writer lock (`<run_dir>/writer.lock`), waiting for it if taken."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "writer.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another ingestion in this data dir to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
