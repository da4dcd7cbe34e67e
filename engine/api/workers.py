"""The HTTP API in several worker processes (`nexus serve --workers N`, API_WORKERS).

Python runs one thread at a time per process, so one API process uses about one core however many
clients wait. With N workers uvicorn starts N processes that share the listening socket; each
builds its own engine from the environment (`Settings()`) before it accepts a connection, and
they meet only where the data lives: the Chroma server (Chroma's embedded mode is not safe for two
processes, so `nexus serve` starts one when none runs), the engine database (SQLite in WAL mode:
any number of readers, one writer at a time) and the key store.

Each worker keeps its own rate-limit buckets and gets an equal share of API_RATE_PER_MIN, so a
key never gets more than its limit in total (see the README, HTTP API, to size it).
"""

from __future__ import annotations

from fastapi import FastAPI


def create_worker_app() -> FastAPI:
    """uvicorn's factory in every worker process: the API over an engine built from the
    environment, built before it accepts a connection."""
    from engine.api.app import create_app
    from engine.app import build_engine
    from engine.settings import Settings

    settings = Settings()
    return create_app(lambda: build_engine(settings), workers=settings.api_workers)
