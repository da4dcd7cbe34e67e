"""Cohere Embed (Multilingual v3, v4) on Bedrock over real HTTP against the local endpoint:
96 texts a call, questions embedded as search queries, tokens counted and priced."""

from __future__ import annotations

import pytest

from devtools.bedrock_stub import BedrockStub, hashed_vector, token_count
from engine.app import build_engine
from engine.embed.build import bedrock_embedder
from engine.jobs.costs import bedrock_cost
from engine.settings import Settings
from tests.support import pdfs


@pytest.fixture
def stub(monkeypatch):
    with BedrockStub() as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", running.url)
        monkeypatch.setenv("BEDROCK_MAX_RPM", "0")
        yield running


def test_multilingual_v3_embeds_96_texts_a_call_and_counts_their_tokens(stub):
    embedder = bedrock_embedder(Settings(BEDROCK_MODEL_ID="cohere.embed-multilingual-v3"))
    texts = [f"kalimat nomor {i}" for i in range(200)]
    result = embedder.embed(texts)

    assert len(result.vectors) == 200 and all(len(v) == 1024 for v in result.vectors)
    assert result.vectors[5] == pytest.approx(hashed_vector(texts[5], 1024))  # in order
    assert stub.requests == 3  # 96 + 96 + 8
    assert stub.cohere_input_types == ["search_document"] * 3
    assert result.input_tokens == sum(token_count(t) for t in texts)
    assert result.model.key == "embed-multilingual-v3-1024"


def test_v4_sizes_its_vectors_and_refuses_sizes_it_does_not_offer(stub):
    embedder = bedrock_embedder(
        Settings(BEDROCK_MODEL_ID="cohere.embed-v4:0", BEDROCK_DIMENSIONS=1536)
    )
    assert all(len(v) == 1536 for v in embedder.embed(["satu", "dua"]).vectors)
    assert embedder.model.key == "embed-v4-1536"
    with pytest.raises(ValueError, match="1024"):
        bedrock_embedder(
            Settings(BEDROCK_MODEL_ID="cohere.embed-multilingual-v3", BEDROCK_DIMENSIONS=512)
        )
    with pytest.raises(ValueError, match="Titan"):
        bedrock_embedder(Settings(BEDROCK_DIMENSIONS=1536))


def test_a_search_embeds_the_question_as_a_query_and_finds_the_passage(stub, monkeypatch, inbox):
    monkeypatch.setenv("EMBEDDING_STRATEGY", "bedrock")
    monkeypatch.setenv("BEDROCK_MODEL_ID", "cohere.embed-multilingual-v3")
    settings = Settings()
    engine = build_engine(settings)
    pdfs.text_pdf(
        inbox / "kelas_10" / "informatika" / "jaringan.pdf",
        pdfs.lesson_pages("topologi bintang", 1) + pdfs.lesson_pages("alamat IP", 1),
    )
    outcome = engine.ingestor.run([inbox], inbox)

    hits = engine.searcher.search("belajar tentang alamat IP", mode="vector", k=1)
    assert hits[0].source == "jaringan.pdf" and "alamat IP" in hits[0].text
    assert stub.cohere_input_types[-1] == "search_query"
    # priced at Cohere's rate, not Titan's
    assert outcome.job.input_tokens > 0
    assert bedrock_cost(settings, 1000) == pytest.approx(0.0001)
