"""What the running engine is doing, for the panel (another process): `<data>/run/engine.json`.

The watcher rewrites it every few seconds and a heartbeat thread refreshes its timestamp even
while a long job runs. A reader trusts the heartbeat, not a process id: in Docker Compose the
panel runs in another container, where the engine's pid (1) means nothing. On the same host the
pid is checked as well, so a killed engine is seen at once.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from datetime import datetime
from pathlib import Path

from engine.settings import Settings
from engine.util import pid_alive, utc_now  # folder_mb: for the panel

HEARTBEAT_EVERY_S = 5.0
STALE_AFTER_S = 30.0  # six missed heartbeats: the engine is gone


def state_file(settings: Settings) -> Path:
    return settings.run_dir / "engine.json"


def write_state(settings: Settings, **state: object) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    target = state_file(settings)
    tmp = target.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "updated_at": utc_now()}
    tmp.write_text(json.dumps(state | mine))
    os.replace(tmp, target)


def read_state(settings: Settings, *, now: datetime | None = None) -> dict:
    """The engine's last state, with `running` true only while its heartbeat is fresh."""
    try:
        state = json.loads(state_file(settings).read_text())
        beat = datetime.fromisoformat(state["updated_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return {"running": False}
    age = ((now or datetime.fromisoformat(utc_now())) - beat).total_seconds()
    same_host = state.get("host") == socket.gethostname()
    if age > STALE_AFTER_S or (same_host and not pid_alive(state.get("pid", -1))):
        return {"running": False, "last_seen": state["updated_at"]}
    return state | {"running": True}


def start_heartbeat(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Refresh the state file's timestamp every few seconds until `stop` is set."""

    def beat() -> None:
        while not stop.wait(HEARTBEAT_EVERY_S):
            try:
                state = json.loads(state_file(settings).read_text())
            except (OSError, ValueError):
                continue  # nothing written yet: the first tick writes it
            write_state(settings, **{k: v for k, v in state.items() if k not in ("pid", "host")})

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    return thread


def request_rerun(settings: Settings, path: str) -> None:
    """Ask the running watcher to process `path` again (the panel's "re-run")."""
    folder = settings.run_dir / "rerun"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{os.getpid()}-{abs(hash(path))}.json").write_text(json.dumps({"path": path}))


def take_reruns(settings: Settings) -> list[Path]:
    folder = settings.run_dir / "rerun"
    paths = []
    for request in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            paths.append(Path(json.loads(request.read_text())["path"]))
        except (ValueError, KeyError):
            pass
        request.unlink(missing_ok=True)
    return paths
