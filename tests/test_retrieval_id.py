"""Retrieval on Indonesian lesson text with the real models: all-MiniLM-L6-v2 (the default) and
the packaged multilingual USE v3 (LOCAL_EMBEDDING_MODEL=use-multilingual-v3).

The corpus (tests/data/lessons_id.json) and questions are our own writing. Fusion was chosen
per model with bench/retrieval.py --variants on questions_dev_id.tsv; these tests use the
held-out questions_heldout_id.tsv, which played no part in choosing it.

A third of the held-out questions are English, a third paraphrases that share no analysed term
with their lesson. MiniLM is an English model: it carries English questions over Indonesian text
only partly and Indonesian paraphrases not at all (0/17 even in the top 5), so with it the goal
(hit@1 >= 0.90, hit@5 >= 0.95) is asserted on the questions that share words with their lesson,
and the whole set is held to "hybrid beats each half" plus the floors measured with this model.
The multilingual model answers 0.94 of the English questions first, about half the
paraphrases first and 0.71 in the top 5; its floors are the figures measured with it
(README: Retrieval quality).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.retrieval_eval import (
    evaluate,
    load_questions,
    load_styled_questions,
    write_lessons,
)
from engine.app import build_engine
from engine.settings import Settings

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.slow


@pytest.fixture
def indonesian_engine(settings, inbox, minilm):
    write_lessons(DATA / "lessons_id.json", inbox)
    engine = build_engine(settings, embedder=minilm)
    outcome = engine.ingestor.run([inbox], inbox)
    assert outcome.job.status == "completed"
    return engine


def test_hybrid_search_finds_the_right_lesson_on_held_out_questions(indonesian_engine):
    styled = load_styled_questions(DATA / "questions_heldout_id.tsv")
    assert len(styled) >= 40
    questions = [(q, f) for q, f, _ in styled]
    worded = [(q, f) for q, f, style in styled if style == "keyword"]
    searcher = indonesian_engine.searcher
    result = {mode: evaluate(searcher, questions, mode) for mode in ("hybrid", "vector", "lexical")}
    for mode, metrics in result.items():
        print(f"\n{mode:<8} {metrics.line()}")

    hybrid, vector, lexical = result["hybrid"], result["vector"], result["lexical"]
    assert hybrid.hit_at_1 > max(vector.hit_at_1, lexical.hit_at_1)
    assert hybrid.hit_at_5 > max(vector.hit_at_5, lexical.hit_at_5)
    assert hybrid.hit_at_1 >= 0.5 and hybrid.hit_at_5 >= 0.55  # measured 0.54 / 0.58
    keyword = evaluate(searcher, worded, "hybrid")
    assert keyword.hit_at_1 >= 0.9 and keyword.hit_at_5 >= 0.95  # measured 1.00 / 1.00


@pytest.fixture
def multilingual_engine(tmp_path, multilingual):
    # its own data dir: switching models re-embeds a data dir's documents into the new model's
    # collections, so two engines of different models cannot share one
    inbox = write_lessons(DATA / "lessons_id.json", tmp_path / "multilingual-inbox")
    settings = Settings(NEXUS_DATA_DIR=tmp_path / "multilingual-data")
    engine = build_engine(settings, embedder=multilingual)
    assert engine.ingestor.run([inbox], inbox).job.status == "completed"
    return engine


def test_the_multilingual_model_answers_english_and_paraphrased_questions(
    multilingual_engine, indonesian_engine
):
    styled = load_styled_questions(DATA / "questions_heldout_id.tsv")
    questions = [(q, f) for q, f, _ in styled]
    searcher = multilingual_engine.searcher
    result = {mode: evaluate(searcher, questions, mode) for mode in ("hybrid", "vector", "lexical")}
    for mode, metrics in result.items():
        print(f"\nmultilingual {mode:<8} {metrics.line()}")
    hybrid, vector, lexical = result["hybrid"], result["vector"], result["lexical"]
    assert hybrid.hit_at_1 >= 0.75 and hybrid.hit_at_5 >= 0.85  # measured 0.81 / 0.90
    assert hybrid.hit_at_1 >= vector.hit_at_1 and hybrid.hit_at_1 > lexical.hit_at_1
    assert hybrid.hit_at_5 >= max(vector.hit_at_5, lexical.hit_at_5)

    by_style = {}
    for style in ("keyword", "english", "paraphrase"):
        picked = [(q, f) for q, f, s in styled if s == style]
        by_style[style] = (
            evaluate(searcher, picked, "hybrid"),
            evaluate(indonesian_engine.searcher, picked, "hybrid"),
        )
    keyword, _ = by_style["keyword"]
    assert keyword.hit_at_1 >= 0.9 and keyword.hit_at_5 >= 0.95  # measured 1.00 / 1.00
    english, english_minilm = by_style["english"]
    assert english.hit_at_1 >= 0.9 > english_minilm.hit_at_1  # measured 0.94 against 0.61
    paraphrase, paraphrase_minilm = by_style["paraphrase"]
    assert paraphrase.hit_at_5 >= 0.6 and paraphrase_minilm.hit_at_5 == 0  # measured 0.71 / 0


def test_dev_and_held_out_sets_are_separate_and_big_enough():
    dev = load_styled_questions(DATA / "questions_dev_id.tsv")
    held_out = load_styled_questions(DATA / "questions_heldout_id.tsv")
    assert len(dev) >= 80 and len(held_out) >= 40
    assert not {q for q, _, _ in dev} & {q for q, _, _ in held_out}
    for questions in (dev, held_out):
        hard = [q for q, _, style in questions if style in ("paraphrase", "english")]
        assert len(hard) * 3 >= len(questions)


def test_hits_carry_both_scores_and_respect_filters(indonesian_engine):
    hits = indonesian_engine.searcher.search("hukum", grade="kelas_11", subject="fisika", k=10)
    assert hits and {(h.grade, h.subject) for h in hits} == {("kelas_11", "fisika")}
    [top] = indonesian_engine.searcher.search("Siapa pendiri kerajaan Majapahit?", k=1)
    assert top.source == "majapahit.pdf"
    assert top.lexical_score > 0 and top.vector_score > 0


@pytest.mark.parametrize(
    "question, lesson",
    [
        ("heart blood vessels", "sistem_peredaran_darah.pdf"),
        ("earthquake tectonic plates", "gempa.pdf"),
    ],
)
def test_questions_without_shared_words_are_found_by_the_vector_side(
    indonesian_engine, question, lesson
):
    # an English question shares no term with the Indonesian lesson: only the embedding helps
    assert indonesian_engine.searcher.search(question, k=5, mode="lexical") == []
    [top] = indonesian_engine.searcher.search(question, k=1, mode="hybrid")
    assert top.source == lesson
    assert top.lexical_score == 0 and top.vector_score > 0


def test_load_questions_reads_files_without_a_style_column(tmp_path):
    tsv = tmp_path / "q.tsv"
    tsv.write_text("question\tfile\nApa itu sel?\tkelas_10/biologi/sel.pdf\n", encoding="utf-8")
    assert load_questions(tsv) == [("Apa itu sel?", "kelas_10/biologi/sel.pdf")]
    assert load_styled_questions(tsv) == [("Apa itu sel?", "kelas_10/biologi/sel.pdf", "keyword")]
