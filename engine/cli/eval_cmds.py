"""`nexus eval QUESTIONS.tsv`: measure search on your own questions.

The file is tab-separated with a header row: `question`, `expected` (the file that answers:
`<grade>/<subject>/<file>.pdf` or just `<file>.pdf`), and optionally `grade`, `subject` (the
search is filtered by them) and `kind` (any label; figures are given per kind). The engine
answers each question in each mode asked for and reports hit@1, hit@5 and MRR@10 per kind and
mode, and every question whose file did not come first, with what did (engine.search.evaluation).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.app import build_engine
from engine.cli.output import emit, fail
from engine.search.evaluation import QuestionFileError, evaluate, load_questions, table
from engine.search.searcher import MODES
from engine.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure search on a TSV of questions and expected files")
    p.add_argument("questions", type=Path, help="TSV: question, expected[, grade, subject, kind]")
    p.add_argument(
        "--mode", choices=(*MODES, "all"), default="all", help="search mode(s); default all three"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    try:
        questions = load_questions(args.questions)
    except (OSError, UnicodeDecodeError, QuestionFileError) as exc:
        fail("nexus eval", str(exc))
        return 2
    modes = MODES if args.mode == "all" else (args.mode,)
    engine = build_engine(settings)
    reports = evaluate(engine.searcher, questions, modes)
    if args.json:
        emit(
            {
                "questions": len(questions),
                "model": engine.embedder.model.key,
                "modes": [r.to_dict() for r in reports],
            }
        )
        return 0
    print(f"{len(questions)} questions, model {engine.embedder.model.key}")
    print("\n".join(table(reports)))
    for r in reports:
        if r.misses:
            print(f"\n{r.mode}: {len(r.misses)} not answered first")
        for miss in r.misses:
            where = f"rank {miss.rank}" if miss.rank else "not in the first 10"
            first = miss.first or "nothing"
            print(f"  [{miss.kind}] {miss.question}")
            print(f"      first: {first}; {miss.expected}: {where}")
    return 0
