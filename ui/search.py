"""Search: the quickest way for an admin to see that ingestion worked."""

from __future__ import annotations

import streamlit as st

from engine.search import MODES
from ui.common import get_engine, header, settings


def render() -> None:
    header("Search", "Ask a question; see the passages that answer it, with file and page.")
    with st.form("search"):
        question = st.text_input("Question", placeholder="Apa itu algoritma?")
        columns = st.columns(4)
        default_mode = MODES.index(settings().search_mode)
        mode = columns[0].selectbox("Mode", MODES, index=default_mode)
        grade = columns[1].text_input("Grade (optional)")
        subject = columns[2].text_input("Subject (optional)")
        k = columns[3].number_input("Results", 1, 20, 5)
        asked = st.form_submit_button("Search")
    if not asked or not question.strip():
        st.caption("Searches run on this server; the question is never stored or sent.")
        return
    with st.spinner("Searching…"):
        hits = get_engine().searcher.search(
            question, grade=grade or None, subject=subject or None, k=int(k), mode=mode
        )
    st.caption(f"{mode} search · {len(hits)} result(s)")
    if not hits:
        st.info("Nothing found. Is anything ingested for this grade/subject? See Jobs.")
    for rank, hit in enumerate(hits, start=1):
        scores = f"score {hit.score:.3f}"
        if hit.vector_score is not None:
            scores += f" · vector {hit.vector_score:.3f}"
        if hit.lexical_score is not None:
            scores += f" · lexical {hit.lexical_score:.3g}"
        with st.container(border=True):
            st.markdown(
                f"**{rank}. {hit.grade}/{hit.subject}/{hit.source}**, page {hit.pages} · {scores}"
            )
            st.write(hit.text)


if __name__ == "__main__":  # run as a page by st.navigation
    render()
