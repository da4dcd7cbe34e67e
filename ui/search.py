"""Search (Cari): the quickest way for an admin to see that ingestion worked.

Each result names its file, page and (when the engine gives one) section, and offers the PDF:
a download button that reads the file only when clicked, only for a logged-in session (the
page is behind the login gate, and Streamlit serves the bytes to that session alone), and only
from inside the inbox. Browsers cannot open a downloaded file at a page, so the page number is
on the button. When the HTTP API answers, a link opens the PDF at that page in the browser
(`/v1/documents/{id}/pdf?t=…#page=N`): a browser link cannot send an API key, so the link
carries a token that opens only this document for 15 minutes (`engine.api.links`), made only
for this logged-in session.
"""

from __future__ import annotations

from dataclasses import fields

import streamlit as st

from engine.api.links import pdf_api_link
from engine.api.local import search_running_engine
from engine.documents.download import find_document, pdf_download
from engine.runtime.probes import api_status, api_url
from engine.search.searcher import MAX_QUESTION_CHARS, MODES, SearchHit
from ui.common import header
from ui.i18n import num, t
from ui.resources import get_engine, settings


@st.cache_data(ttl=15, show_spinner=False)
def _api_up(url: str) -> bool:
    return api_status(settings())


def _plain(text: str) -> str:
    """`text` shown as written in markdown: file names may hold `*`, `_` or `[`."""
    return "".join("\\" + c if c in _MARKDOWN else c for c in str(text))


_MARKDOWN = set("\\`*_[]<>#|~$:")


def _location(hit: SearchHit) -> str:
    """`kelas_10/informatika/bab1.pdf · page 3 · section 1.2 Algoritma`."""
    parts = [_plain(f"{hit.grade}/{hit.subject}/{hit.source}"), t("search.page", page=hit.pages)]
    section = hit.to_dict().get("section")
    if section:
        parts.append(t("search.section", section=_plain(section)))
    return " · ".join(parts)


def _pdf(hit: SearchHit, rank: int, api_up: bool) -> None:
    document = find_document(get_engine().catalog, hit.grade, hit.subject, hit.chunk_id)
    read = pdf_download(settings(), document) if document else None
    if read is None:
        st.caption(t("search.no_pdf"))
        return
    st.download_button(
        t("search.download", page=hit.page),
        data=read,
        file_name=hit.source,
        mime="application/pdf",
        key=f"pdf-{rank}",
        on_click="ignore",
    )
    link = pdf_api_link(settings(), document, hit.page) if api_up else None
    if link:
        st.link_button(t("search.open_at_page", page=hit.page), link)


def _search(question: str, grade, subject, k: int, mode: str) -> list[SearchHit]:
    """Ask the running engine (its warm model, over the local API) or, without one, search
    with the panel's own engine."""
    params = {"q": question, "grade": grade, "subject": subject, "k": k, "mode": mode}
    found = search_running_engine(settings(), params)
    if found is None:
        return get_engine().searcher.search(question, grade=grade, subject=subject, k=k, mode=mode)
    names = {f.name for f in fields(SearchHit)}
    return [
        SearchHit(**{key: value for key, value in hit.items() if key in names}) for hit in found
    ]


def render() -> None:
    header(t("nav.search"), t("search.caption"))
    with st.form("search"):
        question = st.text_input(
            t("search.question"), placeholder="Apa itu algoritma?", max_chars=MAX_QUESTION_CHARS
        )
        columns = st.columns(4)
        default_mode = MODES.index(settings().search_mode)
        mode = columns[0].selectbox(
            t("search.mode"), MODES, index=default_mode, format_func=lambda m: t(f"mode.{m}")
        )
        grade = columns[1].text_input(t("search.grade"))
        subject = columns[2].text_input(t("search.subject"))
        k = columns[3].number_input(t("search.results"), 1, 20, 5)
        asked = st.form_submit_button(t("search.submit"))
    if not asked or not question.strip():
        st.caption(t("search.private"))
        return
    with st.spinner(t("search.searching")):
        hits = _search(question, grade or None, subject or None, int(k), mode)
    st.caption(t("search.summary", mode=t(f"mode.{mode}"), count=num(len(hits))))
    if not hits:
        st.info(t("search.nothing"))
    api_up = bool(hits) and _api_up(api_url(settings()))
    for rank, hit in enumerate(hits, start=1):
        scores = t("search.score", score=num(hit.score, 3))
        if hit.vector_score is not None:
            scores += " · " + t("search.vector", score=num(hit.vector_score, 3))
        if hit.lexical_score is not None:
            scores += " · " + t("search.lexical", score=num(hit.lexical_score, 3))
        with st.container(border=True):
            st.markdown(f"**{rank}. {_location(hit)}**")
            st.caption(scores)
            st.write(hit.text)
            _pdf(hit, rank, api_up)


if __name__ == "__main__":  # run as a page by st.navigation
    render()
