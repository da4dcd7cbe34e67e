"""What every router depends on: the engine (built at start-up), the key check, the limits.

`ApiContext` lives on `app.state.nexus`. Engine parts are shared by the server's worker
threads, and searches run side by side: every encoder serialises its own model calls, SQLite
reads go through a connection per thread (`engine.db.Database`), the Chroma client is
thread-safe, and writes stay single-writer. The watcher of `nexus up` uses the same engine from
its own thread. `ApiContext.lock` now only keeps the rarer catalogue and package listings one
at a time. A hit names its document itself (`SearchHit.document_id`).

`Grade` and `Subject` are the query parameters shared by the routers, checked with
`engine.names.check_name` so a bad name gets a 422 that says what to write instead.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator

from engine.app import Engine
from engine.auth.api_keys import ApiKeyStore, RateLimiter, api_key_store
from engine.names import MAX_NAME_LENGTH, check_name

log = logging.getLogger(__name__)

EngineOrFactory = Engine | Callable[[], Engine]


class ApiContext:
    """The engine behind the API, its key store and the per-key rate limiter."""

    def __init__(
        self,
        engine_or_factory: EngineOrFactory,
        *,
        clock: Callable[[], float] = time.monotonic,
        workers: int = 1,
    ):
        self._engine = engine_or_factory if isinstance(engine_or_factory, Engine) else None
        self._factory = None if self._engine is not None else engine_or_factory
        self._clock = clock
        self._workers = workers  # processes sharing each key's limit
        self._build_lock = threading.Lock()
        self._keys: ApiKeyStore | None = None
        self._limiter: RateLimiter | None = None
        self.lock = threading.Lock()  # held around catalogue and package listings

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._build_lock:
                if self._engine is None:
                    engine = self._factory()
                    _ = engine.searcher  # built once here, not by each first request
                    self._engine = engine
        return self._engine

    @property
    def keys(self) -> ApiKeyStore:
        if self._keys is None:
            self._keys = api_key_store(self.engine.settings.data_dir)
        return self._keys

    @property
    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            with self._build_lock:
                if self._limiter is None:
                    share = math.ceil(self.engine.settings.api_rate_per_min / self._workers)
                    self._limiter = RateLimiter(share, clock=self._clock)
        return self._limiter


def get_context(request: Request) -> ApiContext:
    return request.app.state.nexus


Context = Annotated[ApiContext, Depends(get_context)]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A key from `nexus admin api-key create NAME`, sent as `Bearer <key>`.",
)


def require_key(
    ctx: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> str:
    """The name of the caller's valid API key; 401 without one, 429 past its rate limit."""
    name = ctx.keys.verify(credentials.credentials) if credentials else None
    if name is None:
        raise HTTPException(
            status_code=401,
            detail="a valid API key is required: send 'Authorization: Bearer <key>'"
            " (create one with `nexus admin api-key create NAME`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    wait_s = ctx.limiter.take(name)
    if wait_s > 0:
        retry_after = max(1, math.ceil(wait_s))
        log.info("API key %s is over its rate limit", name)
        raise HTTPException(
            status_code=429,
            detail=f"too many requests: {ctx.engine.settings.api_rate_per_min} per minute per"
            f" key (API_RATE_PER_MIN); retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    return name


def _name_check(kind: str) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        return None if value is None else check_name(value, kind)

    return check


_NAME_RULE = "lowercase letters and digits joined by single underscores, e.g. kelas_10"
Grade = Annotated[
    str | None,
    Query(max_length=MAX_NAME_LENGTH, description=f"Only this grade ({_NAME_RULE})."),
    AfterValidator(_name_check("grade")),
]
Subject = Annotated[
    str | None,
    Query(max_length=MAX_NAME_LENGTH, description=f"Only this subject ({_NAME_RULE})."),
    AfterValidator(_name_check("subject")),
]
