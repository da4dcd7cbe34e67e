"""The catalogue of documents the engine knows: path → sha256, status, and its collection.

It is how the engine decides that a file is unchanged (skip), changed (replace its chunks),
deleted (remove its chunks) or a duplicate of a file already ingested in the same grade/subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine import db
from engine.jobs.base import utc_now


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


class Catalog:
    """Documents table of the engine's SQLite database."""

    def __init__(self, db_path: Path):
        self.conn = db.connect(db_path)

    def get(self, path: str) -> Document | None:
        row = self.conn.execute("SELECT * FROM documents WHERE path = ?", (path,)).fetchone()
        return Document(**dict(row)) if row else None

    def put(self, doc: Document) -> None:
        doc.updated_at = utc_now()
        data = vars(doc)
        self.conn.execute(
            f"INSERT OR REPLACE INTO documents ({', '.join(data)}) "
            f"VALUES ({', '.join(':' + k for k in data)})",
            data,
        )

    def remove(self, path: str) -> None:
        self.conn.execute("DELETE FROM documents WHERE path = ?", (path,))

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
        return db.transaction(self.conn)

    def referenced_shas(self, collection: str) -> set[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT sha256 FROM documents WHERE collection = ? AND status = 'ingested'",
            (collection,),
        ).fetchall()
        return {r[0] for r in rows}

    def paths_under(self, root: Path) -> list[str]:
        prefix = str(root.resolve()).rstrip("/") + "/"
        rows = self.conn.execute(
            "SELECT path FROM documents WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
        ).fetchall()
        return [r[0] for r in rows]

    def all(self) -> list[Document]:
        rows = self.conn.execute("SELECT * FROM documents ORDER BY grade, subject, path")
        return [Document(**dict(r)) for r in rows]
