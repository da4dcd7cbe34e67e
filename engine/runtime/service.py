"""The running engine: watch the inbox → ingest → publish, and everything that runs beside it.

This is the answer to "where does the engine decide to publish after a watched file is
ingested?": `EngineService.ingest`. The service also owns the state the panel reads (a tick
every two seconds and a heartbeat thread), re-run requests from the panel, and the backup
and telemetry schedules. `nexus watch` and `nexus up` are thin front ends over it; the Lambda
handler and the HTTP API use the same `Engine` parts it is built on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from engine.app import Engine, build_engine
from engine.ingest.pipeline import JobOutcome, Progress
from engine.paths import path_for_key
from engine.runtime.state import start_heartbeat, take_reruns, write_state
from engine.settings import Settings
from engine.util import every, parse_duration

log = logging.getLogger(__name__)

STATE_EVERY_S = 2.0
JOIN_TIMEOUT_S = 120.0  # a scheduled backup under way at stop gets this long to finish


class EngineService:
    """The long-running engine of one data dir.

    Args:
        settings: the installation's settings.
        engine: ready-made parts (tests pass a fake embedder); built from settings if None.
        progress: told about each job's files (the CLI prints a line per file).
        notify: one-line messages for the operator (publishing results); default: the log.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        *,
        progress: Progress | None = None,
        notify: Callable[[str], None] | None = None,
    ):
        self.settings = settings
        self.engine = engine or build_engine(settings)
        self.inbox = settings.inbox_dir.resolve()
        self.progress = progress
        self.notify = notify or log.info
        self.stopped = threading.Event()
        self._last_state = 0.0
        self._watcher = None
        self._threads: list[threading.Thread] = []

    # --- the work ----------------------------------------------------------------------------
    def ingest(self, paths: Iterable[Path]) -> JobOutcome | None:
        """Ingest what changed, then publish the changed grades/subjects when S3_UPLOAD is on."""
        outcome = self.engine.ingestor.run(
            paths, self.inbox, job_type="watch", input_dir=str(self.inbox), progress=self.progress
        )
        if outcome and self.settings.s3_upload:
            report = self.engine.publisher.publish_job(outcome.files, outcome.job)
            self.notify(
                f"published {len(report.sent)} object(s), {report.pending} waiting"
                + (f": {report.error}" if report.error else "")
            )
        return outcome

    def tick(self, watcher) -> None:
        """Pick up the panel's re-run requests; publish the engine's state for the panel."""
        for path in take_reruns(self.settings):  # catalogue keys: map them back to real paths
            watcher.gate.touch(path_for_key(str(path)))
        if time.monotonic() - self._last_state < STATE_EVERY_S:
            return
        self._last_state = time.monotonic()
        embedder = self.engine.embedder.status()
        write_state(
            self.settings,
            watching=str(self.inbox),
            mode=watcher.mode,
            queue_length=len(watcher.gate),
            embedding_strategy=self.settings.embedding_strategy,
            model=embedder.get("model"),
            fallen_back=bool(embedder.get("fallen_back")),
            fallback_reason=embedder.get("fallback_reason", ""),
            device=embedder.get("device", embedder.get("fallback", {}).get("device", "")),
        )

    # --- running -------------------------------------------------------------------------------
    def run(self) -> None:
        """Recover from a crash, start the schedules and watch until `stop()`."""
        from engine.inbox.watch import InboxWatcher

        interrupted = self.engine.records.recover()
        if interrupted:
            log.warning("marked %d interrupted job(s) from a previous run", len(interrupted))
        self._watcher = InboxWatcher(
            self.inbox,
            self.ingest,
            vanished=lambda: self.engine.records.vanished(self.inbox),
            on_tick=self.tick,
            polling=self.settings.watch_polling,
            poll_interval_s=self.settings.watch_poll_interval_s,
            stable_s=self.settings.watch_stable_seconds,
        )
        if self.stopped.is_set():
            return
        self.start_schedules()
        self.notify(
            f"watching {self.inbox} ({self._watcher.mode}); drop PDFs into <grade>/<subject>/"
        )
        try:
            self._watcher.run()
        finally:
            self.stopped.set()
            self._join_schedules()
            self.engine.ingestor.close()

    def stop(self) -> None:
        """Ask the watcher and the schedules to finish (safe from a signal handler)."""
        self.stopped.set()
        if self._watcher is not None:
            self._watcher.stop()

    def start_schedules(self) -> None:
        """Heartbeat, scheduled backups and telemetry uploads, until `stop()`."""
        self._threads.append(start_heartbeat(self.settings, self.stopped))
        if self.settings.backup_every:  # the seed's run_backup maintenance task
            seconds = parse_duration(self.settings.backup_every)
            self._threads.append(every(seconds, self._backup, self.stopped, "backup"))
        if self.settings.telemetry_enabled:  # the seed's telemetry_upload_cron
            from engine.telemetry.service import every_hour

            every_s = self.settings.telemetry_upload_every_s
            self._threads.append(every_hour(self.engine.telemetry, self.stopped, every_s))

    def _join_schedules(self, timeout_s: float = JOIN_TIMEOUT_S) -> None:
        """Let a scheduled backup or upload that is under way finish before the engine goes."""
        for thread in self._threads:
            if thread.is_alive():
                log.info("waiting for the %s thread to finish", thread.name)
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("the %s thread did not finish in %.0f s", thread.name, timeout_s)

    def _backup(self) -> None:
        from engine.backup.runs import run_backup

        result = run_backup(self.engine)
        log.info("scheduled backup: %s", result["location"])
