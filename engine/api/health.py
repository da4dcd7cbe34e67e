"""`GET /v1/health`: is the API up, and what is the engine doing (no key needed).

Only a summary of the engine's state file (`engine.runtime.state.read_state`) is shown,
without paths, process ids, host names or the model (a local model is named by its path, which
can hold a user name), since anyone who can reach the port may ask.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from engine import __version__
from engine.api.deps import Context
from engine.runtime.state import read_state

router = APIRouter(prefix="/v1", tags=["health"])

_SHOWN = (
    "running",
    "updated_at",
    "last_seen",
    "mode",
    "queue_length",
    "embedding_strategy",
    "fallen_back",
    "device",
)


class Health(BaseModel):
    status: str
    version: str
    engine: dict


@router.get("/health", response_model=Health, summary="API and engine state (no key)")
def health(ctx: Context) -> Health:
    state = read_state(ctx.engine.settings)
    return Health(
        status="ok",
        version=__version__,
        engine={k: state[k] for k in _SHOWN if k in state},
    )
