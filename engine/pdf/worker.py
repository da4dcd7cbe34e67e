"""Worker process for `engine.pdf.extract`: reads PDFs named on stdin, answers on its own pipe.

Usage: `python -m engine.pdf.worker <result fd>`.

Protocol: one JSON request per line on stdin,
`{"id": n, "path": ..., "max_pages": ..., "max_page_chars": ..., "max_file_chars": ...,
"ocr": {"enabled": true, "languages": "ind+eng", "dpi": 200, "skip_pages": []}}`;
ASCII JSON lines on the result fd, echoing `id` and `path`: zero or more progress messages
`{"id": n, "path": ..., "status": "progress", "ocr_page": 3, "ocr_pages": 10}` (sent before
each page is OCR'd, so the parent can give every page its own time limit) or `{..., "status":
"progress", "stage": "layout"}`, then the answer:
`{"id": n, "path": ..., "status": "ok", "pages": [{"paragraphs": [[text, section, kind]],
"label": "41", "kind": "text"|"toc", "ocr": false}, ...], "ocr_pages": 0, "note": "...",
"file": [dev, ino]}` or `{"id": n, "path": ..., "status": <FileStatus>, "reason": ...}`.

What a page becomes (see `engine.pdf.pageclean`, `reading_order`, `textclean`): running
headers, footers and page numbers are dropped; lines are put in reading order (two columns read
column by column, ruled tables as rows "a | b | c"); paragraphs carry the chapter/section they
fall under (PDF outline first, else font sizes); text is normalised (NFKC, ligatures, soft
hyphens, words hyphenated at line ends). Pages without a text layer that hold images are read
by Tesseract through PyMuPDF (`get_textpage_ocr`, in this process, under the same memory cap)
when OCR is enabled; language data comes from the installed tesseract-ocr packages, nothing is
downloaded.

Answers never travel on stdout: MuPDF and PyMuPDF print warnings to the C-level stdout and
stderr, which the parent only keeps a tail of for diagnosing crashes. The answer channel is a
pipe nobody else writes to, so no message can be mistaken for (or spliced into) a result.

Text bombs: a small PDF can expand to gigabytes of text (thousands of pages sharing one
content stream). Reading stops as soon as one page exceeds `max_page_chars` or the file
exceeds `max_file_chars`, and the whole file is refused as `too_large`.

The worker stays up between files so PyMuPDF is imported once per run, not once per file.
It starts fast: from the engine it imports only the leaf modules `engine.pdf.textclean`,
`pageclean`, `reading_order` and `ocr`, which use the standard library alone (the `engine` and
`engine.pdf` packages' `__init__` files are docstrings), never settings, pydantic or numpy;
tests/test_extraction_quality.py checks this.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable

from engine.pdf.ocr import ocr_pages
from engine.pdf.pageclean import furniture, is_toc_page, lines_from_dict
from engine.pdf.reading_order import (
    PageLayout,
    Sections,
    Table,
    body_size,
    page_paragraphs,
    reading_order,
)
from engine.pdf.textclean import hyphenated_words

# Magic numbers of files that teachers commonly rename to .pdf by mistake.
_SIGNATURES = {
    b"PK\x03\x04": "a ZIP archive or Office document (docx/pptx/xlsx)",
    b"\xd0\xcf\x11\xe0": "an old Microsoft Office document (doc/ppt/xls)",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"{\\rtf": "an RTF document",
    b"<!DOCTYPE": "a web page (HTML)",
    b"<html": "a web page (HTML)",
}
_OPEN_FLAGS = (
    os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
)


def _fail(status: str, reason: str = "", code: str = "") -> dict:
    """A refusal: its status, and its reason as text or as a code of `engine.jobs.reasons`."""
    from engine.jobs.reasons import sentence

    return {"status": status, "reason": reason or sentence(code, {}), "code": code}


def _clean(text: str) -> str:
    """Page text as storable text: no lone surrogates (from odd ToUnicode maps), no NULs."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def read_pdf(
    path: str,
    max_pages: int,
    max_page_chars: int = 100_000,
    max_file_chars: int = 5_000_000,
    ocr: dict | None = None,
    progress: Callable[[dict], None] = lambda message: None,
) -> dict:
    """Read the text of every page of the PDF at `path`, within the given caps.

    `ocr` = {"enabled", "languages", "dpi", "skip_pages"}; `progress` is told before each
    OCR'd page ({"ocr_page": n, "ocr_pages": total}) and when OCR is over ({"stage": ...}).
    """
    fd = os.open(path, _OPEN_FLAGS)  # never blocks on a FIFO, never follows a swapped-in link
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return _fail("not_a_file", "not a regular file")
        head = fh.read(1024)
        fh.seek(max(0, info.st_size - 2048))
        tail = fh.read()
        if not head:
            return _fail("empty", code="empty")
        if b"%PDF-" not in head:
            kind = next((v for k, v in _SIGNATURES.items() if head.lstrip().startswith(k)), None)
            return _fail("not_pdf", f"not a PDF: the file is {kind or 'not a PDF document'}")
        # Open the file already checked, not whatever the name points to by now.
        by_fd = f"/proc/self/fd/{fd}"
        result = _read_open_pdf(
            by_fd if os.path.exists(by_fd) else path,
            tail,
            max_pages,
            max_page_chars,
            max_file_chars,
            ocr or {"enabled": False},
            progress,
        )
    if result["status"] == "ok":
        result["file"] = [info.st_dev, info.st_ino]
    return result


def _read_open_pdf(
    name: str,
    tail: bytes,
    max_pages: int,
    max_page_chars: int,
    max_file_chars: int,
    ocr: dict,
    progress: Callable[[dict], None],
) -> dict:
    import pymupdf

    try:
        doc = pymupdf.open(name, filetype="pdf")
    except Exception:  # PyMuPDF raises FileDataError and friends
        # a file without its end marker is an incomplete copy, whether or not MuPDF can repair it
        return _fail("corrupt", code="damaged" if b"%%EOF" in tail else "truncated")
    with doc:
        if doc.needs_pass:
            return _fail("encrypted", code="encrypted")
        if doc.is_repaired and b"%%EOF" not in tail:
            return _fail("corrupt", code="truncated")
        if doc.page_count == 0:
            return _fail("corrupt", code="no_pages")
        if doc.page_count > max_pages:
            return _fail(
                "too_many_pages", f"{doc.page_count} pages, more than the limit of {max_pages}"
            )
        caps = _Caps(max_page_chars, max_file_chars, doc.page_count)
        layouts: list[PageLayout] = []
        scanned: list[int] = []  # 0-based numbers of pages without text that hold images
        for index, page in enumerate(doc):
            try:
                textpage = page.get_textpage(flags=pymupdf.TEXTFLAGS_TEXT)
                if refused := caps.check(index + 1, textpage.extractText()):
                    return refused
                if caps.last_empty:
                    layouts.append(PageLayout([]))
                    if page.get_images(full=False):
                        scanned.append(index)
                    continue
                lines = lines_from_dict(textpage.extractDICT())
                layouts.append(PageLayout(lines, _tables(page)))
            except Exception as exc:
                return _fail("corrupt", f"page {index + 1} cannot be read ({exc})")
        ocr_read, ocr_problem = 0, ""
        if scanned and ocr.get("enabled"):
            ocr_read, ocr_problem, refused = ocr_pages(doc, scanned, layouts, caps, ocr, progress)
            if refused:
                return refused
            progress({"stage": "layout"})
        pages = _structure(doc, layouts)
    return _outcome(pages, scanned, ocr_read, ocr_problem, ocr)


class _Caps:
    """Text-bomb caps: characters per page and per file, checked as pages are read."""

    def __init__(self, max_page_chars: int, max_file_chars: int, page_count: int):
        self.max_page_chars, self.max_file_chars = max_page_chars, max_file_chars
        self.page_count, self.total, self.last_empty = page_count, 0, False

    def check(self, number: int, text: str) -> dict | None:
        self.last_empty = not text.strip()
        if len(text) > self.max_page_chars:
            return _fail(
                "too_large",
                f"page {number} holds {len(text):,} characters of text, more than the limit"
                f" of {self.max_page_chars:,} (MAX_PAGE_CHARS); the file was not read further",
            )
        self.total += len(text)
        if self.total > self.max_file_chars:
            return _fail(
                "too_large",
                f"the text is longer than the limit of {self.max_file_chars:,} characters"
                f" (MAX_FILE_CHARS) by page {number} of {self.page_count}; the file was not"
                " read further",
            )
        return None


def _tables(page) -> list[Table]:
    """Ruled tables of the page as rows "a | b | c" (only pages with vector drawings)."""
    import pymupdf

    drawings = page.get_cdrawings()
    if len(drawings) < 4:  # find_tables costs ~20 ms even on a page without rules
        return []
    ruled = pymupdf.Rect()
    for drawing in drawings:
        ruled |= drawing["rect"]
    tables = []
    # clipped to the drawings: ~40% faster than the whole page (it is ~0.3 s a table page)
    for found in page.find_tables(clip=ruled + (-2, -2, 2, 2)).tables:
        rows = [
            " | ".join(" ".join((cell or "").split()) for cell in row) for row in found.extract()
        ]
        rows = [row for row in rows if row.replace("|", "").strip()]
        if rows:
            tables.append(Table(*found.bbox, rows=rows))
    return tables


def _structure(doc, layouts: list) -> list[dict]:
    """Document-wide passes: drop headers/footers, find TOC pages, order, headings."""
    drop = furniture([p.lines for p in layouts], [page.rect.height for page in doc])
    for layout, dropped in zip(layouts, drop, strict=True):
        layout.lines = [line for i, line in enumerate(layout.lines) if i not in dropped]
    body = body_size([p.lines for p in layouts if not p.ocr])
    body_ocr = body_size([p.lines for p in layouts if p.ocr])
    keep: set[str] = set()
    for layout in layouts:
        for line in layout.lines:
            if "-" in line.text:
                keep |= hyphenated_words(line.text)
    outline: dict[int, list[tuple[int, str]]] | None = None
    entries = [e for e in doc.get_toc(simple=True) if len(e) >= 3 and e[2] >= 1]
    if entries:
        outline = {}
        for level, title, page in entries:
            outline.setdefault(page, []).append((level, title))
    sections = Sections()
    pages = []
    for number, layout in enumerate(layouts, start=1):
        toc = is_toc_page(layout.lines)
        size = body_ocr if layout.ocr else body
        paragraphs = page_paragraphs(
            reading_order(layout.lines, layout.tables, size, layout.ocr),
            sections,
            body=size,
            outline=None if outline is None else outline.get(number, []),
            toc=toc,
            keep=keep,
            ocr=layout.ocr,
        )
        pages.append(
            {
                "paragraphs": [[_clean(t), _clean(s), k] for t, s, k in paragraphs],
                "label": _clean(_label(doc[number - 1])),
                "kind": "toc" if toc else "text",
                "ocr": layout.ocr,
            }
        )
    return pages


def _label(page) -> str:
    try:
        return page.get_label()
    except Exception:  # a broken /PageLabels tree: fall back to the page number
        return ""


def _outcome(pages: list[dict], scanned: list[int], ocr_read: int, problem: str, ocr: dict) -> dict:
    blank = sum(1 for p in pages if not p["paragraphs"])
    if blank == len(pages):
        if not scanned:
            return _fail("needs_ocr", code="no_text")
        images = f"no text layer: {len(scanned)} page(s) are scanned images"
        if not ocr.get("enabled"):
            return _fail("needs_ocr", f"{images}; OCR is switched off (OCR_ENABLED=false)")
        if problem:
            return _fail("needs_ocr", f"{images}; OCR failed: {problem}")
        return _fail("needs_ocr", f"{images}; OCR found no text on them")
    notes = []
    if ocr_read:
        notes.append(f"{ocr_read} page(s) read by OCR")
    unread = len(scanned) - ocr_read
    if unread and not ocr.get("enabled"):
        notes.append(f"{unread} scanned page(s) not read: OCR is switched off")
    elif unread and problem:
        notes.append(f"{unread} scanned page(s) not read: OCR failed: {problem}")
    if blank:
        notes.append(f"{blank} of {len(pages)} pages have no text")
    return {"status": "ok", "pages": pages, "ocr_pages": ocr_read, "note": "; ".join(notes)}


def answer(request: dict, send: Callable[[dict], None] = lambda message: None) -> dict:
    """The answer to one request, always echoing its id and path; `send` writes a message
    (progress) to the parent."""
    echo = {"id": request.get("id"), "path": request.get("path")}
    try:
        result = read_pdf(
            request["path"],
            int(request["max_pages"]),
            int(request.get("max_page_chars", 100_000)),
            int(request.get("max_file_chars", 5_000_000)),
            request.get("ocr"),
            lambda message: send(echo | {"status": "progress"} | message),
        )
    except MemoryError:
        result = _fail("out_of_memory", "memory cap reached")
    except OSError as exc:
        result = _fail("failed", f"cannot read the file ({exc.strerror or exc})")
    return echo | result


def main() -> None:
    results = os.fdopen(int(sys.argv[1]), "wb", buffering=0)
    # Anything written to fd 1 (MuPDF's messages, a stray print) goes to the diagnostics pipe.
    os.dup2(2, 1)

    def send(message: dict) -> None:
        data = (json.dumps(message, ensure_ascii=True) + "\n").encode("ascii")
        view = memoryview(data)
        while view:
            view = view[os.write(results.fileno(), view) :]

    for line in sys.stdin:
        result = answer(json.loads(line), send)
        send(result)
        if result["status"] == "out_of_memory":
            return  # start afresh: the heap may be fragmented near the cap


if __name__ == "__main__":
    main()
