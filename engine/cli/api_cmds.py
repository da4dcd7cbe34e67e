"""`nexus serve`: the school server's HTTP API on its own (uvicorn, API_ADDRESS:API_PORT).

FastAPI and uvicorn are imported only when the command runs, so other commands start quickly.
SIGTERM and Ctrl-C stop uvicorn gracefully: it finishes open requests, then (uvicorn 0.29+)
re-raises the signal, so the process ends as killed by SIGTERM, the usual clean exit.

With `--workers N` (API_WORKERS) uvicorn runs N worker processes (`engine.api.workers`), each
building its engine from the environment. They share Chroma through a server: CHROMA_HOST, the
one a running `nexus up` started, or else one started here for as long as `nexus serve` runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from engine.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the HTTP API (search, documents, packages) on API_ADDRESS:API_PORT",
        description="Serve the HTTP API. Every endpoint but /v1/health needs a key from"
        " `nexus admin api-key create NAME`; the OpenAPI document is at /openapi.json.",
    )
    p.add_argument("--port", type=int, help="port to listen on (default API_PORT)")
    p.add_argument("--address", help="address to listen on (default API_ADDRESS)")
    p.add_argument(
        "--workers",
        type=int,
        help="API worker processes, about one per core (default API_WORKERS)",
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from engine.api.app import create_app
    from engine.app import build_engine
    from engine.auth.api_keys import api_key_store

    address = args.address or settings.api_address
    port = settings.api_port if args.port is None else args.port
    if not api_key_store(settings.data_dir).list():
        print("no API keys yet: create one with `nexus admin api-key create NAME`", file=sys.stderr)
    workers = settings.api_workers if args.workers is None else args.workers
    if workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2
    options = dict(
        host=address,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,  # request lines carry the question (?q=...): kept out of the logs
        log_config=None,  # keep the CLI's logging set-up
    )
    if workers == 1:
        print(f"API on http://{address}:{port} (OpenAPI: /openapi.json)", file=sys.stderr)
        uvicorn.run(create_app(lambda: build_engine(settings)), **options)
        return 0
    return _serve_workers(settings, workers, options)


def _serve_workers(settings: Settings, workers: int, options: dict) -> int:
    """uvicorn's worker processes over a shared Chroma server (started here if none runs)."""
    import uvicorn

    from engine.store.server import ChromaServerError

    try:
        server = _own_chroma_server(settings)
    except ChromaServerError as exc:
        print(f"nexus serve: {exc}", file=sys.stderr)
        return 1
    # the workers build their settings from the environment (engine.api.workers)
    os.environ["API_WORKERS"] = str(workers)
    if server is not None:
        os.environ |= {"CHROMA_HOST": server.host, "CHROMA_PORT": str(server.port)}
    print(
        f"API on http://{options['host']}:{options['port']} with {workers} worker processes"
        " (OpenAPI: /openapi.json)",
        file=sys.stderr,
    )
    try:
        uvicorn.run(
            "engine.api.workers:create_worker_app", factory=True, workers=workers, **options
        )
    finally:
        if server is not None:
            server.stop()
    return 0


def _own_chroma_server(settings: Settings):
    """A Chroma server started for the workers, or None when one is configured or running."""
    from engine.store.client import running_server
    from engine.store.server import ChromaServer

    if settings.chroma_host or running_server(settings) is not None:
        return None
    server = ChromaServer(settings)
    server.start()
    return server
