"""The lexical index stays in step with the chunk store, ranks each grade/subject on its own
statistics, and search modes behave."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.app import build_engine
from engine.search.lexical.analyzer import analyze
from engine.search.lexical.rows import LexicalChunk
from engine.settings import Settings
from tests.support import pdfs
from tests.support.cli import nexus
from tests.support.fakes import FakeEmbedder


def lexical_sources(engine) -> dict[str, int]:
    rows = engine.lexical.conn.execute("SELECT source, count(*) FROM lexical GROUP BY source")
    return dict(rows.fetchall())


def test_indonesian_terms_are_folded_stemmed_and_stopwords_dropped():
    assert analyze("Bagaimana PEMBELAJARAN algoritma, menggunakan diagram-alir?") == [
        "ajar",
        "algoritma",
        "diagram",
        "alir",
    ]
    # the same handling applies to questions and chunks: inflected forms meet
    assert analyze("mengerem mendadak") == analyze("rem dadak")


def test_questions_of_random_words_do_not_grow_memory_without_bound():
    """Every distinct word a question brings is stemmed; the cache of stems stays bounded."""
    import random
    import string

    from engine.search.lexical import analyzer

    assert analyzer.stem.cache_info().maxsize == analyzer.STEM_CACHE_SIZE <= 100_000
    analyzer.stem.cache_clear()
    rng = random.Random(7)
    for _ in range(3_000):
        analyzer.stem("".join(rng.choices(string.ascii_lowercase, k=12)))
    assert analyzer.stem.cache_info().currsize == 3_000  # each word once, nothing else kept
    assert not hasattr(analyzer._stemmer(), "cache")  # and no unbounded cache underneath
    assert analyze("pembelajaran") == ["ajar"]  # and stemming still works


def test_index_follows_add_replace_and_delete(engine, inbox):
    subject = inbox / "kelas_10" / "ipa"
    a = pdfs.text_pdf(subject / "a.pdf", ["Fotosintesis terjadi di kloroplas daun."])
    pdfs.text_pdf(subject / "b.pdf", ["Respirasi menghasilkan energi."])
    engine.ingestor.run([inbox], inbox)
    assert lexical_sources(engine) == {"a.pdf": 1, "b.pdf": 1}
    assert engine.searcher.search("kloroplas", mode="lexical")[0].source == "a.pdf"

    pdfs.text_pdf(a, ["Mitokondria adalah tempat respirasi sel."])  # replaced
    engine.ingestor.run([inbox], inbox)
    assert engine.searcher.search("kloroplas", mode="lexical") == []
    assert engine.searcher.search("mitokondria", mode="lexical")[0].source == "a.pdf"

    a.unlink()
    engine.ingestor.run([inbox], inbox)
    assert lexical_sources(engine) == {"b.pdf": 1}


def test_a_lost_or_stale_index_is_rebuilt_from_the_chunks(engine, inbox):
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "a.pdf", ["Gaya gravitasi bumi."])
    engine.ingestor.run([inbox], inbox)
    with engine.database.write() as conn:
        conn.execute("DELETE FROM lexical_postings")
        conn.execute("DELETE FROM lexical")
    engine.lexical.add("kelas_9", "ips", "f" * 64, [])  # nothing, but shows stale keys vanish
    engine.lexical.add("kelas_9", "ips", "dead", [LexicalChunk("x", "hantu", "hantu.pdf", 1, "1")])

    engine.records.recover()

    assert lexical_sources(engine) == {"a.pdf": 1}
    assert engine.searcher.search("gravitasi", mode="lexical")[0].source == "a.pdf"


FISIKA = {
    "newton.pdf": [
        "Hukum I Newton: benda tetap diam atau bergerak lurus beraturan jika resultan gaya nol.",
        "Hukum II Newton: percepatan sebanding dengan gaya dan berbanding terbalik dengan massa.",
    ],
    "energi.pdf": ["Energi kinetik benda bergantung pada massa dan kecepatan benda."],
    "listrik.pdf": ["Hukum Ohm: kuat arus sebanding dengan tegangan pada hambatan tetap."],
}
OTHERS = {  # share words with the fisika lessons, so global statistics would differ
    ("kelas_10", "sejarah", "hukum.pdf"): ["Hukum adat dan hukum kerajaan mengatur benda pusaka."],
    ("kelas_10", "sejarah", "gaya.pdf"): ["Gaya hidup masyarakat kerajaan berubah dengan gaya."],
    ("kelas_12", "ekonomi", "energi.pdf"): ["Harga energi memengaruhi biaya produksi benda."],
}


def _installation(root, pdf_files: dict) -> object:
    """An engine in `root` that ingested copies of `pdf_files` ({(grade, subject, name): path})."""
    data = root / "data"
    engine = build_engine(Settings(NEXUS_DATA_DIR=data), embedder=FakeEmbedder())
    inbox = data / "inbox"
    for (grade, subject, name), source in pdf_files.items():
        (inbox / grade / subject).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, inbox / grade / subject / name)
    assert engine.ingestor.run([inbox], inbox).job.status == "completed"
    return engine


def _ranking(hits) -> list[tuple]:
    return [(h.source, h.chunk_id, h.score, h.lexical_score, h.vector_score) for h in hits]


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
def test_a_subject_ranks_the_same_whatever_else_is_installed(tmp_path, mode):
    made = tmp_path / "pdfs"  # the same files (a package's documents) on both machines
    fisika = {
        ("kelas_11", "fisika", name): pdfs.text_pdf(made / "fisika" / name, pages)
        for name, pages in FISIKA.items()
    }
    others = {key: pdfs.text_pdf(made / key[1] / key[2], pages) for key, pages in OTHERS.items()}
    school = _installation(tmp_path / "school", fisika)  # one subject
    admin = _installation(tmp_path / "admin", {**fisika, **others})  # three subjects
    for question in ("hukum gaya benda", "Apa bunyi hukum Newton tentang massa?", "energi benda"):
        filtered = {"grade": "kelas_11", "subject": "fisika", "k": 10, "mode": mode}
        at_school = school.searcher.search(question, **filtered)
        at_admin = admin.searcher.search(question, **filtered)
        assert at_school and _ranking(at_school) == _ranking(at_admin)
        if mode == "lexical":  # unfiltered: a fisika hit keeps its score, others just join in
            unfiltered = admin.searcher.search(question, k=10, mode="lexical")
            assert {h.subject for h in unfiltered} > {"fisika"}
            scores = {h.chunk_id: h.score for h in unfiltered if h.subject == "fisika"}
            assert scores == {h.chunk_id: h.score for h in at_school if h.chunk_id in scores}


def test_bm25_statistics_are_per_grade_and_subject(engine):
    lexical = engine.lexical
    lexical.add(
        "kelas_10", "ipa", "a" * 64, [LexicalChunk("a-0", "gaya gravitasi", "a.pdf", 1, "1")]
    )
    lexical.add("kelas_10", "ipa", "b" * 64, [LexicalChunk("b-0", "cahaya lampu", "b.pdf", 1, "1")])
    [alone] = lexical.search("gravitasi", grade="kelas_10", subject="ipa")
    for n in range(5):  # another subject full of the same word changes nothing for kelas_10/ipa
        chunk = LexicalChunk(f"c-{n}", "gravitasi bumi", "c.pdf", n + 1, str(n + 1))
        lexical.add("kelas_11", "fisika", f"{n}" * 64, [chunk])
    [again] = lexical.search("gravitasi", grade="kelas_10", subject="ipa")
    assert again.score == alone.score and again.coverage == alone.coverage
    assert lexical.libraries() == {("kelas_10", "ipa"): (2, 4), ("kelas_11", "fisika"): (5, 10)}


def test_table_of_contents_chunks_are_not_ranked_and_sections_are_searchable(engine):
    engine.lexical.add(
        "kelas_11",
        "fisika",
        "d" * 64,
        [
            LexicalChunk(
                "d-0", "Hukum Newton 3 ... Energi 9 ... Listrik 14", "buku.pdf", 1, "1", kind="toc"
            ),
            LexicalChunk(
                "d-1",
                "Benda tetap diam bila resultan gaya nol.",
                "buku.pdf",
                3,
                "3",
                section="Bab 1 Hukum Newton",
            ),
        ],
    )
    hits = engine.searcher.search("hukum newton", mode="lexical")
    assert [(h.chunk_id, h.section) for h in hits] == [("d-1", "Bab 1 Hukum Newton")]


def test_unknown_mode_is_refused(engine):
    with pytest.raises(ValueError, match="hybrid, vector, lexical"):
        engine.searcher.search("apa", mode="magic")


@pytest.mark.slow
def test_cli_search_modes_and_scores(inbox, monkeypatch):
    from devtools.bedrock_stub import BedrockStub

    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "a.pdf", ["Fotosintesis terjadi di kloroplas daun."])
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "b.pdf", ["Respirasi menghasilkan energi."])
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "c.pdf", ["Gaya gravitasi menarik benda."])
    with BedrockStub() as stub:
        monkeypatch.setenv("EMBEDDING_STRATEGY", "bedrock")
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", stub.url)

        def search(*args: str) -> list[dict]:
            return json.loads(nexus("search", *args, "--json").stdout)

        nexus("ingest", str(inbox), "--json")
        hybrid = search("kloroplas daun")
        lexical = search("kloroplas daun", "--mode", "lexical")
        vector = search("kloroplas daun", "--mode", "vector")
    assert hybrid[0]["source"] == "a.pdf"
    assert hybrid[0]["lexical_score"] > 0 and hybrid[0]["vector_score"] > 0
    assert [h["source"] for h in lexical] == ["a.pdf"] and lexical[0]["vector_score"] is None
    assert vector[0]["lexical_score"] is None and len(vector) == 3


def recounted(engine) -> dict:
    """The BM25 statistics summed from the rows themselves (what migration 10 replaced)."""
    rows = engine.lexical.conn.execute(
        "SELECT grade, subject, count(*), sum(length) FROM lexical WHERE kind != 'toc'"
        " GROUP BY grade, subject"
    )
    return {(g, s): (n, total) for g, s, n, total in rows}


def test_bm25_statistics_are_kept_with_the_rows_through_every_write(engine):
    lexical = engine.lexical
    chunk = LexicalChunk
    lexical.add("kelas_10", "ipa", "a" * 64, [chunk("a-1", "daun hijau klorofil", "a.pdf", 1, "1")])
    lexical.add(
        "kelas_10",
        "ipa",
        "b" * 64,
        [
            chunk("b-1", "akar batang daun", "b.pdf", 1, "1"),
            chunk("b-2", "Daftar isi bab satu", "b.pdf", 1, "1", kind="toc"),
            chunk("b-3", "", "b.pdf", 2, "2"),
        ],
    )
    lexical.add("kelas_11", "fisika", "c" * 64, [chunk("c-1", "gaya gerak", "c.pdf", 1, "1")])
    assert lexical.libraries() == recounted(engine)
    before = lexical.version("kelas_10", "ipa")

    lexical.add("kelas_10", "ipa", "a" * 64, [chunk("a-1", "daun hijau", "a.pdf", 1, "1")])
    lexical.remove("kelas_11", "fisika", "c" * 64)
    lexical.remove("kelas_11", "fisika", "f" * 64)  # nothing there: nothing changes

    assert lexical.libraries() == recounted(engine)
    assert ("kelas_11", "fisika") not in lexical.libraries()
    assert lexical.version("kelas_10", "ipa") > before
    assert lexical.libraries(subject="ipa") == {
        ("kelas_10", "ipa"): recounted(engine)[("kelas_10", "ipa")]
    }


def test_a_failed_write_leaves_rows_and_statistics_as_they_were(engine):
    lexical = engine.lexical
    lexical.add("kelas_10", "ipa", "a" * 64, [LexicalChunk("a-1", "daun hijau", "a.pdf", 1, "1")])
    before = (lexical.libraries(), lexical.version("kelas_10", "ipa"))
    with pytest.raises(RuntimeError):
        with engine.catalog.transaction():
            akar = LexicalChunk("b-1", "Akar menyerap air dari tanah.", "b.pdf", 1, "1")
            lexical.add("kelas_10", "ipa", "b" * 64, [akar])
            raise RuntimeError("killed between the index and the catalogue")
    assert (lexical.libraries(), lexical.version("kelas_10", "ipa")) == before
    assert lexical.libraries() == recounted(engine)
    # one document, and no template piece ("daun hijau" is too short to be one)
    assert template_counts(lexical.conn) == ([("kelas_10", "ipa", 1)], [])


def template_counts(conn) -> tuple[list, list]:
    """Each grade/subject's documents, and each of its pieces' documents, as rows."""
    documents = conn.execute("SELECT grade, subject, documents FROM lexical_stats ORDER BY 1, 2")
    pieces = conn.execute(
        "SELECT grade, subject, documents FROM lexical_pieces ORDER BY grade, subject, piece"
    )
    return [tuple(r) for r in documents], [tuple(r) for r in pieces]


def test_migration_10_counts_the_rows_already_indexed(tmp_path):
    from engine import db

    path = tmp_path / "old.db"
    conn = db.sqlite3.connect(path, isolation_level=None)
    db.migrate(conn, upto=9)
    conn.execute(
        "INSERT INTO lexical (grade, subject, sha256, chunk_id, source, page, pages, text, terms,"
        " length, section, kind) VALUES ('kelas_10', 'ipa', 's', 'c1', 'a.pdf', 1, '1', 't',"
        " 'daun hijau', 2, '', ''), ('kelas_10', 'ipa', 's', 'c2', 'a.pdf', 1, '1', 't', 'isi',"
        " 1, '', 'toc'), ('kelas_10', 'ipa', 's', 'c3', 'a.pdf', 1, '1', 't', 'akar batang daun',"
        " 3, '', '')"
    )
    db.migrate(conn)
    assert conn.execute("SELECT grade, subject, chunks, terms FROM lexical_stats").fetchall() == [
        ("kelas_10", "ipa", 2, 5)
    ]


def test_migration_12_counts_the_template_pieces_of_the_rows_already_indexed(tmp_path):
    """An index from before migration 12 gets the same counts as one built since."""
    from engine import db
    from engine.search.lexical.index import LexicalIndex

    template = "Kegiatan inti dilakukan secara berkelompok di dalam kelas."
    documents = {
        ("kelas_10", "ipa", "a"): [template, "Daun hijau menyerap cahaya matahari."],
        ("kelas_10", "ipa", "b"): [f"Pendahuluan modul. {template}", "Akar menyerap air."],
        ("kelas_10", "ipa", "c"): [template, template],
        ("kelas_11", "ipa", "a"): [template],
    }
    conn = db.sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    db.migrate(conn, upto=11)
    for (grade, subject, sha), texts in documents.items():
        conn.executemany(
            "INSERT INTO lexical (grade, subject, sha256, chunk_id, source, page, pages, text,"
            " terms, length, section, kind)"
            " VALUES (?, ?, ?, ?, 'a.pdf', 1, '1', ?, 'x', 1, '', '')",
            [(grade, subject, sha, f"{sha}-{n}", text) for n, text in enumerate(texts)],
        )
    conn.execute(
        "INSERT INTO lexical_stats SELECT grade, subject, count(*), count(*), 1 FROM lexical"
        " GROUP BY grade, subject"
    )
    db.migrate(conn)

    built = LexicalIndex(db.Database(tmp_path / "new.db"))
    for (grade, subject, sha), texts in documents.items():
        chunks = [LexicalChunk(f"{sha}-{n}", t, "a.pdf", 1, "1") for n, t in enumerate(texts)]
        built.add(grade, subject, sha, chunks)
    migrated = template_counts(conn)
    assert migrated == template_counts(built.conn)
    assert migrated[0] == [("kelas_10", "ipa", 3), ("kelas_11", "ipa", 1)]
    assert ("kelas_10", "ipa", 3) in migrated[1]  # the template line, in all three modules


def test_counts_an_older_engine_left_behind_are_mended_at_recovery(engine, inbox, caplog):
    """An engine from before migration 12 writing to this database adds and removes rows
    without counting their template pieces; the next recovery counts that subject again."""
    for name in ("a", "b", "c"):
        pages = pdfs.lesson_pages("daun", 1) + pdfs.lesson_pages(name, 1)  # one page in common
        pdfs.text_pdf(inbox / "kelas_10" / "ipa" / f"{name}.pdf", pages)
    engine.ingestor.run([inbox], inbox)
    conn = engine.lexical.conn
    expected = template_counts(conn)
    assert any(documents == 3 for *_, documents in expected[1])
    with engine.database.write() as writer:  # what the older engine's replace of c.pdf did
        writer.execute("UPDATE lexical_stats SET documents = 0")
        writer.execute("DELETE FROM lexical_pieces WHERE documents = 3")
    engine.records.recover()
    assert template_counts(conn) == expected
    assert "kelas_10/ipa" in caplog.text
    assert engine.lexical.recount_templates() == []  # nothing left to mend
