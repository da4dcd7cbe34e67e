"""One writer per database: writes go through `Database.write`, one transaction at a time."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from engine.db import Database


def test_a_write_outside_the_write_path_fails_loudly(tmp_path):
    database = Database(tmp_path / "nexus.db")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        database.conn.execute("DELETE FROM documents")
    with database.write() as conn:
        conn.execute("DELETE FROM documents")


def test_another_threads_write_never_joins_an_open_transaction(tmp_path):
    """Before: telemetry's insert on the shared connection landed inside the ingest's open
    transaction, and was rolled back with it. Now it waits and commits on its own."""
    database = Database(tmp_path / "nexus.db")
    inside, other_done = threading.Event(), threading.Event()

    def telemetry_thread():
        inside.wait()
        with database.write() as conn:
            conn.execute(
                "INSERT INTO telemetry_queries (hour, latency_ms, error) VALUES ('h', 1, 0)"
            )
        other_done.set()

    thread = threading.Thread(target=telemetry_thread)
    thread.start()
    with pytest.raises(RuntimeError):
        with database.write() as conn:
            conn.execute(
                "INSERT INTO documents VALUES"
                " ('p', 'g', 's', 'f', 'x', 1, 'ingested', '', 1, 1, 'c', 't')"
            )
            inside.set()
            assert not other_done.wait(0.5)  # the other writer waits for this transaction
            raise RuntimeError("the ingest fails: its transaction rolls back")
    thread.join(10)
    reader = database.conn
    assert reader.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
    assert reader.execute("SELECT count(*) FROM telemetry_queries").fetchone()[0] == 1


def test_nested_writes_in_one_thread_share_one_transaction(tmp_path):
    database = Database(tmp_path / "nexus.db")
    with pytest.raises(RuntimeError):
        with database.write():
            with database.write() as conn:
                conn.execute(
                    "INSERT INTO telemetry_queries (hour, latency_ms, error) VALUES ('h', 1, 0)"
                )
            raise RuntimeError
    assert database.conn.execute("SELECT count(*) FROM telemetry_queries").fetchone()[0] == 0


def test_a_process_opening_the_database_waits_for_anothers_migration(tmp_path, monkeypatch):
    """Migration 12 counts an existing index in one transaction (90 s for a million chunks);
    the panel or `nexus search` opening the database meanwhile waits for it instead of failing
    with "database is locked" after the usual busy timeout."""
    import subprocess
    import sys
    import time

    from engine import db

    path, started = tmp_path / "nexus.db", tmp_path / "migrating"
    old = sqlite3.connect(path, isolation_level=None)
    db.migrate(old, upto=11)
    old.close()
    migrating = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pathlib, sys, time\n"
            "from engine import db\n"
            "count = db.AFTER[12]\n"
            "def slow(conn):\n"
            f"    pathlib.Path({str(started)!r}).touch()\n"
            "    time.sleep(3)\n"
            "    count(conn)\n"
            "db.AFTER[12] = slow\n"
            f"db.connect(pathlib.Path({str(path)!r}))\n",
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists()
        monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.5)  # the usual wait, shorter than 3 s
        began = time.monotonic()
        conn = db.connect(path)
        waited = time.monotonic() - began
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)
        assert waited > 1  # it waited for the other process, which did the work
        assert migrating.wait(timeout=30) == 0
        # and the usual busy timeout is back for everything after
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 500
    finally:
        migrating.kill()


def test_a_database_from_a_newer_engine_is_refused(tmp_path):
    from engine import db

    path = tmp_path / "nexus.db"
    Database(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(db.MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(db.NewerDatabase, match="newer OpenClass Nexus"):
        Database(path)
