"""Document ids of the API: how a catalogued document, and a search hit's document, is named.

A document's id is the first 16 hex digits of the SHA-256 of its catalogue key (its path), so
it stays the same across restarts and re-ingests and says nothing about the server's folders.
"""

from __future__ import annotations

from engine.documents.catalog import Document, document_id


def content_ids(documents: list[Document]) -> dict[tuple[str, str, str], str]:
    """Document id by (grade, subject, chunk-id prefix) of ingested documents, so a search
    hit (whose chunk id starts with its file's sha256) can name the document it came from."""
    found: dict[tuple[str, str, str], str] = {}
    for doc in sorted(documents, key=lambda d: d.path):
        if doc.status == "ingested":
            found.setdefault((doc.grade, doc.subject, doc.sha256[:24]), document_id(doc))
    return found
