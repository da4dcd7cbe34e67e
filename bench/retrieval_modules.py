"""Retrieval quality on the teaching-module set: hit@1, hit@5, MRR per kind and per mode.

    python bench/retrieval_modules.py [--model MODEL] [--no-heldout] [--misses] [--json OUT]

The corpus is tests/data/modules_id (45 templated, multi-page modules in five grade/subject
folders, devtools.modules), written out as PDFs and ingested by the engine as a school
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
from devtools.modules import module_lessons  # noqa: E402
from devtools.retrieval_eval import write_lesson_pdfs  # noqa: E402
from engine.app import build_engine  # noqa: E402
from engine.search.evaluation import evaluate, load_questions, table  # noqa: E402
from engine.search.searcher import MODES  # noqa: E402
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


def print_variants(searcher, questions, model_key: str) -> None:
    """Hybrid hit@1/hit@5 (all, paraphrase) of each fusion variant on the same candidates."""
    from bench.retrieval import ranked, variants
    from engine.search.evaluation import report
    from engine.search.fusion import fuse

    candidates = [
        searcher.candidates(q.question, q.grade or None, q.subject or None) for q in questions
    ]
    print("\nfusion variants on dev (all hit@1/hit@5, paraphrase hit@1/hit@5):")
    for label, config in variants(searcher.fusion_for(model_key)):
        rankings = [ranked(h, fuse(c, config)) for h, c in candidates]
        r = report("hybrid", questions, rankings)
        p = r.by_kind.get("paraphrase", r.overall)
        print(
            f"  {label:<44}{r.overall.hit_at_1:.2f} / {r.overall.hit_at_5:.2f}"
            f"   {p.hit_at_1:.2f} / {p.hit_at_5:.2f}"
        )


def technique_variants(chosen) -> list[tuple[str, object]]:
    """(label, FusionConfig) of the search-time techniques measured on top of `chosen`."""
    from dataclasses import replace

    out = [("chosen fusion", chosen)]
    for a in (0.3, 0.5, 0.8):
        out.append((f"boilerplate {a}", replace(chosen, boilerplate=a)))
    for g in (0.1, 0.2, 0.4):
        for depth in (2, 3):
            out.append((f"lesson {g} depth {depth}", replace(chosen, lesson=g, lesson_depth=depth)))
    for w in (0.5, 0.6, 0.7):
        for a in (0.0, 0.5):
            tuned = replace(chosen, coverage_power=1.0, boilerplate=a).with_weights(w, 1 - w)
            out.append((f"absolute {w}/{1 - w:.1f} boilerplate {a}", tuned))
    for a in (0.5, 0.8):
        for g in (0.1, 0.2):
            out.append((f"boilerplate {a} + lesson {g}", replace(chosen, boilerplate=a, lesson=g)))
    return out


def print_techniques(engine, questions) -> None:
    """Dev figures (all, paraphrase, informal, english: hit@1/hit@5) of each search-time
    technique, without and with pseudo-relevance feedback for BM25 (chunks, terms, weight);
    lexical mode alone too. Informal spellings are standardised for BM25 (kept): to measure
    without, or with the vector side too, see the commit that chose it (issue 23)."""
    from bench.retrieval import ranked
    from engine.search.evaluation import rankings, report
    from engine.search.fusion import fuse
    from engine.search.lexical.boilerplate import BoilerplateShares

    searcher = engine.searcher
    searcher.boilerplate = BoilerplateShares(engine.lexical)
    chosen = searcher.fusion_for(engine.embedder.model.key)
    print("\ntechniques on dev (hit@1/hit@5: all, paraphrase, informal, english):")
    for feedback in ((0, 10, 0.3), (3, 10, 0.3), (3, 20, 0.2), (5, 10, 0.5)):
        lexical = engine.lexical
        lexical.feedback_chunks, lexical.feedback_terms, lexical.feedback_weight = feedback
        prefix = f"BM25 feedback {feedback} + " if feedback[0] else ""
        candidates = [
            searcher.candidates(q.question, q.grade or None, q.subject or None) for q in questions
        ]
        runs = [
            (label, [ranked(h, fuse(c, config)) for h, c in candidates])
            for label, config in technique_variants(chosen)
        ]
        runs.append(("lexical mode", rankings(searcher, questions, "lexical")))
        for label, ranked_hits in runs:
            r = report("hybrid", questions, ranked_hits)
            kinds = [r.overall] + [r.by_kind[k] for k in ("paraphrase", "informal", "english")]
            cells = "".join(f"   {x.hit_at_1:.2f} / {x.hit_at_5:.2f}" for x in kinds)
            print(f"  {prefix + label:<52}{cells}")
    engine.lexical.feedback_chunks = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="LOCAL_EMBEDDING_MODEL to evaluate")
    parser.add_argument("--dev", type=Path, default=DATA / "modules_dev_id.tsv")
    parser.add_argument("--heldout", type=Path, default=DATA / "modules_heldout_id.tsv")
    parser.add_argument("--no-heldout", action="store_true", help="score the dev set only")
    parser.add_argument("--misses", action="store_true", help="list hybrid misses")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--variants", action="store_true", help="score fusion variants (dev)")
    parser.add_argument("--title", action="store_true", help="EMBED_DOCUMENT_TITLE=true")
    parser.add_argument(
        "--no-query-prompt",
        action="store_true",
        help="embed questions like passages (E5 without its 'query: ' prompt)",
    )
    parser.add_argument(
        "--techniques", action="store_true", help="score search-time techniques (dev)"
    )
    args = parser.parse_args()

    sets = {"dev": load_questions(args.dev)}
    if not args.no_heldout:
        sets["held-out"] = load_questions(args.heldout)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        extra = {"EMBED_DOCUMENT_TITLE": True} if args.title else {}
        engine, outcome, seconds = build(Path(tmp), args.model, **extra)
        if args.no_query_prompt:
            engine.embedder.embed_queries = engine.embedder.embed_batch
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
        if args.variants:
            print_variants(engine.searcher, sets["dev"], engine.embedder.model.key)
        if args.techniques:
            print_techniques(engine, sets["dev"])
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
