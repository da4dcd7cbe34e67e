"""Retrieval quality per search mode: hit@1, hit@5 and MRR@10.

    python bench/retrieval.py CORPUS QUESTIONS.tsv [--grid] [--misses]

CORPUS is an inbox folder of `<grade>/<subject>/*.pdf`, or a lessons JSON
([{file, pages: [...]}], e.g. tests/data/lessons_id.json) that is written out as PDFs first.
QUESTIONS.tsv has columns `question` and `file` (the expected `<grade>/<subject>/<file>.pdf`).
`--grid` also scores hybrid fusion over a range of weights: run it on the development set
(tests/data/questions_dev_id.tsv) to choose FUSION_*_WEIGHT, never on the held-out questions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.app import build_engine  # noqa: E402
from engine.devtools.retrieval_eval import evaluate, load_questions, write_lessons  # noqa: E402
from engine.embed.local import LocalEmbedder  # noqa: E402
from engine.search import MODES  # noqa: E402
from engine.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("questions", type=Path)
    parser.add_argument("--grid", action="store_true", help="score hybrid over fusion weights")
    parser.add_argument("--misses", action="store_true", help="list questions not answered at 1")
    parser.add_argument("--model", default="", help="LOCAL_EMBEDDING_MODEL to evaluate")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inbox = args.corpus
        if inbox.suffix == ".json":
            inbox = write_lessons(args.corpus, tmp / "inbox")
        engine = build_engine(
            Settings(NEXUS_DATA_DIR=tmp / "data"), embedder=LocalEmbedder(args.model)
        )
        outcome = engine.ingestor.run([inbox], inbox)
        questions = load_questions(args.questions)
        print(
            f"corpus: {outcome.job.successful_files} files, {outcome.job.total_chunks} chunks; "
            f"{len(questions)} questions; model {engine.embedder.model.model_id}"
        )
        for mode in MODES:
            metrics = evaluate(engine.searcher, questions, mode)
            print(f"{mode:<8} {metrics.line()}")
            if args.misses:
                for miss in metrics.misses:
                    print(f"    miss: {miss}")
        if args.grid:
            print("hybrid fusion grid (vector weight / lexical weight):")
            for tenth in range(0, 11):
                engine.searcher.vector_weight = tenth / 10
                engine.searcher.lexical_weight = 1 - tenth / 10
                metrics = evaluate(engine.searcher, questions, "hybrid")
                print(f"  {tenth / 10:.1f} / {1 - tenth / 10:.1f}  {metrics.line()}")


if __name__ == "__main__":
    main()
