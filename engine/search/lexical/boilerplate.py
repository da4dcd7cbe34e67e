"""Template text: how much of each chunk is repeated across many documents of its subject.

Curriculum modules of one subject share most of their text (general information, the Pancasila
student profile, learning activities, rubrics, references). A question that happens to match
that text well would otherwise rank a template chunk of any lesson above the lesson that
answers it. A chunk's *boilerplate share* is the part of its characters in lines/sentences
that occur in at least `max(min_documents, min_share x documents)` distinct documents of the
same grade/subject (digits are folded, so "Modul 3" and "Modul 4" are one line).

The counts behind it live in the engine database beside the BM25 rows: `lexical_pieces` holds,
per grade/subject, each piece's number of documents (under an 8-byte digest of the folded
piece), and `lexical_stats.documents` the grade/subject's number of documents. The lexical
index updates both in the transaction that adds or removes a document (`count_pieces`), so they
agree with the rows after any crash, and a search only computes the shares of its own
candidates: a few dozen texts and one indexed query, whatever the size of the subject. Like the
BM25 statistics they depend only on that grade/subject, so a package ranks the same everywhere.
"""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
from collections.abc import Iterable, Mapping
from itertools import groupby

# How text is cut into pieces and each piece keyed is stored: `lexical_pieces` holds the keys.
# A change to _PIECE, MIN_PIECE_CHARS or _key needs a migration that calls `recount_pieces`
# (tests/test_search_techniques.py pins one key so such a change cannot slip through).
_PIECE = re.compile(r"(?<=[.!?:])\s+|\n+")
_DIGITS = re.compile(r"\d+")
MIN_PIECE_CHARS = 12  # shorter lines ("Pertemuan 1") say too little to count either way
_BATCH = 500  # keys per statement, below SQLite's limit on bound parameters


def _pieces(text: str) -> list[str]:
    return [p.strip() for p in _PIECE.split(text) if len(p.strip()) >= MIN_PIECE_CHARS]


def _key(piece: str) -> int:
    """The folded piece's 8-byte digest as a signed 64-bit integer (SQLite's INTEGER): the
    same on every server (unlike `hash`), and a fraction of the string's size."""
    # split() breaks on the same whitespace as \s+ (str.isspace), faster than a regex
    folded = _DIGITS.sub("0", " ".join(piece.casefold().split()))
    digest = hashlib.blake2b(folded.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def document_pieces(texts: Iterable[str]) -> set[int]:
    """The keys of every piece in one document's chunk texts (each counted once)."""
    return {_key(piece) for text in texts for piece in _pieces(text)}


def count_pieces(
    conn: sqlite3.Connection, grade: str, subject: str, pieces: set[int], step: int
) -> None:
    """Add `step` (1: a document added, -1: removed) to each piece's number of documents in
    one grade/subject; pieces no document holds any more are dropped. Call it inside the
    write transaction that adds or removes the document's rows."""
    keys = sorted(pieces)
    conn.executemany(
        "INSERT INTO lexical_pieces (grade, subject, piece, documents) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (grade, subject, piece) DO UPDATE SET documents = documents + ?",
        [(grade, subject, key, step, step) for key in keys],
    )
    if step < 0:
        for start in range(0, len(keys), _BATCH):
            part = keys[start : start + _BATCH]
            conn.execute(
                "DELETE FROM lexical_pieces WHERE grade = ? AND subject = ? AND documents <= 0"
                f" AND piece IN ({', '.join('?' * len(part))})",
                (grade, subject, *part),
            )


def recount_pieces(conn: sqlite3.Connection, grade: str | None = None, subject: str = "") -> None:
    """Count the template pieces and documents of one grade/subject (or of all) again from its
    rows, one document's texts at a time (a million-chunk subject never sits in memory). Call
    it inside a write transaction: migration 12 counts an index from before it this way, and
    the lexical index mends counts that disagree with the rows."""
    scope, params = (
        ("", ()) if grade is None else (" WHERE grade = ? AND subject = ?", (grade, subject))
    )
    conn.execute("DELETE FROM lexical_pieces" + scope, params)
    conn.execute(
        "UPDATE lexical_stats SET documents = (SELECT count(DISTINCT sha256) FROM lexical l"
        " WHERE l.grade = lexical_stats.grade AND l.subject = lexical_stats.subject)" + scope,
        params,
    )
    rows = conn.execute(
        "SELECT grade, subject, sha256, text FROM lexical"
        + scope
        + " ORDER BY grade, subject, sha256",
        params,
    )
    for (g, s, _), texts in groupby(rows, key=lambda row: tuple(row[:3])):
        count_pieces(conn, g, s, document_pieces(row[3] for row in texts), 1)


class BoilerplateShares:
    """Template shares of a search's candidates, from the counts the lexical index keeps."""

    def __init__(self, lexical, *, min_documents: int = 3, min_share: float = 0.2):
        self.lexical = lexical
        self.min_documents = min_documents
        self.min_share = min_share

    def of(self, grade: str, subject: str, texts: Mapping[str, str]) -> dict[str, float]:
        """{chunk_id: share of its text in widely repeated pieces} for chunks of one
        grade/subject given as {chunk_id: text}; chunks without such text are left out."""
        split = {c: [(len(p), _key(p)) for p in _pieces(text)] for c, text in texts.items()}
        keys = sorted({key for pieces in split.values() for _, key in pieces})
        if not keys:
            return {}
        documents, counts = self._counts(grade, subject, keys)
        threshold = max(self.min_documents, math.ceil(self.min_share * documents))
        shares = {}
        for chunk_id, pieces in split.items():
            length = sum(n for n, _ in pieces)
            repeated = sum(n for n, key in pieces if counts.get(key, 0) >= threshold)
            if repeated:
                shares[chunk_id] = repeated / length
        return shares

    def _counts(self, grade: str, subject: str, keys: list[int]) -> tuple[int, dict[int, int]]:
        """The grade/subject's number of documents and its pieces' counts, from one snapshot
        (a document committed meanwhile changes both or neither)."""
        conn = self.lexical.conn
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")
        try:
            row = conn.execute(
                "SELECT documents FROM lexical_stats WHERE grade = ? AND subject = ?",
                (grade, subject),
            ).fetchone()
            counts: dict[int, int] = {}
            for start in range(0, len(keys), _BATCH):
                part = keys[start : start + _BATCH]
                counts.update(
                    conn.execute(
                        "SELECT piece, documents FROM lexical_pieces WHERE grade = ?"
                        f" AND subject = ? AND piece IN ({', '.join('?' * len(part))})",
                        (grade, subject, *part),
                    ).fetchall()
                )
        finally:
            if own:
                conn.execute("COMMIT")
        return (row[0] if row else 0), counts
