"""Jobs: history with filters, the running job's progress, each file's status, re-runs."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from engine.state import read_state, request_rerun
from ui.common import get_engine, header, session_fragment, settings

FAILED = {
    "encrypted",
    "needs_ocr",
    "empty",
    "corrupt",
    "not_pdf",
    "too_large",
    "too_many_pages",
    "bad_location",
    "timeout",
    "out_of_memory",
    "failed",
}


@session_fragment(run_every="2s")
def _running() -> None:
    running = [j for j in get_engine().tracker.list_jobs(20) if j.status == "running"]
    for job in running:
        done = job.processed_files / job.total_files if job.total_files else 0
        current = job.current_file.rsplit("/", 1)[-1]
        label = f"Job {job.job_id[:8]}: {job.processed_files}/{job.total_files} files · {current}"
        st.progress(done, text=label)


def render() -> None:
    header("Jobs", "What the engine did with each file, and why a file failed.")
    tracker = get_engine().tracker
    _running()
    jobs = tracker.list_jobs(limit=10_000)
    if not jobs:
        st.info("No jobs yet. Drop PDFs into the inbox (or use Upload) and they appear here.")
        return
    latest = jobs[0]
    st.markdown(
        f"Latest job `{latest.job_id[:8]}` ({latest.job_type}): **{latest.status}**, "
        f"{latest.successful_files} ingested, {latest.failed_files} failed, "
        f"{latest.skipped_files} skipped, {latest.total_chunks} chunks"
    )
    table = pd.DataFrame([j.to_dict() for j in jobs])
    table["date"] = pd.to_datetime(table["timestamp"]).dt.date
    columns = st.columns(4)
    statuses = columns[0].multiselect("Status", sorted(table["status"].unique()))
    since = columns[1].date_input("From", value=date.today() - timedelta(days=30))
    known = get_engine().catalog.all()
    grade = columns[2].selectbox("Grade", sorted({d.grade for d in known}), index=None)
    subject = columns[3].selectbox("Subject", sorted({d.subject for d in known}), index=None)
    shown = table[table["date"] >= since]
    if statuses:
        shown = shown[shown["status"].isin(statuses)]
    if grade or subject:
        shown = shown[shown["job_id"].isin(tracker.jobs_touching(grade, subject))]
    st.caption(f"{len(shown)} of {len(table)} jobs")
    st.dataframe(
        shown[
            [
                "timestamp",
                "job_id",
                "job_type",
                "status",
                "total_files",
                "successful_files",
                "failed_files",
                "skipped_files",
                "total_chunks",
                "processing_time",
                "estimated_cost",
            ]
        ],
        hide_index=True,
        width="stretch",
    )
    if shown.empty:
        return
    job_id = st.selectbox("Files of job", shown["job_id"].head(200), format_func=lambda j: j[:12])
    files = tracker.job_files(job_id)
    st.dataframe(
        [
            {
                "file": f.path.removeprefix(str(settings().inbox_dir.resolve()) + "/"),
                "status": str(f.status),
                "reason": f.reason,
                "pages": f.pages,
                "chunks": f.chunks,
            }
            for f in files
        ],
        hide_index=True,
        width="stretch",
    )
    failed = [f.path for f in files if str(f.status) in FAILED]
    if failed:
        choice = st.selectbox("Re-run a failed file", failed)
        if st.button("Re-run"):
            if read_state(settings())["running"]:
                request_rerun(settings(), choice)
                st.success("Queued: the engine reads the file again within seconds.")
            else:
                st.error("The engine is not running (`nexus up`), so nothing can re-run the file.")


if __name__ == "__main__":  # run as a page by st.navigation
    render()
