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
