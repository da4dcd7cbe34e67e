"""`nexus telemetry show|upload|status`."""

from __future__ import annotations

import argparse
import json
import sys

from engine.app import build_engine
from engine.cli.output import delivery_failed, emit
from engine.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    telemetry = sub.add_parser("telemetry", help="anonymised usage telemetry")
    telemetry_sub = telemetry.add_subparsers(dest="telemetry_command", required=True)
    p = telemetry_sub.add_parser(
        "show", help="print exactly what the next upload would send, and the hour in progress"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
    p = telemetry_sub.add_parser("upload", help="send the queued hours now")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_upload)
    p = telemetry_sub.add_parser("status", help="privacy status: what is sent, queue, last check")
    p.set_defaults(func=cmd_status)


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    """The queued hours (exactly what the next upload sends) and, apart, the hour in progress."""
    telemetry = build_engine(settings).telemetry
    if telemetry.enabled:
        telemetry.roll_up()
    shown = {
        "enabled": telemetry.enabled,
        "payloads": telemetry.queued() if telemetry.enabled else [],
        "current_hour": telemetry.current_hour(),
        "refused_hours": telemetry.refused() if telemetry.enabled else [],
    }
    if args.json:
        emit(shown)
    elif not telemetry.enabled:
        print("telemetry is disabled (TELEMETRY_ENABLED=false): nothing is sent")
    else:
        _print_show(shown)
    _print_refused(shown["refused_hours"])
    return 0


def _print_show(shown: dict) -> None:
    if shown["payloads"]:
        print("the next upload sends:")
        print(json.dumps(shown["payloads"], indent=2))
    else:
        print("nothing to send yet: telemetry covers completed hours with searches")
    if shown["current_hour"]:
        print(
            f"pending: the current hour ({shown['current_hour']['timestamp']}), not complete;"
            " it is queued and sent after it ends:"
        )
        print(json.dumps(shown["current_hour"], indent=2))


def _print_refused(refused: list[dict]) -> None:
    """Say on stderr which hours the PII guard kept back, and why (stdout stays JSON)."""
    for item in refused:
        print(
            f"held back {item['hour']} ({item['queries']} searches kept): "
            + "; ".join(item["problems"]),
            file=sys.stderr,
        )


def cmd_upload(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 1 when queued hours could not be sent (they stay queued for the next try)."""
    result = build_engine(settings).telemetry.upload()
    if args.json:
        emit(result)
    else:
        note = f" ({result['error']})" if result["error"] and not result["pending"] else ""
        print(f"sent {result['sent']} hour(s), {result['pending']} waiting{note}")
    if delivery_failed(result):
        print(
            f"nexus telemetry upload: {result['pending']} hour(s) not sent: {result['error']}",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    status = build_engine(settings).telemetry.status()
    emit(status)
    _print_refused(status["refused_hours"])
    return 0
