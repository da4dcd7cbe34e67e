"""`GET /v1/documents` (the catalogue) and `GET /v1/documents/{id}/pdf` (a PDF to read).

A document's id is the first 16 hex digits of the SHA-256 of its catalogue key (its path), so it
stays the same across restarts and re-ingests and says nothing about the server's folders.

Serving a PDF follows "confine reads" in CONVENTIONS.md: the id is only ever looked up in the
catalogue (nothing from the request becomes a path), the catalogued file is resolved by the
inbox's symlink policy (`engine.inbox.scan.regular_source`), must lie inside the inbox and be
a regular file with one name when opened (`open_regular`: O_NOFOLLOW, O_NONBLOCK, fstat; a
hard link could be any file of the data dir), hold the bytes the catalogue recorded (sha256),
and on Linux the opened file's real path is checked once more through `/proc/self/fd`.
Anything else is a 404.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Security
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel

from engine.api.deps import Context, Grade, Subject, bearer, require_key
from engine.api.links import check_pdf_token
from engine.documents.catalog import Document, document_id
from engine.inbox.scan import Refused, open_inbox_file

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["documents"])

_CHUNK = 256 * 1024


@dataclass
class DocumentInfo:
    """One catalogued document as the API shows it (no server paths)."""

    id: str
    grade: str
    subject: str
    file: str
    pages: int
    chunks: int
    status: str
    reason: str
    updated: str
    pdf: str | None  # where to read it (`…/pdf#page=N`), None when not served (packages)

    @classmethod
    def of(cls, doc: Document, inbox: Path) -> DocumentInfo:
        doc_id = document_id(doc)
        return cls(
            id=doc_id,
            grade=doc.grade,
            subject=doc.subject,
            file=doc.file_name,
            pages=doc.pages,
            chunks=doc.chunks,
            status=doc.status,
            reason=doc.reason or "",
            updated=doc.updated_at,
            pdf=f"/v1/documents/{doc_id}/pdf" if _under(doc.path, inbox) else None,
        )


class DocumentList(BaseModel):
    documents: list[DocumentInfo]


def _under(key: str, inbox: Path) -> bool:
    """Is catalogue key `key` lexically below the inbox (a file teachers dropped)?"""
    return key.startswith(os.fspath(inbox.resolve()).rstrip("/") + "/")


@router.get(
    "/documents",
    response_model=DocumentList,
    summary="The document catalogue",
    dependencies=[Depends(require_key)],
)
def list_documents(ctx: Context, grade: Grade = None, subject: Subject = None) -> DocumentList:
    engine = ctx.engine
    with ctx.lock:
        documents = engine.catalog.all()
    inbox = engine.settings.inbox_dir
    return DocumentList(
        documents=[
            DocumentInfo.of(doc, inbox)
            for doc in documents
            if (grade is None or doc.grade == grade) and (subject is None or doc.subject == subject)
        ]
    )


@router.get(
    "/documents/{doc_id}/pdf",
    response_class=StreamingResponse,
    summary="The PDF of a document (open it at a page with #page=N)",
    responses={
        200: {"content": {"application/pdf": {}}, "description": "The PDF file."},
        404: {"description": "No such document, or its file is gone or not servable."},
    },
)
def document_pdf(
    doc_id: str,
    ctx: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    t: Annotated[str | None, Query(max_length=100, description="a panel link's token")] = None,
) -> StreamingResponse:
    """Needs an API key, or the token of a link the panel made for a logged-in user."""
    if not (t and check_pdf_token(ctx.engine.settings.data_dir / "keys", doc_id, t)):
        require_key(ctx, credentials)
    engine = ctx.engine
    with ctx.lock:
        documents = engine.catalog.all()
    doc = next((d for d in documents if document_id(d) == doc_id), None)
    not_found = HTTPException(status_code=404, detail=f"no PDF for document {doc_id[:32]!r}")
    if doc is None:
        raise not_found
    try:
        handle = open_inbox_file(doc.path, engine.settings.inbox_dir, doc.sha256)
    except (OSError, Refused) as exc:
        log.info("document %s not served: %s", doc_id, exc)
        raise not_found from exc
    size = os.fstat(handle.fileno()).st_size
    headers = {
        "Content-Length": str(size),
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(doc.file_name, safe='')}",
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(_stream(handle), media_type="application/pdf", headers=headers)


def _stream(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while block := handle.read(_CHUNK):
            yield block
