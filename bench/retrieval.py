"""Retrieval quality per search mode (hit@1, hit@5, MRR@10) on the dev and held-out questions.

    python bench/retrieval.py [--corpus CORPUS] [--dev DEV.tsv] [--heldout HELDOUT.tsv]
                              [--variants] [--misses] [--model MODEL]

CORPUS is an inbox folder of `<grade>/<subject>/*.pdf`, or a lessons JSON
([{file, pages: [...]}], default tests/data/lessons_id.json) that is written out as PDFs first.
Question TSVs have columns `question`, `file` (the expected `<grade>/<subject>/<file>.pdf`) and
optionally `style` (keyword / paraphrase / english); figures are also given per style.

`--variants` scores hybrid fusion variants (engine/search/fusion.py) on the same candidates:
choose on the development set (questions_dev_id.tsv) only; the held-out column is for the report.
Also prints search latency p50/p95 of each mode on this corpus (bench/search_speed.py measures a
10,000-chunk collection).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import reference_embedder  # noqa: E402
from devtools.retrieval_eval import (  # noqa: E402
    load_styled_questions,
    score_rankings,
    write_lessons,
)
from engine.app import build_engine  # noqa: E402
from engine.embed.multilingual import MODEL_NAME as MULTILINGUAL  # noqa: E402
from engine.search.fusion import FusionConfig, fuse  # noqa: E402
from engine.search.searcher import MODES  # noqa: E402
from engine.settings import Settings  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def variants(chosen: FusionConfig) -> list[tuple[str, FusionConfig]]:
    """The fusion variants measured (name, config); `chosen` is the model's default."""
    fixed = FusionConfig(adaptive=False, toc_factor=1.0)
    out: list[tuple[str, FusionConfig]] = [
        ("minmax 0.2/0.8 (before)", replace(fixed, normalise="minmax").with_weights(0.2, 0.8))
    ]
    for normalise, weights in (
        ("minmax", (0.3, 0.5, 0.7)),
        ("zscore", (0.2, 0.3, 0.5, 0.7)),
        ("absolute", (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)),
    ):
        for w in weights:
            config = replace(fixed, normalise=normalise).with_weights(w, 1 - w)
            out.append((f"{normalise} {w:.1f}/{1 - w:.1f}", config))
    for w in (0.3, 0.5, 0.7):
        for power in (2.0, 3.0):
            config = replace(fixed, coverage_power=power).with_weights(w, 1 - w)
            out.append((f"absolute {w:.1f}/{1 - w:.1f} coverage^{power:.0f}", config))
    for rrf_k in (10.0, 60.0):
        for w in (0.3, 0.5):
            config = replace(fixed, method="rrf", rrf_k=rrf_k).with_weights(w, 1 - w)
            out.append((f"rrf k={rrf_k:.0f} {w:.1f}/{1 - w:.1f}", config))
    for normalise in ("minmax", "absolute"):
        for w in (0.2, 0.3, 0.5, 0.7):
            for confident in (0.3, 0.5):
                config = replace(
                    fixed, normalise=normalise, adaptive=True, confident_coverage=confident
                ).with_weights(w, 1 - w)
                out.append((f"adaptive {normalise} {w:.1f}/{1 - w:.1f} c={confident}", config))
    for share in (0.05, 0.1, 0.3):
        out.append((f"chosen + neighbour {share}", replace(chosen, neighbour=share)))
    out.append(("chosen (the engine's, FUSION_* applied)", chosen))
    return out


def ranked(hits, scores):
    order = sorted(
        zip(hits, scores, strict=True),
        key=lambda p: (-round(p[1], 4), p[0].grade, p[0].subject, p[0].chunk_id),
    )
    return [h for h, _ in order][:10]


def per_style(questions, rankings) -> str:
    parts = []
    for style in sorted({s for _, _, s in questions}):
        picked = [i for i, (_, _, s) in enumerate(questions) if s == style]
        m = score_rankings([questions[i][:2] for i in picked], [rankings[i] for i in picked])
        parts.append(f"{style} {m.hit_at_1:.2f}/{m.hit_at_5:.2f} (n={m.questions})")
    return "   [" + ", ".join(parts) + "]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DATA / "lessons_id.json")
    parser.add_argument("--dev", type=Path, default=DATA / "questions_dev_id.tsv")
    parser.add_argument("--heldout", type=Path, default=DATA / "questions_heldout_id.tsv")
    parser.add_argument("--no-heldout", action="store_true", help="score the dev set only")
    parser.add_argument("--variants", action="store_true", help="score fusion variants")
    parser.add_argument("--bm25", default="", help="k1,b pairs to try, e.g. 1.2,0.75;0.9,0.4")
    parser.add_argument("--misses", action="store_true", help="list questions not answered at 1")
    parser.add_argument(
        "--model", default="", help=f"LOCAL_EMBEDDING_MODEL to evaluate (e.g. {MULTILINGUAL})"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inbox = args.corpus
        if inbox.suffix == ".json":
            inbox = write_lessons(args.corpus, tmp / "inbox")
        engine = build_engine(
            Settings(NEXUS_DATA_DIR=tmp / "data"), embedder=reference_embedder(args.model)
        )
        outcome = engine.ingestor.run([inbox], inbox)
        sets = {"dev": load_styled_questions(args.dev)}
        if not args.no_heldout:
            sets["held-out"] = load_styled_questions(args.heldout)
        print(
            f"corpus: {outcome.job.successful_files} files, {outcome.job.total_chunks} chunks; "
            + ", ".join(f"{name} {len(qs)} questions" for name, qs in sets.items())
            + f"; model {engine.embedder.model.model_id}"
        )
        searcher = engine.searcher
        latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
        for name, questions in sets.items():
            print(f"\n== {name}")
            for mode in MODES:
                rankings = []
                for question, _, _ in questions:
                    started = time.perf_counter()
                    rankings.append(searcher.search(question, k=10, mode=mode))
                    latencies[mode].append((time.perf_counter() - started) * 1000)
                metrics = score_rankings([q[:2] for q in questions], rankings)
                print(f"{mode:<8} {metrics.line()}{per_style(questions, rankings)}")
                if args.misses:
                    for miss in metrics.misses:
                        print(f"    miss: {miss}")
        print()
        for mode, values in latencies.items():
            p95 = statistics.quantiles(values, n=20)[-1]
            print(f"latency {mode:<8} p50 {statistics.median(values):6.1f} ms   p95 {p95:6.1f} ms")

        if args.variants:
            print("\nfusion variants (hit@1 / hit@5):")
            candidates = {
                name: [searcher.candidates(q) for q, _, _ in questions]
                for name, questions in sets.items()
            }
            header = "".join(f"{name:>16}" for name in sets)
            print(f"  {'variant':<42}{header}")
            for label, config in variants(searcher.fusion_for(engine.embedder.model.key)):
                cells = ""
                for name, questions in sets.items():
                    rankings = [ranked(h, fuse(c, config)) for h, c in candidates[name]]
                    m = score_rankings([q[:2] for q in questions], rankings)
                    cells += f"{m.hit_at_1:>10.2f} / {m.hit_at_5:.2f}"
                print(f"  {label:<42}{cells}")
        for pair in filter(None, args.bm25.split(";")):
            k1, b = (float(x) for x in pair.split(","))
            searcher.lexical.k1, searcher.lexical.b = k1, b
            cells = ""
            for name, questions in sets.items():
                for mode in ("lexical", "hybrid"):
                    rankings = [searcher.search(q, k=10, mode=mode) for q, _, _ in questions]
                    m = score_rankings([q[:2] for q in questions], rankings)
                    cells += f"  {name} {mode} {m.hit_at_1:.2f}/{m.hit_at_5:.2f}"
            print(f"BM25 k1={k1} b={b}:{cells}")


if __name__ == "__main__":
    main()
