"""`nexus search` and `nexus jobs`."""

from __future__ import annotations

import argparse
import sys

from engine.app import build_engine
from engine.cli import aws_cmds
from engine.cli.output import emit, job_json
from engine.cli.progress import describe
from engine.search.searcher import MODES
from engine.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="find the chunks that answer a question")
    p.add_argument("question")
    p.add_argument("--grade")
    p.add_argument("--subject")
    p.add_argument("-k", type=int, default=5, help="number of results (default 5)")
    p.add_argument(
        "--mode",
        choices=MODES,
        help="hybrid (words + meaning), vector or lexical; default SEARCH_MODE",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("jobs", help="job history")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_jobs)
    jobs_sub = p.add_subparsers(dest="jobs_command")
    show = jobs_sub.add_parser("show", help="one job with the status of each file")
    show.add_argument("job_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_job_show)
    aws_cmds.register_costs(jobs_sub)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    """Ask the running engine (warm model, over its local API) or, without one, search alone."""
    from engine.api.local import search_running_engine

    mode = args.mode or settings.search_mode
    params = {"q": args.question, "grade": args.grade, "subject": args.subject, "k": args.k}
    hits = search_running_engine(settings, params | {"mode": mode})
    if hits is None:
        engine = build_engine(settings)
        found = engine.searcher.search(
            args.question, grade=args.grade, subject=args.subject, k=args.k, mode=mode
        )
        hits = [h.to_dict() for h in found]
    if args.json:
        emit(hits)
        return 0
    if not hits:
        print("no results (is anything ingested? see `nexus jobs`)", file=sys.stderr)
        return 0
    print(f"{mode} search:")
    for rank, hit in enumerate(hits, start=1):
        where = f"{hit['grade']}/{hit['subject']}/{hit['source']}, page {hit['pages']}"
        section = f" — {hit['section']}" if hit.get("section") else ""
        print(f"{rank}. [{hit['score']:.3f}] {where}{section}")
        print(f"   {hit['text'][:300]}")
    return 0


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    jobs = build_engine(settings).tracker.list_jobs(limit=args.limit)
    if args.json:
        emit([j.to_dict() for j in jobs])
        return 0
    if not jobs:
        print("no jobs yet: drop PDFs into the inbox or run `nexus ingest PATH`")
    for job in jobs:
        print(
            f"{job.timestamp[:19]}  {job.job_id[:12]}  {job.job_type:<7} {job.status:<11} "
            f"files {job.successful_files} ok / {job.failed_files} failed / {job.skipped_files} "
            f"skipped  chunks {job.total_chunks}  {job.processing_time:.1f}s"
        )
    return 0


def cmd_job_show(args: argparse.Namespace, settings: Settings) -> int:
    tracker = build_engine(settings).tracker
    matches = [j for j in tracker.list_jobs(limit=10_000) if j.job_id.startswith(args.job_id)]
    if not matches:
        print(
            f"nexus jobs show: no job matches {args.job_id!r} (see `nexus jobs`)", file=sys.stderr
        )
        return 1
    if len(matches) > 1:
        print(
            f"nexus jobs show: {len(matches)} jobs match {args.job_id!r}: give more of the id",
            file=sys.stderr,
        )
        return 1
    job = matches[0]
    files = tracker.job_files(job.job_id)
    if args.json:
        emit(job_json(job, files))
        return 0
    print(f"job {job.job_id} ({job.job_type}) {job.status}, strategy {job.strategy_used or '-'}")
    if job.fallback_reason:
        print(f"fell back to local embeddings: {job.fallback_reason}")
    for result in files:
        print("  " + describe(result))
    return 0
