"""Check that every paraphrased question shares at most one content stem with its lesson.

    python bench/paraphrase_overlap.py [QUESTIONS.tsv ...] [--max-shared N]

Content stems are what the lexical index sees (engine.search.lexical.analyzer: folding, Sastrawi
stopwords and stemmer), taken over the whole text of the answering lesson, template included
(devtools.modules). Rows whose `kind` is `paraphrase` are checked; the script lists
every offender with the stems it shares and exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.modules import lesson_texts  # noqa: E402
from engine.search.evaluation import load_questions  # noqa: E402
from engine.search.lexical.analyzer import analyze  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def shared_stems(question: str, lesson_text: str) -> set[str]:
    """Content stems of `question` that also occur in `lesson_text`."""
    return set(analyze(question)) & set(analyze(lesson_text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "questions",
        nargs="*",
        type=Path,
        default=[DATA / "modules_dev_id.tsv", DATA / "modules_heldout_id.tsv"],
    )
    parser.add_argument("--max-shared", type=int, default=1)
    args = parser.parse_args()
    lessons = lesson_texts()
    bad = checked = 0
    for path in args.questions:
        for q in load_questions(path):
            if q.kind != "paraphrase":
                continue
            checked += 1
            shared = shared_stems(q.question, lessons[q.expected])
            if len(shared) > args.max_shared:
                bad += 1
                print(f"{path.name}: {q.question}  [{q.expected}] shares {sorted(shared)}")
    print(f"{checked} paraphrases checked, {bad} share more than {args.max_shared} stem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
