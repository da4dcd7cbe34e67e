"""Search on templated teaching modules (one subject of tests/data/modules_id), as a school
asks: keywords, everyday paraphrases, English, informal spelling. A floor on the development
questions of that subject; bench/retrieval_modules.py has every figure."""

from __future__ import annotations

from pathlib import Path

from devtools.modules import module_lessons
from devtools.retrieval_eval import write_lesson_pdfs
from engine.app import build_engine
from engine.search.evaluation import evaluate, load_questions

DEV = Path(__file__).parent / "data" / "modules_dev_id.tsv"
FOLDER = "kelas_7/ipa"


def test_the_default_model_answers_a_subjects_modules_despite_their_shared_template(
    settings, multilingual, tmp_path
):
    lessons = [lesson for lesson in module_lessons() if lesson["file"].startswith(FOLDER)]
    inbox = write_lesson_pdfs(lessons, tmp_path / "inbox")
    engine = build_engine(settings, embedder=multilingual)
    engine.ingestor.run([inbox], inbox)
    questions = [q for q in load_questions(DEV) if q.expected.startswith(FOLDER) and q.grade]

    (hybrid,) = evaluate(engine.searcher, questions, ["hybrid"])

    assert len(questions) == 31
    # before template weighting and the re-chosen fusion: 0.77 / 0.90 (informal 0.75 / 0.75)
    assert hybrid.overall.hit_at_1 >= 0.80 and hybrid.overall.hit_at_5 >= 0.95
    assert hybrid.by_kind["informal"].hit_at_5 == 1.0
    assert hybrid.by_kind["paraphrase"].hit_at_5 >= 0.9
