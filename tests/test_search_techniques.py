"""Search-time techniques kept for Indonesian modules: template text weighed down, informal
spellings read as standard words."""

from __future__ import annotations

import math
import random
import re
from types import SimpleNamespace

from engine import db
from engine.app import build_engine
from engine.db.pieces import piece_key, pieces_of
from engine.search.fusion import FusionConfig
from engine.search.lexical.boilerplate import BoilerplateShares
from engine.search.lexical.index import LexicalIndex
from engine.search.lexical.rows import LexicalChunk
from engine.search.searcher import Searcher
from engine.settings import Settings
from tests.support.pdfs import text_pdf

TEMPLATE = (
    "Kegiatan pendahuluan: guru membuka pelajaran dengan salam dan doa bersama. "
    "Guru memeriksa kehadiran peserta didik dan menyampaikan tujuan pembelajaran. "
    "Peserta didik berdiskusi dalam kelompok lalu mempresentasikan hasil diskusi."
)
LESSONS = {
    "fotosintesis.pdf": "Fotosintesis mengubah cahaya matahari menjadi glukosa di kloroplas daun.",
    "respirasi.pdf": "Respirasi sel memecah glukosa menjadi energi di mitokondria.",
    "ekosistem.pdf": "Rantai makanan dimulai dari produsen yaitu tumbuhan hijau.",
    "klasifikasi.pdf": "Klasifikasi makhluk hidup memakai tata nama ganda dari Linnaeus.",
}


def index_of(tmp_path, documents: dict[str, list[str]]) -> LexicalIndex:
    """A lexical index holding `documents` ({sha: chunk texts}) in kelas_7/ipa."""
    lexical = LexicalIndex(db.Database(tmp_path / "engine.db"))
    for sha, texts in documents.items():
        add(lexical, sha, texts)
    return lexical


def add(lexical: LexicalIndex, sha: str, texts: list[str]) -> None:
    chunks = [LexicalChunk(f"{sha}-{n}", t, f"{sha}.pdf", 1, "1") for n, t in enumerate(texts)]
    lexical.add("kelas_7", "ipa", sha, chunks)


def shares_of(lexical: LexicalIndex, texts: dict[str, str]) -> dict[str, float]:
    return BoilerplateShares(lexical).of("kelas_7", "ipa", texts)


def test_text_repeated_across_a_subjects_documents_counts_as_template(tmp_path):
    lessons = list(LESSONS.values())
    lexical = index_of(tmp_path, {f"doc{i}": [TEMPLATE, lessons[i]] for i in range(4)})
    shares = shares_of(lexical, {"t": TEMPLATE, "x": lessons[0], "y": "Teks lain sama sekali."})
    assert shares == {"t": 1.0}


def test_a_piece_repeated_within_one_document_is_not_template(tmp_path):
    """Documents are counted, not occurrences: a line a module repeats on every page is its
    own text, while the same line in three modules is template."""
    line = "Kegiatan inti dilakukan secara berkelompok di dalam kelas."
    lexical = index_of(tmp_path, {"doc0": [line] * 5, "doc1": ["Lain sekali isinya di sini."]})
    assert shares_of(lexical, {"c": line}) == {}
    add(lexical, "doc2", [line])
    assert shares_of(lexical, {"c": line}) == {}  # two documents
    add(lexical, "doc3", [f"Pendahuluan. {line}"])
    shares = shares_of(lexical, {"c": line, "d": f"Pendahuluan. {line}"})
    assert shares == {"c": 1.0, "d": len(line) / len(f"Pendahuluan.{line}")}  # its own piece


def test_a_removed_or_replaced_document_stops_counting(tmp_path):
    line = "Kegiatan inti dilakukan secara berkelompok di dalam kelas."
    lexical = index_of(tmp_path, {f"doc{i}": [line] for i in range(3)})
    assert shares_of(lexical, {"c": line}) == {"c": 1.0}
    lexical.remove("kelas_7", "ipa", "doc2")
    assert shares_of(lexical, {"c": line}) == {}
    add(lexical, "doc2", [line])
    add(lexical, "doc2", ["Versi baru tanpa teks templat itu."])  # the same document replaced
    assert shares_of(lexical, {"c": line}) == {}
    # no count left behind for pieces no document holds any more
    for sha in ("doc0", "doc1", "doc2"):
        lexical.remove("kelas_7", "ipa", sha)
    assert lexical.conn.execute("SELECT count(*) FROM lexical_pieces").fetchone()[0] == 0


def fold(piece: str) -> str:
    return re.sub(r"\d+", "0", re.sub(r"\s+", " ", piece.casefold()))


def expected_shares(documents: dict[str, list[str]], texts: dict[str, str]) -> dict[str, float]:
    """The definition, counted from scratch: pieces in >= max(3, 20% of documents) documents."""
    holders: dict[str, set[str]] = {}
    for sha, chunks in documents.items():
        for text in chunks:
            for piece in pieces_of(text):
                holders.setdefault(fold(piece), set()).add(sha)
    threshold = max(3, math.ceil(0.2 * len(documents)))
    out = {}
    for chunk_id, text in texts.items():
        pieces = pieces_of(text)
        repeated = sum(len(p) for p in pieces if len(holders.get(fold(p), ())) >= threshold)
        if repeated:
            out[chunk_id] = repeated / sum(len(p) for p in pieces)
    return out


def test_kept_counts_give_the_shares_counted_from_scratch_after_any_adds_and_removes(tmp_path):
    rng = random.Random(7)
    lines = [f"Baris templat nomor {chr(97 + n)} untuk modul ajar kelas." for n in range(8)]
    lines += [f"Kalimat khusus pelajaran {n} tentang topik {n * 7}x." for n in range(30)]
    lexical, documents = index_of(tmp_path, {}), {}
    for step in range(60):
        sha = f"doc{rng.randrange(15)}"
        if sha in documents and rng.random() < 0.4:
            lexical.remove("kelas_7", "ipa", sha)
            del documents[sha]
        else:
            chunks = [" ".join(rng.sample(lines, 3)) for _ in range(rng.randrange(1, 4))]
            add(lexical, sha, chunks)
            documents[sha] = chunks
        asked = {f"q{n}": " ".join(rng.sample(lines, 2)) for n in range(5)}
        assert shares_of(lexical, asked) == expected_shares(documents, asked), step


def test_a_search_reads_only_its_candidates_counts_not_the_subject(tmp_path):
    line = "Kegiatan inti dilakukan secara berkelompok di dalam kelas."
    lexical = index_of(tmp_path, {f"doc{i}": [line, f"Isi ke {i} saja."] for i in range(50)})
    statements: list[str] = []
    lexical.conn.set_trace_callback(statements.append)
    assert shares_of(lexical, {"c": line}) == {"c": 1.0}
    lexical.conn.set_trace_callback(None)
    assert not [s for s in statements if "FROM lexical " in s or "FROM lexical\n" in s]
    assert len([s for s in statements if s.startswith("SELECT")]) == 2


def test_a_lessons_own_text_outranks_another_lessons_template_page(inbox, fake_embedder):
    engine = build_engine(Settings(CHUNK_SIZE=100, CHUNK_OVERLAP=0), embedder=fake_embedder)
    for name, text in LESSONS.items():
        text_pdf(inbox / "kelas_7" / "ipa" / name, [TEMPLATE, text])
    engine.ingestor.run([inbox], inbox)
    question = "peserta didik berdiskusi tentang kloroplas daun"

    def first(boilerplate: float) -> str:
        searcher = Searcher(
            engine.embedder,
            engine.store,
            engine.lexical,
            fusion=FusionConfig(vector_weight=0.5, lexical_weight=0.5, boilerplate=boilerplate),
            boilerplate=BoilerplateShares(engine.lexical),
        )
        return searcher.search(question, grade="kelas_7", subject="ipa", k=1)[0]

    assert first(0.0).text.startswith("Peserta didik")  # template words match more of it
    best = first(0.5)
    assert (best.source, best.text) == ("fotosintesis.pdf", LESSONS["fotosintesis.pdf"])


def test_informal_spellings_score_like_the_standard_words(engine, inbox):
    text_pdf(inbox / "kelas_7" / "ipa" / "daun.pdf", ["Daun menguning karena kekurangan air."])
    text_pdf(inbox / "kelas_7" / "ipa" / "akar.pdf", ["Akar menyerap air dari tanah."])
    engine.ingestor.run([inbox], inbox)

    formal = engine.lexical.search("kenapa daun menguning yang tua", k=1)
    informal = engine.lexical.search("knp daun menguning yg tua", k=1)
    assert informal[0].source == formal[0].source == "daun.pdf"
    assert informal[0].coverage == formal[0].coverage


def test_shares_come_from_one_snapshot_while_a_document_commits(tmp_path):
    """The subject's number of documents and its pieces' counts are read together: with 15
    documents (2 holding the line) and a 16th committing in between, reading the old count
    of documents beside the new counts of pieces would call the line template, which neither
    state does."""
    line = "Kegiatan inti dilakukan secara berkelompok di dalam kelas."
    documents = {f"doc{i}": [line if i < 2 else f"Isi modul ke-{chr(97 + i)}."] for i in range(15)}
    lexical = index_of(tmp_path, documents)

    class Committing:
        """The reader connection, with the 16th document committed after the first query."""

        def __init__(self, conn):
            self.conn = conn

        @property
        def in_transaction(self):
            return self.conn.in_transaction

        def execute(self, sql, *params):
            cursor = self.conn.execute(sql, *params)
            if "FROM lexical_stats" in sql:
                row = cursor.fetchone()
                add(lexical, "doc15", [line])  # commits on the write connection
                return SimpleNamespace(fetchone=lambda: row)
            return cursor

    class During:
        conn = Committing(lexical.conn)

    assert BoilerplateShares(During()).of("kelas_7", "ipa", {"c": line}) == {}
    assert shares_of(lexical, {"c": line}) == {}  # 3 of 16 documents: below 4


def test_a_pieces_stored_key_stays_what_migration_12_counted():
    """`lexical_pieces` stores these keys: changing how text is cut or keyed without a
    migration that counts again (engine.db.pieces.recount_pieces) would silently mismatch them."""
    assert pieces_of("Bab 1\nKegiatan inti dilakukan  secara berkelompok. Ya.") == [
        "Kegiatan inti dilakukan  secara berkelompok."
    ]
    assert piece_key("Kegiatan inti dilakukan  secara berkelompok di kelas 7.") == (
        -5034530847363854454
    )
    assert piece_key("kegiatan inti dilakukan secara berkelompok di kelas 12.") == (
        -5034530847363854454
    )
