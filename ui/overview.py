"""Overview (Ikhtisar): the admin's first questions, in the order they are asked.

Is everything up (engine, Chroma, the HTTP API, AWS)? What is in the library? Which files need
attention, and what to do about each? What happened lately? The data comes from
`engine.documents.summary` and `engine.runtime.probes`; this page only lays it out.
"""

from __future__ import annotations

import streamlit as st

from engine.cloud.admin import status as aws_status
from engine.documents.summary import ingest_activity, library_summary, needs_attention
from engine.runtime.probes import api_status, api_url, chroma_status
from engine.runtime.state import read_state
from engine.util import folder_mb
from ui.charts import stacked_bars
from ui.common import header, status_metric
from ui.i18n import day, num, reason, t, when
from ui.resources import get_engine, settings


@st.cache_data(ttl=60, show_spinner=False)
def _aws(_cache_key: str) -> dict:
    return aws_status(settings(), get_engine())


@st.cache_data(ttl=15, show_spinner=False)
def _api_up(url: str) -> bool:
    return api_status(settings())


@st.cache_data(ttl=15, show_spinner=False)
def _chroma(_cache_key: str) -> str:
    return chroma_status(settings())


def _aws_summary(services: dict) -> tuple[str, str, str]:
    """(tone, short value, detail) for the AWS column."""
    probed = {n: i for n, i in services.items() if n != "embedding" and i["configured"]}
    if not probed:
        return "off", t("status.offline"), t("overview.aws_off_help")
    up = sum(1 for i in probed.values() if i["reachable"])
    tone = "ok" if up == len(probed) else ("bad" if up == 0 else "warn")
    return tone, f"{num(up)}/{num(len(probed))}", t("overview.aws_reachable")


def _services(state: dict) -> None:
    engine_col, chroma_col, api_col, aws_col = st.columns(4)
    running = bool(state["running"])
    status_metric(
        engine_col,
        t("overview.engine"),
        "ok" if running else "bad",
        t("status.on" if running else "status.off"),
        t("overview.running" if running else "overview.not_running"),
    )
    chroma = _chroma(str(settings().data_dir))
    tone, short = {
        "up": ("ok", "status.on"),
        "down": ("bad", "status.off"),
        "embedded": ("off", "status.embedded"),
    }[chroma]
    status_metric(chroma_col, t("overview.chroma"), tone, t(short), t(f"overview.chroma_{chroma}"))
    url = api_url(settings())
    api_up = _api_up(url)
    status_metric(
        api_col,
        t("overview.api"),
        "ok" if api_up else "off",
        t("status.on" if api_up else "status.off"),
        t("overview.api_help", url=url),
    )
    services = _aws(str(settings().data_dir))
    tone, value, detail = _aws_summary(services)
    status_metric(aws_col, t("overview.aws"), tone, value, detail)

    if state["running"]:
        st.success(t("overview.watching", folder=state["watching"]))
        model = f"{state.get('embedding_strategy')} · {state.get('model')}"
        if state.get("device"):
            model += f" · {state['device']}"
        queue = num(state.get("queue_length", 0))
        st.markdown(
            t("overview.engine_detail", model=model, mode=state.get("mode", "?"), queue=queue)
        )
        if state.get("fallen_back"):
            st.warning(t("overview.fell_back", reason=state.get("fallback_reason")))
    else:
        seen = state.get("last_seen")
        last = " " + t("overview.last_seen", when=when(seen)) if seen else ""
        st.info(t("overview.start_engine") + last)
    pending = services.get("s3", {}).get("outbox_pending", 0)
    if pending:
        st.warning(t("overview.outbox", count=num(pending)))


def _library() -> None:
    st.subheader(t("overview.library"))
    rows = library_summary(get_engine().catalog)
    if not rows:
        st.info(t("overview.library_empty"))
        return
    st.dataframe(
        [
            {
                t("col.grade"): r.grade,
                t("col.subject"): r.subject,
                t("col.documents"): r.documents,
                t("col.pages"): r.pages,
                t("col.chunks"): r.chunks,
                t("col.last_update"): when(r.last_update),
                t("col.model"): ", ".join(r.models),
            }
            for r in rows
        ],
        hide_index=True,
        width="stretch",
    )
    total = sum(r.documents for r in rows)
    st.caption(
        t("overview.library_total", documents=num(total), pages=num(sum(r.pages for r in rows)))
    )
    subjects = sorted({r.subject for r in rows})
    grades = sorted({r.grade for r in rows})
    counts = {(r.grade, r.subject): r.documents for r in rows}
    st.plotly_chart(
        stacked_bars(
            subjects,
            {g: [counts.get((g, s), 0) for s in subjects] for g in grades},
            t("overview.chart_subjects"),
            t("col.documents"),
        ),
        width="stretch",
    )


def _attention() -> None:
    st.subheader(t("overview.attention"))
    engine = get_engine()
    items = needs_attention(engine.tracker, engine.catalog, inbox=settings().inbox_dir)
    if not items:
        st.success(t("overview.attention_none"))
        return
    st.warning(t("overview.attention_count", count=num(len(items))))
    st.dataframe(
        [
            {
                t("col.file"): str(i.place),
                t("col.status"): t(f"file_status.{i.status}"),
                t("col.reason"): reason(i.reason_code, i.reason_params, i.reason),
                t("col.todo"): t(f"action.{i.action}"),
                t("col.searchable"): "✓" if i.still_searchable else "",
                t("col.when"): when(i.finished_at),
            }
            for i in items
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption(t("overview.attention_help"))


def _activity() -> None:
    st.subheader(t("overview.activity"))
    jobs = get_engine().tracker.list_jobs(10)
    if not jobs:
        st.info(t("overview.activity_none"))
        return
    per_day = ingest_activity(get_engine().tracker, days=30)
    st.plotly_chart(
        stacked_bars(
            [day(d["date"]) for d in per_day],
            {
                t("overview.ingested"): [d["ingested"] for d in per_day],
                t("overview.failed"): [d["failed"] for d in per_day],
            },
            t("overview.chart_activity"),
            t("overview.files"),
        ),
        width="stretch",
    )
    st.dataframe(
        [
            {
                t("col.when"): when(j.timestamp),
                t("col.job_type"): j.job_type,
                t("col.status"): t(f"job_status.{j.status}"),
                t("col.ingested"): j.successful_files,
                t("col.failed"): j.failed_files,
                t("col.skipped"): j.skipped_files,
                t("col.chunks"): j.total_chunks,
            }
            for j in jobs
        ],
        hide_index=True,
        width="stretch",
    )


def _aws_details() -> None:
    with st.expander(t("overview.aws_details")):
        if st.button(t("overview.check_again")):
            _aws.clear()
            _api_up.clear()
            _chroma.clear()
        rows = []
        for name, info in _aws(str(settings().data_dir)).items():
            if name == "embedding":
                continue
            if not info["configured"]:
                verdict = "⚪ " + t("overview.not_configured")
            elif info["reachable"]:
                latency = num(info["latency_ms"])
                verdict = "🟢 " + t("overview.reachable", ms=latency)
            else:
                verdict = "🔴 " + t("overview.unreachable")
            rows.append(
                {
                    t("col.service"): name,
                    t("col.status"): verdict,
                    t("col.detail"): info.get("error", ""),
                }
            )
        st.dataframe(rows, hide_index=True, width="stretch")


def render() -> None:
    header(t("nav.overview"), t("overview.caption"))
    state = read_state(settings())
    _services(state)
    _library()
    _attention()
    _activity()
    st.metric(
        t("overview.storage"),
        t("overview.storage_value", mb=num(folder_mb(settings().data_dir), 1)),
    )
    _aws_details()


if __name__ == "__main__":  # run as a page by st.navigation
    render()
