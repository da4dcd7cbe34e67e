"""An in-memory copy of the lexical index's postings, per grade/subject, for scoring with numpy.

SQLite stays the source of truth (the rows commit with the catalogue, see `index.py`); this is
a cache derived from it. Each grade/subject's entry is tagged with its `lexical_stats` row
(version, chunks, terms): every write bumps the version in the same transaction as the rows,
so a search that reads a different row (written by this process or any other, or a restored
database) drops the entry and reloads it. A search reads that row anyway for its statistics.

An entry holds the grade/subject's indexed chunks (row id, chunk id, length) as arrays, and the
posting lists of the terms questions have asked for: positions into those arrays (int32) and
term frequencies (the smallest unsigned integer type that holds them, one byte in practice), so
a posting costs ~5 bytes and 1,000,000 chunks' postings (~50 million) fit in ~250 MB. Term
lists are loaded on first use and evicted least recently used once they hold more than
`max_bytes` in all (LEXICAL_CACHE_MB), so memory stays bounded however many subjects are
installed; a grade/subject's chunk arrays cost ~60 bytes per chunk on top. Each cached list is
counted with its Python objects (`ENTRY_OVERHEAD`), so a term a library does not hold, cached
as an empty list, still counts: questions full of made-up words cannot grow the cache past
its bound.

Scores are computed with the same float64 operations, in the same order, as the scalar BM25
they replace (see `LexicalIndex._score_library`; a whole-number frequency converts to float64
exactly), so they are bit for bit the same.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

MAX_BYTES = 256 * 2**20  # cached posting lists over all grade/subjects (LEXICAL_CACHE_MB)
# what a cached list costs besides its arrays: two numpy array headers, the Postings object,
# its entries in the library's dict and in the LRU, the key tuple (measured ~540 bytes with
# tracemalloc for one-posting lists; tests/test_lexical_scoring.py checks it stays above)
ENTRY_OVERHEAD = 640


@dataclass
class Postings:
    """One term's posting list within a grade/subject."""

    positions: np.ndarray  # int32 positions into the grade/subject's chunk arrays
    tf: np.ndarray  # term frequencies, unsigned integers as small as they fit

    @property
    def nbytes(self) -> int:
        """What the cache counts for this list: its arrays and their Python objects."""
        return self.positions.nbytes + self.tf.nbytes + ENTRY_OVERHEAD


@dataclass
class Library:
    """One grade/subject at one version: its indexed chunks and cached posting lists."""

    stamp: tuple[int, int, int]  # its lexical_stats (version, chunks, terms) when read
    rowids: np.ndarray  # int64 `lexical.id` of each indexed chunk, ascending
    lengths: np.ndarray  # float64 terms per chunk
    chunk_ids: np.ndarray  # bytes chunk ids, sorted
    chunk_order: np.ndarray  # position of each sorted chunk id
    terms: dict[str, Postings] = field(default_factory=dict)
    _norms: dict[tuple, np.ndarray] = field(default_factory=dict)

    def norms(self, k1: float, b: float, average_length: float) -> np.ndarray:
        """BM25's length normalisation of every chunk: k1 * (1 - b + b * length / avgdl)."""
        key = (k1, b, average_length)
        norm = self._norms.get(key)
        if norm is None:
            norm = k1 * (1 - b + b * self.lengths / average_length)
            self._norms = {key: norm}  # k1/b change only in benchmarks; keep the latest
        return norm

    def positions_of(self, chunk_ids: set[str]) -> np.ndarray:
        """Positions of the chunks with these ids (every row of an id, should one repeat)."""
        if not chunk_ids or not len(self.chunk_ids):
            return np.empty(0, dtype=np.int64)
        width = self.chunk_ids.dtype.itemsize  # a longer id cannot be one of these
        encoded = sorted(e for e in (c.encode() for c in chunk_ids) if len(e) <= width)
        wanted = np.array(encoded, dtype=self.chunk_ids.dtype)
        left = np.searchsorted(self.chunk_ids, wanted, side="left")
        right = np.searchsorted(self.chunk_ids, wanted, side="right")
        found = [self.chunk_order[lo:hi] for lo, hi in zip(left, right, strict=True) if hi > lo]
        return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


class PostingsCache:
    """Per grade/subject `Library` entries, checked against their `lexical_stats` row."""

    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes = max_bytes
        self._libraries: dict[tuple[str, str], Library] = {}
        self._recent: OrderedDict[tuple[str, str, str], int] = OrderedDict()  # LRU of terms
        self._held = 0  # bytes held in all cached term lists
        self._lock = threading.Lock()

    def library(
        self, conn: sqlite3.Connection, grade: str, subject: str, stamp: tuple[int, int, int]
    ) -> Library:
        """The entry of a grade/subject whose lexical_stats row reads `stamp` (loaded when
        missing or different)."""
        key = (grade, subject)
        with self._lock:
            cached = self._libraries.get(key)
            if cached is not None and cached.stamp == stamp:
                return cached
        chunks = _read_chunks(conn, grade, subject)
        order = np.argsort(chunks["chunk_id"], kind="stable")
        loaded = Library(
            stamp=stamp,
            rowids=chunks["id"].copy(),
            lengths=chunks["length"].copy(),
            chunk_ids=chunks["chunk_id"][order],
            chunk_order=order,
        )
        with self._lock:
            cached = self._libraries.get(key)
            if cached is not None and cached.stamp == stamp:
                return cached  # another thread loaded it meanwhile
            if cached is not None:
                self._forget_terms(key, cached)
            self._libraries[key] = loaded
        return loaded

    def postings(
        self,
        conn: sqlite3.Connection,
        grade: str,
        subject: str,
        library: Library,
        term: str,
    ) -> Postings:
        """One term's posting list in `library` (read from SQLite on first use)."""
        key = (grade, subject, term)
        with self._lock:
            found = library.terms.get(term)
            if found is not None:
                if key in self._recent:
                    self._recent.move_to_end(key)
                return found
        chunks, tf = _read_postings(conn, grade, subject, term)
        positions = np.searchsorted(library.rowids, chunks)
        # a row written after the library was read (its stamp is already stale) has no
        # position; drop it: the next search sees the new stamp and reloads everything
        known = positions < len(library.rowids)
        known[known] = library.rowids[positions[known]] == chunks[known]
        loaded = Postings(positions=positions[known].astype(np.int32), tf=_compact(tf[known]))
        with self._lock:
            if self._libraries.get((grade, subject)) is not library:
                return loaded  # replaced meanwhile: use it for this search, don't keep it
            if term not in library.terms:
                library.terms[term] = loaded
                self._recent[key] = loaded.nbytes
                self._held += loaded.nbytes
                self._evict()
        return loaded

    def _evict(self) -> None:
        while self._held > self.max_bytes and len(self._recent) > 1:
            (grade, subject, term), size = self._recent.popitem(last=False)
            self._held -= size
            library = self._libraries.get((grade, subject))
            if library is not None:
                library.terms.pop(term, None)

    def _forget_terms(self, key: tuple[str, str], library: Library) -> None:
        for term in library.terms:
            self._held -= self._recent.pop((*key, term), 0)

    @property
    def held(self) -> int:
        """Bytes held in cached term lists (arrays and per-list overhead)."""
        return self._held


def _read_chunks(conn: sqlite3.Connection, grade: str, subject: str) -> np.ndarray:
    """A grade/subject's indexed chunks (id, chunk_id as UTF-8 bytes, length), by id, read
    row by row into one array: a list of a million rows first cost ~250 MB more at the peak
    than the arrays it becomes (356 vs 130 MB, measured on a 1M-chunk subject). A write
    between the two statements changes the grade/subject's stamp, so the next search reloads
    what this one read."""
    where = "FROM lexical WHERE grade = ? AND subject = ? AND kind != 'toc'"
    (width,) = conn.execute(
        f"SELECT max(length(CAST(chunk_id AS BLOB))) {where}", (grade, subject)
    ).fetchone()
    kind = np.dtype([("id", np.int64), ("chunk_id", f"S{max(1, width or 0)}"), ("length", float)])
    rows = conn.execute(f"SELECT id, chunk_id, length {where} ORDER BY id", (grade, subject))
    return np.fromiter(((i, chunk_id.encode(), length) for i, chunk_id, length in rows), kind)


def _read_postings(
    conn: sqlite3.Connection, grade: str, subject: str, term: str
) -> tuple[np.ndarray, np.ndarray]:
    """A term's (chunk row ids, term frequencies) in a grade/subject, as int64 arrays.

    SQLite joins each column into one string and numpy parses it: 2.6x faster than a Python
    tuple per row (~340 vs ~880 ns a posting), which is what a cold search pays. The two
    aggregates of one SELECT step over the same rows in the same order (SQLite documents the
    order as arbitrary, not as differing between aggregates; this SQLite predates ORDER BY
    inside an aggregate), and counting the parsed numbers catches a value that is not a whole
    number. Then the rows are read one by one, and a damaged row (the index only ever writes
    whole numbers: this is a tampered or corrupt database) is left out and logged, so the
    search still answers from the others."""
    where = "FROM lexical_postings WHERE grade = ? AND subject = ? AND term = ?"
    count, chunks, tf = conn.execute(
        f"SELECT count(*), group_concat(chunk), group_concat(tf) {where}", (grade, subject, term)
    ).fetchone()
    if not count:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    parsed = [_parse_integers(text) for text in (chunks, tf)]
    if all(p is not None and len(p) == count for p in parsed):
        return parsed[0], parsed[1]
    rows = conn.execute(f"SELECT chunk, tf {where}", (grade, subject, term)).fetchall()
    whole = [r for r in rows if type(r[0]) is int and type(r[1]) is int]
    if len(whole) < len(rows):
        log.warning(
            "lexical index damaged: %d posting(s) of %r in %s/%s are not whole numbers; left out",
            len(rows) - len(whole),
            term,
            grade,
            subject,
        )
    return (
        np.fromiter((r[0] for r in whole), dtype=np.int64, count=len(whole)),
        np.fromiter((r[1] for r in whole), dtype=np.int64, count=len(whole)),
    )


def _parse_integers(text: object) -> np.ndarray | None:
    """Comma-separated whole numbers (ASCII, optionally negative), or None when `text` is not
    only that."""
    if not isinstance(text, str) or not text.isascii():
        return None
    if not text.replace(",", "").replace("-", "").isdigit() or text[0] == "," or text[-1] == ",":
        return None
    try:
        return np.fromstring(text, dtype=np.int64, sep=",")
    except ValueError:  # "1,,2" or "1-2": numpy 2 raises where older versions stopped short
        return None


def _compact(tf: np.ndarray) -> np.ndarray:
    """Whole-number term frequencies in the smallest unsigned type that holds them all."""
    if len(tf) and int(tf.min()) < 0:  # never written so; kept as they are rather than wrapped
        return tf
    top = int(tf.max()) if len(tf) else 0
    for kind in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(kind).max:
            return tf.astype(kind)
    return tf.astype(np.uint64)
