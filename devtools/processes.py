"""Child processes of benches and tests: stop a server the way a user would (Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess


def interrupt(process: subprocess.Popen, timeout_s: float = 60) -> None:
    """SIGINT, as Ctrl-C; after `timeout_s`, SIGKILL to its whole process group (start it with
    `start_new_session=True` so its workers and servers go with it)."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
