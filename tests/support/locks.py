"""Seeing that a thread waits for the data dir's writer lock, without sleeping on a clock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Waiting(logging.Handler):
    def __init__(self, event: threading.Event):
        super().__init__(logging.INFO)
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("waiting for another ingestion"):
            self.event.set()


@contextmanager
def lock_waits() -> Iterator[threading.Event]:
    """An event set when someone starts waiting for a held writer lock (`engine.locking`
    says so in its log before it blocks)."""
    event = threading.Event()
    logger = logging.getLogger("engine.locking")
    handler, level = _Waiting(event), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield event
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
