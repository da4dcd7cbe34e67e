"""Costs (Biaya): Bedrock and S3 spending per day and per subject, tokens, monthly run-rate."""

from __future__ import annotations

import streamlit as st

from ui.charts import bars
from ui.common import header
from ui.i18n import day, money, num, t
from ui.resources import get_engine


def render() -> None:
    header(t("nav.costs"), t("costs.caption"))
    days = st.radio(
        t("costs.period"), [7, 30], horizontal=True, format_func=lambda d: t("costs.days", days=d)
    )
    summary = get_engine().get_cost_summary(days)
    left, middle, right = st.columns(3)
    left.metric(t("costs.total"), money(summary["total_cost"]))
    middle.metric(t("costs.tokens"), num(summary["total_tokens"]))
    right.metric(t("costs.run_rate"), money(summary["monthly_run_rate"]))
    if not summary["total_tokens"] and not summary["total_cost"]:
        st.info(t("costs.none"))
        return
    per_day = summary["per_day"]
    st.plotly_chart(
        bars(
            [day(d["date"]) for d in per_day],
            [d["cost"] for d in per_day],
            t("costs.per_day"),
            "USD",
        ),
        width="stretch",
    )
    subjects = summary["per_subject"]
    if subjects:
        st.plotly_chart(
            bars(list(subjects), list(subjects.values()), t("costs.per_subject"), "USD"),
            width="stretch",
        )
    if summary["estimated_regions"]:
        st.caption(t("costs.estimated", regions=", ".join(summary["estimated_regions"])))


if __name__ == "__main__":  # run as a page by st.navigation
    render()
