"""A data dir that moves: copied to a new disk, restored elsewhere or mounted at another path,
it keeps serving its PDFs, re-ingests nothing and names no old path."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.api.documents import document_id
from engine.app import build_engine
from engine.auth.api_keys import api_key_store
from engine.documents.catalog import Catalog
from engine.settings import Settings
from tests.support import pdfs
from tests.support.cli import nexus
from tests.support.fakes import FakeEmbedder
from tests.support.net import free_port


def stored_paths(data) -> list[str]:
    with sqlite3.connect(data / "nexus.db") as conn:
        return [row[0] for row in conn.execute("SELECT path FROM documents ORDER BY path")]


def move(old, new, monkeypatch) -> Settings:
    shutil.copytree(old, new, symlinks=True)
    shutil.rmtree(old)  # the old disk is gone
    monkeypatch.setenv("NEXUS_DATA_DIR", str(new))
    return Settings()


@pytest.fixture
def library(settings, inbox):
    """A data dir with two ingested lessons."""
    engine = build_engine(settings, embedder=FakeEmbedder())
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "fotosintesis.pdf", ["Fotosintesis di daun."])
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "bab2" / "sel.pdf", ["Sel adalah unit hidup."])
    assert engine.ingestor.run([inbox], inbox).job.status == "completed"
    return settings.data_dir


def test_the_catalogue_stores_paths_relative_to_the_inbox(library):
    assert stored_paths(library) == ["kelas_10/ipa/bab2/sel.pdf", "kelas_10/ipa/fotosintesis.pdf"]


def test_a_copied_data_dir_serves_its_pdfs_and_reingests_nothing(library, tmp_path, monkeypatch):
    settings = move(library, tmp_path / "disk2" / "nexus-data", monkeypatch)
    engine = build_engine(settings, embedder=FakeEmbedder())
    outcome = engine.ingestor.run([settings.inbox_dir], settings.inbox_dir)
    assert {f.status for f in outcome.files} == {"skipped"}
    assert all("same content as" not in (f.reason or "") for f in outcome.files)
    assert all(str(library) not in path for path in stored_paths(settings.data_dir))

    client = TestClient(create_app(engine))
    key = api_key_store(settings.data_dir).create("sekolah")
    document = next(d for d in engine.catalog.all() if d.file_name == "sel.pdf")
    assert document.path.startswith(str(settings.inbox_dir.resolve()))
    answer = client.get(
        f"/v1/documents/{document_id(document)}/pdf", headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 200
    assert answer.content == (settings.inbox_dir / "kelas_10/ipa/bab2/sel.pdf").read_bytes()
    hits = engine.searcher.search("fotosintesis daun", k=1)
    assert hits[0].source == "fotosintesis.pdf"


def test_an_older_database_with_full_paths_is_adopted_after_a_move(library, tmp_path, monkeypatch):
    """Databases from before relative keys hold full paths of the old place."""
    old_inbox = str((library / "inbox").resolve())
    with sqlite3.connect(library / "nexus.db") as conn:
        conn.execute("UPDATE documents SET path = ? || '/' || path", (old_inbox,))
        conn.execute(  # a file ingested from outside the inbox keeps its full path
            "INSERT INTO documents (path, grade, subject, file_name, sha256, size, status,"
            " updated_at) VALUES ('/media/usb/kelas_10/ipa/luar.pdf', 'kelas_10', 'ipa',"
            " 'luar.pdf', 'x', 1, 'ingested', 'now')"
        )
    settings = move(library, tmp_path / "elsewhere", monkeypatch)
    engine = build_engine(settings, embedder=FakeEmbedder())
    outcome = engine.ingestor.run([settings.inbox_dir], settings.inbox_dir)
    assert {f.status for f in outcome.files} == {"skipped"}
    assert stored_paths(settings.data_dir) == [
        "/media/usb/kelas_10/ipa/luar.pdf",
        "kelas_10/ipa/bab2/sel.pdf",
        "kelas_10/ipa/fotosintesis.pdf",
    ]


def test_an_older_database_copied_while_the_original_stays_is_adopted(
    library, tmp_path, monkeypatch
):
    """A copy to a new disk (or a second instance) with the original still in place."""
    old_inbox = str((library / "inbox").resolve())
    with sqlite3.connect(library / "nexus.db") as conn:
        conn.execute("UPDATE documents SET path = ? || '/' || path", (old_inbox,))
    copy = tmp_path / "copy"
    shutil.copytree(library, copy, symlinks=True)
    monkeypatch.setenv("NEXUS_DATA_DIR", str(copy))
    settings = Settings()
    engine = build_engine(settings, embedder=FakeEmbedder())
    outcome = engine.ingestor.run([settings.inbox_dir], settings.inbox_dir)
    assert [f.reason for f in outcome.files] == ["unchanged since last ingest"] * 2
    assert stored_paths(copy) == ["kelas_10/ipa/bab2/sel.pdf", "kelas_10/ipa/fotosintesis.pdf"]
    # the original data dir, still in use, is left as it was
    assert stored_paths(library)[0].startswith(old_inbox)


def test_catalogue_keys_outside_the_inbox_and_of_packages_stay_whole(settings):
    from engine.db import Database

    catalog = Catalog(Database(settings.db_path), settings.inbox_dir)
    inbox_key = str(settings.inbox_dir.resolve() / "kelas_7" / "ips" / "peta.pdf")
    assert catalog._stored(inbox_key) == "kelas_7/ips/peta.pdf"
    assert catalog._full("kelas_7/ips/peta.pdf") == inbox_key
    for whole in ("/srv/other/kelas_7/ips/peta.pdf", "vkp://kelas_7__ips/peta.pdf"):
        assert catalog._stored(whole) == whole and catalog._full(whole) == whole


@pytest.mark.slow
def test_nexus_up_on_a_copied_data_dir_finds_the_same_library(bedrock, tmp_path, monkeypatch):
    data = tmp_path / "first"
    monkeypatch.setenv("NEXUS_DATA_DIR", str(data))
    pdfs.text_pdf(data / "inbox" / "kelas_9" / "ips" / "peta.pdf", ["Garis lintang dan bujur."])
    first = json.loads(nexus("ingest", str(data / "inbox"), "--json").stdout)
    assert [f["status"] for f in first["files"]] == ["ingested"]

    copy = tmp_path / "second"
    move(data, copy, monkeypatch)
    monkeypatch.setenv("CHROMA_PORT", str(free_port()))
    monkeypatch.setenv("WATCH_STABLE_SECONDS", "0.3")
    up = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "up", "--no-ui", "--no-api"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        from tests.test_watch import wait_for

        def first_job_done():
            with sqlite3.connect(copy / "nexus.db") as conn:
                rows = conn.execute(
                    "SELECT status FROM jobs ORDER BY timestamp DESC LIMIT 1"
                ).fetchall()
                return (
                    rows
                    if rows
                    and rows[0][0] != "running"
                    and len(conn.execute("SELECT * FROM jobs").fetchall()) >= 2
                    else None
                )

        wait_for(first_job_done, timeout=120, what="the start-up scan")
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    with sqlite3.connect(copy / "nexus.db") as conn:
        statuses = conn.execute(
            "SELECT status FROM job_files WHERE job_id = (SELECT job_id FROM jobs"
            " ORDER BY timestamp DESC LIMIT 1)"
        ).fetchall()
    assert statuses in ([], [("skipped",)])  # nothing re-ingested
    assert stored_paths(copy) == ["kelas_9/ips/peta.pdf"]
