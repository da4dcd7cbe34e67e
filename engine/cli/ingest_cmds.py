"""`nexus ingest`, `nexus watch` and `nexus up`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.app import build_engine
from engine.cli.progress import BarProgress, LineProgress
from engine.ingest.layout import root_for
from engine.ingest.scan import path_for_key
from engine.settings import Settings, parse_duration
from engine.state import take_reruns, write_state

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="ingest a PDF or a <grade>/<subject>/ folder, then exit")
    p.add_argument("path", type=Path)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--upload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="publish changed grades/subjects to S3 afterwards (default: S3_UPLOAD)",
    )
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("watch", help="watch the inbox and ingest what teachers drop in")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("up", help="start Chroma, the watcher and the panel (Ctrl-C stops all)")
    p.add_argument("--no-ui", action="store_true", help="do not start the admin panel")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("health", help="exit 0 when the engine (watch/up) runs in this data dir")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("ui", help="the admin panel in the browser (Streamlit)")
    p.add_argument("--port", type=int, help="default UI_PORT (8501)")
    p.set_defaults(func=cmd_ui)


def outcome_json(outcome) -> dict:
    files = [
        {
            k: f.to_dict()[k]
            for k in ("path", "status", "reason", "pages", "chunks", "grade", "subject")
        }
        for f in outcome.files
    ]
    return {
        "job_id": outcome.job.job_id,
        "status": outcome.job.status,
        "chunks_added": sum(f["chunks"] for f in files if f["status"] == "ingested"),
        "chunks_skipped": sum(f["chunks"] for f in files if f["status"] == "skipped"),
        "files_ok": outcome.job.successful_files,
        "files_failed": outcome.job.failed_files,
        "files_skipped": outcome.job.skipped_files,
        "processing_time": outcome.job.processing_time,
        "estimated_cost": outcome.job.estimated_cost,
        "input_tokens": outcome.job.input_tokens,
        "strategy_used": outcome.job.strategy_used,
        "fallback_reason": outcome.job.fallback_reason,
        "files": files,
    }


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.path
    if not path.exists():
        print(f"nexus ingest: {path} does not exist", file=sys.stderr)
        return 2
    engine = build_engine(settings)
    engine.ingestor.recover()
    progress = BarProgress(enabled=sys.stderr.isatty() or not args.json)
    try:
        outcome = engine.ingestor.run(
            [path], root_for(path, settings.inbox_dir), input_dir=str(path), progress=progress
        )
    except Exception as exc:  # the job record is finished and says what happened
        log.exception("ingestion stopped")
        print(f"nexus ingest: the job stopped early: {type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    upload = settings.s3_upload if args.upload is None else args.upload
    if outcome is None:
        summary = {
            "job_id": None,
            "status": "completed",
            "chunks_added": 0,
            "chunks_skipped": 0,
            "files": [],
        }
    else:
        summary = outcome_json(outcome)
        if upload:
            report = engine.publisher.publish_job(outcome.files, outcome.job)
            summary["publish"] = report.to_dict()
            summary["estimated_cost"] = outcome.job.estimated_cost
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(
            f"job {summary['job_id']}: {summary['status']}, "
            f"{summary['chunks_added']} chunks added, {summary['chunks_skipped']} unchanged"
        )
    return 0


def _watch(settings: Settings) -> None:
    from engine.ingest.watch import InboxWatcher

    engine = build_engine(settings)
    interrupted = engine.ingestor.recover()
    if interrupted:
        log.warning("marked %d interrupted job(s) from a previous run", len(interrupted))
    inbox = settings.inbox_dir.resolve()
    progress = LineProgress()

    def ingest(paths: list[Path]) -> None:
        outcome = engine.ingestor.run(
            paths, inbox, job_type="watch", input_dir=str(inbox), progress=progress
        )
        if outcome and settings.s3_upload:
            report = engine.publisher.publish_job(outcome.files, outcome.job)
            print(
                f"published {len(report.sent)} object(s), {report.pending} waiting"
                + (f": {report.error}" if report.error else ""),
                file=sys.stderr,
            )

    last_state = [0.0]

    def tick(watcher: InboxWatcher) -> None:
        """Publish the engine's state for the panel; pick up its re-run requests."""
        for path in take_reruns(settings):  # catalogue keys: map them back to real paths
            watcher.gate.touch(path_for_key(str(path)))
        if time.monotonic() - last_state[0] >= 2:
            last_state[0] = time.monotonic()
            embedder = engine.embedder.status()
            write_state(
                settings,
                watching=str(inbox),
                mode=watcher.mode,
                queue_length=len(watcher.gate),
                embedding_strategy=settings.embedding_strategy,
                model=embedder.get("model"),
                fallen_back=bool(embedder.get("fallen_back")),
                fallback_reason=embedder.get("fallback_reason", ""),
                device=embedder.get("device", embedder.get("fallback", {}).get("device", "")),
            )

    watcher = InboxWatcher(
        inbox,
        ingest,
        vanished=lambda: engine.ingestor.vanished(inbox),
        on_tick=tick,
        polling=settings.watch_polling,
        poll_interval_s=settings.watch_poll_interval_s,
        stable_s=settings.watch_stable_seconds,
    )

    def stop(*_: object) -> None:
        watcher.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if settings.backup_every:  # the seed's run_backup maintenance task
        start_backups(settings, watcher.stopped)
    if settings.telemetry_enabled:  # the seed's telemetry_upload_cron
        from engine.telemetry.service import every_hour

        every_hour(engine.telemetry, watcher.stopped, settings.telemetry_upload_every_s)
    print(f"watching {inbox} ({watcher.mode}); drop PDFs into <grade>/<subject>/", file=sys.stderr)
    watcher.run()


def start_backups(settings: Settings, stop) -> None:
    import threading

    from engine.backup_runs import run_backup

    every = parse_duration(settings.backup_every)

    def loop() -> None:
        while not stop.wait(every):
            try:
                result = run_backup(settings)
                log.info("scheduled backup: %s", result["location"])
            except Exception:  # a failed backup must not stop the engine
                log.exception("scheduled backup failed")

    threading.Thread(target=loop, name="backup", daemon=True).start()


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    _watch(settings)
    return 0


def panel_command(settings: Settings, port: int | None = None) -> list[str]:
    app = Path(__file__).resolve().parents[2] / "ui" / "app.py"
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless",
        "true",
        "--server.address",
        settings.ui_address,
        "--server.port",
        str(port or settings.ui_port),
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--server.maxUploadSize",  # Streamlit refuses bigger uploads, even before login
        str(settings.upload_max_mb),
    ]


def start_panel(settings: Settings) -> subprocess.Popen:
    """The panel as a child process, talking to the same Chroma server and data dir."""
    env = os.environ | {"NEXUS_DATA_DIR": str(settings.data_dir)}
    if settings.chroma_host:
        env |= {"CHROMA_HOST": settings.chroma_host, "CHROMA_PORT": str(settings.chroma_port)}
    print(f"panel on http://{settings.ui_address}:{settings.ui_port}", file=sys.stderr)
    return subprocess.Popen(panel_command(settings), env=env)


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    from engine.state import read_state

    state = read_state(settings)
    print("running" if state["running"] else "not running")
    return 0 if state["running"] else 1


def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    from engine.auth import stored_hash

    if stored_hash(settings) is None:
        print("no admin password yet: run `nexus admin set-password` first", file=sys.stderr)
    # exec, not a child: SIGTERM/SIGINT reach Streamlit itself and the port is freed with it
    command = panel_command(settings, args.port)
    os.environ["NEXUS_DATA_DIR"] = str(settings.data_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)
    return 1  # not reached


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from engine.store.server import ChromaServer, ChromaServerError

    server = None
    if not settings.chroma_host:
        server = ChromaServer(settings)
        try:
            server.start()
        except ChromaServerError as exc:
            print(f"nexus up: {exc}", file=sys.stderr)
            return 1
        settings = settings.model_copy(
            update={"chroma_host": server.host, "chroma_port": server.port}
        )
    panel = None if args.no_ui else start_panel(settings)
    try:
        _watch(settings)
    finally:
        if panel is not None:
            panel.terminate()
            panel.wait(timeout=20)
        if server:
            server.stop()
    print("stopped", file=sys.stderr)
    return 0
