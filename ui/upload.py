"""Upload: teachers who cannot reach the shared folder put PDFs into the inbox from here."""

from __future__ import annotations

from typing import Protocol

import streamlit as st

from engine.ingest.upload import UploadRefused, save_upload
from engine.names import BadName, check_grade_subject
from ui.common import get_engine, header, settings


class Uploaded(Protocol):
    name: str

    def getvalue(self) -> bytes: ...


def _known(kind: str) -> list[str]:
    inbox = settings().inbox_dir
    if kind == "grade":
        return sorted(p.name for p in inbox.iterdir() if p.is_dir()) if inbox.exists() else []
    return (
        sorted({p.name for g in inbox.iterdir() if g.is_dir() for p in g.iterdir() if p.is_dir()})
        if inbox.exists()
        else []
    )


def save_all(grade: str, subject: str, files: list[Uploaded]) -> None:
    """Save each file, one message per file: a refused name never stops the others."""
    inbox = settings().inbox_dir
    max_bytes = settings().upload_max_mb * 2**20
    for uploaded in files:
        shown = repr(str(uploaded.name)[:80])
        try:
            saved = save_upload(
                inbox, grade, subject, uploaded.name, uploaded.getvalue(), max_bytes=max_bytes
            )
        except UploadRefused as exc:
            st.error(f"Not added: {exc}")
        except OSError as exc:
            st.error(f"Not added: {shown} could not be written ({exc.strerror or exc}).")
        else:
            st.success(f"{uploaded.name} → {saved.relative_to(inbox)}")


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
    limit = settings().upload_max_mb
    files = st.file_uploader(
        f"Curriculum PDFs (up to {limit} MB each)",
        type=["pdf"],
        accept_multiple_files=True,
        max_upload_size=limit,
    )
    if st.button("Add to inbox", type="primary", disabled=not files):
        try:
            check_grade_subject(grade or "", subject or "")
        except BadName as exc:
            st.error(f"Choose a grade and a subject: {exc}")
            return
        save_all(grade, subject, files)
        get_engine()  # keep the engine warm for the Jobs and Search pages


if __name__ == "__main__":  # run as a page by st.navigation
    render()
