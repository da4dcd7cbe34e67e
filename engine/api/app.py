"""The FastAPI application: `create_app(engine_or_factory)`.

Routers per area (health, search, documents, packages); every route but `/v1/health` depends
on `require_key`. The OpenAPI document is served at `/openapi.json`. The interactive docs pages
are off: Swagger UI and ReDoc load their scripts from a CDN, which an offline school cannot
reach.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from engine import __version__
from engine.api import documents, health, packages, search
from engine.api.deps import ApiContext, EngineOrFactory
from engine.util import SecretError

log = logging.getLogger(__name__)


def create_app(
    engine_or_factory: EngineOrFactory,
    *,
    clock: Callable[[], float] = time.monotonic,
    workers: int = 1,
) -> FastAPI:
    """The HTTP API over an engine, or over a function that builds one at start-up.

    Args:
        engine_or_factory: an `Engine`, or a callable returning one (e.g.
            `lambda: build_engine(settings)`), called once, at start-up: the server listens
            only when the engine is ready and its local encoder loaded, so neither the first
            search nor a health probe waits for a model to load.
        clock: monotonic seconds for the rate limiter (tests move time with it).
        workers: API processes serving together; each limits a key to its share of
            API_RATE_PER_MIN (`engine.api.workers`).
    """
    app = FastAPI(
        title="OpenClass Nexus API",
        version=__version__,
        description="Search the school's curriculum library. Every endpoint but /v1/health"
        " needs `Authorization: Bearer <key>` (`nexus admin api-key create NAME`).",
        docs_url=None,
        redoc_url=None,
        lifespan=_build_engine_first,
    )
    app.state.nexus = ApiContext(engine_or_factory, clock=clock, workers=workers)
    for area in (health, search, documents, packages):
        app.include_router(area.router)
    app.add_exception_handler(SecretError, _secret_refused)
    return app


@asynccontextmanager
async def _build_engine_first(app: FastAPI) -> AsyncIterator[None]:
    """Build the engine, load its encoder and read the BM25 chunk arrays before the server
    accepts a connection (off the event loop). What cannot load is logged, not fatal: each
    search then says why, as it would have without the warm-up."""
    engine = await run_in_threadpool(lambda: app.state.nexus.engine)
    for what, warm in (
        ("search encoder", engine.embedder.warm),
        ("BM25 index", engine.lexical.warm),
    ):
        try:
            await run_in_threadpool(warm)
        except Exception as exc:
            log.warning("the %s did not load at start-up: %s", what, exc)
    yield


def _secret_refused(request: Request, exc: Exception) -> JSONResponse:
    """A damaged secret (e.g. an empty link secret) refuses what it guards, with the reason."""
    log.error("%s %s refused: %s", request.method, request.url.path, exc)
    return JSONResponse(status_code=503, content={"detail": str(exc)})
