"""Panel render time with a long history: every page with 10,000 jobs (target < 2 s each).

    python bench/panel.py [--jobs 10000]

Fills a fresh data dir with jobs (each with two files, tokens and costs) and telemetry, then
renders each page with Streamlit's AppTest (the same script run a browser triggers, without
the network) and prints the time of a warm render per page.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PAGES = ["overview.py", "jobs.py", "costs.py", "telemetry.py", "upload.py", "search.py"]


def fill(jobs: int) -> None:
    from engine.app import build_engine
    from engine.jobs.base import FileResult, FileStatus, JobRecord
    from engine.settings import Settings

    engine = build_engine(Settings())
    tracker = engine.tracker
    start = datetime.now(UTC) - timedelta(days=30)
    tracker.conn.execute("BEGIN")
    for n in range(jobs):
        stamp = (start + timedelta(minutes=4 * n)).isoformat(timespec="milliseconds")
        job = JobRecord(
            job_type="watch",
            timestamp=stamp,
            created_at=stamp,
            status="completed",
            total_files=2,
            successful_files=1,
            failed_files=1,
            total_chunks=12,
            input_tokens=3000,
            estimated_cost=0.00006,
            tokens_by_subject={f"kelas_{10 + n % 3}/informatika": 3000},
        )
        tracker.save_job(job)
        tracker.save_file(
            job.job_id,
            FileResult(
                f"/inbox/kelas_10/informatika/bab{n}.pdf",
                FileStatus.INGESTED,
                chunks=12,
                grade="kelas_10",
                subject="informatika",
            ),
        )
        tracker.save_file(
            job.job_id,
            FileResult(
                f"/inbox/kelas_10/informatika/scan{n}.pdf",
                FileStatus.NEEDS_OCR,
                "no text layer",
                grade="kelas_10",
                subject="informatika",
            ),
        )
    tracker.conn.execute("COMMIT")
    for hours_ago in range(24 * 30, 1, -1):
        engine.telemetry.record_query(
            40 + hours_ago % 17,
            hours_ago % 29 == 0,
            when=datetime.now(UTC) - timedelta(hours=hours_ago),
        )
    engine.telemetry.roll_up()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NEXUS_DATA_DIR"] = tmp
        os.environ["TELEMETRY_ENABLED"] = "true"
        started = time.perf_counter()
        fill(args.jobs)
        seconds = time.perf_counter() - started
        print(
            f"{args.jobs} jobs, {2 * args.jobs} file results, 30 days of telemetry, {seconds:.0f} s"
        )
        from streamlit.testing.v1 import AppTest

        from engine.auth import set_password
        from engine.settings import Settings

        set_password(Settings(), "bench-password-123")
        for page in PAGES:
            at = AppTest.from_file(str(REPO / "ui" / "app.py"), default_timeout=120)
            at.session_state["authenticated"] = True
            at.session_state["last_seen"] = time.time()
            at.run()
            at.switch_page(page).run()  # first render warms caches
            started = time.perf_counter()
            at.run()
            seconds = time.perf_counter() - started
            assert not at.exception, at.exception
            verdict = "ok" if seconds < 2 else "SLOW"
            print(f"{page:<14} {seconds * 1000:7.0f} ms  {verdict} (target < 2000 ms)")


if __name__ == "__main__":
    main()
