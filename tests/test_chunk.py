"""Chunking: size, overlap, sentence boundaries, page numbers and the model's token limit."""

from __future__ import annotations

import pytest

from engine.ingest.chunk import chunk_pages

SENTENCES = [
    f"Kalimat nomor {i} menjelaskan konsep penting dalam pelajaran ini." for i in range(60)
]


def test_chunks_respect_size_and_end_on_sentence_boundaries():
    chunks = chunk_pages([" ".join(SENTENCES)], size=800, overlap=100)

    assert len(chunks) > 3
    assert all(len(c.text) <= 800 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)  # never cut mid-sentence
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_consecutive_chunks_overlap_by_whole_sentences():
    chunks = chunk_pages([" ".join(SENTENCES)], size=800, overlap=100)

    for previous, current in zip(chunks, chunks[1:], strict=False):
        last_sentence = previous.text.rsplit(". ", 1)[-1]
        assert current.text.startswith(last_sentence.rstrip("."))
        assert len(last_sentence) <= 100


def test_every_sentence_survives_chunking():
    chunks = chunk_pages([" ".join(SENTENCES[:30]), " ".join(SENTENCES[30:])], size=500, overlap=80)
    joined = " ".join(c.text for c in chunks)
    assert all(s in joined for s in SENTENCES)


def test_page_numbers_follow_the_text():
    pages = [f"Halaman {p} berisi materi {p}. " * 10 for p in range(1, 6)]
    chunks = chunk_pages(pages, size=300, overlap=0)

    for chunk in chunks:
        for page in range(chunk.page_start, chunk.page_end + 1):
            assert f"Halaman {page} " in chunk.text
    assert chunks[0].page_start == 1 and chunks[-1].page_end == 5
    spanning = chunk_pages(["Awal bab. " * 3, "Lanjutan bab."], size=800, overlap=0)
    assert [(c.page_start, c.page_end, c.pages) for c in spanning] == [(1, 2, "1-2")]


def test_a_sentence_longer_than_a_chunk_is_split_at_words():
    long_sentence = " ".join(["panjang"] * 400)  # 3,199 characters, no full stop
    chunks = chunk_pages([long_sentence], size=800, overlap=100)
    assert all(len(c.text) <= 800 for c in chunks)
    assert all(not c.text.startswith("anjang") for c in chunks)  # cut at spaces


def test_paragraph_lines_and_hyphenation_are_joined():
    [chunk] = chunk_pages(["Kompu-\nter adalah alat\nelektronik.\n\nParagraf kedua."], size=800)
    assert chunk.text == "Komputer adalah alat elektronik. Paragraf kedua."


def test_overlap_must_be_smaller_than_size():
    with pytest.raises(ValueError):
        chunk_pages(["teks"], size=100, overlap=100)


def test_chunks_never_exceed_the_token_limit_of_minilm(minilm):
    # Digits and rare words cost many word pieces: 800 characters of them exceed 256 tokens,
    # which MiniLM would silently truncate. The chunker must split them instead.
    dense = " ".join(f"NIK{i:06d}-{i * 7919 % 100000:05d}/XQZ." for i in range(200))
    assert minilm.count_tokens(dense[:800]) > minilm.max_tokens

    chunks = chunk_pages(
        [dense],
        size=800,
        overlap=100,
        max_tokens=minilm.max_tokens,
        count_tokens=minilm.count_tokens,
    )

    assert all(minilm.count_tokens(c.text) <= minilm.max_tokens for c in chunks)
    assert all(f"NIK{i:06d}" in " ".join(c.text for c in chunks) for i in range(200))
