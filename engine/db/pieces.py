"""Template pieces: how chunk text is cut into lines/sentences and each one keyed, as stored.

`lexical_pieces` (migration 12) holds, per grade/subject, each piece's number of documents under
its key, and `lexical_stats.documents` each grade/subject's number of documents; the lexical
index updates both in the transaction that adds or removes a document (`count_pieces`), and
template shares are computed from them (`engine.search.lexical.boilerplate`). The cutting and
the key are part of the schema: a change to either needs a migration that counts again
(`recount_pieces`); tests/test_search_techniques.py pins one key so it cannot slip through.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterable
from itertools import groupby

_PIECE = re.compile(r"(?<=[.!?:])\s+|\n+")
_DIGITS = re.compile(r"\d+")
MIN_PIECE_CHARS = 12  # shorter lines ("Pertemuan 1") say too little to count either way
KEYS_PER_STATEMENT = 500  # keys per statement, below SQLite's limit on bound parameters


def pieces_of(text: str) -> list[str]:
    """The text's lines and sentences of at least MIN_PIECE_CHARS characters."""
    return [p.strip() for p in _PIECE.split(text) if len(p.strip()) >= MIN_PIECE_CHARS]


def piece_key(piece: str) -> int:
    """The folded piece's 8-byte digest as a signed 64-bit integer (SQLite's INTEGER): the
    same on every server (unlike `hash`), and a fraction of the string's size."""
    # split() breaks on the same whitespace as \s+ (str.isspace), faster than a regex
    folded = _DIGITS.sub("0", " ".join(piece.casefold().split()))
    digest = hashlib.blake2b(folded.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def document_pieces(texts: Iterable[str]) -> set[int]:
    """The keys of every piece in one document's chunk texts (each counted once)."""
    return {piece_key(piece) for text in texts for piece in pieces_of(text)}


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
        for start in range(0, len(keys), KEYS_PER_STATEMENT):
            part = keys[start : start + KEYS_PER_STATEMENT]
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
