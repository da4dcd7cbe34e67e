"""Watching the inbox: watchdog events → "this path may have changed" → stable files → jobs.

The watchdog handler is a thin adapter that only queues paths. `StabilityGate` decides when a
queued file has stopped changing (size and mtime unchanged for WATCH_STABLE_SECONDS) so a
100 MB copy in progress is never read half-written; it is testable without watchdog.

The watcher never dies because of a file: an error while handling a batch of paths (or in the
periodic tick) is logged and the watcher goes on. Entries are found as the pipeline finds them
(`engine.inbox.scan.inbox_entries`): FIFOs, folders named `x.pdf` and links are queued too, so
that each gets a status; links to folders are never descended into.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.inbox.layout import is_ignored
from engine.inbox.scan import inbox_entries, is_reportable

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    signature: tuple[int, int] | None  # (size, mtime_ns), None when the path is gone
    since: float  # when the signature was last seen to change


class StabilityGate:
    """Collects changed paths and releases them once they have been still for `stable_s`."""

    def __init__(self, stable_s: float, clock: Callable[[], float] = time.monotonic):
        self.stable_s = stable_s
        self.clock = clock
        self._pending: dict[Path, _Pending] = {}
        self._lock = threading.Lock()

    def touch(self, path: Path) -> None:
        """Note that `path` may have changed (created, modified, moved in, deleted).

        A folder stands for the PDFs inside it (a folder moved into the inbox), each of which
        must settle on its own.
        """
        if is_ignored(path):
            return
        if path.is_dir() and not path.is_symlink():
            for child in inbox_entries(path):
                self._queue(child)
            return
        if os.path.lexists(path) and not is_reportable(path):
            return  # not a PDF name (a folder's own entries were queued above)
        self._queue(path)

    def _queue(self, path: Path) -> None:
        with self._lock:
            self._pending[path] = _Pending(self._signature(path), self.clock())

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def ready(self) -> list[Path]:
        """Paths whose size and mtime (or absence) have not changed for `stable_s` seconds."""
        now = self.clock()
        released = []
        with self._lock:
            for path, pending in list(self._pending.items()):
                signature = self._signature(path)
                if signature != pending.signature:
                    pending.signature, pending.since = signature, now
                elif now - pending.since >= self.stable_s:
                    released.append(path)
                    del self._pending[path]
        return sorted(released)

    @staticmethod
    def _signature(path: Path) -> tuple[int, int] | None:
        try:
            stat = os.lstat(path)  # a FIFO is never opened; a link is judged by the pipeline
        except OSError:
            return None
        return (stat.st_size, stat.st_mtime_ns)


def _event_handler(gate: StabilityGate):
    from watchdog.events import FileSystemEventHandler

    class InboxEventHandler(FileSystemEventHandler):
        """Every event only says: these paths may have changed."""

        def on_any_event(self, event) -> None:
            if event.event_type in ("opened", "closed_no_write"):
                return
            if event.is_directory and event.event_type == "modified":
                return  # its files report their own changes
            try:
                gate.touch(Path(os.fsdecode(event.src_path)))
                if getattr(event, "dest_path", ""):
                    gate.touch(Path(os.fsdecode(event.dest_path)))
            except Exception:  # the observer thread must survive any path
                log.exception("watcher: cannot queue a changed path; going on")

    return InboxEventHandler()


class InboxWatcher:
    """Runs the observer and hands stable paths to `on_ready` (the ingestion pipeline)."""

    def __init__(
        self,
        inbox: Path,
        on_ready: Callable[[list[Path]], None],
        *,
        vanished: Callable[[], list[Path]] = list,
        on_tick: Callable[[InboxWatcher], None] | None = None,
        polling: bool = False,
        poll_interval_s: float = 2.0,
        stable_s: float = 2.0,
    ):
        self.inbox = inbox
        self.on_ready = on_ready
        self.vanished = vanished
        self.on_tick = on_tick
        self.polling = polling
        self.poll_interval_s = poll_interval_s
        self.gate = StabilityGate(stable_s)
        self.stopped = threading.Event()

    @property
    def mode(self) -> str:
        return "polling" if self.polling else "inotify"

    def run(self) -> None:
        """Watch until `stop()`; the inbox is rescanned first to catch files dropped while down."""
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        self.inbox.mkdir(parents=True, exist_ok=True)
        observer = PollingObserver(timeout=self.poll_interval_s) if self.polling else Observer()
        observer.schedule(_event_handler(self.gate), str(self.inbox), recursive=True)
        observer.start()
        log.info("watching %s (%s)", self.inbox, self.mode)
        try:
            # Rescan: files dropped, changed or deleted while the engine was down.
            self._safely("rescan the inbox", self.gate.touch, self.inbox)
            if gone := self._safely("look for deleted files", self.vanished):
                self._safely("handle deleted files", self.on_ready, gone)
            tick = min(0.5, self.poll_interval_s)
            while not self.stopped.wait(tick):
                if self.on_tick is not None:
                    self._safely("run the periodic tasks", self.on_tick, self)
                ready = self._safely("check queued files", self.gate.ready)
                if ready:
                    self._safely(f"handle {len(ready)} file(s)", self.on_ready, ready)
        finally:
            observer.stop()
            observer.join(timeout=10)

    def stop(self) -> None:
        self.stopped.set()

    @staticmethod
    def _safely(what: str, action: Callable, *args: object):
        """Run `action`; an error is logged, never allowed to end the watcher."""
        try:
            return action(*args)
        except Exception:
            log.exception("watcher: failed to %s; going on", what)
            return None
