"""The lexical index stays in step with the chunk store, and search modes behave."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.lexical.analyzer import analyze
from tests import pdfs


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
    engine.lexical.conn.execute("DELETE FROM lexical")
    engine.lexical.add("kelas_9", "ips", "f" * 64, [])  # nothing, but shows stale keys vanish
    engine.lexical.conn.execute(
        "INSERT INTO lexical (terms, grade, subject, sha256, chunk_id, source, page, pages, text)"
        " VALUES ('hantu', 'kelas_9', 'ips', 'dead', 'x', 'hantu.pdf', 1, '1', 'hantu')"
    )

    engine.ingestor.recover()

    assert lexical_sources(engine) == {"a.pdf": 1}
    assert engine.searcher.search("gravitasi", mode="lexical")[0].source == "a.pdf"


def test_unknown_mode_is_refused(engine):
    with pytest.raises(ValueError, match="hybrid, vector, lexical"):
        engine.searcher.search("apa", mode="magic")


@pytest.mark.slow
def test_cli_search_modes_and_scores(inbox, monkeypatch):
    from engine.devtools.bedrock_stub import BedrockStub

    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "a.pdf", ["Fotosintesis terjadi di kloroplas daun."])
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "b.pdf", ["Respirasi menghasilkan energi."])
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "c.pdf", ["Gaya gravitasi menarik benda."])
    with BedrockStub() as stub:
        monkeypatch.setenv("EMBEDDING_STRATEGY", "bedrock")
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", stub.url)

        def search(*args: str) -> list[dict]:
            out = subprocess.run(
                [sys.executable, "-m", "engine.cli.main", "search", *args, "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            ).stdout
            return json.loads(out)

        subprocess.run(
            [sys.executable, "-m", "engine.cli.main", "ingest", str(inbox), "--json"],
            capture_output=True,
            timeout=120,
            check=True,
        )
        hybrid = search("kloroplas daun")
        lexical = search("kloroplas daun", "--mode", "lexical")
        vector = search("kloroplas daun", "--mode", "vector")
    assert hybrid[0]["source"] == "a.pdf"
    assert hybrid[0]["lexical_score"] > 0 and hybrid[0]["vector_score"] > 0
    assert [h["source"] for h in lexical] == ["a.pdf"] and lexical[0]["vector_score"] is None
    assert vector[0]["lexical_score"] is None and len(vector) == 3
