"""`nexus admin set-password` and `nexus admin unlock`."""

from __future__ import annotations

import argparse
import getpass
import sys

from engine.auth import MIN_LENGTH, login_throttle, set_password
from engine.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    admin = sub.add_parser("admin", help="the admin panel's password")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    p = admin_sub.add_parser("set-password", help="set the panel password (stored as a hash)")
    p.add_argument("--stdin", action="store_true", help="read one line from standard input")
    p.set_defaults(func=cmd_set_password)
    p = admin_sub.add_parser("unlock", help="forget failed panel logins (lift every lockout)")
    p.set_defaults(func=cmd_unlock)


def cmd_unlock(args: argparse.Namespace, settings: Settings) -> int:
    login_throttle(settings).reset()
    print("failed logins forgotten: the panel accepts the password again now")
    return 0


def cmd_set_password(args: argparse.Namespace, settings: Settings) -> int:
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"new admin password (at least {MIN_LENGTH} characters): ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ; nothing changed", file=sys.stderr)
            return 1
    try:
        set_password(settings, password)
    except ValueError as exc:
        print(f"nexus admin set-password: {exc}", file=sys.stderr)
        return 1
    print("admin password set")
    return 0
