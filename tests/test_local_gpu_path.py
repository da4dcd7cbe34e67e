"""The GPU path of the torch encoder (length-sorted batches, tokenising the next batch while
the device runs the current one, pooling on the device), run on the CPU: same vectors."""

from __future__ import annotations

import numpy as np
import pytest

from engine.embed.local import LocalEmbedder

TEXTS = [
    "Algoritma adalah urutan langkah logis untuk menyelesaikan masalah.",
    "Fotosintesis",
    "Jaringan komputer menghubungkan beberapa perangkat sehingga dapat bertukar data. " * 6,
    "",
    "Hukum Newton kedua: gaya sama dengan massa kali percepatan.",
] * 7


@pytest.mark.slow
def test_overlapped_encoding_gives_the_models_own_vectors(minilm):
    overlapped = LocalEmbedder(device="cpu", batch_size=4, overlap=True)
    overlapped._model = minilm.load()  # the session's model: loaded once
    overlapped.overlap = True
    got = np.array(overlapped.embed_batch(TEXTS).vectors)
    expected = minilm.load().encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    cosines = (got * expected).sum(axis=1)
    assert got.shape == expected.shape
    assert cosines.min() > 0.99999
