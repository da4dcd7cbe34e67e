"""Reading order and structure of a document's pages: columns, tables, paragraphs, headings.

- **Columns**: a gutter is an x-range, in the middle of the text area, that no narrow line
  crosses, with lines on both sides. Lines (and tables) that cross it are full width and stay
  where they are; between two full-width items the left column is read top to bottom, then the
  right one. Lines, not MuPDF's blocks, are sorted, because a PDF drawn row by row across both
  columns gives blocks that hold lines of both.
- **Tables** (from `page.find_tables()`) replace the lines inside them and become one paragraph
  of rows "a | b | c", which the chunker never splits inside a row.
- **Paragraphs**: consecutive lines of one column with no more than a small vertical gap.
- **Headings** give each paragraph its `section` ("Bab 3 Jaringan Komputer › Graf Berarah").
  The PDF outline (`doc.get_toc()`) is preferred when there is one: an entry starts at the
  line on its page that reads like its title, or at the top of the page. Otherwise headings
  are lines in a larger font than the body text (mode of the document's sizes; 1.5x or a
  "Bab 3"/"BAB III" line: chapter; 1.12x or a short all-bold line: section); consecutive
  heading lines of one level ("Bab 3", "Jaringan Komputer") form one heading.

Standard library only (plus the sibling leaf modules): the PDF worker process imports it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from engine.pdf.pageclean import Line
from engine.pdf.textclean import normalize

SEPARATOR = " › "
_CHAPTER = re.compile(r"^(?:bab|chapter|unit)\s+(?:\d{1,2}|[ivxlc]{1,6})\b", re.IGNORECASE)
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


@dataclass
class Table:
    x0: float
    y0: float
    x1: float
    y1: float
    rows: list[str]


@dataclass
class PageLayout:
    """What the worker found on one page, before the document-wide passes."""

    lines: list[Line]
    tables: list[Table] = field(default_factory=list)
    ocr: bool = False


@dataclass
class _Paragraph:
    lines: list[Line]
    section: str
    kind: str  # "text" | "table"
    column: int
    level: int = 0  # heading level, 0 for body text
    rows: list[str] = field(default_factory=list)


def reading_order(
    lines: list[Line], tables: list[Table], body: float = 0.0, ocr: bool = False
) -> list[tuple[int, Line | Table]]:
    """Lines and tables in reading order, each with its column (0 full width, 1 left, 2 right).

    Full width are items that cross the gutter, and headings with nothing beside them in the
    other column (a chapter title above both columns is narrow, yet comes first).
    """
    inside = [t for t in tables if t.rows]
    items: list[Line | Table] = [*inside]
    for line in lines:
        cx, cy = (line.x0 + line.x1) / 2, (line.y0 + line.y1) / 2
        if not any(t.x0 <= cx <= t.x1 and t.y0 <= cy <= t.y1 for t in inside):
            items.append(line)
    if not items:
        return []
    gutter = _gutter(items)
    ordered = sorted(items, key=lambda i: (round(i.y0), i.x0))
    if gutter is None:
        return [(0, item) for item in ordered]
    columns = [1 if i.x1 <= gutter + 2 else 2 if i.x0 >= gutter - 2 else 0 for i in ordered]
    for index, item in enumerate(ordered):
        if columns[index] and isinstance(item, Line) and heading_level(item, body, ocr):
            window = 0.5 * max(item.size, 1.0)
            other = 3 - columns[index]
            if not any(
                c == other and o.y1 > item.y0 - window and o.y0 < item.y1 + window
                for c, o in zip(columns, ordered, strict=True)
            ):
                columns[index] = 0
    out: list[tuple[int, Line | Table]] = []
    segment: list[tuple[int, Line | Table]] = []
    for column, item in zip(columns, ordered, strict=True):
        if column:
            segment.append((column, item))
            continue
        out.extend(sorted(segment, key=lambda ci: (ci[0], round(ci[1].y0), ci[1].x0)))
        segment = []
        out.append((0, item))
    out.extend(sorted(segment, key=lambda ci: (ci[0], round(ci[1].y0), ci[1].x0)))
    return out


def _gutter(items: list[Line | Table]) -> float | None:
    """The x of the gap between two columns, or None for a one-column page."""
    left_edge = min(i.x0 for i in items)
    width = max(i.x1 for i in items) - left_edge
    narrow = sorted((i for i in items if i.x1 - i.x0 < 0.55 * width), key=lambda i: i.x0)
    if len(narrow) < 4 or width <= 0:
        return None
    # How many narrow items cover each 2-point slice of the width; a gutter is a run of
    # slices that (almost) none cross: an OCR misreading may bridge it once or twice.
    slices = int(width // 2) + 1
    cover = [0] * slices
    for item in narrow:
        for k in range(int((item.x0 - left_edge) // 2), int((item.x1 - left_edge) // 2) + 1):
            cover[min(k, slices - 1)] += 1
    allowed = max(1, len(narrow) // 25)
    best, best_gap, run_start = None, 6.0, None  # points: narrower gaps are word spaces
    for k in range(slices + 1):
        if k < slices and cover[k] <= allowed:
            run_start = k if run_start is None else run_start
            continue
        if run_start is not None:
            gap = (k - run_start) * 2.0
            centre = left_edge + (run_start + k) * 1.0
            if gap > best_gap and 0.3 <= (centre - left_edge) / width <= 0.7:
                best, best_gap = centre, gap
            run_start = None
    if best is None:
        return None
    left = sum(1 for i in narrow if i.x1 <= best)
    right = len(narrow) - left
    if min(left, right) < 2 or min(left, right) < 0.15 * len(narrow):
        return None
    return best


def body_size(pages: list[list[Line]]) -> float:
    """The most common font size, weighted by characters (0 when there is no text)."""
    sizes: Counter[float] = Counter()
    for lines in pages:
        for line in lines:
            sizes[round(line.size * 2) / 2] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 0.0


def heading_level(line: Line, body: float, ocr: bool = False) -> int:
    """1 for a chapter heading, 2 for a section heading, 0 for body text.

    OCR'd lines have no bold and only approximate sizes (letter heights), and table cells or
    misread figures come out as short lines: there a heading must also look like words
    (mostly letters, two words of three letters or more, a capital first).
    """
    text = line.text.strip()
    if not 2 <= len(text) <= 90 or not any(c.isalpha() for c in text) or body <= 0:
        return 0
    if _CHAPTER.match(text) and (line.size >= body * 1.1 or line.bold or len(text) <= 12):
        return 1
    if ocr and not _looks_like_words(text):
        return 0
    if line.size >= body * 1.5:
        return 1
    if text.endswith((".", ",", ";")):
        return 0
    bold = line.bold and len(text) <= 70 and not text.endswith(":")
    if line.size >= body * (1.15 if ocr else 1.12) or bold:
        return 2
    return 0


def _looks_like_words(text: str) -> bool:
    letters = sum(c.isalpha() for c in text)
    words = [w for w in text.split() if len(w) >= 3 and w.isalpha()]
    return text[0].isupper() and letters >= 0.85 * len(text.replace(" ", "")) and len(words) >= 2


class Sections:
    """The current heading path, as "Chapter › Section"."""

    def __init__(self) -> None:
        self.path: list[str] = []

    def enter(self, level: int, title: str) -> None:
        title = " ".join(title.split())
        self.path = [*self.path[: level - 1], title]

    @property
    def label(self) -> str:
        return SEPARATOR.join(p for p in self.path if p)


def _key(text: str) -> str:
    return _NOT_ALNUM.sub("", text.lower())


def _outline_starts(
    ordered: list[tuple[int, Line | Table]], entries: list[tuple[int, str]]
) -> tuple[list[tuple[int, str]], dict[int, list[tuple[int, str]]]]:
    """Outline entries of a page: those found at a line (by its index), and the rest."""
    found: dict[int, list[tuple[int, str]]] = {}
    unmatched = []
    start = 0
    for level, title in entries:
        want = _key(title)
        for index in range(start, len(ordered)):
            item = ordered[index][1]
            have = _key(item.text) if isinstance(item, Line) else ""
            if want and len(have) >= 3 and (have.startswith(want[:24]) or want.startswith(have)):
                found.setdefault(index, []).append((level, title))
                start = index
                break
        else:
            unmatched.append((level, title))
    return unmatched, found


def page_paragraphs(
    ordered: list[tuple[int, Line | Table]],
    sections: Sections,
    *,
    body: float,
    outline: list[tuple[int, str]] | None,
    toc: bool,
    keep: set[str],
    ocr: bool = False,
) -> list[tuple[str, str, str]]:
    """(text, section, kind) of each paragraph of a page; `sections` carries across pages.

    `outline` is None when the document has no outline (headings come from fonts), else the
    outline entries (level, title) that start on this page.
    """
    matched: dict[int, list[tuple[int, str]]] = {}
    if outline is not None:
        unmatched, matched = _outline_starts(ordered, outline)
        for level, title in unmatched:
            sections.enter(level, title)
    paragraphs: list[_Paragraph] = []
    for index, (column, item) in enumerate(ordered):
        if isinstance(item, Table):
            paragraphs.append(_Paragraph([], sections.label, "table", column, rows=item.rows))
            continue
        for level, title in matched.get(index, ()):
            sections.enter(level, title)
        level = heading_level(item, body, ocr) if outline is None and not toc else 0
        last = paragraphs[-1] if paragraphs else None
        if level and last and last.level == level and _continues(last, item, None, 1.6, 0.25):
            last.lines.append(item)
            sections.enter(level, " ".join(line.text for line in last.lines))
            last.section = sections.label
            continue
        if level:
            sections.enter(level, item.text)
        elif (
            last
            and not last.level
            and last.kind == "text"
            and index not in matched
            and _continues(last, item, column, 0.8)
        ):
            last.lines.append(item)
            continue
        paragraphs.append(_Paragraph([item], sections.label, "text", column, level))
    out = []
    for p in paragraphs:
        text = "\n".join(p.rows) if p.kind == "table" else "\n".join(x.text for x in p.lines)
        text = normalize(text, keep).strip()
        if text:
            out.append((text, p.section, p.kind))
    return out


def _continues(
    last: _Paragraph, line: Line, column: int | None, spacing: float, sizes: float = 0.12
) -> bool:
    """Does `line` continue paragraph `last` (same column, close below, about the same size)?

    `column` None: a heading's next line, which must start where it starts instead.
    """
    if not last.lines:
        return False
    prev = last.lines[-1]
    if column is None and abs(prev.x0 - line.x0) > 0.5 * max(prev.size, line.size, 1.0):
        return False
    if column is not None and last.column != column:
        return False
    size = max(prev.size, line.size, 1.0)
    gap = line.y0 - prev.y1
    return -0.5 * size <= gap <= spacing * size and abs(prev.size - line.size) <= sizes * size
