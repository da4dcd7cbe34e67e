"""The lexical index: SQLite FTS5 with BM25 ranking, per grade/subject, in the engine's database.

It lives in the same SQLite database as the document catalogue, and the pipeline writes both in
one transaction, so after a crash the index and the catalogue always agree. It can be rebuilt
from the chunks in Chroma (after a package install or a backup restore).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from engine import db
from engine.lexical.analyzer import analyze


@dataclass
class LexicalChunk:
    chunk_id: str
    text: str
    source: str
    page: int
    pages: str


@dataclass
class LexicalHit:
    chunk_id: str
    grade: str
    subject: str
    text: str
    source: str
    page: int
    pages: str
    score: float  # BM25, higher is better


def _match_query(question: str) -> str | None:
    """FTS5 query that ORs the question's analysed terms (None when nothing is left)."""
    terms = dict.fromkeys(analyze(question))  # unique, in order
    return " OR ".join(f'"{t}"' for t in terms) or None


class LexicalIndex:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def add(self, grade: str, subject: str, sha256: str, chunks: Iterable[LexicalChunk]) -> None:
        """Index one document's chunks (replacing any earlier rows of the same document)."""
        rows = [
            (
                " ".join(analyze(c.text)),
                grade,
                subject,
                sha256,
                c.chunk_id,
                c.source,
                c.page,
                c.pages,
                c.text,
            )
            for c in chunks
        ]
        with db.transaction(self.conn):
            self.remove(grade, subject, sha256)
            self.conn.executemany(
                "INSERT INTO lexical (terms, grade, subject, sha256, chunk_id, source, page, pages,"
                " text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def remove(self, grade: str, subject: str, sha256: str) -> None:
        self.conn.execute(
            "DELETE FROM lexical WHERE grade = ? AND subject = ? AND sha256 = ?",
            (grade, subject, sha256),
        )

    def relabel(self, grade: str, subject: str, sha256: str, source: str) -> None:
        self.conn.execute(
            "UPDATE lexical SET source = ? WHERE grade = ? AND subject = ? AND sha256 = ?",
            (source, grade, subject, sha256),
        )

    def documents(self) -> set[tuple[str, str, str]]:
        """Every (grade, subject, sha256) with rows in the index."""
        rows = self.conn.execute("SELECT DISTINCT grade, subject, sha256 FROM lexical")
        return {tuple(r) for r in rows}

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM lexical").fetchone()[0]

    def search(
        self,
        question: str,
        *,
        grade: str | None = None,
        subject: str | None = None,
        k: int = 5,
        chunk_ids: list[str] | None = None,
    ) -> list[LexicalHit]:
        """Best BM25 matches for `question`, optionally only among `chunk_ids`."""
        query = _match_query(question)
        if query is None:
            return []
        sql = (
            "SELECT chunk_id, grade, subject, text, source, page, pages, -bm25(lexical) AS score"
            " FROM lexical WHERE lexical MATCH ?"
        )
        params: list = [query]
        for column, value in (("grade", grade), ("subject", subject)):
            if value:
                sql += f" AND {column} = ?"
                params.append(value)
        if chunk_ids is not None:
            sql += f" AND chunk_id IN ({', '.join('?' * len(chunk_ids))})"
            params.extend(chunk_ids)
        sql += " ORDER BY score DESC LIMIT ?"
        params.append(k)
        return [LexicalHit(**dict(row)) for row in self.conn.execute(sql, params)]
