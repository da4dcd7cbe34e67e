"""What the running engine is doing, for the panel (another process): `<data>/run/engine.json`.

The watcher rewrites it every few seconds; a reader treats it as stale when the process that
wrote it is gone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.jobs.base import utc_now
from engine.settings import Settings


def pid_alive(pid: int) -> bool:
    """Is process `pid` running (on this machine)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def folder_mb(path: Path) -> float:
    """Size of everything under `path`, in MB (0 when it does not exist)."""
    if not path.exists():
        return 0.0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def state_file(settings: Settings) -> Path:
    return settings.run_dir / "engine.json"


def write_state(settings: Settings, **state: object) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    target = state_file(settings)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state | {"pid": os.getpid(), "updated_at": utc_now()}))
    os.replace(tmp, target)


def read_state(settings: Settings) -> dict:
    """The engine's last state with `running` true only if its process is alive."""
    try:
        state = json.loads(state_file(settings).read_text())
    except (OSError, ValueError):
        return {"running": False}
    if not pid_alive(state.get("pid", -1)):
        return {"running": False}
    return state | {"running": True}


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
