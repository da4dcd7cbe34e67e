"""The running engine as an object: watch → ingest → publish, state for the panel, re-runs."""

from __future__ import annotations

import threading
import time

from engine.runtime.service import EngineService
from engine.runtime.state import read_state, request_rerun
from tests.support import pdfs


def _wait(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_service_watches_ingests_reports_state_and_reruns(engine, settings, inbox):
    lesson = pdfs.text_pdf(
        inbox / "kelas_10" / "informatika" / "bab1.pdf", ["Algoritma adalah urutan langkah."]
    )
    service = EngineService(settings, engine)
    runner = threading.Thread(target=service.run)
    runner.start()
    try:
        assert _wait(lambda: engine.catalog.get(str(lesson)) is not None)
        assert _wait(lambda: read_state(settings).get("queue_length") == 0)
        state = read_state(settings)
        assert state["running"] is True and state["watching"] == str(inbox.resolve())

        jobs_before = len(engine.tracker.list_jobs(100))
        request_rerun(settings, str(lesson))  # the panel's "re-run" button
        assert _wait(lambda: len(engine.tracker.list_jobs(100)) > jobs_before)
        [rerun] = engine.tracker.list_jobs(1)
        assert rerun.job_type == "watch"
    finally:
        service.stop()
        runner.join(timeout=30)
    assert not runner.is_alive()


def test_stopping_waits_for_a_scheduled_backup_under_way(engine, settings, inbox, monkeypatch):
    """A stop (SIGTERM) during a scheduled backup lets it finish instead of cutting it short."""
    monkeypatch.setattr(settings, "backup_every", "0.2s")
    monkeypatch.setattr(settings, "telemetry_enabled", False)
    service = EngineService(settings, engine)
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_backup() -> None:
        started.set()
        release.wait(60)  # the backup goes on until the test lets it finish
        finished.set()

    monkeypatch.setattr(service, "_backup", slow_backup)
    runner = threading.Thread(target=service.run)
    runner.start()
    try:
        assert started.wait(30)
        service.stop()
        runner.join(timeout=0.5)
        assert runner.is_alive() and not finished.is_set()  # the stop waits for the backup
    finally:
        release.set()
        service.stop()
        runner.join(timeout=60)
    assert not runner.is_alive() and finished.is_set()
