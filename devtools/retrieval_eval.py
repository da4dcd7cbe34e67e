"""Retrieval evaluation: hit@1, hit@5 and MRR@10 of a search mode on questions with answers.

A question counts as answered at rank r when the r-th hit comes from the expected file
(`<grade>/<subject>/<file>.pdf`). Used by bench/retrieval.py and the retrieval tests.

Question files are TSVs with columns `question`, `file` and optionally `style` (`keyword`,
`paraphrase`: no analysed term in common with the lesson, `english`: an English question over
Indonesian text). tests/data/questions_dev_id.tsv is for tuning; questions_heldout_id.tsv is
only for reporting.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from engine.search.evaluation import score


@dataclass
class Metrics:
    questions: int
    hit_at_1: float
    hit_at_5: float
    mrr_at_10: float
    misses: list[str]

    def line(self) -> str:
        return f"hit@1 {self.hit_at_1:.2f}  hit@5 {self.hit_at_5:.2f}  MRR@10 {self.mrr_at_10:.3f}"


def load_questions(path: Path) -> list[tuple[str, str]]:
    """(question, expected file) pairs from a TSV with columns `question` and `file`."""
    return [(q, f) for q, f, _ in load_styled_questions(path)]


def load_styled_questions(path: Path) -> list[tuple[str, str, str]]:
    """(question, expected file, style) triples; style is `keyword` when the column is absent."""
    with path.open(encoding="utf-8") as fh:
        return [
            (row["question"], row["file"], row.get("style") or "keyword")
            for row in csv.DictReader(fh, delimiter="\t")
        ]


def write_lessons(lessons_json: Path, inbox: Path) -> Path:
    """Turn a lessons JSON ([{file, pages: [text, ...]}]) into PDFs under `inbox`."""
    return write_lesson_pdfs(json.loads(lessons_json.read_text(encoding="utf-8")), inbox)


def write_lesson_pdfs(lessons: list[dict], inbox: Path) -> Path:
    """Turn lessons ([{file, pages: [text, ...]}]) into PDFs under `inbox`, one page per text.

    Raises:
        ValueError: a page's text does not fit on its page (it would be cut silently).
    """
    import pymupdf

    for lesson in lessons:
        target = inbox / lesson["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        with pymupdf.open() as doc:
            for text in lesson["pages"]:
                page = doc.new_page()
                left = page.insert_textbox(pymupdf.Rect(50, 50, 545, 792), text, fontsize=9)
                if left < 0:
                    raise ValueError(f"{lesson['file']}: a page's text does not fit")
            doc.save(target)
    return inbox


def evaluate(searcher, questions: list[tuple[str, str]], mode: str) -> Metrics:
    rankings = [searcher.search(question, k=10, mode=mode) for question, _ in questions]
    return score_rankings(questions, rankings)


def score_rankings(questions: list[tuple[str, str]], rankings: list[list]) -> Metrics:
    """Metrics of ranked hit lists (one per question, best first)."""
    ranks: list[int | None] = []
    misses = []
    for (question, expected), hits in zip(questions, rankings, strict=True):
        found = [f"{h.grade}/{h.subject}/{h.source}" for h in hits[:10]]
        rank = found.index(expected) + 1 if expected in found else None
        ranks.append(rank)
        if rank != 1:
            misses.append(f"{question} -> {found[0] if found else 'nothing'} (want {expected})")
    figures = score(ranks)  # the one hit@k / MRR arithmetic (engine.search.evaluation)
    return Metrics(
        questions=figures.questions,
        hit_at_1=figures.hit_at_1,
        hit_at_5=figures.hit_at_5,
        mrr_at_10=figures.mrr,
        misses=misses,
    )
