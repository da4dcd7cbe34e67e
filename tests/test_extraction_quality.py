"""What a teacher sees of a real textbook: passages that read like the book (no running headers,
footers or page numbers; ligatures and hyphenation undone; columns and tables in reading order),
with the chapter/section they come from, the printed page label, and the table of contents
marked so that it cannot outrank the chapters it lists."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.ingest.chunk import chunk_pages
from engine.pdf.extract import PdfExtractor
from engine.pdf.pageclean import Line, furniture, is_toc_page
from engine.pdf.pages import PageText, Paragraph
from engine.pdf.reading_order import reading_order
from engine.pdf.textclean import normalize
from tests.conftest import REPO
from tests.support import pdfs

HEADER = "Informatika untuk SMP/MTs Kelas IX"


# --- text normalisation -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("de\ufb01nisi dan \ufb02owchart", "definisi dan flowchart"),
        ("ja-\nringan komputer", "jaringan komputer"),
        ("anak-\nanak bermain", "anak-anak bermain"),
        ("sehari-\nhari", "sehari-hari"),
        ("Jawa-\nBali", "Jawa-\nBali"),  # capital after the break: a real compound
        ("kompu\u00adter", "komputer"),  # soft hyphen inside a word
        ("kompu\u00ad\nter", "komputer"),  # soft hyphen at a line end
        ("satu\u00a0dua\u200b", "satu dua"),
        ("Bab 1 Jaringan . . . . . . . . 12", "Bab 1 Jaringan ... 12"),
    ],
)
def test_text_is_normalised_like_the_book(raw, clean):
    assert normalize(raw) == clean


def test_a_hyphenated_word_the_document_writes_whole_keeps_its_hyphen():
    assert normalize("bolak-\nbalik") == "bolakbalik"
    assert normalize("bolak-\nbalik", keep={"bolak-balik"}) == "bolak-balik"


# --- page furniture, table of contents, reading order (units) --------------------------------
def _page(number: int) -> list[Line]:
    return [
        Line(56, 30, 200, 40, HEADER, 8.5),
        Line(56, 100, 280, 112, f"Isi halaman {number} yang berbeda-beda.", 10),
        Line(480, 805, 540, 815, f"Kelas 9 | {number}", 8.5),
    ]


def test_running_headers_footers_and_page_numbers_are_found():
    pages = [_page(n) for n in range(1, 6)]
    pages[2].append(Line(290, 790 + 20, 300, 818, "iv", 8))  # a bare roman page number
    dropped = furniture(pages, [842.0] * 5)
    assert dropped[0] == {0, 2}
    assert dropped[2] == {0, 2, 3}


def test_a_line_repeated_in_the_body_is_not_furniture():
    pages = [[Line(56, 400, 280, 412, "Ayo Berlatih", 10)] for _ in range(5)]
    assert furniture(pages, [842.0] * 5) == [set()] * 5


def test_table_of_contents_pages_are_recognised():
    toc = [Line(56, 80, 200, 96, "Daftar Isi", 16)] + [
        Line(56, 120 + 16 * i, 540, 132 + 16 * i, f"Bab {i} Judul {'.' * 40} {i * 10}", 10)
        for i in range(1, 6)
    ]
    assert is_toc_page(toc)
    assert not is_toc_page(_page(3))


def test_two_columns_are_read_column_by_column_and_titles_stay_first():
    title = Line(56, 70, 200, 90, "Bab 2 Algoritma", 18, True)
    left = [Line(56, 100 + 13 * i, 280, 111 + 13 * i, f"kiri {i}", 10) for i in range(4)]
    right = [Line(310, 100 + 13 * i, 540, 111 + 13 * i, f"kanan {i}", 10) for i in range(4)]
    rows = [line for pair in zip(left, right, strict=True) for line in pair]
    ordered = [item.text for _, item in reading_order([*rows, title], [], body=10)]
    assert ordered == ["Bab 2 Algoritma"] + [f"kiri {i}" for i in range(4)] + [
        f"kanan {i}" for i in range(4)
    ]


def test_the_chunker_never_splits_a_table_row():
    rows = "\n".join(f"Baris {i} | nilai {'panjang ' * 6}| akhir {i}" for i in range(30))
    page = PageText([Paragraph("Tabel berikut.", "Bab 1"), Paragraph(rows, "Bab 1", "table")])
    chunks = chunk_pages([page], size=300, overlap=60)
    for i in range(30):
        row = " ".join(f"Baris {i} | nilai {'panjang ' * 6}| akhir {i}".split())
        assert any(row in c.text for c in chunks), row
    assert all(c.section == "Bab 1" for c in chunks)


def test_a_new_section_starts_a_new_chunk_and_toc_chunks_are_marked():
    pages = [
        PageText([Paragraph("Bab 1 Jaringan ..... 1", "")], label="ii", kind="toc"),
        PageText(
            [
                Paragraph("Bab 1 Jaringan", "Bab 1 Jaringan"),
                Paragraph("Topologi. " * 5, "Bab 1 Jaringan › Topologi"),
                Paragraph("Graf berarah. " * 5, "Bab 1 Jaringan › Graf"),
            ],
            label="1",
        ),
    ]
    chunks = chunk_pages(pages, size=800, overlap=100)
    assert [(c.kind, c.section, c.page_label) for c in chunks] == [
        ("toc", "", "ii"),
        ("text", "Bab 1 Jaringan › Topologi", "1"),  # the chapter heading leads into it
        ("text", "Bab 1 Jaringan › Graf", "1"),
    ]
    assert chunks[1].text.startswith("Bab 1 Jaringan Topologi.")
    assert "Topologi" not in chunks[2].text  # no overlap across sections


# --- a generated textbook through the real worker --------------------------------------------
@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return pdfs.small_book(tmp_path_factory.mktemp("book") / "informatika.pdf")


@pytest.fixture(scope="module")
def extracted(book):
    with PdfExtractor(max_pages=50, timeout_s=60, memory_mb=2048, ocr_enabled=False) as reader:
        return reader.extract(book.path)


def test_the_book_reads_like_the_book(book, extracted):
    text = "\n".join(extracted.pages)
    assert HEADER not in text and "Kelas 9" not in text  # header, footer on every page
    assert "\ufb01" not in text and "efisien" in text
    assert "perangkatnya" in text.replace("\n", " ")  # "pera-\nngkatnya" rejoined
    assert "anak-anak" in text and "sehari-hari" in text
    assert extracted.ocr_pages == 0


def test_columns_come_in_reading_order(extracted):
    page = " ".join(extracted.pages[2].split())
    # left column: Topologi bintang; right column: the rest of that section, then Graf berarah
    assert page.index("Topologi bintang") < page.index("Topologi cincin")
    assert page.index("Topologi cincin") < page.index("Graf berarah adalah")
    assert "perangkat terhubung ke satu switch pusat sehingga kabel" in page


def test_table_rows_stay_whole(extracted):
    [table] = [p for p in extracted.layout[2].paragraphs if p.kind == "table"]
    assert table.text.split("\n") == [
        "Perangkat | Lapisan | Fungsi",
        "Router | Jaringan | Meneruskan paket",
        "Switch | Data link | Menghubungkan perangkat",
    ]


def test_pages_have_labels_sections_and_a_marked_table_of_contents(book, extracted):
    assert [p.label for p in extracted.layout] == ["i", "ii", "1", "2"]
    assert [p.kind for p in extracted.layout] == ["text", "toc", "text", "text"]
    sections = {
        para.text.split(" adalah ")[0]: para.section
        for page in extracted.layout
        for para in page.paragraphs
        if " adalah " in para.text
    }
    for term, section in book.sections.items():
        assert sections[term] == section


def test_sections_come_from_the_pdf_outline_when_there_is_one(tmp_path):
    book = pdfs.small_book(tmp_path / "outline.pdf", outline=True)
    with PdfExtractor(max_pages=50, timeout_s=60, memory_mb=2048) as reader:
        layout = reader.extract(book.path).layout
    found = {
        para.text.split(" adalah ")[0]: para.section
        for page in layout
        for para in page.paragraphs
        if " adalah " in para.text
    }
    for term, section in book.sections.items():  # outline titles: "Bab 1 Jaringan Komputer"
        assert found[term] == section


def test_stored_chunks_carry_section_label_and_kind_without_furniture(engine, inbox, book):
    target = inbox / "kelas_9" / "informatika" / "buku.pdf"
    target.parent.mkdir(parents=True)
    target.write_bytes(book.path.read_bytes())

    outcome = engine.ingestor.run([inbox], inbox)

    assert outcome.job.status == "completed", outcome.job.errors
    chunks = [c for col in engine.store.collections() for c in engine.store.get_chunks(col.name)]
    assert chunks and not [c.text for c in chunks if HEADER in c.text or "Kelas 9 |" in c.text]
    by_kind = {c.metadata["kind"] for c in chunks}
    assert by_kind == {"text", "toc"}
    [toc] = [c for c in chunks if c.metadata["kind"] == "toc"]
    assert toc.metadata["page"] == 2 and toc.metadata["page_label"] == "ii"
    [binary] = [c for c in chunks if "Pencarian biner adalah" in c.text]
    assert binary.metadata["section"] == "Bab 2 Algoritma › Pencarian Biner"
    assert (binary.metadata["page"], binary.metadata["page_label"]) == (4, "2")
    assert "\ufb01" not in " ".join(c.text for c in chunks)


def test_the_worker_imports_nothing_heavy_from_the_engine():
    code = (
        "import sys, engine.pdf.worker\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('engine', 'pydantic', 'numpy', 'chromadb', 'torch', 'pymupdf'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.split()
    assert set(loaded) <= {
        "engine",
        "engine.pdf",
        "engine.pdf.worker",
        "engine.pdf.reading_order",
        "engine.pdf.ocr",
        "engine.pdf.pageclean",
        "engine.pdf.textclean",
    }


def test_sections_reach_the_lexical_index_and_the_toc_is_not_indexed(engine, inbox):
    """The heading a chunk sits under is searchable by words; a table of contents is not."""
    from tests.support.pdfs import small_book

    small_book(inbox / "kelas_9" / "informatika" / "buku.pdf")
    outcome = engine.ingestor.run([inbox], inbox)
    assert str(outcome.files[0].status) == "ingested", outcome.files[0].reason
    rows = engine.catalog.conn.execute("SELECT section, kind FROM lexical").fetchall()
    assert any(r["section"] for r in rows)
    assert any(r["kind"] == "toc" for r in rows)  # marked, kept for showing ...
    (toc_postings,) = engine.catalog.conn.execute(
        "SELECT count(*) FROM lexical_postings p JOIN lexical l ON p.chunk = l.id"
        " WHERE l.kind = 'toc'"
    ).fetchone()
    assert toc_postings == 0  # ... but never matched by words
