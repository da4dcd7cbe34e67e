"""Lines of a page with their boxes, and what is not the book's text: running headers, footers,
page numbers, and tables of contents.

Running headers and footers ("Informatika untuk SMP/MTs Kelas IX" at the top, "Kelas 9 | 41" at
the bottom) are lines in the top or bottom band of the page whose text, with digits ignored,
repeats on several pages. Bare page numbers ("41", "- 41 -", "iv", "Halaman 41") in a band are
dropped on any page. The comparison uses letters only, so OCR noise in the digits and
separators ("Kelas 9 | 41" read as "Kelas 9 1 41") still matches.

A table-of-contents page ("Daftar Isi", lines ending in dot leaders and a page number) is
recognised so its chunks can be marked `kind: "toc"` and not outrank the chapters they list.

Standard library only: the PDF worker process (`engine.pdf.worker`) imports it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

BAND = 0.08  # top and bottom share of the page height where headers and footers live
_PAGE_NUMBER = re.compile(
    r"^\W*(?:halaman|hal\.?|page)?\W*(?:\d{1,4}|[ivxlcdm]{1,7})\W*$", re.IGNORECASE
)
_LEADERS = re.compile(r"(?:[.·…_\-]\s?){3,}\s*(?:\d{1,4}|[ivxlcdm]{1,7})\s*$", re.IGNORECASE)
_ENDS_IN_NUMBER = re.compile(r"\S\s+\d{1,4}\s*$")
_TOC_TITLE = re.compile(
    r"^\W*(daftar isi|daftar gambar|daftar tabel|table of contents|contents|isi buku)\W*$",
    re.IGNORECASE,
)
_NOT_LETTERS = re.compile(r"[^a-z]+")
_ROMAN = re.compile(r"\b[ivxlcdm]{1,7}\b")


@dataclass
class Line:
    """One line of text on a page, in PDF points (y grows downwards)."""

    x0: float
    y0: float
    x1: float
    y1: float
    text: str
    size: float = 0.0  # font size (for OCR: the height of the letters)
    bold: bool = False


def lines_from_dict(page_dict: dict) -> list[Line]:
    """The lines of `page.get_text("dict")`, split where a wide gap separates two columns."""
    lines = []
    for block in page_dict.get("blocks", ()):
        for line in block.get("lines", ()):
            lines.extend(_split_at_gaps(line.get("spans", ())))
    return lines


def _split_at_gaps(spans) -> list[Line]:
    """One line per run of spans without a gap wider than 1.5 font sizes between words
    (MuPDF and Tesseract may join the lines of two columns that share a baseline)."""
    pieces: list[list[dict]] = []
    pending: list[dict] = []  # spaces between words, kept only if the words stay together
    for span in spans:
        if not span.get("text"):
            continue
        if not span["text"].strip():
            pending.append(span)
            continue
        if pieces:
            gap = span["bbox"][0] - pieces[-1][-1]["bbox"][2]
            if gap <= 1.5 * max(span.get("size", 0), 1):
                pieces[-1].extend([*pending, span])
                pending = []
                continue
        pieces.append([span])
        pending = []
    return [_line(piece) for piece in pieces]


def _line(piece: list[dict]) -> Line:
    words = [s for s in piece if s["text"].strip()]
    chars = sum(len(s["text"].strip()) for s in words) or 1
    size = sum(s.get("size", 0) * len(s["text"].strip()) for s in words) / chars
    bold = all(s.get("flags", 0) & 16 or "bold" in s.get("font", "").lower() for s in words)
    return Line(
        min(s["bbox"][0] for s in words),
        min(s["bbox"][1] for s in words),
        max(s["bbox"][2] for s in words),
        max(s["bbox"][3] for s in words),
        "".join(s["text"] for s in piece).strip(),
        round(size, 1),
        bool(bold),
    )


def _band(line: Line, height: float) -> str | None:
    if line.y1 <= height * BAND:
        return "top"
    if line.y0 >= height * (1 - BAND):
        return "bottom"
    return None


def _letters(text: str) -> str:
    """Letters only, without roman numerals ("Kelas 9 | iv" and "Kelas 9 | 41" match)."""
    return _NOT_LETTERS.sub("", _ROMAN.sub(" ", text.lower()))


def furniture(pages: list[list[Line]], heights: list[float]) -> list[set[int]]:
    """For each page, the indices of its lines that are running headers, footers or page
    numbers.

    A band line is furniture when its letters (digits and punctuation ignored) recur in the
    same band on at least `min(3, pages with text)` pages (2 for short documents), or when
    it is a bare page number.
    """
    keys: list[dict[int, tuple[str, str]]] = []
    seen: Counter[tuple[str, str]] = Counter()
    for lines, height in zip(pages, heights, strict=True):
        page_keys = {}
        for index, line in enumerate(lines):
            band = _band(line, height)
            if band and len(line.text) <= 150:
                page_keys[index] = (band, _letters(line.text))
        keys.append(page_keys)
        seen.update(set(page_keys.values()))
    with_text = sum(1 for lines in pages if lines)
    repeats = 2 if with_text <= 4 else 3
    drop = []
    for lines, page_keys in zip(pages, keys, strict=True):
        dropped = set()
        for index, key in page_keys.items():
            if _PAGE_NUMBER.match(lines[index].text):
                dropped.add(index)
            elif len(key[1]) >= 3 and seen[key] >= repeats:
                dropped.add(index)
        drop.append(dropped)
    return drop


def is_toc_page(lines: list[Line]) -> bool:
    """A table of contents: a "Daftar Isi" title among the first lines, or many lines that
    end in dot leaders and page numbers."""
    texts = [line.text for line in lines if line.text.strip()]
    if not texts:
        return False
    leaders = sum(1 for t in texts if _LEADERS.search(t))
    titled = any(_TOC_TITLE.match(t) for t in texts[:3])
    if titled:  # OCR turns dot leaders into noise: the title at the top is enough
        return True
    numbered = sum(1 for t in texts if _ENDS_IN_NUMBER.search(t))
    return (leaders >= 3 and leaders >= 0.3 * len(texts)) or (
        numbered >= 5 and leaders >= 1 and numbered >= 0.6 * len(texts)
    )
