"""Upload: teachers who cannot reach the shared folder put PDFs into the inbox from here."""

from __future__ import annotations

import re

import streamlit as st

from engine.ingest.upload import save_upload
from ui.common import get_engine, header, settings

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,60}")


def _known(kind: str) -> list[str]:
    inbox = settings().inbox_dir
    if kind == "grade":
        return sorted(p.name for p in inbox.iterdir() if p.is_dir()) if inbox.exists() else []
    return (
        sorted({p.name for g in inbox.iterdir() if g.is_dir() for p in g.iterdir() if p.is_dir()})
        if inbox.exists()
        else []
    )


def render() -> None:
    header(
        "Upload",
        "PDFs land in the watched inbox as <grade>/<subject>/<file>.pdf and appear in Jobs.",
    )
    left, right = st.columns(2)
    grade = left.selectbox("Grade", _known("grade") + ["(new)"], index=None, placeholder="kelas_10")
    if grade in (None, "(new)"):
        grade = left.text_input("New grade folder", placeholder="kelas_10")
    subject = right.selectbox(
        "Subject", _known("subject") + ["(new)"], index=None, placeholder="informatika"
    )
    if subject in (None, "(new)"):
        subject = right.text_input("New subject folder", placeholder="informatika")
    files = st.file_uploader("Curriculum PDFs", type=["pdf"], accept_multiple_files=True)
    if st.button("Add to inbox", type="primary", disabled=not files):
        if not (grade and subject and _NAME.fullmatch(grade) and _NAME.fullmatch(subject)):
            st.error("Choose a grade and a subject (letters, digits, space, _ . - only).")
            return
        for uploaded in files:
            saved = save_upload(
                settings().inbox_dir, grade, subject, uploaded.name, uploaded.getvalue()
            )
            st.success(f"{uploaded.name} → {saved.relative_to(settings().inbox_dir)}")
        get_engine()  # keep the engine warm for the Jobs and Search pages


if __name__ == "__main__":  # run as a page by st.navigation
    render()
