"""The lexical index: BM25 over analysed terms, scored per grade/subject, in the engine's database.

Why not FTS5's `bm25()`: it takes its statistics (how many chunks hold a term, the average
chunk length) from the whole table, so a school server with one package installed and an admin
machine with every subject would rank the same question in the same subject differently. Here
each (grade, subject) is its own BM25 collection: `lexical` holds one row per chunk (with its
length), `lexical_postings` one row per (grade, subject, term, chunk) with the term frequency,
and a search computes document frequencies and the average length from the rows of that
grade/subject only. Same package, same question → same scores, wherever it is installed.
Those two statistics are kept per grade/subject in `lexical_stats`, written in the same
transaction as the rows, so a search reads one row instead of summing the whole table; so are
the counts behind template shares (its number of documents there, and `lexical_pieces`:
`engine/db/pieces.py`). The postings are scored with numpy from an in-memory copy per
grade/subject, which that row's version tags (`postings.py`: a derived cache; the tables stay
the truth), with the same float operations as the scalar formula, so the scores are the same
bit for bit.

A search without a grade/subject filter scores every grade/subject on its own statistics and
merges the hits by score: a hit's score never depends on what else is installed, only which
hits compete with it does. Each hit also carries `coverage`, its score divided by the score a
chunk holding every question term once (at the average length) would get in that subject, i.e.
how much of the question's weighted terms it explains (0..~1.5); hybrid fusion uses it.

It lives in the same SQLite database as the document catalogue, and the pipeline writes both in
one transaction, so after a crash the index and the catalogue always agree. It can be rebuilt
from the chunks in Chroma (after a package install, a backup restore or migration 7).
"""

from __future__ import annotations

import heapq
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

from engine import db
from engine.db.pieces import count_pieces, document_pieces, recount_pieces
from engine.search.lexical.analyzer import analyze
from engine.search.lexical.informal import standard_words
from engine.search.lexical.postings import MAX_BYTES, PostingsCache
from engine.search.lexical.rows import LexicalChunk, LexicalHit
from engine.search.lexical.scored import Scored, idf

K1 = 1.2  # term-frequency saturation (the usual BM25 defaults; see bench/retrieval.py)
B = 0.75  # length normalisation


def query_terms(question: str) -> list[str]:
    """The question's analysed terms, unique, in order; informal spellings (`knp`, `yg`,
    `gmn`) are read as the standard words first (engine.search.lexical.informal)."""
    return list(dict.fromkeys(analyze(standard_words(question))))


class LexicalIndex:
    """BM25 over the engine database's `lexical` tables; writes go through `Database.write`."""

    def __init__(
        self,
        database: db.Database,
        *,
        k1: float = K1,
        b: float = B,
        feedback_chunks: int = 0,
        feedback_terms: int = 10,
        feedback_weight: float = 0.3,
        cache_bytes: int = MAX_BYTES,
    ):
        self.db = database
        self.postings = PostingsCache(cache_bytes)  # derived from the tables, per version
        self.k1 = k1
        self.b = b
        # pseudo-relevance feedback (measured, off): the best terms of the first pass's top
        # `feedback_chunks` chunks join the question with `feedback_weight` each
        self.feedback_chunks = feedback_chunks
        self.feedback_terms = feedback_terms
        self.feedback_weight = feedback_weight

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    # --- writing ------------------------------------------------------------------------------
    def add(self, grade: str, subject: str, sha256: str, chunks: Iterable[LexicalChunk]) -> None:
        """Index one document's chunks (replacing any earlier rows of the same document).

        A chunk's section heading counts as part of its text; table-of-contents chunks are
        kept (so the index mirrors the store) but get no postings, so BM25 never returns them.
        """
        with self.db.write():
            self.remove(grade, subject, sha256)
            indexed = total = 0
            texts = []  # the document's chunk texts, for its template pieces
            for c in chunks:
                texts.append(c.text)
                section = getattr(c, "section", "") or ""
                kind = getattr(c, "kind", "") or ""
                terms = analyze(f"{section}\n{c.text}" if section else c.text)
                cursor = self.conn.execute(
                    "INSERT INTO lexical (grade, subject, sha256, chunk_id, source, page, pages,"
                    " text, terms, length, section, kind)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        grade,
                        subject,
                        sha256,
                        c.chunk_id,
                        c.source,
                        c.page,
                        c.pages,
                        c.text,
                        " ".join(terms),
                        len(terms),
                        section,
                        kind,
                    ),
                )
                if kind != "toc":
                    indexed, total = indexed + 1, total + len(terms)
                if kind == "toc" or not terms:
                    continue
                rowid = cursor.lastrowid
                self.conn.executemany(
                    "INSERT INTO lexical_postings (grade, subject, term, chunk, tf, length)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (grade, subject, term, rowid, tf, len(terms))
                        for term, tf in Counter(terms).items()
                    ],
                )
            self._count(grade, subject, indexed, total, int(bool(texts)))
            count_pieces(self.conn, grade, subject, document_pieces(texts), 1)

    def _count(self, grade: str, subject: str, chunks: int, terms: int, documents: int) -> None:
        """Add to a grade/subject's statistics (negative to take away) and bump its version."""
        self.conn.execute(
            "INSERT INTO lexical_stats (grade, subject, chunks, terms, documents, version)"
            " VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (grade, subject) DO UPDATE SET"
            " chunks = chunks + excluded.chunks, terms = terms + excluded.terms,"
            " documents = documents + excluded.documents, version = version + 1",
            (grade, subject, chunks, terms, documents),
        )

    def remove(self, grade: str, subject: str, sha256: str) -> None:
        with self.db.write():
            rows = self.conn.execute(
                "SELECT text, length, kind FROM lexical"
                " WHERE grade = ? AND subject = ? AND sha256 = ?",
                (grade, subject, sha256),
            ).fetchall()
            indexed = [length for _, length, kind in rows if kind != "toc"]
            self._count(grade, subject, -len(indexed), -sum(indexed), -int(bool(rows)))
            texts = (text for text, _, _ in rows)
            count_pieces(self.conn, grade, subject, document_pieces(texts), -1)
            self.conn.execute(
                "DELETE FROM lexical_postings WHERE chunk IN (SELECT id FROM lexical"
                " WHERE grade = ? AND subject = ? AND sha256 = ?)",
                (grade, subject, sha256),
            )
            self.conn.execute(
                "DELETE FROM lexical WHERE grade = ? AND subject = ? AND sha256 = ?",
                (grade, subject, sha256),
            )

    def recount_templates(self, *, everything: bool = False) -> list[tuple[str, str]]:
        """Count the template pieces again from the rows (`boilerplate.recount_pieces`) of
        each grade/subject whose number of documents disagrees with them (an engine from
        before migration 12 wrote to this database), or of all with `everything` (a restored
        backup's counts came from outside). Returns the grade/subjects counted."""
        stale = [
            (grade, subject)
            for grade, subject in self.conn.execute(  # read first: 0.2 s at a million chunks
                "SELECT grade, subject FROM lexical_stats s WHERE ? OR documents !="
                " (SELECT count(DISTINCT sha256) FROM lexical l WHERE l.grade = s.grade"
                " AND l.subject = s.subject) ORDER BY grade, subject",
                (everything,),
            )
        ]
        if stale:
            with self.db.write() as conn:
                for grade, subject in stale:
                    recount_pieces(conn, grade, subject)
        return stale

    def relabel(self, grade: str, subject: str, sha256: str, source: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE lexical SET source = ? WHERE grade = ? AND subject = ? AND sha256 = ?",
                (source, grade, subject, sha256),
            )

    # --- reading ------------------------------------------------------------------------------
    def documents(self) -> set[tuple[str, str, str]]:
        """Every (grade, subject, sha256) with rows in the index."""
        rows = self.conn.execute("SELECT DISTINCT grade, subject, sha256 FROM lexical")
        return {tuple(r) for r in rows}

    def chunks(self, wanted: Mapping[tuple[str, str, str], str]) -> dict[tuple, LexicalChunk]:
        """Text and citation of chunks, by (grade, subject, chunk id), each wanted as the
        collection named beside it holds it. The vector side of a search reads its hits'
        texts here: one indexed query instead of one Chroma call per collection.

        A row counts only when the catalogue puts its document in that collection alone: the
        rows mirror the chunks of the collection they were written with, and the same file
        chunked for another model, or installed from a package as well, can hold other texts
        under the same chunk ids. Chunks left out (not committed yet, or such a document)
        are for the caller to read from the collection itself.
        """
        if not wanted:
            return {}
        ids = sorted({chunk_id for _, _, chunk_id in wanted})
        found = {}
        for start in range(0, len(ids), 500):  # below SQLite's limit on bound parameters
            part = ids[start : start + 500]
            for row in self.conn.execute(
                "SELECT l.grade, l.subject, l.chunk_id, l.text, l.source, l.page, l.pages,"
                " l.section, l.kind, (SELECT CASE WHEN count(DISTINCT d.collection) = 1"
                " THEN max(d.collection) END FROM documents d WHERE d.grade = l.grade"
                " AND d.subject = l.subject AND d.sha256 = l.sha256 AND d.status = 'ingested')"
                f" FROM lexical l WHERE l.chunk_id IN ({', '.join('?' * len(part))})",
                part,
            ):
                key = (row[0], row[1], row[2])
                if key in wanted and row[9] == wanted[key]:
                    found[key] = LexicalChunk(*row[2:9])
        return found

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM lexical").fetchone()[0]

    def libraries(self, grade: str | None = None, subject: str | None = None) -> dict:
        """{(grade, subject): (indexed chunks, total terms)} — each one's BM25 statistics."""
        return {key: (n, t) for key, (n, t, _) in self._statistics(grade, subject).items()}

    def version(self, grade: str, subject: str) -> int:
        """A number that changes whenever a grade/subject's rows change (0: none yet)."""
        row = self.conn.execute(
            "SELECT version FROM lexical_stats WHERE grade = ? AND subject = ?", (grade, subject)
        ).fetchone()
        return row[0] if row else 0

    def search(
        self,
        question: str,
        *,
        grade: str | None = None,
        subject: str | None = None,
        k: int = 5,
        chunk_ids: list[str] | None = None,
    ) -> list[LexicalHit]:
        """Best BM25 matches for `question`, optionally only among `chunk_ids`.

        Each grade/subject is scored with its own statistics; hits are then merged by score.
        """
        return self.search_with_scores(
            question, grade=grade, subject=subject, k=k, chunk_ids=chunk_ids
        )[0]

    def search_with_scores(
        self,
        question: str,
        *,
        grade: str | None = None,
        subject: str | None = None,
        k: int = 5,
        chunk_ids: list[str] | None = None,
        also: Iterable[tuple[str, str, str]] = (),
    ) -> tuple[list[LexicalHit], list[LexicalHit]]:
        """`search`'s hits, and from the same scoring pass the hits among the chunks `also`
        names by (grade, subject, chunk id) that share a term with the question (hybrid search
        gives its vector candidates their BM25 score this way, without scoring twice)."""
        terms = query_terms(question)
        if not terms or k <= 0:
            return [], []
        wanted = set(chunk_ids) if chunk_ids is not None else None
        extra: dict[tuple[str, str], set[str]] = {}
        for g, s, chunk_id in also:
            extra.setdefault((g, s), set()).add(chunk_id)
        best: list[tuple[float, float, int]] = []  # (score, coverage, lexical.id)
        scored_extra: list[tuple[float, float, int]] = []
        ranked = self._statistics(grade, subject)
        libraries = dict(ranked)
        for g, s in extra.keys() - ranked.keys():  # a candidate outside the filter: its score only
            if g and s:
                libraries |= self._statistics(g, s)
        for (g, s), (chunks, total, version) in libraries.items():
            weighted = {t: 1.0 for t in terms}
            if self.feedback_chunks:
                first = self._score_library(g, s, weighted, (version, chunks, total))
                weighted |= self._feedback(g, s, terms, first.every(), chunks)
            scored = self._score_library(g, s, weighted, (version, chunks, total))
            if (g, s) in ranked and wanted is None:
                best.extend(scored.top(k))
            elif (g, s) in ranked:
                best.extend(scored.among(scored.library.positions_of(wanted)))
            if (g, s) in extra:
                scored_extra.extend(scored.among(scored.library.positions_of(extra[(g, s)])))
        top = heapq.nlargest(k, best)
        if len(top) == k:  # ties at the cut are settled by chunk id, not by row order
            top = [t for t in best if t[0] >= top[-1][0]]
        return self._hits(top)[:k], self._hits(scored_extra)

    def warm(self) -> None:
        """Read every grade/subject's chunk arrays into the postings cache now (a running API
        does this before it listens): a subject of a million chunks takes ~2.5 s to read, up
        to ~20 s when the database is not in the OS's cache yet, which the first question
        after a restart would otherwise wait for."""
        for (grade, subject), (chunks, total, version) in self._statistics(None, None).items():
            self.postings.library(self.conn, grade, subject, (version, chunks, total))

    def _statistics(self, grade: str | None, subject: str | None) -> dict:
        """{(grade, subject): (indexed chunks, total terms, version)}, as `libraries`."""
        sql = "SELECT grade, subject, chunks, terms, version FROM lexical_stats WHERE chunks > 0"
        params: list = []
        for column, value in (("grade", grade), ("subject", subject)):
            if value:
                sql += f" AND {column} = ?"
                params.append(value)
        sql += " ORDER BY grade, subject"
        return {(g, s): (n, t, v) for g, s, n, t, v in self.conn.execute(sql, params)}

    def _feedback(
        self, grade: str, subject: str, terms: list[str], first: list, chunks: int
    ) -> dict[str, float]:
        """Expansion terms (weight each) from the best first-pass chunks: tf x idf, new only."""
        top = [rowid for _, _, rowid in heapq.nlargest(self.feedback_chunks, first)]
        if not top:
            return {}
        counts: Counter = Counter()
        for (text,) in self.conn.execute(
            f"SELECT terms FROM lexical WHERE id IN ({', '.join('?' * len(top))})", top
        ):
            counts.update(t for t in text.split() if t not in terms)
        if not counts:
            return {}
        marks = ", ".join("?" * len(counts))
        df = dict(
            self.conn.execute(
                "SELECT term, count(*) FROM lexical_postings WHERE grade = ? AND subject = ?"
                f" AND term IN ({marks}) GROUP BY term",
                (grade, subject, *counts),
            ).fetchall()
        )
        ranked = sorted(counts, key=lambda t: -counts[t] * idf(chunks, df.get(t, 0)))
        return {t: self.feedback_weight for t in ranked[: self.feedback_terms]}

    def _score_library(
        self,
        grade: str,
        subject: str,
        terms: dict[str, float],
        stamp: tuple[int, int, int],
    ) -> Scored:
        """BM25 of every chunk of one grade/subject sharing a term; each term counts with its
        weight (1 for the question's own). `stamp` is its lexical_stats (version, chunks,
        terms); postings come from the in-memory copy made at that stamp
        (engine.search.lexical.postings)."""
        _, chunks, total = stamp
        average_length = total / chunks
        conn = self.conn
        library = self.postings.library(conn, grade, subject, stamp)
        lists = {t: self.postings.postings(conn, grade, subject, library, t) for t in terms}
        weights = {t: terms[t] * idf(chunks, len(p.tf)) for t, p in lists.items()}
        ideal = sum(weights.values()) or 1.0  # every term once, at the average length
        norm = library.norms(self.k1, self.b, average_length)
        scores = np.zeros(len(library.rowids))
        touched = np.zeros(len(library.rowids), dtype=bool)
        for term, found in lists.items():
            at, tf = found.positions, found.tf.astype(np.float64)
            # the scalar formula's operations in its order: weight * tf * (k1 + 1) / (tf + norm)
            scores[at] += weights[term] * tf * (self.k1 + 1) / (tf + norm[at])
            touched[at] = True
        return Scored(library, scores, touched, ideal)

    def _hits(self, top: list[tuple[float, float, int]]) -> list[LexicalHit]:
        if not top:
            return []
        rows = {
            r["id"]: r
            for r in self.conn.execute(
                "SELECT id, chunk_id, grade, subject, text, source, page, pages, section, kind"
                f" FROM lexical WHERE id IN ({', '.join('?' * len(top))})",
                [rowid for _, _, rowid in top],
            )
        }
        hits = []
        for score, coverage, rowid in top:
            row = dict(rows[rowid])
            del row["id"]
            hits.append(LexicalHit(**row, score=score, coverage=coverage))
        return sorted(hits, key=lambda h: (-h.score, h.grade, h.subject, h.chunk_id))
