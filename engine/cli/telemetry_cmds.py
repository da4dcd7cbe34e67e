"""`nexus telemetry show|upload|status`."""

from __future__ import annotations

import argparse
import json
import sys

from engine.app import build_engine
from engine.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    telemetry = sub.add_parser("telemetry", help="anonymised usage telemetry")
    telemetry_sub = telemetry.add_subparsers(dest="telemetry_command", required=True)
    p = telemetry_sub.add_parser("show", help="print exactly what the next upload would send")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
    p = telemetry_sub.add_parser("upload", help="send the queued hours now")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_upload)
    p = telemetry_sub.add_parser("status", help="privacy status: what is sent, queue, last check")
    p.set_defaults(func=cmd_status)


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    telemetry = build_engine(settings).telemetry
    if not telemetry.enabled:
        print(
            "[]"
            if args.json
            else "telemetry is disabled (TELEMETRY_ENABLED=false): nothing is sent"
        )
        return 0
    telemetry.roll_up()
    payloads = telemetry.queued()
    if args.json or payloads:
        print(json.dumps(payloads, indent=2))
    else:
        print("nothing to send yet: telemetry covers completed hours with searches")
    _print_refused(telemetry.refused())
    return 0


def _print_refused(refused: list[dict]) -> None:
    """Say on stderr which hours the PII guard kept back, and why (stdout stays JSON)."""
    for item in refused:
        print(
            f"held back {item['hour']} ({item['queries']} searches kept): "
            + "; ".join(item["problems"]),
            file=sys.stderr,
        )


def cmd_upload(args: argparse.Namespace, settings: Settings) -> int:
    result = build_engine(settings).telemetry.upload()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        error = f" ({result['error']})" if result["error"] else ""
        print(f"sent {result['sent']} hour(s), {result['pending']} waiting{error}")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    status = build_engine(settings).telemetry.status()
    print(json.dumps(status, indent=2))
    _print_refused(status["refused_hours"])
    return 0
