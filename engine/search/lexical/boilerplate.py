"""Template text: how much of each chunk is repeated across many documents of its subject.

Curriculum modules of one subject share most of their text (general information, the Pancasila
student profile, learning activities, rubrics, references). A question that happens to match
that text well would otherwise rank a template chunk of any lesson above the lesson that
answers it. A chunk's *boilerplate share* is the part of its characters in lines/sentences
that occur in at least `max(min_documents, min_share x documents)` distinct documents of the
same grade/subject (digits are folded, so "Modul 3" and "Modul 4" are one line).

Shares are computed from the lexical index's chunk texts, per grade/subject, when first asked
and cached until that grade/subject's rows change (a new or removed document); like the BM25
statistics they depend only on that grade/subject, so a package ranks the same everywhere.
The texts are streamed twice from SQLite, never held together: first each piece's number of
documents (under an 8-byte digest of the piece), then each chunk's share; only the chunks with
a share are kept (a 1M-chunk subject held 1 GB more with every text read at once and a share
for every chunk).
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Iterable

_PIECE = re.compile(r"(?<=[.!?:])\s+|\n+")
_SPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")
MIN_PIECE_CHARS = 12  # shorter lines ("Pertemuan 1") say too little to count either way


def _pieces(text: str) -> list[str]:
    return [p.strip() for p in _PIECE.split(text) if len(p.strip()) >= MIN_PIECE_CHARS]


def _key(piece: str) -> int:
    """The folded piece's 8-byte digest: the same on every server (unlike `hash`), and a
    fraction of the string's memory."""
    folded = _DIGITS.sub("0", _SPACE.sub(" ", piece.casefold()))
    return int.from_bytes(hashlib.blake2b(folded.encode(), digest_size=8).digest(), "big")


def boilerplate_shares(
    rows: Iterable[tuple[str, str, str]], *, min_documents: int = 3, min_share: float = 0.2
) -> dict[str, float]:
    """{chunk_id: share of its text in widely repeated pieces} for one grade/subject's
    (document, chunk_id, text) rows, each document's rows together; chunks without such text
    are left out (a share of 0). `rows` is iterated twice (a list, or an object that queries
    again each time)."""
    seen: dict[int, int] = {}  # piece -> documents it occurs in << 32 | the last one's number
    total_documents, last = 0, None
    for document, _, text in rows:
        if document != last:
            total_documents, last = total_documents + 1, document
        for key in {_key(piece) for piece in _pieces(text)}:
            state = seen.get(key, 0)
            if state & 0xFFFFFFFF != total_documents:
                seen[key] = ((state >> 32) + 1) << 32 | total_documents
    threshold = max(min_documents, math.ceil(min_share * total_documents))
    shares = {}
    for _, chunk_id, text in rows:
        pieces = _pieces(text)
        length = sum(len(p) for p in pieces)
        # a piece the first pass did not see (a document committed between the passes) is
        # nobody's template yet; the new version makes the next search compute them again
        repeated = sum(len(p) for p in pieces if seen.get(_key(p), 0) >> 32 >= threshold)
        if repeated:
            shares[chunk_id] = repeated / length
    return shares


class _Rows:
    """One grade/subject's (document, chunk id, text) rows, queried again at each iteration."""

    def __init__(self, conn, grade: str, subject: str):
        self.conn, self.grade, self.subject = conn, grade, subject

    def __iter__(self):
        return iter(
            self.conn.execute(
                "SELECT sha256, chunk_id, text FROM lexical WHERE grade = ? AND subject = ?"
                " ORDER BY sha256",
                (self.grade, self.subject),
            )
        )


class BoilerplateShares:
    """Cached `boilerplate_shares` per grade/subject over the lexical index's rows.

    One computation per grade/subject at a time: the searches that need it meanwhile wait for
    its result instead of each reading the whole subject again (a class asking at once after a
    restart or an ingest would otherwise multiply the work by the class's size)."""

    def __init__(self, lexical, *, min_documents: int = 3, min_share: float = 0.2):
        self.lexical = lexical
        self.min_documents = min_documents
        self.min_share = min_share
        self._cache: dict[tuple[str, str], tuple[int, dict[str, float]]] = {}
        self._lock = threading.Lock()
        self._computing: dict[tuple[str, str], threading.Lock] = {}  # one per grade/subject

    def of(self, grade: str, subject: str) -> dict[str, float]:
        """{chunk_id: boilerplate share} of one grade/subject (recomputed when it changed)."""
        key = (grade, subject)
        version = self.lexical.version(grade, subject)  # one row, not a count of its chunks
        with self._lock:
            cached = self._cache.get(key)
            if cached and cached[0] == version:
                return cached[1]
            computing = self._computing.setdefault(key, threading.Lock())
        with computing:
            with self._lock:  # computed by another search while this one waited?
                cached = self._cache.get(key)
                if cached and cached[0] == version:
                    return cached[1]
            shares = boilerplate_shares(
                _Rows(self.lexical.conn, grade, subject),
                min_documents=self.min_documents,
                min_share=self.min_share,
            )
            with self._lock:
                self._cache[key] = (version, shares)
        return shares
