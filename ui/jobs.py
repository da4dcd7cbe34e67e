"""Jobs (Pekerjaan): history with filters, the running job's progress, each file's status,
re-runs. Files are shown where the admin put them: grade, subject and file below the inbox."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from engine.documents.summary import FAILURE_STATUSES, inbox_place
from engine.runtime.state import read_state, request_rerun
from ui.common import header, session_fragment
from ui.i18n import money, num, reason, t, when
from ui.resources import get_engine, settings

FAILED = {str(s) for s in FAILURE_STATUSES}


@session_fragment(run_every="2s")
def _running() -> None:
    running = [j for j in get_engine().tracker.list_jobs(20) if j.status == "running"]
    for job in running:
        done = job.processed_files / job.total_files if job.total_files else 0
        label = t(
            "jobs.progress",
            job=job.job_id[:8],
            done=num(job.processed_files),
            total=num(job.total_files),
            file=job.current_file.rsplit("/", 1)[-1],
        )
        st.progress(done, text=label)


def _history_table(shown: pd.DataFrame) -> None:
    columns = {
        "when": "col.when",
        "job_id": "col.job",
        "job_type": "col.job_type",
        "status_label": "col.status",
        "total_files": "col.files",
        "successful_files": "col.ingested",
        "failed_files": "col.failed",
        "skipped_files": "col.skipped",
        "total_chunks": "col.chunks",
        "processing_time": "col.seconds",
        "cost": "col.cost",
    }
    st.dataframe(
        shown[list(columns)].rename(columns={k: t(v) for k, v in columns.items()}),
        hide_index=True,
        width="stretch",
    )


def _shown(params: dict, inbox) -> dict:
    """Reason parameters as the admin reads them: a path as its place below the inbox."""
    if "path" in params:
        return params | {"path": str(inbox_place(str(params["path"]), inbox))}
    return params


def _files(job_id: str) -> None:
    inbox = settings().inbox_dir
    files = get_engine().tracker.job_files(job_id)
    places = {f.path: inbox_place(f.path, inbox) for f in files}
    st.dataframe(
        [
            {
                t("col.grade"): places[f.path].grade,
                t("col.subject"): places[f.path].subject,
                t("col.file"): places[f.path].file,
                t("col.status"): t(f"file_status.{f.status}"),
                t("col.reason"): reason(f.reason_code, _shown(f.reason_params, inbox), f.reason),
                t("col.pages"): f.pages,
                t("col.chunks"): f.chunks,
            }
            for f in files
        ],
        hide_index=True,
        width="stretch",
    )
    failed = [f.path for f in files if str(f.status) in FAILED]
    if not failed:
        return
    choice = st.selectbox(t("jobs.rerun_pick"), failed, format_func=lambda p: str(places[p]))
    if st.button(t("jobs.rerun")):
        if read_state(settings())["running"]:
            request_rerun(settings(), choice)
            st.success(t("jobs.rerun_queued"))
        else:
            st.error(t("jobs.rerun_no_engine"))


def render() -> None:
    header(t("nav.jobs"), t("jobs.caption"))
    tracker = get_engine().tracker
    _running()
    jobs = tracker.list_jobs(limit=10_000)
    if not jobs:
        st.info(t("jobs.empty"))
        return
    latest = jobs[0]
    st.markdown(
        t(
            "jobs.latest",
            job=latest.job_id[:8],
            type=latest.job_type,
            status=t(f"job_status.{latest.status}"),
            ingested=num(latest.successful_files),
            failed=num(latest.failed_files),
            skipped=num(latest.skipped_files),
            chunks=num(latest.total_chunks),
        )
    )
    table = pd.DataFrame([j.to_dict() for j in jobs])
    table["date"] = pd.to_datetime(table["timestamp"]).dt.date
    table["when"] = table["timestamp"].map(when)
    table["status_label"] = table["status"].map(lambda s: t(f"job_status.{s}"))
    table["cost"] = table["estimated_cost"].map(money)
    columns = st.columns(4)
    statuses = columns[0].multiselect(
        t("col.status"),
        sorted(table["status"].unique()),
        format_func=lambda s: t(f"job_status.{s}"),
        placeholder=t("filter.all"),
    )
    since = columns[1].date_input(t("jobs.since"), value=date.today() - timedelta(days=30))
    known = get_engine().catalog.all()
    grade = columns[2].selectbox(
        t("col.grade"), sorted({d.grade for d in known}), index=None, placeholder=t("filter.all")
    )
    subject = columns[3].selectbox(
        t("col.subject"),
        sorted({d.subject for d in known}),
        index=None,
        placeholder=t("filter.all"),
    )
    shown = table[table["date"] >= since]
    if statuses:
        shown = shown[shown["status"].isin(statuses)]
    if grade or subject:
        shown = shown[shown["job_id"].isin(tracker.jobs_touching(grade, subject))]
    st.caption(t("jobs.shown", shown=num(len(shown)), total=num(len(table))))
    _history_table(shown)
    if shown.empty:
        return
    job_id = st.selectbox(
        t("jobs.files_of"), shown["job_id"].head(200), format_func=lambda j: j[:12]
    )
    _files(job_id)


if __name__ == "__main__":  # run as a page by st.navigation
    render()
