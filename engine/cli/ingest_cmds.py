"""`nexus ingest`, `nexus watch` and `nexus up`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from engine.app import build_engine
from engine.cli.output import delivery_json, emit, job_json, no_job_json, on_terminal
from engine.cli.progress import BarProgress, LineProgress
from engine.inbox.layout import LayoutRefused, layout_for
from engine.paths import path_key
from engine.settings import Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="ingest a PDF or a <grade>/<subject>/ folder, then exit",
        description="Ingest a PDF or a folder. Grade and subject come from the inbox's"
        " <grade>/<subject>/ folders; outside the inbox, from a folder holding such folders, or"
        " from the names of a subject folder and its parent. Anything else is refused: label it"
        " with --grade and --subject.",
    )
    p.add_argument("path", type=Path)
    p.add_argument("--grade", help="label every PDF at PATH with this grade (with --subject)")
    p.add_argument("--subject", help="label every PDF at PATH with this subject (with --grade)")
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

    p = sub.add_parser(
        "up", help="start Chroma, the watcher, the HTTP API and the panel (Ctrl-C stops all)"
    )
    p.add_argument("--no-ui", action="store_true", help="do not start the admin panel")
    p.add_argument("--no-api", action="store_true", help="do not serve the HTTP API")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("health", help="exit 0 when the engine (watch/up) runs in this data dir")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("ui", help="the admin panel in the browser (Streamlit)")
    p.add_argument("--port", type=int, help="default UI_PORT (8501)")
    p.set_defaults(func=cmd_ui)


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.path
    if not path.exists():
        print(f"nexus ingest: {path} does not exist", file=sys.stderr)
        return 2
    try:
        layout = layout_for(path, settings.inbox_dir, args.grade, args.subject)
    except LayoutRefused as exc:
        print(f"nexus ingest: {exc}", file=sys.stderr)
        return 2
    if layout.note:  # labels read from outside the inbox are never applied silently
        print(f"nexus ingest: {layout.note}", file=sys.stderr)
    engine = build_engine(settings)
    engine.records.recover()
    progress = BarProgress() if on_terminal() else LineProgress()
    try:
        outcome = engine.ingestor.run(
            [path],
            layout.root,
            input_dir=str(path),
            progress=progress,
            placement=layout.placement,
        )
    except Exception as exc:  # the job record is finished and says what happened
        log.exception("ingestion stopped")
        print(f"nexus ingest: the job stopped early: {type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    upload = settings.s3_upload if args.upload is None else args.upload
    publish = None
    if outcome is not None and upload:  # delivery failures wait in the outbox: `nexus aws flush`
        publish = delivery_json(engine.publisher.publish_job(outcome.files, outcome.job))
        if publish["error"]:
            print(f"nexus ingest: not published yet: {publish['error']}", file=sys.stderr)
    if outcome is None:
        summary = no_job_json("ingest", path_key(path))
    else:  # built after publishing, which adds the S3 requests to the job's cost
        summary = job_json(outcome.job, outcome.files)
    summary["publish"] = publish
    if args.json:
        emit(summary)
    elif summary["job_id"] is None:
        print(f"nothing to do: no PDF to ingest or remove at {path}")
    else:
        print(
            f"job {summary['job_id']}: {summary['status']}, "
            f"{summary['total_chunks']} chunks added, {summary['chunks_skipped']} unchanged"
        )
    return 0


def _watch(settings: Settings, *, serve_api: bool = False) -> None:
    """Run the engine service in the foreground until SIGTERM or Ctrl-C; with `serve_api`,
    the HTTP API answers beside it from the same warm embedder."""
    from engine.runtime.service import EngineService

    service = EngineService(
        settings, progress=LineProgress(), notify=lambda line: print(line, file=sys.stderr)
    )

    def stop(*_: object) -> None:
        service.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    api = None
    if serve_api:
        from engine.api.local import ApiServer

        embedder = service.engine.embedder
        api = ApiServer(settings, lambda: build_engine(settings, embedder=embedder))
        try:
            url = api.start()
            print(f"API on {url} (OpenAPI: {url}/openapi.json)", file=sys.stderr)
        except (OSError, RuntimeError) as exc:  # e.g. the port is taken: the engine goes on
            print(f"nexus up: the API is not served: {exc}", file=sys.stderr)
            api = None
    try:
        service.run()
    finally:
        if api is not None:
            api.stop()


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


def panel_env(settings: Settings) -> dict[str, str]:
    """Environment the panel process needs: its data dir, and whose forwarded headers the web
    server may believe (only UI_TRUSTED_PROXIES; uvicorn believes loopback by default)."""
    from engine.auth import forwarded_allow_ips

    return {
        "NEXUS_DATA_DIR": str(settings.data_dir),
        "FORWARDED_ALLOW_IPS": forwarded_allow_ips(settings.ui_trusted_proxies),
    }


def start_panel(settings: Settings) -> subprocess.Popen:
    """The panel as a child process, talking to the same Chroma server and data dir."""
    env = os.environ | panel_env(settings)
    if settings.chroma_host:
        env |= {"CHROMA_HOST": settings.chroma_host, "CHROMA_PORT": str(settings.chroma_port)}
    print(f"panel on http://{settings.ui_address}:{settings.ui_port}", file=sys.stderr)
    return subprocess.Popen(panel_command(settings), env=env)


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    from engine.runtime.state import read_state

    state = read_state(settings)
    print("running" if state["running"] else "not running")
    return 0 if state["running"] else 1


def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    from engine.auth import stored_hash

    if stored_hash(settings) is None:
        print("no admin password yet: run `nexus admin set-password` first", file=sys.stderr)
    # exec, not a child: SIGTERM/SIGINT reach Streamlit itself and the port is freed with it
    command = panel_command(settings, args.port)
    os.environ.update(panel_env(settings))
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
        _watch(settings, serve_api=not args.no_api)
    finally:
        if panel is not None:
            panel.terminate()
            panel.wait(timeout=20)
        if server:
            server.stop()
    print("stopped", file=sys.stderr)
    return 0
