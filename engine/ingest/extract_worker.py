"""Worker process for `engine.ingest.extract`: reads PDFs named on stdin, answers on stdout.

Protocol: one JSON request per line, `{"path": ..., "max_pages": ...}`; one JSON answer per line,
`{"status": "ok", "pages": [...], "note": "..."}` or `{"status": <FileStatus>, "reason": ...}`.
The worker stays up between files so PyMuPDF is imported once per run, not once per file.
It imports nothing from the engine so that it starts fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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


def _fail(status: str, reason: str) -> dict:
    return {"status": status, "reason": reason}


def read_pdf(path: Path, max_pages: int) -> dict:
    with path.open("rb") as fh:
        head = fh.read(1024)
        fh.seek(max(0, path.stat().st_size - 2048))
        tail = fh.read()
    if not head:
        return _fail("empty", "the file is empty (0 bytes)")
    if b"%PDF-" not in head:
        kind = next((v for k, v in _SIGNATURES.items() if head.lstrip().startswith(k)), None)
        return _fail("not_pdf", f"not a PDF: the file is {kind or 'not a PDF document'}")

    import pymupdf

    try:
        doc = pymupdf.open(path, filetype="pdf")
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
        for number, page in enumerate(doc, start=1):
            try:
                text = page.get_text("text")
            except Exception as exc:
                return _fail("corrupt", f"page {number} cannot be read ({exc})")
            pages.append(text)
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


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = read_pdf(Path(request["path"]), int(request["max_pages"]))
        except MemoryError:
            result = _fail("out_of_memory", "memory cap reached")
        except OSError as exc:
            result = _fail("failed", f"cannot read the file ({exc.strerror or exc})")
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        if result["status"] == "out_of_memory":
            return  # start afresh: the heap may be fragmented near the cap


if __name__ == "__main__":
    main()
