"""A change marker shared by every process of a data dir: "the chunk store changed".

Listing Chroma's collections (and counting each) costs more than the vector search of a small
library, and it is the same answer until something writes. So `ChunkStore` keeps its listing and
collection handles in memory, valid while the marker holds the token it had when they were read.
Every write through a `ChunkStore` of this data dir (ingest, removal, package install, restore,
publish) replaces the token *after* it wrote, so a reader that listed before the write, or
during it, lists again at its next search: in this process, in `nexus up`'s API thread, in the
panel, in every API worker process.

The marker is one small file (`<data>/run/chunks.changed`) replaced atomically; reading it is one
`open` and a few bytes, far cheaper than any Chroma call.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)


class ChangeMarker:
    """The token in `path`, replaced by `touch()` after every write to the store."""

    def __init__(self, path: Path):
        self.path = path

    def token(self) -> bytes:
        """The current token (empty while no write has happened yet)."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""

    def touch(self) -> None:
        """Say the store changed: a new token that no reader has seen."""
        token = f"{os.getpid()}-{time.time_ns()}-{uuid.uuid4().hex}".encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            tmp.write_bytes(token)
            os.replace(tmp, self.path)
        except OSError:
            # a marker that cannot move must not keep readers on a stale listing: remove it,
            # which readers see as a change too (and log why)
            log.warning("the change marker %s could not be replaced", self.path, exc_info=True)
            tmp.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)
