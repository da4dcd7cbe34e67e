"""The `nexus` console script as users and other tools run it (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.bedrock_stub import BedrockStub
from tests.support import pdfs
from tests.support.cli import nexus
from tests.support.net import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def bedrock_env(monkeypatch):
    """Run the CLI on Bedrock against the local endpoint: real HTTP, no model load."""
    with BedrockStub() as stub:
        monkeypatch.setenv("EMBEDDING_STRATEGY", "bedrock")
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", stub.url)
        monkeypatch.setenv("BEDROCK_MAX_RPM", "0")  # the stub has no quota
        yield stub


def test_console_script_is_installed():
    proc = subprocess.run(["nexus", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for command in ("ingest", "watch", "search", "jobs", "up"):
        assert command in proc.stdout


def test_ingest_json_reports_every_file_and_search_finds_the_page(bedrock_env, inbox):
    subject = inbox / "kelas_10" / "informatika"
    pdfs.text_pdf(subject / "bab1.pdf", ["Pengantar.", "Topologi bintang memakai switch pusat."])
    pdfs.encrypted_pdf(subject / "kunci.pdf")
    (subject / "kosong.pdf").write_bytes(b"")

    proc = nexus("ingest", str(inbox), "--json")

    summary = json.loads(proc.stdout)  # stdout carries only the JSON
    assert summary["status"] == "partial" and summary["total_chunks"] == 1
    files = {Path(f["path"]).name: f for f in summary["files"]}
    assert {n: f["status"] for n, f in files.items()} == {
        "bab1.pdf": "ingested",
        "kunci.pdf": "encrypted",
        "kosong.pdf": "empty",
    }
    assert files["bab1.pdf"]["pages"] == 2 and files["bab1.pdf"]["chunks"] == 1
    assert "password" in files["kunci.pdf"]["reason"]

    again = json.loads(nexus("ingest", str(subject / "bab1.pdf"), "--json").stdout)
    assert (again["total_chunks"], again["chunks_skipped"]) == (0, 1)

    hits = json.loads(nexus("search", "topologi bintang switch", "--json").stdout)
    assert hits[0]["source"] == "bab1.pdf" and hits[0]["page"] == 1  # chunk spans pages 1-2
    assert hits[0]["pages"] == "1-2"
    assert set(hits[0]) >= {"text", "source", "page", "grade", "subject", "score"}
    assert json.loads(nexus("search", "topologi", "--grade", "kelas_12", "--json").stdout) == []

    jobs = json.loads(nexus("jobs", "--json").stdout)
    assert [j["status"] for j in jobs] == ["completed", "partial"]
    assert jobs[1]["failed_files"] == 2 and jobs[1]["total_chunks"] == 1
    shown = nexus("jobs", "show", summary["job_id"][:8]).stdout
    assert "encrypted" in shown and "password" in shown


def test_the_multilingual_model_answers_an_english_question_from_indonesian_books(
    inbox, monkeypatch
):
    monkeypatch.setenv("LOCAL_EMBEDDING_MODEL", "use-multilingual-v3")
    biology = inbox / "kelas_10" / "biologi"
    pdfs.text_pdf(
        biology / "fotosintesis.pdf",
        ["Bab 1.", "Fotosintesis terjadi di kloroplas daun dengan bantuan cahaya matahari."],
    )
    pdfs.text_pdf(
        inbox / "kelas_11" / "sejarah" / "perang.pdf",
        ["Perang Diponegoro berlangsung dari tahun 1825 sampai 1830 di Jawa Tengah."],
    )
    summary = json.loads(nexus("ingest", str(inbox), "--json").stdout)
    assert summary["status"] == "completed" and summary["total_chunks"] == 2

    hits = json.loads(nexus("search", "Where does photosynthesis happen?", "--json").stdout)
    assert hits[0]["source"] == "fotosintesis.pdf" and hits[0]["lexical_score"] == 0


def test_ingest_of_a_missing_path_fails_clearly():
    proc = nexus("ingest", "tidak/ada.pdf", "--json", check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_invalid_settings_are_reported(monkeypatch):
    monkeypatch.setenv("EMBEDDING_STRATEGY", "quantum")
    proc = nexus("jobs", check=False)
    assert proc.returncode == 2 and "EMBEDDING_STRATEGY" in proc.stderr


def chunk_ids(data_dir: Path) -> dict[str, str]:
    import chromadb

    client = chromadb.PersistentClient(path=str(data_dir / "chroma"))
    ids: dict[str, str] = {}
    for collection in client.list_collections():
        page = collection.get(include=["documents"])
        ids.update(zip(page["ids"], page["documents"], strict=True))
    return ids


def lexical_rows(data_dir: Path) -> tuple[list, ...]:
    """The BM25 rows, each grade/subject's statistics and its template pieces' counts."""
    with sqlite3.connect(data_dir / "nexus.db") as db:
        return (
            sorted(db.execute("SELECT chunk_id, grade, subject, terms FROM lexical")),
            sorted(
                db.execute("SELECT grade, subject, chunks, terms, documents FROM lexical_stats")
            ),
            sorted(db.execute("SELECT * FROM lexical_pieces")),
        )


def wait_for_running_job(db_path: Path, pid: int, processed: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db_path) as db:
                row = db.execute(
                    "SELECT 1 FROM jobs WHERE pid = ? AND processed_files >= ?",
                    (pid, processed),
                ).fetchone()
            if row:
                return
        except sqlite3.OperationalError:
            pass  # database not created yet
        time.sleep(0.02)
    raise AssertionError(f"no running job reached {processed} files")


def test_kill_9_at_any_moment_then_restart_ingests_every_file_exactly_once(
    bedrock_env, inbox, monkeypatch, tmp_path
):
    for i in range(6):
        pdfs.text_pdf(
            inbox / "kelas_10" / f"mapel_{i % 2}" / f"bab{i}.pdf",
            pdfs.lesson_pages(f"topik {i}", 5),
        )
    # reference: the same inbox ingested once, uninterrupted, in another data dir
    monkeypatch.setenv("NEXUS_INBOX_DIR", str(inbox))  # both runs read the same inbox
    monkeypatch.setenv("NEXUS_DATA_DIR", str(tmp_path / "reference"))
    nexus("ingest", str(inbox), "--json")
    expected = chunk_ids(tmp_path / "reference")
    assert len(expected) > 20

    data = Path(os.environ["NEXUS_DATA_DIR"].replace("reference", "data"))
    monkeypatch.setenv("NEXUS_DATA_DIR", str(data))
    monkeypatch.setenv("BEDROCK_CONCURRENCY", "1")
    bedrock_env.latency_s = 0.05  # ~0.5 s per file: kills land mid-file
    for files_done in (0, 1, 2):  # kill mid-file, three times
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli.main", "ingest", str(inbox), "--json"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_running_job(data / "nexus.db", proc.pid, files_done)
        time.sleep(0.15)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    final = json.loads(nexus("ingest", str(inbox), "--json").stdout)

    assert final["status"] == "completed"
    assert {f["status"] for f in final["files"]} <= {"ingested", "skipped"}
    assert chunk_ids(data) == expected  # none missing, none duplicated, no stale ones
    # the BM25 index too, with its statistics and template counts
    assert lexical_rows(data) == lexical_rows(tmp_path / "reference")
    assert any(documents == 3 for *_, documents in lexical_rows(data)[2])  # a template line
    with sqlite3.connect(data / "nexus.db") as db:
        statuses = [r[0] for r in db.execute("SELECT status FROM jobs ORDER BY timestamp")]
    assert statuses.count("interrupted") == 3
    assert statuses[-1] == "completed" and "running" not in statuses


def test_up_serves_chroma_to_a_second_process_and_stops_cleanly(bedrock_env, inbox, monkeypatch):
    from engine.app import build_engine
    from engine.settings import Settings
    from engine.store.client import running_server
    from tests.test_watch import wait_for

    monkeypatch.setenv("CHROMA_PORT", str(free_port()))
    monkeypatch.setenv("API_PORT", str(free_port()))
    monkeypatch.setenv("WATCH_STABLE_SECONDS", "0.3")
    up = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        settings = Settings()
        server = wait_for(lambda: running_server(settings), timeout=60, what="chroma server")
        pdfs.text_pdf(inbox / "kelas_9" / "ips" / "peta.pdf", ["Garis lintang dan bujur."])

        # another process (the panel) reads through the same server while the engine writes
        panel = build_engine(settings)
        assert panel.store.client.get_settings().chroma_api_impl.endswith("FastAPI")  # HTTP
        hits = wait_for(
            lambda: panel.searcher.search("garis lintang bujur", k=1),
            timeout=120,
            what="the dropped PDF",
        )
        assert hits[0].source == "peta.pdf"

        # `nexus search` asks the running engine through its local API (warm model)
        from engine.api.local import LOCAL_KEY_NAME, api_file
        from engine.auth.api_keys import api_key_store

        wait_for(lambda: api_file(settings).exists(), what="the API")
        search = nexus("search", "garis lintang", "--json", timeout=60)
        assert json.loads(search.stdout)[0]["source"] == "peta.pdf"
        [local_key] = [k for k in api_key_store(settings.data_dir).list()]
        assert local_key.name == LOCAL_KEY_NAME and local_key.last_used_at
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    assert running_server(settings) is None
    assert not api_file(settings).exists()  # the local key is withdrawn with the engine
    assert api_key_store(settings.data_dir).list() == []
    import socket

    with socket.socket() as sock:  # the chroma server is gone with it
        assert sock.connect_ex(server) != 0
