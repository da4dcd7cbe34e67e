"""Telemetry (Telemetri): query counts, latency, errors and storage over time; privacy status."""

from __future__ import annotations

import streamlit as st

from ui.charts import lines
from ui.common import header
from ui.i18n import num, t, when
from ui.resources import get_engine


def _privacy(status: dict) -> None:
    check = status["last_pii_check"]
    left, middle, right = st.columns(3)
    left.metric(t("telemetry.waiting"), t("telemetry.hours", hours=num(status["queue_length"])))
    if check is None:
        middle.metric(t("telemetry.pii_check"), t("telemetry.none_yet"))
    else:
        verdict = t("telemetry.passed") if check["ok"] else t("telemetry.failed")
        middle.metric(t("telemetry.pii_check"), verdict)
        if not check["ok"]:
            st.error(t("telemetry.not_sent", problems="; ".join(check["problems"])))
    upload = status["last_upload"]
    right.metric(t("telemetry.last_upload"), when(upload["at"]) if upload else t("telemetry.never"))
    st.caption(
        t(
            "telemetry.destination",
            destination=t(f"telemetry.to_{status['destination_code']}"),
            fields=", ".join(status["sends"]),
        )
    )
    refused = status["refused_hours"]
    if refused:
        st.warning(t("telemetry.held_back", count=num(len(refused))))
        st.dataframe(
            [
                {
                    t("telemetry.col_hour"): when(r["hour"]),
                    t("telemetry.col_kept"): r["queries"],
                    t("telemetry.col_why"): "; ".join(r["problems"]),
                }
                for r in refused
            ],
            hide_index=True,
            width="stretch",
        )


def render() -> None:
    header(t("nav.telemetry"), t("telemetry.caption"))
    telemetry = get_engine().telemetry
    status = telemetry.status()
    st.subheader(t("telemetry.privacy"))
    if not status["enabled"]:
        st.info(t("telemetry.disabled"))
        return
    _privacy(status)

    history = telemetry.history(days=30)
    if not history:
        st.info(t("telemetry.no_history"))
        return
    hours = [h["timestamp"] for h in history]
    metric = lambda name: [h["metrics"][name] for h in history]  # noqa: E731
    st.plotly_chart(
        lines(
            hours,
            {
                t("telemetry.queries"): metric("query_count"),
                t("telemetry.errors"): metric("error_count"),
            },
            t("telemetry.chart_queries"),
            t("telemetry.count"),
        ),
        width="stretch",
    )
    st.plotly_chart(
        lines(
            hours,
            {
                t("telemetry.average"): metric("avg_latency_ms"),
                t("telemetry.p95"): metric("p95_latency_ms"),
            },
            t("telemetry.chart_latency"),
            "ms",
        ),
        width="stretch",
    )
    st.plotly_chart(
        lines(
            hours,
            {t("telemetry.storage"): metric("storage_usage_mb")},
            t("telemetry.storage"),
            "MB",
        ),
        width="stretch",
    )


if __name__ == "__main__":  # run as a page by st.navigation
    render()
