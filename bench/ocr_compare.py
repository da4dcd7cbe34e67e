"""Tesseract against RapidOCR on our own scanned pages: accuracy, speed and memory.

    python bench/ocr_compare.py [--chapters 1] [--subjects 3] [--dpi 200] [--dump DIR]

Builds the textbooks of bench/books.py (devtools/books.py: two columns drawn row by row, running
header and footer, table of contents, ruled table, hyphenation, ligatures) and scanned copies
of them (devtools/books.py `scan_copy`: grey JPEG pages at 150 dpi, no text layer), then reads the
scans with each OCR engine and prints, over all scanned pages:

- CER: character edit distance / reference length, whitespace runs made one space (the `cer`
  of bench/books.py); "CER no spaces" is the same with all whitespace removed, so letters
  read wrong count and words run together do not;
- WER: word edit distance / reference words; "word recall": share of the reference's
  lower-case words found in the page's words, order ignored (what keyword search sees);
- pages/s (wall clock) and CPU seconds per page on this machine, and the peak RSS growth of
  the process doing the OCR over one that has PyMuPDF loaded and has read a text book.

The reference is the engine's own extraction of the text-layer book (headers and footers
dropped, columns in reading order). Both engines' output goes through the same page structuring
so only the OCR differs:

- **Tesseract**: the engine's code path itself, `PdfExtractor` with the engine's default
  settings (OCR_LANGUAGES, OCR_DPI, limits read from `engine.settings.Settings`), i.e.
  `page.get_textpage_ocr` in the capped worker process;
- **RapidOCR** (`rapidocr_onnxruntime`, optional: its wheel ships its ONNX models, PP-OCRv4
  det/rec + mobile cls; nothing is downloaded) with its default models and settings, on the
  page rendered grey at the same dpi, in a child process of its own (so its memory is measured
  alone); its text boxes become lines and go through the worker's `_structure` (a private
  function, used here on purpose so both engines get identical post-processing).

Figures are from one run on a shared machine: treat them as rough.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.books import build_books, cer, levenshtein  # noqa: E402
from devtools.books import scan_copy  # noqa: E402
from engine.pdf.extract import ExtractionError, PdfExtractor  # noqa: E402

RAPIDOCR = "rapidocr_onnxruntime"
INSTALL_HINT = "pip install rapidocr-onnxruntime (its wheel holds the models)"
_WORD = re.compile(r"\w+")


# --- metrics ---------------------------------------------------------------------------------


def wer(reference: list[str], hypothesis: list[str]) -> float:
    """Word error rate: each distinct word becomes one character, then `levenshtein`."""
    errors = total = 0
    for ref, hyp in zip(reference, hypothesis, strict=True):
        codes: dict[str, str] = {}
        ref_words, hyp_words = ref.split(), hyp.split()
        for word in ref_words + hyp_words:
            codes.setdefault(word, chr(0x10000 + len(codes)))
        errors += levenshtein(
            "".join(codes[w] for w in ref_words), "".join(codes[w] for w in hyp_words)
        )
        total += len(ref_words)
    return errors / max(total, 1)


def word_recall(reference: list[str], hypothesis: list[str]) -> float:
    found = total = 0
    for ref, hyp in zip(reference, hypothesis, strict=True):
        ref_words = Counter(_WORD.findall(ref.lower()))
        hyp_words = Counter(_WORD.findall(hyp.lower()))
        found += sum((ref_words & hyp_words).values())
        total += sum(ref_words.values())
    return found / max(total, 1)


# --- process figures -------------------------------------------------------------------------


def peak_rss_mb(pid: int | str = "self") -> float:
    """VmHWM (peak resident set) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- engines ---------------------------------------------------------------------------------


def engine_limits() -> dict:
    """The PdfExtractor arguments the engine uses, from Settings' defaults (as the pipeline)."""
    from engine.settings import Settings

    fields = Settings.model_fields
    names = (
        "max_pages",
        "max_page_chars",
        "max_file_chars",
        "ocr_enabled",
        "ocr_languages",
        "ocr_dpi",
        "ocr_page_timeout_s",
    )
    limits = {name: fields[name].default for name in names}
    limits["timeout_s"] = fields["extract_timeout_s"].default
    limits["memory_mb"] = fields["extract_memory_mb"].default
    return limits


def read_texts(paths: list[Path], limits: dict) -> dict[str, list[str]]:
    with PdfExtractor(**limits) as reader:
        return {str(path): reader.extract(path).pages for path in paths}


def tesseract(warm_up: Path, scans: list[Path], limits: dict) -> dict:
    """OCR the scans through the engine's PdfExtractor; figures of its worker process."""
    with PdfExtractor(**limits) as reader:
        reader.extract(warm_up)  # start the worker, import PyMuPDF, read a text book
        pid = reader._proc.pid
        rss_before, cpu_before = peak_rss_mb(pid), cpu_seconds(pid)
        pages, ocr_pages = {}, 0
        started = time.perf_counter()
        for path in scans:
            extracted = reader.extract(path)
            pages[str(path)] = extracted.pages
            ocr_pages += extracted.ocr_pages
        seconds = time.perf_counter() - started
        return {
            "pages": pages,
            "ocr_pages": ocr_pages,
            "seconds": seconds,
            "cpu_s": cpu_seconds(pid) - cpu_before,
            "rss_growth_mb": peak_rss_mb(pid) - rss_before,
            "load_s": 0.0,  # Tesseract loads its language data on every page (in `seconds`)
        }


def rapidocr(warm_up: Path, scans: list[Path], dpi: int) -> dict:
    """RapidOCR in a child process (see `_rapidocr_child`); {"missing": why} if not installed."""
    if importlib.util.find_spec(RAPIDOCR) is None:
        return {"missing": f"{RAPIDOCR} is not installed; {INSTALL_HINT}"}
    request = json.dumps({"warm_up": str(warm_up), "scans": [str(p) for p in scans], "dpi": dpi})
    done = subprocess.run(
        [sys.executable, __file__, "--rapidocr-child"],
        input=request,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"missing": f"RapidOCR failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"}
    return json.loads(lines[-1])


def _rapidocr_child() -> None:
    """Read the request on stdin, OCR with RapidOCR's defaults, print one JSON line."""
    import resource

    import numpy as np
    import pymupdf

    from engine.pdf.reading_order import PageLayout
    from engine.pdf.worker import _structure

    request = json.load(sys.stdin)
    with pymupdf.open(request["warm_up"]) as doc:
        for page in doc:
            page.get_text("dict")
    rss_before = peak_rss_mb()
    try:
        started = time.perf_counter()
        from rapidocr_onnxruntime import RapidOCR

        engine = RapidOCR()
        load_s = time.perf_counter() - started
    except ImportError as exc:
        print(json.dumps({"missing": f"{RAPIDOCR} cannot be imported ({exc})"}))
        return
    dpi, pages, ocr_pages = request["dpi"], {}, 0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for path in request["scans"]:
        with pymupdf.open(path) as doc:
            layouts = []
            for page in doc:
                pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
                image = np.frombuffer(pix.samples, np.uint8).reshape(pix.h, pix.stride)
                result, _ = engine(image[:, : pix.w])
                layouts.append(PageLayout(_lines(result or [], 72 / dpi), ocr=True))
                ocr_pages += 1
            pages[path] = [
                "\n\n".join(text for text, _, _ in page["paragraphs"])
                for page in _structure(doc, layouts)
            ]
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    figures = {"pages": pages, "ocr_pages": ocr_pages, "seconds": seconds, "cpu_s": cpu_s}
    figures |= {"rss_growth_mb": peak_rss_mb() - rss_before, "load_s": load_s}
    print(json.dumps(figures))


def _lines(result: list, scale: float) -> list:
    """RapidOCR's boxes ([4 corner points in pixels], text, score) as the worker's lines."""
    from engine.pdf.pageclean import Line

    lines = []
    for box, text, _score in result:
        xs, ys = [p[0] * scale for p in box], [p[1] * scale for p in box]
        # a detected box is ~1.25x the font size tall; only relative sizes matter (headings)
        size = round((max(ys) - min(ys)) / 1.25, 1)
        lines.append(Line(min(xs), min(ys), max(xs), max(ys), text.strip(), size))
    return lines


# --- report ----------------------------------------------------------------------------------


def report(name: str, figures: dict, reference: dict[str, list[str]]) -> list[str]:
    ref = [t for path in figures["pages"] for t in reference[path]]
    hyp = [t for path in figures["pages"] for t in figures["pages"][path]]
    n = figures["ocr_pages"]
    return [
        name,
        f"{cer(ref, hyp):.3f}",
        f"{cer(ref, hyp, spaces=False):.3f}",
        f"{wer(ref, hyp):.3f}",
        f"{word_recall(ref, hyp):.3f}",
        f"{n / figures['seconds']:.2f}",
        f"{figures['cpu_s'] / max(n, 1):.2f}",
        f"{figures['load_s']:.1f}",
        f"{figures['rss_growth_mb']:.0f}",
    ]


def dump(folder: Path, found: dict, ref_folder: Path, reference: dict) -> None:
    """Each page's text as <book>_p<n>.txt, and the reference beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    ref_folder.mkdir(parents=True, exist_ok=True)
    for path, pages in found.items():
        for number, (hyp, ref) in enumerate(zip(pages, reference[path], strict=True), start=1):
            name = f"{Path(path).stem}_p{number}.txt"
            (folder / name).write_text(hyp)
            (ref_folder / name).write_text(ref)


def main() -> None:
    if "--rapidocr-child" in sys.argv:
        _rapidocr_child()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapters", type=int, default=1, help="chapters per book (~2 pages)")
    parser.add_argument("--subjects", type=int, default=3, help="books to scan (1-3)")
    parser.add_argument("--dpi", type=int, help="OCR dpi for both (default: OCR_DPI)")
    parser.add_argument("--dump", type=Path, help="write each engine's page texts here")
    args = parser.parse_args()

    limits = engine_limits()
    if args.dpi:
        limits["ocr_dpi"] = args.dpi
    dpi = limits["ocr_dpi"]
    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "inbox"
        books = list(build_books(inbox, args.chapters).values())[: args.subjects]
        texts = [b.path for b in books]
        scans = [scan_copy(b.path, inbox / "scans" / b.path.name) for b in books]
        by_book = read_texts(texts, limits)
        reference = {str(s): by_book[str(t)] for s, t in zip(scans, texts, strict=True)}
        pages = sum(b.pages for b in books)
        print(
            f"{len(scans)} scanned books, {pages} pages (grey JPEG at 150 dpi, no text layer);"
            f" OCR at {dpi} dpi, Tesseract languages {limits['ocr_languages']};"
            f" {os.cpu_count()} CPUs"
        )
        results: dict[str, dict] = {}
        try:
            results["tesseract"] = tesseract(texts[0], scans, limits)
        except ExtractionError as exc:
            print(f"tesseract: cannot run ({exc.reason})")
        results["rapidocr"] = rapidocr(texts[0], scans, dpi)
        rows = [
            [
                "engine",
                "CER",
                "CER no spaces",
                "WER",
                "word recall",
                "pages/s",
                "CPU s/page",
                "load s",
                "peak RSS +MB",
            ]
        ]
        for name, figures in results.items():
            if "missing" in figures:
                print(f"{name}: not measured: {figures['missing']}")
                continue
            rows.append(report(name, figures, reference))
            if args.dump:
                dump(args.dump / name, figures["pages"], args.dump / "reference", reference)
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
