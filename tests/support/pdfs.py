"""Generate test PDFs with PyMuPDF: text, multi-page, images only, encrypted, truncated, garbage."""

from __future__ import annotations

from pathlib import Path

import pymupdf


def _text_doc(pages: list[str]) -> pymupdf.Document:
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page()
        # insert_textbox wraps long text inside the page margins
        page.insert_textbox(pymupdf.Rect(50, 50, 545, 792), text, fontsize=9)
    return doc


def text_pdf(path: Path, pages: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _text_doc(pages) as doc:
        doc.save(path)
    return path


def image_pdf(path: Path, pages: int = 2) -> Path:
    """A 'scanned' PDF: pages that hold only an image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = pymupdf.open()
    for _ in range(pages):
        page = doc.new_page()
        pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 60, 80), False)
        pix.clear_with(180)
        page.insert_image(page.rect, pixmap=pix)
    doc.save(path)
    return path


def encrypted_pdf(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _text_doc(["Rahasia negara."]) as doc:
        doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="guru", owner_pw="admin")
    return path


def truncated_pdf(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _text_doc(["Halaman satu. " * 50, "Halaman dua. " * 50]) as doc:
        data = doc.tobytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def garbage_pdf(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40)
    return path


def renamed_docx(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 200 + b"word/document.xml")
    return path


def lesson_pages(topic: str, pages: int = 3, sentences: int = 12) -> list[str]:
    """Distinct, readable Indonesian-ish text per page (so chunks differ)."""
    return [
        " ".join(
            f"Pada halaman {p} bagian {s} kita belajar tentang {topic} nomor {p * 100 + s}."
            for s in range(1, sentences + 1)
        )
        for p in range(1, pages + 1)
    ]


def text_bomb_pdf(path: Path, pages: int = 2000, lines: int = 650, line_chars: int = 100) -> Path:
    """A small PDF whose `pages` pages all share one content stream of `lines` lines of
    `line_chars` characters: ~300 KB on disk, `pages * lines * line_chars` characters of text
    (130 million with the defaults)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = pymupdf.open()
    first = doc.new_page()
    first.insert_text((50, 50), "x", fontname="helv", fontsize=1)  # puts /helv in /Resources
    first.clean_contents()  # one content stream
    [contents] = first.get_contents()
    text = b"(" + b"ABCDEFGHIJ" * (line_chars // 10) + b") Tj T*\n"
    doc.update_stream(contents, b"BT /helv 1 Tf 1 TL 20 800 Td\n" + text * lines + b"ET\n")
    _, resources = doc.xref_get_key(first.xref, "Resources")
    for _ in range(pages - 1):
        page = doc.new_page()
        doc.xref_set_key(page.xref, "Resources", resources)
        doc.xref_set_key(page.xref, "Contents", f"{contents} 0 R")
    doc.save(path, deflate=True)
    return path


def small_book(path: Path, *, outline: bool = False):
    """A 4-page textbook (cover, table of contents, two chapters) in two columns, with a running
    header and footer, page labels i, ii, 1, 2, ligatures, hyphenation and a ruled table; see
    devtools/books.py. Returns the `Book` (its facts say on which page each term is)."""
    from devtools.books import Section, chapters_from, make_book

    chapters = chapters_from(
        {
            "Jaringan Komputer": {
                "Topologi Jaringan": [
                    (
                        "Topologi bintang",
                        "susunan jaringan dengan semua perangkat terhubung"
                        " ke satu switch pusat sehingga kabel yang putus hanya memutus satu"
                        " perangkat",
                    ),
                    (
                        "Topologi cincin",
                        "susunan jaringan yang perangkatnya membentuk"
                        " lingkaran tertutup sehingga data berputar satu arah",
                    ),
                ],
                "Graf Berarah": [
                    (
                        "Graf berarah",
                        "graf yang setiap sisinya memiliki arah dari satu simpul ke simpul lain",
                    ),
                ],
            },
            "Algoritma": {
                "Pencarian Biner": [
                    (
                        "Pencarian biner",
                        "cara mencari data pada larik terurut dengan membagi"
                        " dua ruang pencarian di setiap langkah",
                    ),
                ],
            },
        }
    )
    chapters[0].sections.append(
        Section(
            "Tabel Perangkat",
            ["Router adalah perangkat yang meneruskan paket antarjaringan berdasarkan IP."],
            table=[
                ["Perangkat", "Lapisan", "Fungsi"],
                ["Router", "Jaringan", "Meneruskan paket"],
                ["Switch", "Data link", "Menghubungkan perangkat"],
            ],
        )
    )
    return make_book(path, chapters, outline=outline)


def scanned_pdf(path: Path, lines: list[str], dpi: int = 150) -> Path:
    """One scanned page (a grey JPEG at `dpi`, no text layer) showing `lines` in 14 pt."""
    from devtools.books import scan_copy

    source = path.with_name(path.stem + ".source.pdf")
    source.parent.mkdir(parents=True, exist_ok=True)
    with pymupdf.open() as doc:
        page = doc.new_page(width=420, height=300)
        page.insert_textbox(pymupdf.Rect(30, 30, 390, 280), "\n".join(lines), fontsize=14)
        doc.save(source)
    scan_copy(source, path, dpi=dpi)
    source.unlink()
    return path


def mixed_pdf(path: Path, text: str, scanned_lines: list[str]) -> Path:
    """Page 1 has a text layer with `text`; page 2 is a scan of `scanned_lines`."""
    scan = scanned_pdf(path.with_name(path.stem + ".scan.pdf"), scanned_lines)
    with _text_doc([text]) as doc, pymupdf.open(scan) as scanned:
        doc.insert_pdf(scanned)
        doc.save(path)
    scan.unlink()
    return path
