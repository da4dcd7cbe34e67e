"""`GET /v1/search`: the engine's search, as `nexus search --json` gives it.

Results are `engine.search.searcher.SearchHit`, the CLI's JSON shape: each names the section it
sits under and the catalogued document it came from (`document_id`, found by the searcher with
an index lookup, never by reading the catalogue), so a client can open
`/v1/documents/{document_id}/pdf#page={page}` (None for a package's chunks).

Searches go through `Engine.searcher`, whose `on_query` hook counts each one in telemetry
(latency and failure only, never the question), exactly like the CLI's.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator, BaseModel

from engine.api.deps import Context, Grade, Subject, require_key
from engine.search.searcher import MAX_QUESTION_CHARS, Mode, SearchHit

log = logging.getLogger(__name__)

MAX_K = 50

router = APIRouter(prefix="/v1", tags=["search"], dependencies=[Depends(require_key)])


class SearchResponse(BaseModel):
    results: list[SearchHit]


def _not_blank(question: str) -> str:
    if not question.strip():
        raise ValueError("the question is empty")
    return question


Question = Annotated[
    str,
    Query(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        description=f"The question (at most {MAX_QUESTION_CHARS} characters).",
    ),
    AfterValidator(_not_blank),
]


@router.get("/search", response_model=SearchResponse, summary="Chunks that answer a question")
def search(
    ctx: Context,
    q: Question,
    grade: Grade = None,
    subject: Subject = None,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="Number of results.")] = 5,
    mode: Annotated[
        Mode | None, Query(description="hybrid (words + meaning), vector or lexical.")
    ] = None,
) -> SearchResponse:
    engine = ctx.engine
    mode = mode or engine.settings.search_mode
    # no engine-wide lock: searches run side by side (each encoder serialises its own model
    # calls, SQLite reads use a connection per thread, the Chroma client is thread-safe)
    return SearchResponse(
        results=engine.searcher.search(q, grade=grade, subject=subject, k=k, mode=mode)
    )
