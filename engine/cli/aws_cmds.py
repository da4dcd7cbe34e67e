"""`nexus aws setup|status|flush|deploy-lambda` and `nexus jobs costs`."""

from __future__ import annotations

import argparse
import sys

from engine.app import build_engine
from engine.cli.output import delivery_failed, delivery_json, emit
from engine.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    aws = sub.add_parser("aws", help="the AWS control plane (all optional)")
    aws_sub = aws.add_subparsers(dest="aws_command", required=True)
    p = aws_sub.add_parser("setup", help="create bucket, tables and notification (idempotent)")
    p.set_defaults(func=cmd_setup)
    p = aws_sub.add_parser("status", help="each AWS service: configured, reachable, latency")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = aws_sub.add_parser("flush", help="deliver the S3 outbox and unsynced job records")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_flush)
    p = aws_sub.add_parser("deploy-lambda", help="create or update the Lambda processor")
    p.add_argument(
        "--image",
        metavar="URI",
        default="",
        help="ECR image built from docker/Dockerfile.lambda (all dependencies and the model);"
        " without it only the engine's code is shipped as a zip",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_deploy_lambda)


def register_costs(jobs_sub: argparse._SubParsersAction) -> None:
    p = jobs_sub.add_parser("costs", help="estimated cost per day and subject")
    p.add_argument("--days", type=int, default=7, choices=[7, 30])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_costs)


def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    from engine.aws.clients import AwsUnavailable, aws_errors
    from engine.cloud.admin import setup

    try:
        for line in setup(settings):
            print(line)
    except (AwsUnavailable, *aws_errors()) as exc:
        print(f"nexus aws setup: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from engine.cloud.admin import status

    services = status(settings, build_engine(settings))
    if args.json:
        emit(services)
        return 0
    embedding = services.pop("embedding")
    local = embedding.get("fallback", embedding)
    line = f"{'embedding':<20} {embedding['strategy']}: {embedding['model']}"
    if "device" in local:
        line += f" (local model on {local['device']})"
    print(line)
    for name, info in services.items():
        if not info["configured"]:
            state = "not configured"
        elif info["reachable"]:
            state = f"ok ({info['latency_ms']:.0f} ms)"
        else:
            state = f"UNREACHABLE: {info['error']}"
        print(f"{name:<20} {state}")
    return 0


def cmd_flush(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 1 when objects or job records are still waiting because delivering them failed."""
    engine = build_engine(settings)
    report = delivery_json(engine.publisher.deliver())
    sync = getattr(engine.tracker, "sync", None)  # job records wait only with DynamoDB
    report["jobs_synced"], report["jobs_error"] = sync() if sync is not None else (0, "")
    if args.json:
        emit(report)
    else:
        print(
            f"sent {report['sent']}, unchanged {report['unchanged']}, "
            f"still waiting {report['pending']}; job records sent {report['jobs_synced']}"
        )
    failed = False
    if delivery_failed(report):
        print(
            f"nexus aws flush: {report['pending']} object(s) still waiting: {report['error']}",
            file=sys.stderr,
        )
        failed = True
    if report["jobs_error"]:
        print(
            f"nexus aws flush: job records still waiting: {report['jobs_error']}", file=sys.stderr
        )
        failed = True
    return 1 if failed else 0


def cmd_deploy_lambda(args: argparse.Namespace, settings: Settings) -> int:
    from engine.aws.clients import AwsUnavailable, aws_errors
    from engine.cloud.admin import deploy_lambda

    try:
        result = deploy_lambda(settings, image_uri=args.image)
    except (AwsUnavailable, *aws_errors()) as exc:
        print(f"nexus aws deploy-lambda: {exc}", file=sys.stderr)
        return 1
    if args.json:
        emit(result)
    else:
        print(f"{result['action']} {result['function_arn']}")
    return 0


def cmd_costs(args: argparse.Namespace, settings: Settings) -> int:
    from engine.jobs.costs import get_cost_summary

    summary = get_cost_summary(build_engine(settings).tracker, settings, args.days)
    if args.json:
        emit(summary)
        return 0
    print(f"last {args.days} days: ${summary['total_cost']:.4f}, {summary['total_tokens']} tokens")
    print(f"monthly run-rate: ${summary['monthly_run_rate']:.4f}")
    for day in summary["per_day"]:
        print(f"  {day['date']}  ${day['cost']:.4f}  {day['tokens']} tokens  {day['jobs']} jobs")
    for subject, cost in summary["per_subject"].items():
        print(f"  {subject:<30} ${cost:.4f}")
    if summary["estimated_regions"]:
        print(f"  (no price for {', '.join(summary['estimated_regions'])}: us-east-1 price used)")
    return 0
