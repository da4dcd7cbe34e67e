"""The engine's heartbeat as the panel reads it, also from another container."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

from engine.runtime import state
from engine.runtime.state import read_state, start_heartbeat, state_file, write_state


def test_a_fresh_heartbeat_from_another_container_means_running(settings):
    """In Compose the engine is pid 1 of another host name; only the heartbeat counts."""
    write_state(settings, watching="/inbox")
    record = json.loads(state_file(settings).read_text())
    record.update(pid=1, host="engine-container")
    state_file(settings).write_text(json.dumps(record))
    assert read_state(settings)["running"] is True
    later = datetime.fromisoformat(record["updated_at"]) + timedelta(seconds=31)
    assert read_state(settings, now=later) == {"running": False, "last_seen": record["updated_at"]}


def test_on_the_same_host_a_dead_pid_is_not_running(settings):
    write_state(settings, watching="/inbox")
    record = json.loads(state_file(settings).read_text())
    record["pid"] = 2**22 + 12345  # above pid_max: never alive
    state_file(settings).write_text(json.dumps(record))
    assert read_state(settings)["running"] is False


def test_heartbeat_keeps_the_state_fresh_during_a_long_job(settings, monkeypatch):
    monkeypatch.setattr(state, "HEARTBEAT_EVERY_S", 0.05)
    write_state(settings, watching="/inbox", queue_length=3)
    first = json.loads(state_file(settings).read_text())["updated_at"]
    stop = threading.Event()
    thread = start_heartbeat(settings, stop)
    try:
        for _ in range(100):
            record = json.loads(state_file(settings).read_text())
            if record["updated_at"] != first:
                break
            stop.wait(0.02)
    finally:
        stop.set()
        thread.join()
    assert record["updated_at"] > first and record["queue_length"] == 3


def test_missing_or_garbled_state_is_not_running(settings):
    assert read_state(settings) == {"running": False}
    settings.run_dir.mkdir(parents=True)
    state_file(settings).write_text("{not json")
    assert read_state(settings) == {"running": False}


def test_secrets_are_private_from_the_first_byte_and_never_written_through_a_link(tmp_path):
    import os
    import stat

    from engine.util import write_private

    secret = tmp_path / "keys" / "salt"
    assert write_private(secret, b"first", exclusive=True)
    assert not write_private(secret, b"second", exclusive=True)  # the first one is kept
    assert secret.read_bytes() == b"first"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"untouched")
    link = tmp_path / "keys" / "admin_password"
    os.symlink(elsewhere, link)
    assert write_private(link, b"hash")  # replaces the link itself
    assert elsewhere.read_bytes() == b"untouched" and not link.is_symlink()
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
