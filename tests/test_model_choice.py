"""Which local model a data dir uses: the default for a new one, the recorded one after that,
MiniLM for data built before the record, and whatever the admin sets."""

from __future__ import annotations

import sqlite3

from engine.app import build_engine
from engine.embed.choice import DEFAULT_LOCAL_MODEL, MINILM, local_model, recorded_model
from engine.embed.packaged import USE
from engine.settings import Settings


def test_a_new_data_dir_gets_the_multilingual_default_and_keeps_it(settings):
    assert not settings.data_dir.exists()  # the engine builds its embedder before the data dir
    assert DEFAULT_LOCAL_MODEL == USE
    assert local_model(settings) == USE
    assert recorded_model(settings.data_dir) == USE
    _add_chunks(settings)  # documents ingested with it: still USE, not "built before the record"
    assert local_model(Settings()) == USE


def _add_chunks(settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(settings.db_path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS lexical (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO lexical (text) VALUES ('Fotosintesis')")


def test_a_data_dir_built_before_the_record_keeps_minilm(settings):
    _add_chunks(settings)  # an older engine's database, with chunks and no record
    assert local_model(settings) == MINILM
    assert recorded_model(settings.data_dir) == MINILM


def test_the_recorded_model_wins_over_a_later_default_until_the_admin_switches(
    settings, monkeypatch
):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("LOCAL_EMBEDDING_MODEL", MINILM)
    assert local_model(Settings()) == MINILM
    monkeypatch.delenv("LOCAL_EMBEDDING_MODEL")
    assert local_model(Settings()) == MINILM  # recorded: an empty setting keeps it
    monkeypatch.setenv("LOCAL_EMBEDDING_MODEL", USE)
    assert local_model(Settings()) == USE  # the admin switches
    monkeypatch.delenv("LOCAL_EMBEDDING_MODEL")
    assert local_model(Settings()) == USE


def test_a_minilm_backend_or_a_gpu_means_minilm(settings, monkeypatch):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("LOCAL_EMBEDDING_BACKEND", "onnx")
    assert local_model(Settings()) == MINILM
    monkeypatch.delenv("LOCAL_EMBEDDING_BACKEND")
    (settings.data_dir / "embedding-model.json").unlink()
    monkeypatch.setenv("LOCAL_EMBEDDING_DEVICE", "cuda")
    assert local_model(Settings()) == MINILM


def test_the_engine_builds_the_recorded_model(settings):
    from engine.app import build_embedder

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    assert build_embedder(settings).model.key == USE


def test_switching_models_keeps_every_file_searchable_until_it_is_embedded_again(
    settings, inbox, monkeypatch
):
    from tests.support.pdfs import lesson_pages, text_pdf

    text_pdf(inbox / "kelas_10" / "biologi" / "sel.pdf", lesson_pages("mitokondria", 1))
    monkeypatch.setenv("LOCAL_EMBEDDING_MODEL", MINILM)
    build_engine(Settings()).ingestor.run([inbox], inbox)

    monkeypatch.setenv("LOCAL_EMBEDDING_MODEL", USE)  # the admin switches
    switched = build_engine(Settings())
    (hit,) = switched.searcher.search("mitokondria", mode="vector", k=1)
    assert hit.source == "sel.pdf"  # the old chunks answer, by meaning, through MiniLM

    switched.ingestor.run([inbox], inbox)  # the next ingest embeds the file again
    assert {c.model_key for c in switched.store.collections() if c.count} == {USE}
    (hit,) = switched.searcher.search("mitokondria", mode="vector", k=1)
    assert hit.source == "sel.pdf"
