"""The ingestion pipeline end to end with embedded Chroma and a fake embedder."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from engine.jobs.base import FileStatus
from tests.support import pdfs


def ingest(engine, inbox: Path, *paths: Path):
    return engine.ingestor.run(list(paths) or [inbox], inbox)


def statuses(outcome) -> dict[str, str]:
    return {Path(f.path).name: str(f.status) for f in outcome.files}


def all_chunks(engine) -> list:
    return [c for col in engine.store.collections() for c in engine.store.get_chunks(col.name)]


def test_ingested_chunk_is_searchable_with_its_page(engine, inbox):
    pages = ["Bab satu membahas sejarah komputer.", "Algoritma adalah urutan langkah logis."]
    pdfs.text_pdf(inbox / "kelas_10" / "informatika" / "bab1.pdf", pages)

    outcome = ingest(engine, inbox)

    assert outcome.job.status == "completed"
    [result] = outcome.files
    assert (result.status, result.pages, result.grade, result.subject) == (
        FileStatus.INGESTED,
        2,
        "kelas_10",
        "informatika",
    )
    hits = engine.searcher.search("algoritma urutan langkah", k=1)
    assert hits[0].source == "bab1.pdf"
    assert hits[0].grade == "kelas_10" and hits[0].subject == "informatika"
    assert "Algoritma" in hits[0].text


def test_chunks_keep_page_numbers_and_metadata(engine, inbox):
    path = pdfs.text_pdf(
        inbox / "kelas_11" / "biologi" / "sel.pdf", pdfs.lesson_pages("sel", 4, 20)
    )
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    ingest(engine, inbox)

    chunks = all_chunks(engine)
    assert len(chunks) > 4
    for chunk in chunks:
        meta = chunk.metadata
        assert meta["grade"] == "kelas_11" and meta["subject"] == "biologi"
        assert meta["source"] == "sel.pdf" and meta["file_sha256"] == sha
        assert meta["embedding_model"] == "fake/fake-64"
        # the page number matches the text: lesson_pages writes "Pada halaman N" on page N
        assert f"halaman {meta['page']} " in chunk.text
        assert 1 <= meta["page"] <= meta["page_end"] <= 4
    assert sorted(c.metadata["chunk_index"] for c in chunks) == list(range(len(chunks)))


def test_unchanged_file_is_skipped(engine, inbox, fake_embedder):
    pdfs.text_pdf(inbox / "kelas_10" / "informatika" / "a.pdf", pdfs.lesson_pages("jaringan"))
    first = ingest(engine, inbox)
    calls = fake_embedder.calls

    second = ingest(engine, inbox)

    assert statuses(second) == {"a.pdf": "skipped"}
    assert second.files[0].chunks == first.files[0].chunks
    assert fake_embedder.calls == calls  # nothing re-embedded
    assert len(all_chunks(engine)) == first.files[0].chunks


def test_changed_file_replaces_its_chunks(engine, inbox):
    path = inbox / "kelas_10" / "informatika" / "a.pdf"
    pdfs.text_pdf(path, ["Versi lama tentang disket dan pita magnetik."] * 3)
    ingest(engine, inbox)
    pdfs.text_pdf(path, ["Versi baru tentang komputasi awan."])

    outcome = ingest(engine, inbox)

    assert statuses(outcome) == {"a.pdf": "ingested"}
    texts = [c.text for c in all_chunks(engine)]
    assert texts and all("baru" in t for t in texts), texts  # no stale chunks of the old version


def test_deleted_file_removes_its_chunks(engine, inbox):
    keep = pdfs.text_pdf(inbox / "kelas_10" / "fisika" / "gerak.pdf", ["Gerak lurus beraturan."])
    gone = pdfs.text_pdf(inbox / "kelas_10" / "fisika" / "optik.pdf", ["Cahaya dan lensa."])
    ingest(engine, inbox)

    gone.unlink()
    outcome = ingest(engine, inbox)

    assert statuses(outcome) == {"gerak.pdf": "skipped", "optik.pdf": "removed"}
    assert {c.metadata["source"] for c in all_chunks(engine)} == {keep.name}


def test_same_pdf_twice_gives_one_set_of_chunks_per_subject(engine, inbox):
    original = pdfs.text_pdf(inbox / "kelas_10" / "kimia" / "atom.pdf", pdfs.lesson_pages("atom"))
    shutil.copy(original, inbox / "kelas_10" / "kimia" / "atom (1).pdf")
    (inbox / "kelas_10" / "kimia" / "salinan").mkdir()
    shutil.copy(original, inbox / "kelas_10" / "kimia" / "salinan" / "atom.pdf")
    shutil.copy(original, inbox / "kelas_12" / "kimia" / "atom.pdf") if (
        inbox / "kelas_12" / "kimia"
    ).mkdir(parents=True) is None else None

    outcome = ingest(engine, inbox)

    chunks = engine.ingestor.catalog.get(str(original.resolve())).chunks
    per_grade = {c.grade: c.count for c in engine.store.collections()}
    assert per_grade == {"kelas_10": chunks, "kelas_12": chunks}
    assert sorted(str(f.status) for f in outcome.files) == [
        "ingested",
        "ingested",
        "skipped",
        "skipped",
    ]

    # deleting one copy keeps the chunks the other copies still need, citing a file that exists
    original.unlink()
    ingest(engine, inbox)
    assert {c.grade: c.count for c in engine.store.collections()} == per_grade
    assert {
        c.metadata["source"] for c in all_chunks(engine) if c.metadata["grade"] == "kelas_10"
    } == {"atom (1).pdf"}


def test_bad_inputs_get_their_own_status_and_the_engine_goes_on(engine, inbox):
    subject = inbox / "kelas_10" / "informatika"
    pdfs.text_pdf(subject / "baik.pdf", ["Struktur data: larik dan senarai."])
    pdfs.encrypted_pdf(subject / "terkunci.pdf")
    pdfs.image_pdf(subject / "pindaian.pdf")
    (subject / "kosong.pdf").write_bytes(b"")
    pdfs.truncated_pdf(subject / "terpotong.pdf")
    pdfs.garbage_pdf(subject / "rusak.pdf")
    pdfs.renamed_docx(subject / "tugas.pdf")
    pdfs.text_pdf(inbox / "lepas.pdf", ["Tidak di dalam folder kelas/mapel."])
    pdfs.text_pdf(inbox / "kelas_10" / "tanpa_mapel.pdf", ["Hanya folder kelas."])
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in inbox.rglob("*.pdf")}

    outcome = ingest(engine, inbox)

    assert statuses(outcome) == {
        "baik.pdf": "ingested",
        "terkunci.pdf": "encrypted",
        "pindaian.pdf": "needs_ocr",
        "kosong.pdf": "empty",
        "terpotong.pdf": "corrupt",
        "rusak.pdf": "corrupt",
        "tugas.pdf": "not_pdf",
        "lepas.pdf": "bad_location",
        "tanpa_mapel.pdf": "bad_location",
    }
    assert outcome.job.status == "partial"
    assert (outcome.job.successful_files, outcome.job.failed_files) == (1, 8)
    # every failure has a reason a teacher can read, in the stored job record too
    stored = {Path(f.path).name: f for f in engine.tracker.job_files(outcome.job.job_id)}
    assert "password" in stored["terkunci.pdf"].reason
    assert "OCR" in stored["pindaian.pdf"].reason
    assert "Word" in stored["tugas.pdf"].reason or "Office" in stored["tugas.pdf"].reason
    assert "truncated" in stored["terpotong.pdf"].reason
    assert "<grade>/<subject>/" in stored["lepas.pdf"].reason
    # the teacher's files are untouched
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in inbox.rglob("*.pdf")} == before


def test_limits_on_size_and_pages_are_settings(engine, inbox):
    engine.settings.max_pages = 2
    engine.settings.max_file_mb = 0.002  # ~2 KB
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "tebal.pdf", pdfs.lesson_pages("energi", 3, 2))
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "besar.pdf", ["x " * 3000] * 2)
    engine.settings.max_file_mb = 0.002
    size_of_big = (inbox / "kelas_10" / "ipa" / "besar.pdf").stat().st_size
    engine.settings.max_file_mb = (size_of_big - 1) / 2**20

    outcome = ingest(engine, inbox)

    assert statuses(outcome) == {"tebal.pdf": "too_many_pages", "besar.pdf": "too_large"}
    reasons = {Path(f.path).name: f.reason for f in outcome.files}
    assert "3 pages" in reasons["tebal.pdf"] and "limit of 2" in reasons["tebal.pdf"]


def test_a_hanging_or_ballooning_reader_is_stopped(engine, inbox):
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "a.pdf", ["Teks."])
    engine.settings.extract_timeout_s = 0.001
    assert statuses(ingest(engine, inbox)) == {"a.pdf": "timeout"}

    engine.settings.extract_timeout_s = 60
    engine.settings.extract_memory_mb = 40  # too little even to start PyMuPDF
    assert statuses(ingest(engine, inbox)) == {"a.pdf": "out_of_memory"}

    engine.settings.extract_memory_mb = 2048
    assert statuses(ingest(engine, inbox)) == {"a.pdf": "ingested"}


def test_embedding_outage_fails_the_file_and_keeps_the_old_version(engine, inbox, fake_embedder):
    path = pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "a.pdf", ["Versi satu tentang magnet."])
    ingest(engine, inbox)
    fake_embedder.fail = True
    os.utime(path)  # touched, same content: still skipped, no embedding needed
    assert statuses(ingest(engine, inbox)) == {"a.pdf": "skipped"}

    pdfs.text_pdf(path, ["Versi dua tentang listrik."])
    outcome = ingest(engine, inbox)

    assert statuses(outcome) == {"a.pdf": "failed"}
    assert "fake outage" in outcome.files[0].reason
    assert [c.text for c in all_chunks(engine)] == ["Versi satu tentang magnet."]
    fake_embedder.fail = False
    assert statuses(ingest(engine, inbox)) == {"a.pdf": "ingested"}
    assert [c.text for c in all_chunks(engine)] == ["Versi dua tentang listrik."]


def test_recover_deletes_orphaned_chunks_and_marks_dead_jobs(engine, inbox):
    from engine.jobs.base import JobRecord

    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "a.pdf", ["Isi yang tercatat."])
    ingest(engine, inbox)
    # chunks stored by a run that died before its catalogue row was written
    [col] = engine.store.collections()
    orphan = engine.store.get_chunks(col.name)[0]
    orphan.id = "f" * 24 + "-00000"
    orphan.metadata = orphan.metadata | {"file_sha256": "f" * 64}
    engine.store.add("kelas_10", "ipa", "fake/fake-64", "fake-64", [orphan])
    dead = JobRecord(job_type="ingest", pid=2**22 + 12345)
    engine.tracker.save_job(dead)

    assert engine.records.recover() == [dead.job_id]

    assert engine.tracker.get_job(dead.job_id).status == "interrupted"
    assert [c.metadata["file_sha256"] for c in engine.store.get_chunks(col.name)] == [
        engine.ingestor.catalog.get(str((inbox / "kelas_10/ipa/a.pdf").resolve())).sha256
    ]


def test_a_copy_cut_short_beyond_repair_is_still_called_truncated(engine, inbox):
    """A teacher's interrupted copy is "truncated" (copy it again), not "damaged", even where
    MuPDF cannot open what is left; a whole file that cannot be read is "damaged"."""
    subject = inbox / "kelas_10" / "informatika"
    whole = pdfs.text_pdf(subject / "utuh.pdf", ["Halaman satu. " * 50]).read_bytes()
    (subject / "utuh.pdf").unlink()
    (subject / "terputus.pdf").write_bytes(whole[:300])  # MuPDF raises on this one
    (subject / "rusak_utuh.pdf").write_bytes(whole[:300] + b"\n%%EOF\n")
    stored = {Path(f.path).name: f for f in ingest(engine, inbox).files}
    assert stored["terputus.pdf"].reason_code == "truncated"
    assert stored["rusak_utuh.pdf"].reason_code == "damaged"
