"""`nexus vkp keygen|build|list|verify|install|pull|serve|rollback`.

Packages are named `<grade>__<subject>` (`kelas_10__informatika`); commands that take a
grade and subject take them as two arguments, checked with `engine.names`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from tqdm import tqdm

from engine.app import build_engine
from engine.cli.output import delivery_json, emit, on_terminal
from engine.settings import Settings
from engine.util import parse_duration

DOWNGRADE_HELP = (
    "install even if it is older than the installed version (refused by default;"
    " `nexus vkp rollback` returns to the previous version without it)"
)


def register(sub: argparse._SubParsersAction) -> None:
    vkp = sub.add_parser(
        "vkp",
        help="versioned knowledge packages",
        description="Signed knowledge packages, named <grade>__<subject>. Installing a version"
        " older than the installed one is refused unless --allow-downgrade is given;"
        " `nexus vkp rollback` goes back to the previous version.",
    )
    vkp_sub = vkp.add_subparsers(dest="vkp_command", required=True)
    p = vkp_sub.add_parser("keygen", help="make the Ed25519 signing key pair in <data>/keys/")
    p.set_defaults(func=cmd_keygen)
    p = vkp_sub.add_parser("build", help="build the next version of a grade/subject")
    p.add_argument("subject")
    p.add_argument("grade")
    p.add_argument("--publish", action="store_true", help="add it to the catalogue and publish")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_build)
    p = vkp_sub.add_parser("list", help="installed packages and the catalogue's latest")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = vkp_sub.add_parser("verify", help="check a package file")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_verify)
    p = vkp_sub.add_parser(
        "install",
        help="install a package file",
        description="Install a package file. A version older than the installed one is"
        " refused unless --allow-downgrade is given.",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--allow-downgrade", action="store_true", help=DOWNGRADE_HELP)
    p.set_defaults(func=cmd_install)
    p = vkp_sub.add_parser(
        "pull",
        help="update from a signed catalogue: URL, folder (USB) or cloudfront",
        description="Update from a catalogue. The catalogue's signature is checked, and one"
        " older than the newest seen is refused; a catalogue whose latest version is older than"
        " the installed one is not followed unless --allow-downgrade is given.",
    )
    p.add_argument("--source", help="default VKP_SOURCE")
    p.add_argument(
        "--only",
        action="append",
        help="<grade>__<subject>, e.g. kelas_10__informatika (repeatable)",
    )
    p.add_argument("--allow-downgrade", action="store_true", help=DOWNGRADE_HELP)
    p.add_argument("--every", help="repeat, e.g. 1h or 30m (the seed's vkp_pull_cron)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_pull)
    p = vkp_sub.add_parser("serve", help="share the publish folder over HTTP on the LAN")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8700)
    p.set_defaults(func=cmd_serve)
    p = vkp_sub.add_parser(
        "rollback", help="go back to the previously installed version (the allowed downgrade)"
    )
    p.add_argument("subject")
    p.add_argument("grade")
    p.set_defaults(func=cmd_rollback)


def _fail(message: str) -> int:
    print(f"nexus vkp: {message}", file=sys.stderr)
    return 1


def cmd_keygen(args: argparse.Namespace, settings: Settings) -> int:
    from engine.vkp.keys import keygen

    try:
        private, public = keygen(settings.data_dir / "keys")
    except FileExistsError as exc:
        return _fail(str(exc))
    print(f"signing key {private}\npublic key  {public} (copy it to school servers' data/keys/)")
    return 0


def cmd_build(args: argparse.Namespace, settings: Settings) -> int:
    from engine.names import BadName
    from engine.vkp.build import NothingToBuild

    engine = build_engine(settings)
    try:
        built = engine.builder.build(args.subject, args.grade)  # takes the ingestion lock
    except (NothingToBuild, FileNotFoundError, BadName) as exc:
        return _fail(str(exc))
    folder = engine.builder.folder.resolve()
    result = built.to_dict() | {
        "path": str(folder / built.file),
        "delta_path": str(folder / built.delta_file) if built.delta_file else None,
        "published": None,
    }
    if args.publish:
        published = engine.package_catalogue.publish(built, args.subject, args.grade)
        if published.get("s3") is not None:
            published["s3"] = delivery_json(SimpleNamespace(**published["s3"]))
        result["published"] = published
    if args.json:
        emit(result)
    else:
        delta = (
            f", delta from v{built.base_version}: {built.delta_size} bytes"
            if built.delta_file
            else ""
        )
        print(f"built {result['path']} (v{built.version}, {built.size} bytes{delta})")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    engine = build_engine(settings)
    installed = {k: vars(v) for k, v in engine.installer.installed().items()}
    if args.json:
        emit(installed)
        return 0
    if not installed:
        print("no packages installed")
    for name, row in installed.items():
        previous = f" (previous v{row['previous_version']})" if row["previous_version"] else ""
        print(f"{name:<30} v{row['version']}{previous}  installed {row['installed_at'][:16]}")
    _warn_about_models(engine)
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from engine.vkp.package import PackageError

    try:
        manifest = build_engine(settings).installer.verify(args.file)
    except PackageError as exc:
        return _fail(f"REFUSED: {exc}")
    m = manifest
    print(
        f"OK: {m['subject']} {m['grade']} v{m['version']} ({m['kind']}, {m['chunk_count']} chunks)"
    )
    print("signature valid, checksums match")
    return 0


def _warn_about_models(engine, warned: set[str] | None = None) -> None:
    """Say (once per package in `warned`) which installed packages this engine's embedding
    model cannot search by meaning. Never fails the command it follows."""
    from engine.documents.summary import packages_without_vectors

    warned = set() if warned is None else warned
    try:
        missing = packages_without_vectors(engine.installer.installed(), engine.embedder)
        own = engine.embedder.model.key
    except Exception as exc:  # e.g. settings for an embedder this command does not need
        print(f"nexus vkp: could not compare the packages' models: {exc}", file=sys.stderr)
        return
    for name, model in missing.items():
        if name in warned:
            continue
        warned.add(name)
        print(
            f"nexus vkp: warning: {name} was built with the embedding model {model}, this engine"
            f" embeds with {own}: only keyword search finds its passages; {model_hint(model)}",
            file=sys.stderr,
        )


def model_hint(model_key: str) -> str:
    """Which setting makes this engine query collections of `model_key`."""
    if model_key.startswith("titan"):
        return "use EMBEDDING_STRATEGY=bedrock or hybrid with the package's BEDROCK_DIMENSIONS"
    if model_key.endswith("-int8"):
        return "use LOCAL_EMBEDDING_BACKEND=onnx-int8 or openvino"
    if model_key == "all-minilm-l6-v2":
        return "leave LOCAL_EMBEDDING_MODEL empty (the packaged MiniLM)"
    return f"set LOCAL_EMBEDDING_MODEL={model_key}"


def cmd_install(args: argparse.Namespace, settings: Settings) -> int:
    from engine.vkp.package import PackageError

    engine = build_engine(settings)
    try:
        record = engine.installer.install(args.file, allow_downgrade=args.allow_downgrade)
    except PackageError as exc:
        return _fail(f"not installed: {exc}")
    print(f"installed {record.package} v{record.version}")
    _warn_about_models(engine)
    return 0


def cmd_pull(args: argparse.Namespace, settings: Settings) -> int:
    from engine.names import BadName, split_library_key
    from engine.vkp.pull import pull
    from engine.vkp.transfer import TransferError

    try:
        for name in args.only or []:
            split_library_key(name)
    except BadName as exc:
        return _fail(f"--only: {exc} (for example kelas_10__informatika)")

    engine = build_engine(settings)
    bars: dict[str, tqdm] = {}
    warned: set[str] = set()  # packages already warned about (pull --every repeats)

    def progress(name: str, done: int, total: int) -> None:
        if name not in bars:
            bars[name] = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=name,
                file=sys.stderr,
                disable=not on_terminal(),
            )
        bar = bars[name]
        bar.update(done - bar.n)

    while True:
        try:
            results = pull(
                settings,
                engine.installer,
                engine.vkp_source(args.source or settings.vkp_source),
                set(args.only or []) or None,
                progress,
                allow_downgrade=args.allow_downgrade,
            )
        except TransferError as exc:
            results = [{"action": "failed", "error": str(exc)}]  # the catalogue itself
        for bar in bars.values():
            bar.close()
        bars.clear()
        results = [dict.fromkeys(PULL_KEYS) | {"error": ""} | r for r in results]
        if args.json:
            emit(results)
        else:
            for r in results:
                fields = [r["package"] or "catalogue", r["action"], r["version"] or "", r["via"]]
                print(" ".join(str(f) for f in fields if f))
        for r in results:
            if r["error"]:
                where = f"{r['package'] or 'catalogue'} ({r['action']})"
                print(f"nexus vkp pull: {where}: {r['error']}", file=sys.stderr)
        _warn_about_models(engine, warned)
        failed = pull_failures(results)
        if not args.every:
            return 1 if failed else 0
        time.sleep(parse_duration(args.every))


# Every `nexus vkp pull --json` result has these keys (null or "" where they do not apply).
PULL_KEYS = ("package", "action", "version", "from", "via", "bytes", "error")


def pull_failures(results: list[dict]) -> list[dict]:
    """Failures that were not made good: a package whose delta failed but whose full package
    then installed is not one. (A package `kept` back from a downgrade is a refusal by policy,
    said on stderr, not a failure.)"""
    last: dict[str | None, dict] = {}
    for r in results:
        last[r["package"]] = r
    return [r for r in last.values() if r["action"] == "failed"]


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from engine.vkp.transfer import serve

    folder = settings.vkp_dir / "publish"
    folder.mkdir(parents=True, exist_ok=True)
    server = serve(folder, args.host, args.port)
    print(
        f"serving {folder} on http://{args.host}:{args.port}/vkp/index.json (Ctrl-C stops)",
        file=sys.stderr,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from engine.vkp.package import PackageError

    try:
        record = build_engine(settings).installer.rollback(args.subject, args.grade)
    except PackageError as exc:
        return _fail(str(exc))
    print(f"{record.package} is back at v{record.version}")
    return 0
