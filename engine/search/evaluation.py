"""Retrieval evaluation: hit@1, hit@5 and MRR@10 per kind of question and per search mode.

One place for the metric code, used by `nexus eval` (engine/cli/eval_cmds.py), the panel's
evaluation page and the bench scripts (bench/retrieval_modules.py, bench/retrieval.py).

A question file is a TSV with a header row and the columns `question` and `expected` (the
answering file: `<grade>/<subject>/<file>.pdf`, or just `<file>.pdf` to match the file in any
grade/subject), and optionally `grade` and `subject` (the search is filtered by them when set)
and `kind` (any label: keyword, paraphrase, english, informal, nofilter...; figures are given
per kind). The older column names `file` and `style` are read too.

A question counts as answered at rank r when the r-th hit comes from the expected file;
MRR@10 averages 1/r over the first ten hits (0 when the file is not among them).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_KIND = "keyword"
DEPTH = 10  # hits looked at per question (MRR@10)
MAX_QUESTIONS = 5000  # a question file is outside input: cap what one evaluation runs


class QuestionFileError(ValueError):
    """The question file cannot be used (missing columns, empty, too many rows)."""


@dataclass(frozen=True)
class Question:
    question: str
    expected: str
    grade: str = ""
    subject: str = ""
    kind: str = DEFAULT_KIND


@dataclass
class Score:
    questions: int
    hit_at_1: float
    hit_at_5: float
    mrr: float

    def line(self) -> str:
        return f"hit@1 {self.hit_at_1:.2f}  hit@5 {self.hit_at_5:.2f}  MRR {self.mrr:.3f}"


@dataclass
class Miss:
    """A question whose expected file did not come first."""

    question: str
    kind: str
    expected: str
    rank: int | None  # where the expected file came (None: not in the first DEPTH hits)
    first: str  # what came first: `<grade>/<subject>/<file>` page N, or "" when nothing


@dataclass
class ModeReport:
    mode: str
    overall: Score
    by_kind: dict[str, Score]
    misses: list[Miss] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def load_questions(path: Path, text: str | None = None) -> list[Question]:
    """Questions from a TSV file (or from `text`, its contents, e.g. an upload).

    Raises:
        QuestionFileError: no `question` or `expected` column, no rows, or more than
            MAX_QUESTIONS rows.
    """
    if text is None:
        text = Path(path).read_text(encoding="utf-8-sig")
    reader = csv.DictReader(text.lstrip("\ufeff").splitlines(), delimiter="\t")
    columns = {c.strip().lower() for c in reader.fieldnames or []}
    if "question" not in columns or not columns & {"expected", "file"}:
        raise QuestionFileError(
            f"{path}: a tab-separated file with a header row holding the columns `question` "
            "and `expected` (optional: grade, subject, kind) is needed"
        )
    questions = []
    for row in reader:
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        question = row.get("question", "")
        expected = row.get("expected") or row.get("file") or ""
        if not question or not expected:
            continue
        questions.append(
            Question(
                question=question,
                expected=expected,
                grade=row.get("grade", ""),
                subject=row.get("subject", ""),
                kind=row.get("kind") or row.get("style") or DEFAULT_KIND,
            )
        )
        if len(questions) > MAX_QUESTIONS:
            raise QuestionFileError(f"{path}: more than {MAX_QUESTIONS} questions")
    if not questions:
        raise QuestionFileError(f"{path}: no question with an expected file")
    return questions


def hit_file(hit) -> str:
    """`<grade>/<subject>/<file>` of a search hit."""
    return f"{hit.grade}/{hit.subject}/{hit.source}"


def rank_of(hits: Sequence, expected: str) -> int | None:
    """1-based rank of the first hit from `expected` among the first DEPTH hits, or None."""
    for rank, hit in enumerate(hits[:DEPTH], start=1):
        name = hit_file(hit) if "/" in expected else hit.source
        if name == expected:
            return rank
    return None


def score(ranks: Iterable[int | None]) -> Score:
    ranks = list(ranks)
    n = len(ranks) or 1
    return Score(
        questions=len(ranks),
        hit_at_1=sum(r == 1 for r in ranks) / n,
        hit_at_5=sum(r is not None and r <= 5 for r in ranks) / n,
        mrr=sum(1 / r for r in ranks if r) / n,
    )


def report(mode: str, questions: Sequence[Question], rankings: Sequence[Sequence]) -> ModeReport:
    """Figures of one mode from its ranked hits (one list per question, best first)."""
    ranks = [rank_of(hits, q.expected) for q, hits in zip(questions, rankings, strict=True)]
    kinds = sorted({q.kind for q in questions})
    by_kind = {
        kind: score(r for q, r in zip(questions, ranks, strict=True) if q.kind == kind)
        for kind in kinds
    }
    misses = [
        Miss(
            question=q.question,
            kind=q.kind,
            expected=q.expected,
            rank=r,
            first=f"{hit_file(hits[0])} p. {hits[0].page}" if hits else "",
        )
        for q, r, hits in zip(questions, ranks, rankings, strict=True)
        if r != 1
    ]
    return ModeReport(mode=mode, overall=score(ranks), by_kind=by_kind, misses=misses)


def rankings(searcher, questions: Sequence[Question], mode: str) -> list[list]:
    """Each question's hits in `mode`, filtered by its grade/subject when it names them."""
    return [
        searcher.search(
            q.question, grade=q.grade or None, subject=q.subject or None, k=DEPTH, mode=mode
        )
        for q in questions
    ]


def evaluate(searcher, questions: Sequence[Question], modes: Sequence[str]) -> list[ModeReport]:
    """Search every question in every mode and score the answers."""
    return [report(mode, questions, rankings(searcher, questions, mode)) for mode in modes]


def table(reports: Sequence[ModeReport]) -> list[str]:
    """Text lines: one row per mode, a column per kind (hit@1 / hit@5) and the overall figures."""
    kinds = sorted({k for r in reports for k in r.by_kind})
    header = f"{'mode':<8}" + "".join(f"{k[:14]:>16}" for k in kinds) + f"{'all':>16}  MRR"
    lines = [header]
    for r in reports:
        cells = "".join(
            f"{r.by_kind[k].hit_at_1:>9.2f} / {r.by_kind[k].hit_at_5:.2f}"
            if k in r.by_kind
            else f"{'-':>16}"
            for k in kinds
        )
        lines.append(
            f"{r.mode:<8}{cells}{r.overall.hit_at_1:>9.2f} / {r.overall.hit_at_5:.2f}"
            f"  {r.overall.mrr:.3f}"
        )
    counts = ", ".join(f"{k} {reports[0].by_kind[k].questions}" for k in kinds) if reports else ""
    lines.append(f"(hit@1 / hit@5; questions: {counts})")
    return lines
