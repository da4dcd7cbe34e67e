"""Realistic test textbooks made with PyMuPDF, and scanned copies of them.

A book looks like a BSE (Buku Sekolah Elektronik) textbook: roman-numbered front matter with a
table of contents ("Daftar Isi", dot leaders), a running header ("Informatika untuk SMP/MTs
Kelas IX") and footer ("Kelas 9 | 41") on every page, page labels (i, ii, 1, 2 ...), chapters
("Bab 3" + title, large bold), bold section headings, body text in two columns whose lines are
drawn row by row (left, right, left, ...) so that stream order is *not* reading order, words
hyphenated at line ends, "fi"/"fl" drawn as ligature glyphs, and ruled tables across the page.

`make_book` returns where every fact landed (`Book.facts`: term -> PDF page), so tests and
bench/books.py can ask questions with known answers. `scan_copy` renders pages to grey JPEG
images (no text layer), like a school's photocopier scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pymupdf

A4 = pymupdf.paper_rect("a4")
MARGIN = 56.0
GUTTER = 22.0
TOP, BOTTOM = 70.0, A4.height - 60.0
BODY_SIZE, BODY_LEADING = 10.0, 13.0
COLUMN_WIDTH = (A4.width - 2 * MARGIN - GUTTER) / 2
FRONT_PAGES = 2  # roman-numbered pages before page 1


@dataclass
class Section:
    title: str
    paragraphs: list[str]
    table: list[list[str]] | None = None  # rows of cells, drawn ruled across the page


@dataclass
class Chapter:
    title: str
    sections: list[Section]


@dataclass
class Book:
    """A generated book: its file, and the PDF page (1-based) each fact's term is on."""

    path: Path
    pages: int
    facts: dict[str, int] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)  # term -> "Bab n › Section"


class _Writer:
    """Lays out a book page by page; the fonts are PyMuPDF's built-in Helvetica (no files)."""

    def __init__(self, header: str, footer: str, ligatures: bool, rows_interleaved: bool):
        self.doc = pymupdf.open()
        self.regular, self.bold = pymupdf.Font("helv"), pymupdf.Font("hebo")
        self.header, self.footer = header, footer
        self.ligatures, self.rows_interleaved = ligatures, rows_interleaved
        self.page: pymupdf.Page | None = None
        self.y = TOP
        self.writer: pymupdf.TextWriter | None = None

    # --- pages ---------------------------------------------------------------------------
    def new_page(self, furniture: bool = True) -> None:
        self.flush()
        self.page = self.doc.new_page(width=A4.width, height=A4.height)
        self.writer = pymupdf.TextWriter(self.page.rect)
        self.y = TOP
        if furniture:
            number = self.doc.page_count - FRONT_PAGES
            label = _roman(self.doc.page_count) if number < 1 else str(number)
            self.text(MARGIN, 40, self.header, 8.5, bold=False)
            footer = self.footer.format(label=label)
            width = self.regular.text_length(footer, 8.5)
            self.text(A4.width - MARGIN - width, A4.height - 30, footer, 8.5, bold=False)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.write_text(self.page)
            self.writer = None

    @property
    def number(self) -> int:
        return self.doc.page_count

    def text(self, x: float, y: float, text: str, size: float, bold: bool) -> None:
        if self.ligatures:
            text = text.replace("fi", "\ufb01").replace("fl", "\ufb02")
        self.writer.append((x, y), text, font=self.bold if bold else self.regular, fontsize=size)

    # --- content -------------------------------------------------------------------------
    def wrap(self, text: str, width: float, size: float = BODY_SIZE) -> list[str]:
        """Lines of at most `width`, hyphenating long words at line ends as books do."""
        lines, line = [], ""
        for word in text.split():
            candidate = f"{line} {word}".strip()
            if self.regular.text_length(candidate, size) <= width:
                line = candidate
                continue
            head, tail = self._hyphenate(line, word, width, size)
            if head:
                lines.append(f"{line} {head}".strip())
                line = tail
            else:
                lines.append(line)
                line = word
        return [*lines, line] if line else lines

    def _hyphenate(self, line: str, word: str, width: float, size: float) -> tuple[str, str]:
        if "-" in word.strip(".,;:"):  # reduplication (anak-anak): break at its own hyphen
            head, _, tail = word.partition("-")
            if self.regular.text_length(f"{line} {head}-", size) <= width:
                return f"{head}-", tail
            return "", word
        if len(word) < 8 or not word.isalpha():
            return "", word
        for cut in range(len(word) - 3, 3, -1):
            if self.regular.text_length(f"{line} {word[:cut]}-", size) <= width:
                return f"{word[:cut]}-", word[cut:]
        return "", word

    def full_width(self, text: str, size: float, bold: bool, space_after: float) -> None:
        for line in self.wrap(text, A4.width - 2 * MARGIN, size):
            if self.y + size > BOTTOM:
                self.new_page()
            self.y += size * 1.3
            self.text(MARGIN, self.y, line, size, bold)
        self.y += space_after

    def columns(self, items: list[tuple[str, bool, str]], facts: dict) -> None:
        """Two balanced columns of (text, is_heading, fact term) items, then below them."""
        lines: list[tuple[str, bool, str]] = []
        for text, heading, term in items:
            size = 11.5 if heading else BODY_SIZE
            for line in self.wrap(text, COLUMN_WIDTH, size):
                lines.append((line, heading, term))
            lines.append(("", False, ""))  # paragraph gap
        while lines:
            capacity = int((BOTTOM - self.y) // BODY_LEADING)
            if capacity < 3:
                self.new_page()
                continue
            half = min(capacity, -(-len(lines) // 2))
            left, right, lines = lines[:half], lines[half : 2 * half], lines[2 * half :]
            self._draw_columns(left, right, facts)
            if lines:
                self.new_page()

    def _draw_columns(self, left: list, right: list, facts: dict) -> None:
        top = self.y
        cells = [(MARGIN, left), (MARGIN + COLUMN_WIDTH + GUTTER, right)]
        order = []
        for row in range(max(len(left), len(right))):
            for x, column in cells:
                if row < len(column):
                    order.append((x, row, column[row]))
        if not self.rows_interleaved:
            order.sort(key=lambda item: (item[0], item[1]))
        for x, row, (line, heading, term) in order:
            if not line:
                continue
            self.text(
                x, top + (row + 1) * BODY_LEADING, line, 11.5 if heading else BODY_SIZE, heading
            )
            if term and term not in facts and (heading or term.lower() in line.lower()):
                facts[term] = self.number  # a heading's "§title" records where it landed
        self.y = top + (max(len(left), len(right)) + 1) * BODY_LEADING

    def table(self, rows: list[list[str]]) -> None:
        height = 18.0 * len(rows)
        if self.y + height > BOTTOM:
            self.new_page()
        widths = (A4.width - 2 * MARGIN) / len(rows[0])
        for r, row in enumerate(rows):
            y0 = self.y + r * 18.0
            for c, cell in enumerate(row):
                rect = pymupdf.Rect(MARGIN + c * widths, y0, MARGIN + (c + 1) * widths, y0 + 18)
                self.page.draw_rect(rect, color=(0, 0, 0), width=0.6)
                self.text(rect.x0 + 4, rect.y1 - 5, cell, 9, bold=r == 0)
        self.y += height + 12


def make_book(
    path: Path,
    chapters: list[Chapter],
    *,
    header: str = "Informatika untuk SMP/MTs Kelas IX",
    footer: str = "Kelas 9 | {label}",
    ligatures: bool = True,
    rows_interleaved: bool = True,
    outline: bool = False,
    toc: bool = True,
) -> Book:
    """Write a textbook with `chapters` to `path` (see the module docstring)."""
    w = _Writer(header, footer, ligatures, rows_interleaved)
    facts: dict[str, int] = {}
    sections: dict[str, str] = {}
    starts: list[tuple[int, str, int]] = []  # (level, title, page) for the outline and TOC
    w.new_page(furniture=False)  # cover (page i)
    w.y = 300
    w.full_width("INFORMATIKA", 26, True, 10)
    w.full_width("SMP/MTs Kelas IX", 16, False, 0)
    w.new_page()  # table of contents (page ii), filled in at the end
    toc_page = w.number - 1
    for number, chapter in enumerate(chapters, start=1):
        w.new_page()
        starts.append((1, f"Bab {number} {chapter.title}", w.number))
        w.full_width(f"Bab {number}", 18, True, 0)
        w.full_width(chapter.title, 18, True, 14)
        items: list[tuple[str, bool, str]] = []
        for section in chapter.sections:
            starts.append((2, section.title, w.number))
            if section.table:  # a full-width table interrupts the columns
                w.columns(items, facts)
                items = []
                w.full_width(section.title, 11.5, True, 4)
                w.table(section.table)
            else:
                items.append((section.title, True, f"§{section.title}"))
            for paragraph in section.paragraphs:
                term = paragraph.split(" adalah ")[0] if " adalah " in paragraph else ""
                items.append((paragraph, False, term))
                if term:
                    sections[term] = f"Bab {number} {chapter.title} › {section.title}"
        w.columns(items, facts)
    w.flush()
    starts = [(lvl, title, facts.pop(f"§{title}", page)) for lvl, title, page in starts]
    if toc:
        _write_toc(w, w.doc[toc_page], starts)
    labels = [{"startpage": 0, "prefix": "", "style": "r", "firstpagenum": 1}]
    labels.append({"startpage": FRONT_PAGES, "prefix": "", "style": "D", "firstpagenum": 1})
    w.doc.set_page_labels(labels)
    if outline:
        w.doc.set_toc([[lvl, title, page] for lvl, title, page in starts])
    path.parent.mkdir(parents=True, exist_ok=True)
    w.doc.save(path, garbage=3, deflate=True)
    pages = w.doc.page_count
    w.doc.close()
    return Book(path, pages, facts, sections)


def _write_toc(w: _Writer, page: pymupdf.Page, starts: list[tuple[int, str, int]]) -> None:
    writer = pymupdf.TextWriter(page.rect)
    writer.append((MARGIN, TOP + 10), "Daftar Isi", font=w.bold, fontsize=16)
    y = TOP + 40
    for level, title, number in starts:
        indent = MARGIN + (0 if level == 1 else 16)
        label = str(number - FRONT_PAGES)
        dots_from = indent + w.regular.text_length(title + " ", 10)
        end = A4.width - MARGIN - w.regular.text_length(" " + label, 10)
        dots = "." * max(3, int((end - dots_from) // w.regular.text_length(".", 10)))
        font = w.bold if level == 1 else w.regular
        writer.append((indent, y), f"{title} {dots} {label}", font=font, fontsize=10)
        y += 16
    writer.write_text(page)


def scan_copy(source: Path, target: Path, dpi: int = 150, quality: int = 80) -> Path:
    """A scanned copy: every page rendered to a grey JPEG image, with no text layer."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with pymupdf.open(source) as doc, pymupdf.open() as scan:
        for page in doc:
            pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY)
            new = scan.new_page(width=page.rect.width, height=page.rect.height)
            new.insert_image(new.rect, stream=pix.tobytes("jpeg", jpg_quality=quality))
        scan.save(target, garbage=3, deflate=True)
    return target


def _roman(number: int) -> str:
    values = [(10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")]
    out = ""
    for value, letters in values:
        while number >= value:
            out, number = out + letters, number - value
    return out


# --- content ---------------------------------------------------------------------------------

_FILLER = (
    "Peserta didik mengerjakan latihan ini secara berkelompok dan berdiskusi dengan teman "
    "sebangku. Guru memberikan contoh efisien dari kehidupan sehari-hari agar anak-anak mudah "
    "memahami konsep tersebut. Setiap kelompok mempresentasikan hasil diskusinya di depan kelas "
    "dan kelompok lain memberikan tanggapan yang membangun."
)


def chapters_from(topics: dict[str, dict[str, list[tuple[str, str]]]]) -> list[Chapter]:
    """Chapters from {chapter: {section: [(term, definition)]}}; each definition becomes a
    paragraph "<term> adalah <definition>." followed by classroom filler text."""
    return [
        Chapter(
            title,
            [
                Section(name, [f"{term} adalah {text}. {_FILLER}" for term, text in facts])
                for name, facts in sections.items()
            ],
        )
        for title, sections in topics.items()
    ]
