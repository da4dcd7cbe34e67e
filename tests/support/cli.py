"""The `nexus` console script in a real subprocess, as users and other tools run it."""

from __future__ import annotations

import os
import subprocess
import sys


def nexus(
    *args: str, env: dict | None = None, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess:
    """Run `nexus ARGS` (stdout and stderr captured as text, neither a terminal), with `env`
    added to this process's environment; with `check`, a non-zero exit fails the test and shows
    stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else os.environ | env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"nexus {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc
