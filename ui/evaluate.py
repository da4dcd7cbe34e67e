"""Evaluasi: run `nexus eval` on an uploaded (or pasted) question file and chart the result.

The page only reads the file, hands it to `engine.search.evaluation` with the panel's engine, and
shows the figures: a table per mode and kind, hit@1 charted per kind, and the misses with what
came first. A file is outside input: `load_questions` caps its rows and refuses one without the
needed columns, and the page says why.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.search.evaluation import MAX_QUESTIONS, QuestionFileError, evaluate, load_questions
from engine.search.searcher import MODES
from ui.charts import grouped_bars
from ui.common import header, uploader_in_language
from ui.i18n import num, t
from ui.resources import get_engine

MAX_FILE_BYTES = 2 << 20  # 5,000 questions fit well within this


def _figures(reports) -> pd.DataFrame:
    rows = []
    for r in reports:
        for kind, score in [*r.by_kind.items(), (t("eval.all_kinds"), r.overall)]:
            rows.append(
                {
                    t("eval.mode_column"): t(f"mode.{r.mode}"),
                    t("eval.kind"): kind,
                    t("eval.questions"): score.questions,
                    t("eval.hit1"): round(score.hit_at_1, 2),
                    t("eval.hit5"): round(score.hit_at_5, 2),
                    t("eval.mrr"): round(score.mrr, 3),
                }
            )
    return pd.DataFrame(rows)


def _misses(report) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                t("eval.question"): m.question,
                t("eval.kind"): m.kind,
                t("eval.expected"): m.expected,
                t("eval.rank"): str(m.rank) if m.rank else t("eval.not_found"),
                t("eval.first"): m.first,
            }
            for m in report.misses
        ]
    )


def render() -> None:
    header(t("nav.evaluate"), t("eval.caption"))
    uploader_in_language(t("eval.browse"))
    with st.form("evaluate"):
        upload = st.file_uploader(t("eval.upload"), type=["tsv", "txt", "csv"])
        pasted = st.text_area(t("eval.paste"), help=t("eval.help"))
        choices = ("all", *MODES)
        mode = st.selectbox(
            t("eval.mode"),
            choices,
            format_func=lambda m: t("eval.all_modes") if m == "all" else t(f"mode.{m}"),
        )
        asked = st.form_submit_button(t("eval.submit"))
    if not asked or not (upload or pasted.strip()):
        st.caption(t("eval.help"))
        return
    name = upload.name if upload else "pasted"
    raw = upload.read(MAX_FILE_BYTES + 1) if upload else pasted.encode("utf-8")
    try:
        if len(raw) > MAX_FILE_BYTES:
            raise QuestionFileError(f"more than {MAX_QUESTIONS} questions or 2 MB")
        questions = load_questions(name, text=raw.decode("utf-8-sig"))
    except (QuestionFileError, UnicodeDecodeError) as exc:
        st.error(t("eval.bad_file", error=str(exc)))
        return
    modes = MODES if mode == "all" else (mode,)
    engine = get_engine()
    with st.spinner(t("eval.running", count=num(len(questions)))):
        reports = evaluate(engine.searcher, questions, modes)
    st.caption(t("eval.summary", count=num(len(questions)), model=engine.embedder.model.key))
    st.dataframe(_figures(reports), hide_index=True)
    kinds = sorted({k for r in reports for k in r.by_kind})
    series = {t(f"mode.{r.mode}"): [r.by_kind[k].hit_at_1 for k in kinds] for r in reports}
    st.plotly_chart(grouped_bars(kinds, series, t("eval.chart_title"), t("eval.hit1")))
    for r in reports:
        st.subheader(t("eval.misses", mode=t(f"mode.{r.mode}"), count=num(len(r.misses))))
        if r.misses:
            st.dataframe(_misses(r), hide_index=True)
        else:
            st.success(t("eval.no_misses"))


if __name__ == "__main__":  # run as a page by st.navigation
    render()
