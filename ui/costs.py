"""Costs: Bedrock and S3 spending per day and per subject, tokens, monthly run-rate."""

from __future__ import annotations

import streamlit as st

from ui.charts import bars
from ui.common import get_engine, header


def render() -> None:
    header("Costs", "Estimated from Bedrock input tokens and S3 requests (prices are settings).")
    days = st.radio("Period", [7, 30], horizontal=True, format_func=lambda d: f"{d} days")
    summary = get_engine().get_cost_summary(days)
    left, middle, right = st.columns(3)
    left.metric("Total", f"${summary['total_cost']:.4f}")
    middle.metric("Tokens embedded", f"{summary['total_tokens']:,}")
    right.metric("Monthly run-rate", f"${summary['monthly_run_rate']:.4f}")
    if not summary["total_tokens"] and not summary["total_cost"]:
        st.info(
            "No costs in this period: local embeddings are free, and nothing went to Bedrock or S3."
        )
        return
    per_day = summary["per_day"]
    st.plotly_chart(
        bars([d["date"] for d in per_day], [d["cost"] for d in per_day], "Cost per day", "USD"),
        width="stretch",
    )
    subjects = summary["per_subject"]
    if subjects:
        st.plotly_chart(
            bars(list(subjects), list(subjects.values()), "Bedrock cost per subject", "USD"),
            width="stretch",
        )
    if summary["estimated_regions"]:
        st.caption(
            f"No price for {', '.join(summary['estimated_regions'])}: us-east-1's price is used."
        )


if __name__ == "__main__":  # run as a page by st.navigation
    render()
