"""BM25 scored from the in-memory postings ranks exactly as the scalar formula over the SQLite
rows does, sees every write (this process's or another's), stays within its memory bound, and
hybrid search scores each grade/subject once per question."""

from __future__ import annotations

import logging
import math
import random
import sqlite3
import tracemalloc
from collections import Counter

import pytest

from engine import db
from engine.search.lexical.index import K1, B, LexicalIndex, query_terms
from engine.search.lexical.postings import ENTRY_OVERHEAD
from engine.search.lexical.rows import LexicalChunk
from tests.support import pdfs

WORDS = (
    "gaya gravitasi energi benda massa cahaya lampu listrik arus hambatan suhu kalor air "
    "tanah batuan daun akar sel tumbuhan hewan rantai makanan ekosistem hujan awan"
).split()


def _corpus(rng: random.Random, documents: int, chunks: int) -> list[list[str]]:
    """Texts per document; some chunks repeat word for word so their scores tie."""
    out = []
    for _ in range(documents):
        texts = [" ".join(rng.choices(WORDS, k=rng.randint(3, 14))) for _ in range(chunks)]
        texts[-1] = texts[0]
        out.append(texts)
    return out


def _fill(lexical: LexicalIndex, rng: random.Random, libraries, documents=6, chunks=8) -> None:
    for grade, subject in libraries:
        for d, texts in enumerate(_corpus(rng, documents, chunks)):
            sha = f"{grade}{subject}{d}".ljust(64, "0")
            lexical.add(
                grade,
                subject,
                sha,
                [
                    LexicalChunk(
                        f"{sha[:24]}-{i:05d}",
                        text,
                        "m.pdf",
                        i + 1,
                        str(i + 1),
                        kind="toc" if i == 1 else "",  # table-of-contents chunks never rank
                    )
                    for i, text in enumerate(texts)
                ],
            )


def _reference(conn, question, grade=None, subject=None, k=5, chunk_ids=None) -> list[tuple]:
    """(chunk id, score, coverage) by the scalar BM25 over the rows themselves: statistics of
    each grade/subject's non-TOC chunks, scores rounded to 6 places, ties by chunk id."""
    terms = query_terms(question)
    rows = conn.execute("SELECT grade, subject, chunk_id, terms, kind FROM lexical").fetchall()
    libraries: dict[tuple, list] = {}
    for g, s, chunk_id, text, kind in rows:
        if kind != "toc" and (grade in (None, g)) and (subject in (None, s)):
            libraries.setdefault((g, s), []).append((chunk_id, text.split()))
    scored = []
    for (g, s), chunks in libraries.items():
        average = sum(len(t) for _, t in chunks) / len(chunks)
        df = {t: sum(t in words for _, words in chunks) for t in terms}
        weight = {t: math.log(1 + (len(chunks) - df[t] + 0.5) / (df[t] + 0.5)) for t in terms}
        ideal = sum(weight.values())
        for chunk_id, words in chunks:
            if chunk_ids is not None and chunk_id not in chunk_ids:
                continue
            tf, score = Counter(words), 0.0
            for t in terms:
                if tf[t]:
                    norm = K1 * (1 - B + B * len(words) / average)
                    score += weight[t] * tf[t] * (K1 + 1) / (tf[t] + norm)
            if any(tf[t] for t in terms):
                scored.append((round(score, 6), g, s, chunk_id, round(score / ideal, 6)))
    scored.sort(key=lambda x: (-x[0], x[1], x[2], x[3]))
    return [(chunk_id, score, coverage) for score, _, _, chunk_id, coverage in scored[:k]]


def _ranked(hits) -> list[tuple]:
    return [(h.chunk_id, h.score, h.coverage) for h in hits]


LIBRARIES = [("kelas_10", "ipa"), ("kelas_10", "ips"), ("kelas_11", "fisika")]


def test_ranking_equals_the_reference_bm25_scoring(tmp_path):
    rng = random.Random(24)
    lexical = LexicalIndex(db.Database(tmp_path / "engine.db"))
    _fill(lexical, rng, LIBRARIES)
    every_id = [r[0] for r in lexical.conn.execute("SELECT chunk_id FROM lexical")]
    for _ in range(60):
        question = " ".join(rng.sample(WORDS, rng.randint(1, 4)))
        k = rng.choice([1, 3, 5, 10, 40])
        for where in ({}, {"grade": "kelas_10"}, {"grade": "kelas_10", "subject": "ips"}):
            expected = _reference(lexical.conn, question, k=k, **where)
            assert expected  # the question's words are in every subject
            assert _ranked(lexical.search(question, k=k, **where)) == expected
        some = set(rng.sample(every_id, 12))
        restricted = lexical.search(question, k=k, chunk_ids=sorted(some))
        assert _ranked(restricted) == _reference(lexical.conn, question, k=k, chunk_ids=some)


def test_one_pass_also_scores_the_named_chunks(tmp_path):
    """The `also` chunks get the scores a search restricted to them gives, in any subject."""
    rng = random.Random(5)
    lexical = LexicalIndex(db.Database(tmp_path / "engine.db"))
    _fill(lexical, rng, LIBRARIES)
    rows = lexical.conn.execute("SELECT grade, subject, chunk_id FROM lexical").fetchall()
    named = [tuple(r) for r in rng.sample(rows, 20)]
    question = "energi listrik arus air"
    hits, also = lexical.search_with_scores(
        question, grade="kelas_10", subject="ipa", k=5, also=named
    )
    assert _ranked(hits) == _reference(lexical.conn, question, "kelas_10", "ipa", k=5)
    expected = {}
    for g, s, chunk_id in named:
        for hit in lexical.search(question, grade=g, subject=s, k=1, chunk_ids=[chunk_id]):
            expected[(g, s, chunk_id)] = (hit.score, hit.coverage)
    assert expected and {(h.grade, h.subject, h.chunk_id): (h.score, h.coverage) for h in also} == (
        expected
    )


def test_the_postings_cache_sees_another_connections_writes(tmp_path):
    """Two engines on one database (two processes): what one writes, the other's next search
    ranks by, with the statistics a fresh index computes."""
    path = tmp_path / "engine.db"
    reader = LexicalIndex(db.Database(path))
    writer = LexicalIndex(db.Database(path))
    gaya = [LexicalChunk("a" * 24 + "-00000", "gaya gravitasi bumi", "a.pdf", 1, "1")]
    writer.add("kelas_10", "ipa", "a" * 64, gaya)
    [before] = reader.search("gravitasi bumi", grade="kelas_10", subject="ipa")
    assert reader.postings.held  # the search went through the cache

    more = [
        LexicalChunk("b" * 24 + "-00000", "gravitasi bulan lebih kecil", "b.pdf", 1, "1"),
        LexicalChunk("b" * 24 + "-00001", "bumi berputar", "b.pdf", 2, "2"),
    ]
    writer.add("kelas_10", "ipa", "b" * 64, more)
    after = reader.search("gravitasi bumi", grade="kelas_10", subject="ipa", k=5)
    fresh = LexicalIndex(db.Database(path)).search("gravitasi bumi", k=5)
    assert _ranked(after) == _ranked(fresh) == _reference(reader.conn, "gravitasi bumi", k=5)
    assert len(after) == 3 and after[0].score != before.score  # statistics changed too

    writer.remove("kelas_10", "ipa", "a" * 64)
    assert [h.source for h in reader.search("gravitasi bumi", k=5)] == ["b.pdf", "b.pdf"]


def test_cached_postings_stay_within_their_bound_and_rank_the_same(tmp_path):
    rng = random.Random(9)
    path = tmp_path / "engine.db"
    _fill(LexicalIndex(db.Database(path)), rng, LIBRARIES, documents=10)
    bound = 4 * ENTRY_OVERHEAD
    bounded = LexicalIndex(db.Database(path), cache_bytes=bound)
    roomy = LexicalIndex(db.Database(path))
    for _ in range(40):
        question = " ".join(rng.sample(WORDS, 3))
        assert _ranked(bounded.search(question, k=8)) == _ranked(roomy.search(question, k=8))
        biggest = max(
            (p.nbytes for lib in bounded.postings._libraries.values() for p in lib.terms.values()),
            default=0,
        )
        assert bounded.postings.held <= max(bound, biggest)
    assert roomy.postings.held > bound * 3


def test_questions_of_made_up_words_cannot_grow_the_cache_past_its_bound(tmp_path):
    """A term a library does not hold is cached as an empty list, which costs memory all the
    same: each list counts its Python objects, so a flood of made-up words evicts instead of
    piling up, and the count is not below what the lists really take."""
    path = tmp_path / "engine.db"
    _fill(LexicalIndex(db.Database(path)), random.Random(3), LIBRARIES, documents=3)
    bound = 50 * ENTRY_OVERHEAD
    lexical = LexicalIndex(db.Database(path), cache_bytes=bound)
    questions = [f"kataan{n}x kataan{n}y" for n in range(300)]
    for question in ["gravitasi", *questions]:  # stems of the words, chunk arrays: uncounted
        LexicalIndex(db.Database(path)).search(question, k=3)
    lexical.search("gravitasi", k=3)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for question in questions:
        lexical.search(question, k=3)
        assert lexical.postings.held <= bound
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    cached = sum(len(lib.terms) for lib in lexical.postings._libraries.values())
    assert 0 < cached <= 50
    assert grown <= lexical.postings.held + 64 * 1024  # the count covers what the lists hold


def test_a_cached_posting_costs_five_bytes_and_large_frequencies_score_exactly(tmp_path):
    """Frequencies are kept in the smallest integer type that holds them (one byte in
    practice); one over 255 takes a wider type, and every score stays the scalar formula's."""
    lexical = LexicalIndex(db.Database(tmp_path / "engine.db"))
    rng = random.Random(3)
    _fill(lexical, rng, [("kelas_10", "ipa")], documents=4)
    repeated = "gravitasi " * 300 + "bumi bulan"
    lexical.add(
        "kelas_10",
        "fisika",
        "f" * 64,
        [
            LexicalChunk("f" * 24 + "-00000", repeated, "f.pdf", 1, "1"),
            LexicalChunk("f" * 24 + "-00001", "gravitasi bumi", "f.pdf", 2, "2"),
            LexicalChunk("f" * 24 + "-00002", "hujan turun", "f.pdf", 3, "3"),
        ],
    )
    for question in ("gravitasi bumi", "hujan bulan gravitasi", " ".join(WORDS[:4])):
        assert _ranked(lexical.search(question, k=10)) == _reference(lexical.conn, question, k=10)
    cached = [
        (grade, subject, term, postings)
        for (grade, subject), library in lexical.postings._libraries.items()
        for term, postings in library.terms.items()
    ]
    wide = [p for g, s, t, p in cached if (s, t) == ("fisika", "gravitasi")]
    assert [p.tf.tolist() for p in wide] == [[300, 1]] and wide[0].tf.itemsize == 2
    narrow = [p for g, s, t, p in cached if s == "ipa"]
    assert narrow and all(p.nbytes == 5 * len(p.tf) + ENTRY_OVERHEAD for p in narrow)
    assert lexical.postings.held == sum(p.nbytes for *_, p in cached)


@pytest.fixture
def one_subject(engine, inbox):
    subject = inbox / "kelas_10" / "ipa"
    pdfs.text_pdf(subject / "a.pdf", ["Gaya gravitasi menarik benda ke bumi."])
    pdfs.text_pdf(subject / "b.pdf", ["Hujan turun dari awan yang tebal."])
    pdfs.text_pdf(subject / "c.pdf", ["Energi listrik mengalir sebagai arus."])
    pdfs.text_pdf(subject / "d.pdf", ["Bumi berputar pada porosnya."])
    engine.ingestor.run([inbox], inbox)
    return engine


def test_hybrid_scores_each_subject_once_per_question(one_subject, monkeypatch):
    engine = one_subject
    calls = []
    score_library = engine.lexical._score_library
    monkeypatch.setattr(
        engine.lexical,
        "_score_library",
        lambda *args, **kwargs: calls.append(args[:2]) or score_library(*args, **kwargs),
    )
    hits = engine.searcher.search("gaya gravitasi bumi", k=10)
    assert calls == [("kelas_10", "ipa")]
    monkeypatch.undo()
    # and every candidate, found by vectors or words, carries its own BM25 score
    assert any(h.lexical_score == 0 for h in hits) and any(h.lexical_score for h in hits)
    for hit in hits:
        alone = engine.lexical.search(
            "gaya gravitasi bumi", grade="kelas_10", subject="ipa", chunk_ids=[hit.chunk_id]
        )
        assert hit.lexical_score == (alone[0].score if alone else 0.0)


def test_postings_parsed_from_sqlite_strings_equal_the_rows(tmp_path, caplog):
    """A cold search reads each posting list as two joined strings; they hold exactly the
    rows. A value that is not a whole number (a tampered or corrupt database) sends the list
    to a row-by-row read that leaves the damaged rows out and logs them: never misparsed,
    never a failed search."""
    from engine.search.lexical.postings import _read_postings

    lexical = LexicalIndex(db.Database(tmp_path / "engine.db"))
    _fill(lexical, random.Random(5), LIBRARIES, documents=5)
    conn = lexical.conn
    for grade, subject, term in conn.execute(
        "SELECT DISTINCT grade, subject, term FROM lexical_postings"
    ).fetchall():
        rows = conn.execute(
            "SELECT chunk, tf FROM lexical_postings WHERE grade = ? AND subject = ? AND term = ?",
            (grade, subject, term),
        ).fetchall()
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        chunks, tf = _read_postings(conn, grade, subject, term)
        conn.set_trace_callback(None)
        assert list(zip(chunks.tolist(), tf.tolist(), strict=True)) == [tuple(r) for r in rows]
        assert len(statements) == 1 and "group_concat" in statements[0]  # the joined strings
    assert [len(a) for a in _read_postings(conn, "kelas_10", "ipa", "tidakada")] == [0, 0]

    grade, subject, term, chunk = conn.execute(
        "SELECT grade, subject, term, chunk FROM lexical_postings LIMIT 1"
    ).fetchone()
    where = "WHERE grade = ? AND subject = ? AND term = ?"
    rows = conn.execute(f"SELECT chunk, tf FROM lexical_postings {where}", (grade, subject, term))
    intact = [tuple(r) for r in rows if r[0] != chunk]
    for damaged in (2.5, "1,2", "٣", b"\x01"):
        writer = sqlite3.connect(tmp_path / "engine.db")
        with writer:
            writer.execute(
                f"UPDATE lexical_postings SET tf = ? {where} AND chunk = ?",
                (damaged, grade, subject, term, chunk),
            )
        writer.close()
        with caplog.at_level(logging.WARNING, logger="engine.search.lexical.postings"):
            caplog.clear()
            chunks, tf = _read_postings(conn, grade, subject, term)
        assert list(zip(chunks.tolist(), tf.tolist(), strict=True)) == intact, damaged
        assert "not whole numbers" in caplog.text and repr(term) in caplog.text


@pytest.mark.parametrize("text", ["1,,2", "1-2", "-", "١٢", "²", "1,2,", " 1,2", "1.5"])
def test_a_joined_string_that_is_not_plain_whole_numbers_is_not_parsed(text):
    from engine.search.lexical.postings import _parse_integers

    assert _parse_integers(text) is None


def test_a_library_of_ids_of_any_length_and_script_finds_each_chunk(tmp_path):
    """The chunk arrays are read straight into fixed-width bytes: the width is the longest
    id in UTF-8 bytes, so no id is cut and each is found again by its own id."""
    lexical = LexicalIndex(db.Database(tmp_path / "engine.db"))
    ids = ["a-1", "b" * 40 + "-00002", "pelajaran-é-3", "ملف-4"]
    lexical.add(
        "kelas_10",
        "ipa",
        "c" * 64,
        [LexicalChunk(i, f"gravitasi bumi {n}", "m.pdf", 1, "1") for n, i in enumerate(ids)],
    )
    [(stamp_key, (chunks, total, version))] = lexical._statistics("kelas_10", "ipa").items()
    library = lexical.postings.library(lexical.conn, *stamp_key, (version, chunks, total))
    assert len(library.rowids) == 4 and library.lengths.tolist() == [3.0] * 4
    for chunk in ids:
        [position] = library.positions_of({chunk}).tolist()
        assert library.chunk_ids[library.chunk_order.tolist().index(position)] == chunk.encode()
    assert {h.chunk_id for h in lexical.search("gravitasi", k=10, chunk_ids=ids)} == set(ids)
