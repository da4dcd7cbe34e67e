"""`nexus ui` as a process: SIGTERM stops the panel itself, and its port is free again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support.net import free_port

pytestmark = pytest.mark.slow


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def healthy(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
        return True
    except OSError:
        return False


def test_sigterm_stops_nexus_ui_and_frees_its_port(tmp_path):
    port = free_port()
    log = (tmp_path / "nexus-ui.log").open("w")
    ui = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "ui", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group, so the test can clean up whatever is left
    )
    try:
        assert wait_until(lambda: healthy(port), 90), (tmp_path / "nexus-ui.log").read_text()
        ui.send_signal(signal.SIGTERM)  # what `docker stop` or systemd sends: to nexus only
        ui.wait(timeout=15)
        assert wait_until(lambda: not port_taken(port), 10), "the Streamlit child still listens"
        survivors = subprocess.run(
            ["pgrep", "-g", str(ui.pid)], capture_output=True, text=True
        ).stdout.split()
        assert survivors == [], f"left running: {survivors}"
    finally:
        try:
            os.killpg(ui.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
