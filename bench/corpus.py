"""Generate a curriculum-like corpus of PDFs for benchmarks (Indonesian lesson text)."""

from __future__ import annotations

import json
import random
from pathlib import Path

LESSONS = Path(__file__).resolve().parent.parent / "tests" / "data" / "lessons_id.json"


def reference_embedder(model: str = ""):
    """The local embedder a benchmark measures for LOCAL_EMBEDDING_MODEL `model`: the packaged
    multilingual model by its name, else sentence-transformers on the CPU (torch: the reference
    for MiniLM, whose OpenVINO/ONNX vectors match it)."""
    from engine.embed.packaged import PACKAGED, packaged_embedder

    if model in PACKAGED:
        return packaged_embedder(model)
    from engine.embed.local import LocalEmbedder

    return LocalEmbedder(model, device="cpu")


def sentences() -> list[str]:
    text = " ".join(p for lesson in json.loads(LESSONS.read_text()) for p in lesson["pages"])
    return [s.strip() + "." for s in text.split(". ") if s.strip()]


def make_corpus(
    root: Path,
    files: int,
    pages_per_file: int,
    chars_per_page: int = 2400,
    grade: str = "kelas_10",
    subjects: list[str] | None = None,
) -> Path:
    """Write `files` PDFs under root/<grade>/<subject>/; text varies so chunks differ."""
    import pymupdf  # here, not at import: the GPU bench reads `sentences` without it

    subjects = subjects or ["informatika", "biologi", "fisika", "sejarah"]
    rng = random.Random(42)
    pool = sentences()
    for number in range(files):
        subject = subjects[number % len(subjects)]
        doc = pymupdf.open()
        for page_no in range(pages_per_file):
            text, length = [], 0
            while length < chars_per_page:
                sentence = f"{rng.choice(pool)[:-1]} (bagian {number}.{page_no}.{len(text)})."
                text.append(sentence)
                length += len(sentence) + 1
            page = doc.new_page()
            page.insert_textbox(pymupdf.Rect(40, 40, 555, 802), " ".join(text), fontsize=7)
        path = root / grade / subject / f"modul_{number:03d}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        doc.save(path)
        doc.close()
    return root
