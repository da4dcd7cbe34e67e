"""Upload (Unggah): teachers who cannot reach the shared folder put PDFs into the inbox here."""

from __future__ import annotations

from typing import Protocol

import streamlit as st

from engine.inbox.upload import UploadRefused, save_upload
from engine.names import BadName, check_grade_subject
from ui.common import header, uploader_in_language
from ui.i18n import t
from ui.resources import get_engine, settings

NEW = "\x00new"  # the "new folder" choice; no folder name can contain NUL


def _new(choice: str) -> str:
    return t("upload.new") if choice == NEW else choice


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
            st.error(t("upload.refused", why=exc))
        except OSError as exc:
            st.error(t("upload.not_written", name=shown, why=exc.strerror or exc))
        else:
            st.success(f"{uploaded.name} → {saved.relative_to(inbox)}")


def render() -> None:
    header(t("nav.upload"), t("upload.caption"))
    left, right = st.columns(2)
    grade = left.selectbox(
        t("col.grade"),
        _known("grade") + [NEW],
        index=None,
        placeholder="kelas_10",
        format_func=_new,
    )
    if grade in (None, NEW):
        grade = left.text_input(t("upload.new_grade"), placeholder="kelas_10")
    subject = right.selectbox(
        t("col.subject"),
        _known("subject") + [NEW],
        index=None,
        placeholder="informatika",
        format_func=_new,
    )
    if subject in (None, NEW):
        subject = right.text_input(t("upload.new_subject"), placeholder="informatika")
    limit = settings().upload_max_mb
    uploader_in_language(t("upload.browse"))
    files = st.file_uploader(
        t("upload.files", limit=limit),
        type=["pdf"],
        accept_multiple_files=True,
        max_upload_size=limit,
    )
    if st.button(t("upload.add"), type="primary", disabled=not files):
        try:
            check_grade_subject(grade or "", subject or "")
        except BadName as exc:
            st.error(t("upload.choose", why=exc))
            return
        save_all(grade, subject, files)
        get_engine()  # keep the engine warm for the Jobs and Search pages


if __name__ == "__main__":  # run as a page by st.navigation
    render()
