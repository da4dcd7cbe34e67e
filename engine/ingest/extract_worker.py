"""Worker process for `engine.ingest.extract`: reads PDFs named on stdin, answers on its own pipe.

Usage: `python -m engine.ingest.extract_worker <result fd>`.

Protocol: one JSON request per line on stdin,
`{"id": n, "path": ..., "max_pages": ..., "max_page_chars": ..., "max_file_chars": ...}`;
one ASCII JSON answer per line on the result fd, echoing `id` and `path`:
`{"id": n, "path": ..., "status": "ok", "pages": [...], "note": "...", "file": [dev, ino]}` or
`{"id": n, "path": ..., "status": <FileStatus>, "reason": ...}`.

Answers never travel on stdout: MuPDF and PyMuPDF print warnings to the C-level stdout and
stderr, which the parent only keeps a tail of for diagnosing crashes. The answer channel is a
pipe nobody else writes to, so no message can be mistaken for (or spliced into) a result.

Text bombs: a small PDF can expand to gigabytes of text (thousands of pages sharing one
content stream). Reading stops as soon as one page exceeds `max_page_chars` or the file
exceeds `max_file_chars`, and the whole file is refused as `too_large`.

The worker stays up between files so PyMuPDF is imported once per run, not once per file.
It imports nothing from the engine so that it starts fast.
"""

from __future__ import annotations

import json
import os
import stat
import sys

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


def _fail(status: str, reason: str) -> dict:
    return {"status": status, "reason": reason}


def _clean(text: str) -> str:
    """Page text as storable text: no lone surrogates (from odd ToUnicode maps), no NULs."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def read_pdf(
    path: str, max_pages: int, max_page_chars: int = 100_000, max_file_chars: int = 5_000_000
) -> dict:
    """Read the text of every page of the PDF at `path`, within the given caps."""
    fd = os.open(path, _OPEN_FLAGS)  # never blocks on a FIFO, never follows a swapped-in link
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return _fail("not_a_file", "not a regular file")
        head = fh.read(1024)
        fh.seek(max(0, info.st_size - 2048))
        tail = fh.read()
        if not head:
            return _fail("empty", "the file is empty (0 bytes)")
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
        )
    if result["status"] == "ok":
        result["file"] = [info.st_dev, info.st_ino]
    return result


def _read_open_pdf(
    name: str, tail: bytes, max_pages: int, max_page_chars: int, max_file_chars: int
) -> dict:
    import pymupdf

    try:
        doc = pymupdf.open(name, filetype="pdf")
    except Exception:  # PyMuPDF raises FileDataError and friends
        return _fail("corrupt", "damaged PDF: its structure cannot be read")
    with doc:
        if doc.needs_pass:
            return _fail("encrypted", "the PDF is password-protected; save it without a password")
        if doc.is_repaired and b"%%EOF" not in tail:
            return _fail("corrupt", "the PDF is truncated (incomplete copy or download)")
        if doc.page_count == 0:
            return _fail("corrupt", "the PDF has no pages")
        if doc.page_count > max_pages:
            return _fail(
                "too_many_pages", f"{doc.page_count} pages, more than the limit of {max_pages}"
            )
        pages: list[str] = []
        image_pages = 0
        total = 0
        for number, page in enumerate(doc, start=1):
            try:
                text = page.get_text("text")
            except Exception as exc:
                return _fail("corrupt", f"page {number} cannot be read ({exc})")
            if len(text) > max_page_chars:
                return _fail(
                    "too_large",
                    f"page {number} holds {len(text):,} characters of text, more than the limit"
                    f" of {max_page_chars:,} (MAX_PAGE_CHARS); the file was not read further",
                )
            total += len(text)
            if total > max_file_chars:
                return _fail(
                    "too_large",
                    f"the text is longer than the limit of {max_file_chars:,} characters"
                    f" (MAX_FILE_CHARS) by page {number} of {doc.page_count}; the file was not"
                    " read further",
                )
            pages.append(_clean(text))
            if not text.strip() and page.get_images(full=False):
                image_pages += 1
    blank = sum(1 for t in pages if not t.strip())
    if blank == len(pages):
        if image_pages:
            return _fail(
                "needs_ocr", f"no text layer: {image_pages} page(s) are scanned images; run OCR"
            )
        return _fail("needs_ocr", "no text found on any page")
    note = f"{blank} of {len(pages)} pages have no text (scanned?)" if blank else ""
    return {"status": "ok", "pages": pages, "note": note}


def answer(request: dict) -> dict:
    """The answer to one request, always echoing its id and path."""
    try:
        result = read_pdf(
            request["path"],
            int(request["max_pages"]),
            int(request.get("max_page_chars", 100_000)),
            int(request.get("max_file_chars", 5_000_000)),
        )
    except MemoryError:
        result = _fail("out_of_memory", "memory cap reached")
    except OSError as exc:
        result = _fail("failed", f"cannot read the file ({exc.strerror or exc})")
    return {"id": request.get("id"), "path": request.get("path")} | result


def main() -> None:
    results = os.fdopen(int(sys.argv[1]), "wb", buffering=0)
    # Anything written to fd 1 (MuPDF's messages, a stray print) goes to the diagnostics pipe.
    os.dup2(2, 1)
    for line in sys.stdin:
        result = answer(json.loads(line))
        data = (json.dumps(result, ensure_ascii=True) + "\n").encode("ascii")
        view = memoryview(data)
        while view:
            view = view[os.write(results.fileno(), view) :]
        if result["status"] == "out_of_memory":
            return  # start afresh: the heap may be fragmented near the cap


if __name__ == "__main__":
    main()
