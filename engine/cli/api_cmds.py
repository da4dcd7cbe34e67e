"""`nexus serve`: the school server's HTTP API on its own (uvicorn, API_ADDRESS:API_PORT).

FastAPI and uvicorn are imported only when the command runs, so other commands start quickly.
SIGTERM and Ctrl-C stop uvicorn gracefully: it finishes open requests, then (uvicorn 0.29+)
re-raises the signal, so the process ends as killed by SIGTERM, the usual clean exit.
"""

from __future__ import annotations

import argparse
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
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from engine.api.app import create_app
    from engine.api.auth import api_key_store
    from engine.app import build_engine

    address = args.address or settings.api_address
    port = settings.api_port if args.port is None else args.port
    if not api_key_store(settings.data_dir).list():
        print("no API keys yet: create one with `nexus admin api-key create NAME`", file=sys.stderr)
    app = create_app(lambda: build_engine(settings))
    print(f"API on http://{address}:{port} (OpenAPI: /openapi.json)", file=sys.stderr)
    uvicorn.run(
        app,
        host=address,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,  # request lines carry the question (?q=...): kept out of the logs
        log_config=None,  # keep the CLI's logging set-up
    )
    return 0
