"""Telemetry: query counts, latency, errors and storage over time; privacy status."""

from __future__ import annotations

import streamlit as st

from ui.charts import lines
from ui.common import get_engine, header


def render() -> None:
    header("Telemetry", "Anonymised hourly counts. Never questions, never who asked.")
    telemetry = get_engine().telemetry
    status = telemetry.status()
    st.subheader("Privacy status")
    if not status["enabled"]:
        st.info("Telemetry is disabled (TELEMETRY_ENABLED=false): nothing is counted or sent.")
        return
    check = status["last_pii_check"]
    left, middle, right = st.columns(3)
    left.metric("Waiting to upload", f"{status['queue_length']} h")
    if check is None:
        middle.metric("Last PII check", "none yet")
    else:
        middle.metric("Last PII check", "passed" if check["ok"] else "FAILED")
        if not check["ok"]:
            st.error("Last payload was not sent: " + "; ".join(check["problems"]))
    upload = status["last_upload"]
    right.metric("Last upload", upload["at"][:16] if upload else "never")
    st.caption(f"Destination: {status['destination']}. Sent fields: {', '.join(status['sends'])}")
    refused = status["refused_hours"]
    if refused:
        st.warning(
            f"{len(refused)} hour(s) held back by the PII guard. Their counts are kept and go "
            "out on the next upload once the cause is fixed."
        )
        st.dataframe(
            [
                {
                    "hour": r["hour"],
                    "searches kept": r["queries"],
                    "why": "; ".join(r["problems"]),
                }
                for r in refused
            ],
            hide_index=True,
            width="stretch",
        )

    history = telemetry.history(days=30)
    if not history:
        st.info("No completed hours with searches yet; charts appear after the first hour of use.")
        return
    hours = [h["timestamp"] for h in history]
    metric = lambda name: [h["metrics"][name] for h in history]  # noqa: E731
    st.plotly_chart(
        lines(
            hours,
            {"queries": metric("query_count"), "errors": metric("error_count")},
            "Queries and errors per hour",
            "count",
        ),
        width="stretch",
    )
    st.plotly_chart(
        lines(
            hours,
            {"average": metric("avg_latency_ms"), "p95": metric("p95_latency_ms")},
            "Search latency",
            "ms",
        ),
        width="stretch",
    )
    st.plotly_chart(
        lines(hours, {"storage": metric("storage_usage_mb")}, "Storage", "MB"),
        width="stretch",
    )


if __name__ == "__main__":  # run as a page by st.navigation
    render()
