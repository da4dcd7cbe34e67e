"""`nexus admin set-password`, `nexus admin unlock` and `nexus admin api-key ...`."""

from __future__ import annotations

import argparse
import getpass
import sys

from engine.auth import MIN_LENGTH, login_throttle, set_password
from engine.cli.output import emit
from engine.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    admin = sub.add_parser("admin", help="the admin panel's password and the API's keys")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    p = admin_sub.add_parser("set-password", help="set the panel password (stored as a hash)")
    p.add_argument("--stdin", action="store_true", help="read one line from standard input")
    p.set_defaults(func=cmd_set_password)
    p = admin_sub.add_parser("unlock", help="forget failed panel logins (lift every lockout)")
    p.set_defaults(func=cmd_unlock)
    register_api_keys(admin_sub)


def register_api_keys(admin_sub: argparse._SubParsersAction) -> None:
    keys = admin_sub.add_parser("api-key", help="keys of the HTTP API (`nexus serve`)")
    keys_sub = keys.add_subparsers(dest="api_key_command", required=True)
    p = keys_sub.add_parser("create", help="make a key and print it (shown only this once)")
    p.add_argument("name", help="who or what uses it, e.g. lab-pc-3")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_api_key_create)
    p = keys_sub.add_parser("list", help="key names, when made and last used (never the keys)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_api_key_list)
    p = keys_sub.add_parser("revoke", help="delete a key; requests with it fail at once")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_api_key_revoke)


def cmd_api_key_create(args: argparse.Namespace, settings: Settings) -> int:
    from engine.auth.api_keys import BadKeyName, KeyExists, api_key_store

    try:
        key = api_key_store(settings.data_dir).create(args.name)
    except (BadKeyName, KeyExists) as exc:
        print(f"nexus admin api-key create: {exc}", file=sys.stderr)
        return 1
    if args.json:
        emit({"name": args.name, "key": key})
        return 0
    print(f"API key {args.name!r} (shown only now; send it as 'Authorization: Bearer <key>'):")
    print(key)
    return 0


def cmd_api_key_list(args: argparse.Namespace, settings: Settings) -> int:
    from engine.auth.api_keys import api_key_store

    keys = api_key_store(settings.data_dir).list()
    if args.json:
        emit([k.to_dict() for k in keys])
        return 0
    if not keys:
        print("no API keys: create one with `nexus admin api-key create NAME`")
    for k in keys:
        used = (k.last_used_at or "never")[:19]
        print(f"{k.name:<30} created {k.created_at[:19]}  last used {used}")
    return 0


def cmd_api_key_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from engine.auth.api_keys import api_key_store

    revoked = api_key_store(settings.data_dir).revoke(args.name)
    if args.json:
        emit({"name": args.name, "revoked": revoked})
    elif revoked:
        print(f"API key {args.name!r} revoked")
    if not revoked:
        print(f"nexus admin api-key revoke: no key named {args.name!r}", file=sys.stderr)
    return 0 if revoked else 1


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
