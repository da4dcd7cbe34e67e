"""OCR of scanned pages inside the PDF worker: Tesseract through PyMuPDF, with the installed
language data only (nothing is downloaded), each page announced first so the parent can give it
its own time limit. Standard library and PyMuPDF only, like the rest of the worker."""

from __future__ import annotations

import os

from engine.pdf.pageclean import lines_from_dict
from engine.pdf.reading_order import PageLayout


def ocr_pages(
    doc, scanned: list[int], layouts: list, caps, ocr: dict, progress
) -> tuple[int, str, dict | None]:
    """OCR the scanned pages in place: (pages read, why OCR failed if it did, refusal)."""
    import pymupdf

    tessdata, problem = _tessdata(ocr.get("languages", "ind+eng"))
    if problem:
        return 0, problem, None
    skip = set(ocr.get("skip_pages", ()))
    done, failures = 0, []
    for index in scanned:
        if index + 1 in skip:
            failures.append(f"page {index + 1}: OCR took longer than the page time limit")
            continue
        progress({"ocr_page": index + 1, "ocr_pages": len(scanned)})
        try:
            textpage = doc[index].get_textpage_ocr(
                flags=pymupdf.TEXTFLAGS_TEXT,
                language=ocr.get("languages", "ind+eng"),
                dpi=int(ocr.get("dpi", 200)),
                full=True,
                tessdata=tessdata,
            )
            text = textpage.extractText()
        except Exception as exc:  # Tesseract errors surface as RuntimeError and friends
            failures.append(f"page {index + 1}: {exc}")
            continue
        if refused := caps.check(index + 1, text):
            return done, "", refused
        layouts[index] = PageLayout(lines_from_dict(textpage.extractDICT()), ocr=True)
        done += 1
    return done, "; ".join(failures[:3]) + (" ..." if len(failures) > 3 else ""), None


_TESSDATA: dict[str, tuple[str, str]] = {}


def _tessdata(languages: str) -> tuple[str, str]:
    """Tesseract's language folder and "" , or "" and why OCR cannot run (never downloads)."""
    if languages not in _TESSDATA:
        import pymupdf

        try:
            folder = pymupdf.get_tessdata()
        except Exception:
            _TESSDATA[languages] = ("", "OCR is not available: Tesseract is not installed")
            return _TESSDATA[languages]
        missing = [
            lang
            for lang in languages.split("+")
            if not os.path.exists(os.path.join(folder, f"{lang}.traineddata"))
        ]
        problem = (
            f"OCR is not available: Tesseract has no language data for {', '.join(missing)}"
            f" in {folder} (install tesseract-ocr-{missing[0]})"
            if missing
            else ""
        )
        _TESSDATA[languages] = (folder, problem)
    return _TESSDATA[languages]
