"""Retrieval quality on the teaching-module set: hit@1, hit@5, MRR per kind and per mode.

    python bench/retrieval_modules.py [--model MODEL] [--no-heldout] [--misses] [--json OUT]

The corpus is tests/data/modules_id (45 templated, multi-page modules in five grade/subject
folders, engine.devtools.modules), written out as PDFs and ingested by the engine as a school
would. Questions: tests/data/modules_dev_id.tsv (for choosing techniques) and
modules_heldout_id.tsv (written before any tuning, only for reporting), with kinds keyword,
paraphrase (≤ 1 content stem shared with the lesson, bench/paraphrase_overlap.py), english,
informal (student spelling) and nofilter (no grade/subject filter; every other kind is
searched within its grade/subject). MODEL is a LOCAL_EMBEDDING_MODEL value; empty means
all-MiniLM-L6-v2 (torch on the CPU, the reference for the ONNX/OpenVINO encoders).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import reference_embedder  # noqa: E402
from engine.app import build_engine  # noqa: E402
from engine.devtools.modules import module_lessons  # noqa: E402
from engine.devtools.retrieval_eval import write_lesson_pdfs  # noqa: E402
from engine.evaluation import evaluate, load_questions, table  # noqa: E402
from engine.search import MODES  # noqa: E402
from engine.settings import Settings  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def build(tmp: Path, model: str, **settings):
    """An engine over the module corpus in `tmp` (ingested), and the ingest figures."""
    inbox = write_lesson_pdfs(module_lessons(), tmp / "inbox")
    engine = build_engine(
        Settings(NEXUS_DATA_DIR=tmp / "data", **settings), embedder=reference_embedder(model)
    )
    started = time.perf_counter()
    outcome = engine.ingestor.run([inbox], inbox)
    return engine, outcome, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="LOCAL_EMBEDDING_MODEL to evaluate")
    parser.add_argument("--dev", type=Path, default=DATA / "modules_dev_id.tsv")
    parser.add_argument("--heldout", type=Path, default=DATA / "modules_heldout_id.tsv")
    parser.add_argument("--no-heldout", action="store_true", help="score the dev set only")
    parser.add_argument("--misses", action="store_true", help="list hybrid misses")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    sets = {"dev": load_questions(args.dev)}
    if not args.no_heldout:
        sets["held-out"] = load_questions(args.heldout)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        engine, outcome, seconds = build(Path(tmp), args.model)
        chunks = outcome.job.total_chunks
        print(
            f"corpus: {outcome.job.successful_files} files, {chunks} chunks "
            f"({chunks / seconds:.1f} chunks/s); model {engine.embedder.model.model_id}"
        )
        for name, questions in sets.items():
            reports = evaluate(engine.searcher, questions, MODES)
            print(f"\n== {name} ({len(questions)} questions)")
            print("\n".join(table(reports)))
            if args.misses:
                for miss in reports[0].misses:
                    print(
                        f"  miss [{miss.kind}] {miss.question} -> {miss.first} "
                        f"(want {miss.expected}, rank {miss.rank})"
                    )
            out[name] = [r.to_dict() for r in reports]
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
