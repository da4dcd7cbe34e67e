"""Scanned pages become searchable through offline OCR (Tesseract, Indonesian + English), in
the capped PDF worker; the job says how many pages were OCR'd; without OCR a scan is
`needs_ocr` with the reason. Each test OCRs one or two small pages."""

from __future__ import annotations

import shutil

import pytest

from engine.jobs.base import FileStatus
from engine.pdf.extract import ExtractionError, PdfExtractor
from tests.support import pdfs

pytestmark = pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="needs tesseract-ocr with ind and eng"
)

LINES = ["Klorofil menyerap cahaya matahari", "untuk fotosintesis pada daun hijau."]


def _chunks(engine) -> list:
    return [c for col in engine.store.collections() for c in engine.store.get_chunks(col.name)]


@pytest.mark.slow
def test_a_scanned_page_becomes_searchable_text_and_the_job_counts_it(engine, inbox):
    pdfs.scanned_pdf(inbox / "kelas_7" / "ipa" / "pindaian.pdf", LINES)

    outcome = engine.ingestor.run([inbox], inbox)

    [result] = outcome.files
    assert result.status is FileStatus.INGESTED, result.reason
    assert result.ocr_pages == 1 and "1 page(s) read by OCR" in result.reason
    [stored] = engine.tracker.job_files(outcome.job.job_id)
    assert stored.ocr_pages == 1  # kept in the job record (SQLite migration 8)
    text = " ".join(c.text for c in _chunks(engine)).lower()
    assert "klorofil" in text and "fotosintesis" in text
    hits = engine.searcher.search("klorofil fotosintesis", k=1)
    assert hits and hits[0].source == "pindaian.pdf" and hits[0].page == 1


@pytest.mark.slow
def test_a_pdf_mixing_text_and_scanned_pages_gets_both(tmp_path):
    path = pdfs.mixed_pdf(tmp_path / "campuran.pdf", "Halaman teks tentang mitokondria.", LINES)
    with PdfExtractor(max_pages=10, timeout_s=60, memory_mb=2048) as reader:
        extracted = reader.extract(path)
    assert extracted.ocr_pages == 1
    assert "mitokondria" in extracted.pages[0]
    assert "fotosintesis" in extracted.pages[1].lower()
    assert [p.ocr for p in extracted.layout] == [False, True]


def test_with_ocr_switched_off_a_scan_needs_ocr(engine, inbox, monkeypatch):
    monkeypatch.setattr(engine.settings, "ocr_enabled", False)
    pdfs.scanned_pdf(inbox / "kelas_7" / "ipa" / "pindaian.pdf", LINES)

    [result] = engine.ingestor.run([inbox], inbox).files

    assert result.status is FileStatus.NEEDS_OCR
    assert "OCR_ENABLED=false" in result.reason and result.ocr_pages == 0


def test_missing_language_data_is_reported_not_downloaded(tmp_path):
    path = pdfs.scanned_pdf(tmp_path / "pindaian.pdf", LINES)
    with (
        PdfExtractor(max_pages=10, timeout_s=60, memory_mb=2048, ocr_languages="xyz") as reader,
        pytest.raises(ExtractionError) as error,
    ):
        reader.extract(path)
    assert error.value.status is FileStatus.NEEDS_OCR
    assert "no language data for xyz" in error.value.reason


@pytest.mark.slow
def test_a_page_that_ocrs_too_long_is_left_out_with_the_reason(tmp_path):
    path = pdfs.mixed_pdf(tmp_path / "campuran.pdf", "Halaman teks tentang mitokondria.", LINES)
    with PdfExtractor(
        max_pages=10, timeout_s=60, memory_mb=2048, ocr_page_timeout_s=0.01
    ) as reader:
        extracted = reader.extract(path)
    assert extracted.ocr_pages == 0 and "mitokondria" in extracted.pages[0]
    assert "page 2: OCR took longer than the page time limit" in extracted.note


@pytest.mark.slow
def test_an_english_question_finds_the_page_of_a_scanned_indonesian_book(
    settings, inbox, multilingual
):
    from devtools.books import scan_copy
    from engine.app import build_engine

    book = pdfs.small_book(settings.data_dir / "asli" / "informatika.pdf")
    scan_copy(book.path, inbox / "kelas_9" / "informatika" / "pindaian.pdf")
    engine = build_engine(settings, embedder=multilingual)
    outcome = engine.ingestor.run([inbox], inbox)
    [result] = outcome.files
    assert result.status is FileStatus.INGESTED and result.ocr_pages == book.pages

    for question, term in (
        ("Which network layout arranges the devices in a closed loop?", "Topologi cincin"),
        ("How do you search a sorted array by halving it each step?", "Pencarian biner"),
    ):
        [top] = engine.searcher.search(question, k=1)
        first, _, last = top.pages.partition("-")
        assert int(first) <= book.facts[term] <= int(last or first), (question, top)
