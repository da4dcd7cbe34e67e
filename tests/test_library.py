"""What the overview and search pages show (documents.summary, .download, runtime.probes),
from a real ingest."""

from __future__ import annotations

import http.server
import os
import shutil
import threading
from datetime import date
from pathlib import Path

import pytest

from engine.documents.catalog import Document, document_id
from engine.documents.download import find_document, pdf_download
from engine.documents.summary import (
    FAILURE_STATUSES,
    action_for,
    inbox_place,
    ingest_activity,
    library_summary,
    needs_attention,
)
from engine.jobs.base import FileResult, FileStatus, JobRecord
from engine.runtime.probes import api_status, chroma_status, probe_http
from tests.support import pdfs
from tests.support.net import closed_port_url


@pytest.fixture
def ingested(engine, inbox):
    """Two subjects, one good file each, plus an encrypted one, a scan, and a stray file."""
    first = pdfs.text_pdf(inbox / "kelas_10" / "informatika" / "bab1.pdf", ["Algoritma.", "Data."])
    shutil.copy(first, first.with_name("salinan.pdf"))
    pdfs.text_pdf(inbox / "kelas_11" / "ipa" / "gaya.pdf", ["Gaya dan gerak."])
    pdfs.encrypted_pdf(inbox / "kelas_10" / "informatika" / "kunci.pdf")
    pdfs.image_pdf(inbox / "kelas_11" / "ipa" / "pindaian.pdf")
    pdfs.text_pdf(inbox / "nyasar.pdf", ["Di luar folder kelas."])
    engine.ingestor.run([inbox], inbox)
    return engine


def test_the_library_lists_each_grade_and_subject(ingested):
    rows = {(r.grade, r.subject): r for r in library_summary(ingested.catalog)}
    assert set(rows) == {("kelas_10", "informatika"), ("kelas_11", "ipa")}
    informatika = rows[("kelas_10", "informatika")]
    assert (informatika.documents, informatika.pages) == (2, 4)  # the copy is a document...
    [original] = [d for d in ingested.catalog.all() if d.file_name == "bab1.pdf"]
    assert informatika.chunks == original.chunks > 0  # ...whose chunks are stored once
    assert informatika.models == [ingested.catalog.all()[0].collection.split("__")[3]]
    assert informatika.last_update.startswith(str(date.today().year))


def test_failed_files_need_attention_with_what_to_do(ingested, inbox):
    items = {
        i.place.file: i for i in needs_attention(ingested.tracker, ingested.catalog, inbox=inbox)
    }
    assert set(items) == {"kunci.pdf", "pindaian.pdf", "nyasar.pdf"}
    assert (items["kunci.pdf"].status, items["kunci.pdf"].action) == ("encrypted", "unlock")
    assert "password" in items["kunci.pdf"].reason
    assert str(items["kunci.pdf"].place) == "kelas_10/informatika/kunci.pdf"
    assert (items["pindaian.pdf"].status, items["pindaian.pdf"].action) == ("needs_ocr", "ocr")
    stray = items["nyasar.pdf"]
    assert (stray.status, stray.action, stray.place.grade) == ("bad_location", "move", "")
    assert not any(i.still_searchable for i in items.values())


def test_a_fixed_or_deleted_file_no_longer_needs_attention(ingested, inbox):
    pdfs.text_pdf(inbox / "kelas_10" / "informatika" / "kunci.pdf", ["Sekarang tanpa sandi."])
    (inbox / "nyasar.pdf").unlink()
    ingested.ingestor.run([inbox], inbox)
    items = needs_attention(ingested.tracker, ingested.catalog, inbox=inbox)
    assert [i.place.file for i in items] == ["pindaian.pdf"]


def test_a_broken_new_version_says_the_old_one_still_answers(ingested, inbox):
    pdfs.truncated_pdf(inbox / "kelas_11" / "ipa" / "gaya.pdf")
    ingested.ingestor.run([inbox], inbox)
    items = {
        i.place.file: i for i in needs_attention(ingested.tracker, ingested.catalog, inbox=inbox)
    }
    assert items["gaya.pdf"].action == "replace" and items["gaya.pdf"].still_searchable


def test_every_failure_status_has_an_action_and_successes_are_not_failures():
    assert FileStatus.INGESTED not in FAILURE_STATUSES
    assert set(FAILURE_STATUSES) == {s for s in FileStatus if not s.ok}
    assert all(action_for(s) for s in FAILURE_STATUSES)
    assert action_for("a_status_from_a_newer_engine") == "rerun"


def test_ingest_activity_counts_files_per_day(engine):
    tracker = engine.tracker
    job = JobRecord(job_type="watch", timestamp="2026-11-28T08:00:00.000+00:00")
    job.count(FileResult("/x/a.pdf", FileStatus.INGESTED))
    job.count(FileResult("/x/b.pdf", FileStatus.ENCRYPTED))
    tracker.save_job(job)
    old = JobRecord(job_type="watch", timestamp="2026-09-01T08:00:00.000+00:00")
    old.count(FileResult("/x/c.pdf", FileStatus.INGESTED))
    tracker.save_job(old)
    days = ingest_activity(tracker, days=7, today=date(2026, 11, 29))
    assert len(days) == 7 and days[-1]["date"] == date(2026, 11, 29)
    assert days[-2] == {"date": date(2026, 11, 28), "ingested": 1, "failed": 1}
    assert sum(d["ingested"] for d in days) == 1  # September is outside the window


def test_inbox_places(tmp_path):
    inbox = tmp_path / "inbox"
    root = str(inbox.resolve())
    assert str(inbox_place(f"{root}/kelas_10/ipa/bab/1.pdf", inbox)) == "kelas_10/ipa/bab/1.pdf"
    assert inbox_place(f"{root}/kelas_10/ipa/bab/1.pdf", inbox).file == "bab/1.pdf"
    assert inbox_place(f"{root}/kelas_10/x.pdf", inbox).grade == "kelas_10"
    assert inbox_place(f"{root}/x.pdf", inbox).file == "x.pdf"
    assert inbox_place("/elsewhere/x.pdf", inbox).file == "/elsewhere/x.pdf"


@pytest.fixture
def health_server():
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/v1/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_the_api_probe(settings, health_server, monkeypatch):
    assert probe_http(f"http://127.0.0.1:{health_server}/v1/health")
    assert not probe_http(f"http://127.0.0.1:{health_server}/nope")
    assert not probe_http(closed_port_url())
    monkeypatch.setenv("API_PORT", str(health_server))
    from engine.settings import Settings

    assert api_status(Settings())
    monkeypatch.setenv("API_ADDRESS", "0.0.0.0")  # listening everywhere: probe this machine
    assert api_status(Settings())


def test_chroma_without_a_server_is_embedded_and_a_dead_one_is_down(settings, monkeypatch):
    assert chroma_status(settings) == "embedded"
    from engine.settings import Settings

    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", closed_port_url().rsplit(":", 1)[1].strip("/"))
    assert chroma_status(Settings()) == "down"


def test_a_search_hit_leads_to_its_pdf(ingested, inbox):
    [hit] = ingested.searcher.search("gaya gerak", grade="kelas_11", subject="ipa", k=1)
    document = find_document(ingested.catalog, hit.grade, hit.subject, hit.chunk_id)
    assert document.file_name == "gaya.pdf"
    read = pdf_download(ingested.settings, document)
    assert read() == (inbox / "kelas_11" / "ipa" / "gaya.pdf").read_bytes()
    assert find_document(ingested.catalog, "kelas_11", "ipa", "") is None


def test_only_pdfs_inside_the_inbox_are_handed_out(settings, inbox, tmp_path, monkeypatch):
    outside = pdfs.text_pdf(tmp_path / "rahasia.pdf", ["Bukan untuk dibagikan."])
    link = inbox / "kelas_10" / "ipa" / "tautan.pdf"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    big = pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "besar.pdf", ["Besar."])

    def doc(path: Path) -> Document:
        from engine.util import sha256_file

        sha = sha256_file(path) if path.is_file() else "ab" * 32  # as catalogued
        return Document(str(path), "kelas_10", "ipa", path.name, sha, 0, "ingested")

    assert pdf_download(settings, doc(outside)) is None
    assert pdf_download(settings, doc(link)) is None  # a link out of the inbox
    assert pdf_download(settings, doc(inbox / "kelas_10" / "ipa" / "hilang.pdf")) is None
    assert pdf_download(settings, doc(big))() == big.read_bytes()
    fifo = inbox / "kelas_10" / "ipa" / "antre.pdf"
    os.mkfifo(fifo)
    assert pdf_download(settings, doc(fifo)) is None  # refused at once, never a hang
    monkeypatch.setenv("MAX_FILE_MB", str(big.stat().st_size / 2**20 / 2))
    from engine.settings import Settings

    assert pdf_download(Settings(), doc(big)) is None


def test_a_search_hit_names_its_document_by_an_index_lookup(ingested, inbox):
    """Identical copies share chunks: the hit names the first copy by path; a chunk id that is
    not of the engine's format names nothing."""
    [hit] = ingested.searcher.search("Algoritma", grade="kelas_10", subject="informatika", k=1)
    first = ingested.catalog.get(str(inbox / "kelas_10" / "informatika" / "bab1.pdf"))
    assert hit.document_id == document_id(first)
    assert ingested.catalog.document_id_of("kelas_10", "informatika", "zz'-00001") is None
    assert ingested.catalog.with_content("kelas_10", "informatika", "") == []


def test_a_hit_names_the_inbox_copy_and_a_short_chunk_id_names_nothing(engine, inbox, tmp_path):
    """Identical copies share chunks: the document named is the first by full path, so a copy
    ingested from a USB stick (an absolute key) never wins over the inbox's own file, whose
    PDF the API can serve. Only a whole chunk-id prefix (24 hex digits) names a document."""
    lesson = pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "bab1.pdf", ["Hukum Newton."])
    usb = tmp_path / "usb"
    (usb / "kelas_10" / "ipa").mkdir(parents=True)
    shutil.copy(lesson, usb / "kelas_10" / "ipa" / "bab1.pdf")
    engine.ingestor.run([inbox], inbox)
    engine.ingestor.run([usb], usb)
    [hit] = engine.searcher.search("Hukum Newton", grade="kelas_10", subject="ipa", k=1)
    assert hit.document_id == document_id(engine.catalog.get(str(lesson.resolve())))
    short = engine.catalog.get(str(lesson.resolve())).sha256[:2] + "-00001"
    assert engine.catalog.document_id_of("kelas_10", "ipa", short) is None
