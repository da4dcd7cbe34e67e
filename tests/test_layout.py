"""Inbox layout rules: which names are ignored and where grade/subject come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.inbox.layout import BadLocation, is_candidate, is_ignored, place


@pytest.mark.parametrize(
    "name",
    ["bab1.pdf.part", "bab1.pdf.crdownload", "~$bab1.pdf", ".bab1.pdf", ".~lock.bab1.pdf#"],
)
def test_temporary_and_partial_names_are_ignored(name):
    assert is_ignored(Path("kelas_10/informatika") / name)
    assert not is_candidate(Path("kelas_10/informatika") / name)


def test_files_in_hidden_folders_are_ignored():
    assert is_ignored(Path("kelas_10/.Trash/bab1.pdf"))


def test_pdf_names_in_any_case_are_candidates():
    assert is_candidate(Path("kelas_10/informatika/BAB1.PDF"))
    assert not is_candidate(Path("kelas_10/informatika/bab1.docx"))


def test_grade_and_subject_come_from_the_first_two_folders(tmp_path):
    placement = place(tmp_path / "kelas_10" / "informatika" / "bab1" / "materi.pdf", tmp_path)
    assert (placement.grade, placement.subject) == ("kelas_10", "informatika")
    with pytest.raises(BadLocation, match="<grade>/<subject>/"):
        place(tmp_path / "kelas_10" / "bab1.pdf", tmp_path)


@pytest.mark.parametrize(
    ("grade", "subject", "suggestion"),
    [
        ("kelas-10", "informatika", "kelas_10"),
        ("Kelas 10", "informatika", "kelas_10"),
        ("kelas_10", "Bahasa__Indonesia", "bahasa_indonesia"),
    ],
)
def test_grade_and_subject_folders_must_follow_the_naming_rule(
    tmp_path, grade, subject, suggestion
):
    with pytest.raises(BadLocation, match=f"rename the folder: .*'{suggestion}'"):
        place(tmp_path / grade / subject / "bab1.pdf", tmp_path)
