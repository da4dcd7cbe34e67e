"""`GET /v1/search`: the engine's search, as `nexus search --json` gives it.

Results are `engine.search.searcher.SearchHit` (the CLI's JSON shape) plus two fields the API adds:
`section` (empty until the engine tracks sections; a field the same name on `SearchHit` takes
over once it exists) and `document_id`, the id of the catalogued document the hit came from, so
a client can open `/v1/documents/{document_id}/pdf#page={page}` (None for package chunks).

Searches go through `Engine.searcher`, whose `on_query` hook counts each one in telemetry
(latency and failure only, never the question), exactly like the CLI's.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator, BaseModel

from engine.api.deps import Context, Grade, Subject, require_key
from engine.search.searcher import MAX_QUESTION_CHARS, Mode, SearchHit

log = logging.getLogger(__name__)

MAX_K = 50

router = APIRouter(prefix="/v1", tags=["search"], dependencies=[Depends(require_key)])


@dataclass
class SearchResult(SearchHit):
    """A search hit as the API returns it: `SearchHit` plus `section` and `document_id`."""

    section: str = ""
    document_id: str | None = None


class SearchResponse(BaseModel):
    results: list[SearchResult]


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
    hits = engine.searcher.search(q, grade=grade, subject=subject, k=k, mode=mode)
    ids = ctx.document_ids() if hits else {}
    return SearchResponse(results=[_result(hit, ids) for hit in hits])


_RESULT_FIELDS = {f.name for f in fields(SearchResult)}


def _result(hit: SearchHit, ids: dict[tuple[str, str, str], str]) -> SearchResult:
    data = {k: v for k, v in asdict(hit).items() if k in _RESULT_FIELDS}
    data.setdefault("section", "")
    data["document_id"] = ids.get((hit.grade, hit.subject, hit.chunk_id.split("-", 1)[0]))
    return SearchResult(**data)
