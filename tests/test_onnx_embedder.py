"""The torch-free ONNX Runtime encoder: same vectors and token counts as sentence-transformers,
no torch on the run path, a cache that is reused, rebuilt when stale, and a clear error when it
cannot be made. The model is exported once per test session into a tmp dir."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from engine.app import build_embedder
from engine.embed import onnx_export
from engine.embed.onnx import (
    OnnxEmbedder,
    OnnxModelMissing,
    OpenVinoEmbedder,
    cache_dir_for,
    choose_backend,
)
from engine.embed.onnx_export import MANIFEST, OnnxCacheStale, check_cache, export_models
from engine.settings import Settings
from tests.conftest import REPO

SENTENCES = [
    "Fotosintesis adalah proses tumbuhan hijau membuat makanan dengan bantuan cahaya matahari.",
    "Kerajaan Majapahit didirikan oleh Raden Wijaya pada tahun 1293 di Jawa Timur.",
    "  Hukum Newton kedua: percepatan benda sebanding dengan gaya total yang bekerja padanya.  ",
    "Gempa bumi tektonik terjadi karena pergeseran lempeng di dalam kerak bumi.",
    "Apa fungsi jantung dalam sistem peredaran darah manusia?",
    "Apa itu sel?",
    # longer than the model's 256 word pieces: truncated the same way by both
    " ".join(["Siswa membaca buku pelajaran sejarah Indonesia di perpustakaan sekolah."] * 40),
]


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    """fp32.onnx and int8.onnx exported once for the whole session."""
    cache = tmp_path_factory.mktemp("onnx") / "minilm-onnx"
    export_models(cache)
    return cache


@pytest.fixture(scope="session")
def onnx_fp32(onnx_cache):
    return OnnxEmbedder(onnx_cache, quantized=False, search_dirs=())


@pytest.fixture(scope="session")
def onnx_int8(onnx_cache):
    return OnnxEmbedder(onnx_cache, quantized=True, search_dirs=())


@pytest.mark.slow
def test_openvino_gives_the_torch_models_vectors_and_keeps_its_key(minilm, onnx_cache):
    openvino = OpenVinoEmbedder(onnx_cache, search_dirs=())
    got = _vectors(openvino, SENTENCES)
    expected = np.array(minilm.embed(SENTENCES).vectors)
    assert (got * expected).sum(axis=1).min() > 0.9999
    assert openvino.model.key == minilm.model.key  # interchangeable: the same collections
    assert openvino.for_model("all-minilm-l6-v2-int8") is not None  # int8 ones stay searchable


def _vectors(embedder, texts):
    return np.array(embedder.embed(texts).vectors)


@pytest.mark.slow
def test_vectors_agree_with_sentence_transformers(minilm, onnx_fp32, onnx_int8):
    reference = _vectors(minilm, SENTENCES)
    fp32, int8 = _vectors(onnx_fp32, SENTENCES), _vectors(onnx_int8, SENTENCES)
    assert fp32.shape == int8.shape == (len(SENTENCES), 384)
    assert np.abs(fp32 - reference).max() < 1e-5
    assert ((fp32 * reference).sum(1) >= 0.9999).all()
    cosines = (int8 * reference).sum(1)
    assert (cosines >= 0.99).all(), cosines
    assert np.allclose(np.linalg.norm(int8, axis=1), 1, atol=1e-5)
    # fp32 shares the torch model's key; int8 has its own but still answers for the old
    # collections, with fp32 query vectors (see engine.embed.onnx)
    assert onnx_fp32.model == minilm.model and onnx_int8.model.key == "all-minilm-l6-v2-int8"
    for_old = onnx_int8.for_model(minilm.model.key)
    assert for_old.variant == "fp32" and for_old.model == minilm.model
    assert np.abs(_vectors(for_old, SENTENCES[:2]) - reference[:2]).max() < 1e-5
    assert onnx_int8.for_model("titan-embed-text-v2-1024") is None
    assert onnx_int8.embed([]).vectors == []


@pytest.mark.slow
def test_batching_and_length_sorting_do_not_change_vectors(onnx_fp32):
    one_by_one = np.array([onnx_fp32.embed_batch([t]).vectors[0] for t in SENTENCES])
    onnx_fp32.batch_size = 3  # several padded batches of sorted lengths
    try:
        batched = _vectors(onnx_fp32, SENTENCES)
    finally:
        onnx_fp32.batch_size = 32
    assert np.abs(one_by_one - batched).max() < 1e-5


@pytest.mark.slow
def test_token_counts_and_limit_match_sentence_transformers(minilm, onnx_int8):
    assert onnx_int8.max_tokens == minilm.max_tokens == 256
    for text in [*SENTENCES, "", "Ekosistem terdiri atas komponen biotik & abiotik (2024)."]:
        assert onnx_int8.count_tokens(text) == minilm.count_tokens(text)
    assert onnx_int8.count_tokens(SENTENCES[-1]) > 256  # counted whole, not truncated


@pytest.mark.slow
def test_embedding_never_imports_torch(onnx_cache):
    code = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from engine.embed.onnx import OnnxEmbedder
        embedder = OnnxEmbedder(Path({str(onnx_cache)!r}), search_dirs=())
        vectors = embedder.embed(["Sel adalah unit terkecil kehidupan."]).vectors
        tokens = embedder.count_tokens("Sel adalah unit terkecil kehidupan.")
        heavy = [m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules]
        print(json.dumps({{"dims": len(vectors[0]), "tokens": tokens, "heavy": heavy}}))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(run.stdout.splitlines()[-1]) == {"dims": 384, "tokens": 16, "heavy": []}


@pytest.mark.slow
def test_cache_is_reused_and_rebuilt_when_stale(onnx_cache, tmp_path, monkeypatch, caplog):
    cache = tmp_path / "minilm-onnx"
    shutil.copytree(onnx_cache, cache)
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}

    def no_export(*args):
        raise AssertionError("a current cache must not be exported again")

    with monkeypatch.context() as patch:
        patch.setattr(onnx_export, "export_fp32_graph", no_export)
        export_models(cache)
        OnnxEmbedder(cache, search_dirs=()).embed(["reused"])
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before

    # a flipped byte in a model file is noticed
    int8 = cache / "int8.onnx"
    data = bytearray(int8.read_bytes())
    data[len(data) // 2] ^= 1
    int8.write_bytes(bytes(data))
    with pytest.raises(OnnxCacheStale, match="differs"):
        check_cache(cache, "int8")

    # made from other source files (e.g. a new model release): exported again on first use
    manifest = json.loads((cache / MANIFEST).read_text())
    manifest["source"]["model.safetensors"] = "0" * 64
    (cache / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(OnnxCacheStale, match="other model files"):
        check_cache(cache, "fp32")
    with caplog.at_level(logging.INFO, logger="engine.embed"):
        vector = OnnxEmbedder(cache, search_dirs=()).embed(["dibuat ulang"]).vectors[0]
    assert "exporting once" in caplog.text
    assert len(vector) == 384 and check_cache(cache, "int8") and check_cache(cache, "fp32")
    assert not [p for p in cache.iterdir() if p.name.startswith(".export-")]


def test_missing_cache_without_torch_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("engine.embed.onnx.torch_installed", lambda: False)
    embedder = OnnxEmbedder(tmp_path / "minilm-onnx", search_dirs=[tmp_path / "shipped"])
    with pytest.raises(OnnxModelMissing, match="python -m engine.embed.onnx_export"):
        embedder.embed(["apa saja"])
    assert not embedder.status()["loaded"]


def test_backend_choice(monkeypatch):
    import importlib.util

    monkeypatch.delenv("LOCAL_EMBEDDING_BACKEND", raising=False)
    assert choose_backend("auto", "cpu") == "openvino"  # installed with the project
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name: None if name == "openvino" else real_find_spec(name),
    )
    assert choose_backend("auto", "cpu") == "onnx-int8"  # without OpenVINO
    assert choose_backend("auto", "cuda") == "torch"
    assert choose_backend("auto", "cpu", custom_model="/models/other") == "torch"
    assert choose_backend("onnx", "cuda") == "onnx"
    with pytest.raises(ValueError):
        choose_backend("tensorrt")

    monkeypatch.undo()
    monkeypatch.setenv("LOCAL_EMBEDDING_DEVICE", "cpu")
    monkeypatch.setenv("LOCAL_EMBEDDING_MODEL", "all-minilm-l6-v2")  # the default is USE v3
    settings = Settings()
    assert isinstance(build_embedder(settings), OpenVinoEmbedder)
    monkeypatch.setenv("LOCAL_EMBEDDING_BACKEND", "onnx-int8")
    embedder = build_embedder(settings := Settings())
    assert isinstance(embedder, OnnxEmbedder) and embedder.variant == "int8"
    assert embedder.cache_dir == cache_dir_for(settings.data_dir)
    assert embedder.status()["backend"] == "onnx-int8"

    monkeypatch.setenv("LOCAL_EMBEDDING_BACKEND", "torch")
    assert type(build_embedder(Settings())).__name__ == "LocalEmbedder"


@pytest.mark.slow
def test_fp32_is_read_from_the_plain_graph_where_the_fused_one_is_not_shipped(
    onnx_cache, onnx_fp32, tmp_path, monkeypatch
):
    """The CPU image ships fp32-plain.onnx and int8.onnx only: ONNX Runtime's fp32 backend
    answers from the plain graph with the fused graph's vectors, and never tries to export."""
    shipped = tmp_path / "shipped"
    shutil.copytree(onnx_cache, shipped)
    (shipped / "fp32.onnx").unlink()
    monkeypatch.setattr("engine.embed.onnx.torch_installed", lambda: False)
    plain = OnnxEmbedder(tmp_path / "empty-cache", quantized=False, search_dirs=[shipped])
    got = np.array(plain.embed(SENTENCES).vectors)
    want = np.array(onnx_fp32.embed(SENTENCES).vectors)
    assert np.abs(got - want).max() < 1e-5
    assert plain.model.key == onnx_fp32.model.key
