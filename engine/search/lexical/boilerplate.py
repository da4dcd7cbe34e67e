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
index updates both in the transaction that adds or removes a document (`engine.db.pieces`), so
they agree with the rows after any crash, and a search only computes the shares of its own
candidates: a few dozen texts and one indexed query, whatever the size of the subject. Like
the BM25 statistics they depend only on that grade/subject, so a package ranks the same
everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from engine.db.pieces import KEYS_PER_STATEMENT, piece_key, pieces_of


class BoilerplateShares:
    """Template shares of a search's candidates, from the counts the lexical index keeps."""

    def __init__(self, lexical, *, min_documents: int = 3, min_share: float = 0.2):
        self.lexical = lexical
        self.min_documents = min_documents
        self.min_share = min_share

    def of(self, grade: str, subject: str, texts: Mapping[str, str]) -> dict[str, float]:
        """{chunk_id: share of its text in widely repeated pieces} for chunks of one
        grade/subject given as {chunk_id: text}; chunks without such text are left out."""
        split = {c: [(len(p), piece_key(p)) for p in pieces_of(text)] for c, text in texts.items()}
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
            for start in range(0, len(keys), KEYS_PER_STATEMENT):
                part = keys[start : start + KEYS_PER_STATEMENT]
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
