"""`nexus eval`: hit@1/hit@5/MRR per kind and mode on an admin's own questions, with misses."""

from __future__ import annotations

import json

from engine.cli.main import main
from tests.support.pdfs import text_pdf

QUESTIONS = (
    "question\texpected\tgrade\tsubject\tkind\n"
    "klorofil menangkap cahaya matahari\tkelas_10/biologi/fotosintesis.pdf\tkelas_10\tbiologi\t"
    "keyword\n"
    "mitokondria penghasil energi sel\tsel.pdf\t\t\tnofilter\n"
    "membran inti sel hewan\tfotosintesis.pdf\tkelas_10\tbiologi\tparaphrase\n"
)


def _ingest(engine, inbox):
    text_pdf(
        inbox / "kelas_10" / "biologi" / "fotosintesis.pdf",
        ["Fotosintesis terjadi di kloroplas. Klorofil menangkap cahaya matahari."],
    )
    text_pdf(
        inbox / "kelas_10" / "biologi" / "sel.pdf",
        ["Mitokondria adalah penghasil energi sel. Membran inti melindungi inti sel hewan."],
    )
    engine.ingestor.run([inbox], inbox)


def test_eval_reports_figures_per_kind_and_each_miss_with_what_came_first(
    engine, inbox, tmp_path, capsys
):
    _ingest(engine, inbox)
    questions = tmp_path / "questions.tsv"
    questions.write_text(QUESTIONS, encoding="utf-8")

    assert main(["eval", str(questions), "--mode", "lexical", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert report["questions"] == 3
    (lexical,) = report["modes"]
    assert lexical["mode"] == "lexical"
    assert lexical["by_kind"]["keyword"]["hit_at_1"] == 1.0
    assert lexical["by_kind"]["nofilter"]["hit_at_1"] == 1.0  # a bare file name matches too
    assert lexical["by_kind"]["paraphrase"]["hit_at_1"] == 0.0
    assert round(lexical["overall"]["hit_at_1"], 2) == 0.67
    (miss,) = lexical["misses"]
    assert miss["question"] == "membran inti sel hewan"
    assert miss["first"].startswith("kelas_10/biologi/sel.pdf")


def test_eval_prints_a_table_and_misses_for_people(engine, inbox, tmp_path, capsys):
    _ingest(engine, inbox)
    questions = tmp_path / "questions.tsv"
    questions.write_text(QUESTIONS, encoding="utf-8")

    assert main(["eval", str(questions), "--mode", "lexical"]) == 0
    out = capsys.readouterr().out
    assert "keyword" in out and "paraphrase" in out
    assert "membran inti sel hewan" in out and "first: kelas_10/biologi/sel.pdf" in out


def test_eval_refuses_a_file_without_the_needed_columns(tmp_path, capsys):
    questions = tmp_path / "questions.tsv"
    questions.write_text("q\tfile_name\nwhat\tx.pdf\n", encoding="utf-8")

    assert main(["eval", str(questions)]) == 2
    assert "question" in capsys.readouterr().err
