"""The catalogue of documents the engine knows: path → sha256, status, and its collection.

It is how the engine decides that a file is unchanged (skip), changed (replace its chunks),
deleted (remove its chunks) or a duplicate of a file already ingested in the same grade/subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine import db
from engine.ingest.scan import path_key
from engine.util import utc_now


@dataclass
class Document:
    path: str
    grade: str
    subject: str
    file_name: str
    sha256: str
    size: int
    status: str
    reason: str = ""
    pages: int = 0
    chunks: int = 0
    collection: str = ""
    updated_at: str = ""


def documents_from_chunks(
    chunks: list, *, folder: str, grade: str, subject: str, collection: str
) -> list[tuple[Document, list]]:
    """Catalogue rows for stored chunks, one per document (grouped by file sha256), each
    with its chunks. `folder` is the path prefix the documents are listed under."""
    by_document: dict[str, list] = {}
    for chunk in chunks:
        by_document.setdefault(chunk.metadata["file_sha256"], []).append(chunk)
    rows = []
    for sha, doc_chunks in by_document.items():
        source = doc_chunks[0].metadata["source"]
        document = Document(
            path=f"{folder}{source}",
            grade=grade,
            subject=subject,
            file_name=source,
            sha256=sha,
            size=0,
            status="ingested",
            pages=max(int(c.metadata["page_end"]) for c in doc_chunks),
            chunks=len(doc_chunks),
            collection=collection,
        )
        rows.append((document, doc_chunks))
    return rows


class Catalog:
    """Documents table of the engine's SQLite database."""

    def __init__(self, database: db.Database):
        self.db = database

    @property
    def conn(self):
        """This thread's connection: the writer inside `transaction()`, else read-only."""
        return self.db.conn

    def get(self, path: str) -> Document | None:
        row = self.conn.execute("SELECT * FROM documents WHERE path = ?", (path,)).fetchone()
        return Document(**dict(row)) if row else None

    def put(self, doc: Document) -> None:
        doc.updated_at = utc_now()
        data = vars(doc)
        with self.db.write() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO documents ({', '.join(data)}) "
                f"VALUES ({', '.join(':' + k for k in data)})",
                data,
            )

    def remove(self, path: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM documents WHERE path = ?", (path,))

    def stored_copy(self, grade: str, subject: str, sha256: str, exclude: str) -> Document | None:
        """Another document of this grade/subject with the same content, already ingested."""
        row = self.conn.execute(
            "SELECT * FROM documents WHERE grade = ? AND subject = ? AND sha256 = ? "
            "AND path != ? AND status = 'ingested' LIMIT 1",
            (grade, subject, sha256, exclude),
        ).fetchone()
        return Document(**dict(row)) if row else None

    def copies(self, grade: str, subject: str, sha256: str) -> list[Document]:
        """Every document of this grade/subject with this content."""
        rows = self.conn.execute(
            "SELECT * FROM documents WHERE grade = ? AND subject = ? AND sha256 = ? ORDER BY path",
            (grade, subject, sha256),
        )
        return [Document(**dict(r)) for r in rows]

    def transaction(self):
        """Group writes (catalogue and lexical index) so a crash keeps all or none."""
        return self.db.write()

    def referenced_shas(self, collection: str) -> set[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT sha256 FROM documents WHERE collection = ? AND status = 'ingested'",
            (collection,),
        ).fetchall()
        return {r[0] for r in rows}

    def paths_under(self, root: Path) -> list[str]:
        """Keys (see `engine.ingest.scan.path_key`) of the documents below folder `root`."""
        prefix = path_key(root.resolve()).rstrip("/") + "/"
        rows = self.conn.execute(
            "SELECT path FROM documents WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
        ).fetchall()
        return [r[0] for r in rows]

    def all(self) -> list[Document]:
        rows = self.conn.execute("SELECT * FROM documents ORDER BY grade, subject, path")
        return [Document(**dict(r)) for r in rows]
