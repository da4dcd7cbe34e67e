"""The Chroma chunk store: naming, batching, per-document delete."""

from __future__ import annotations

import pytest

from engine.names import BadName
from engine.store.chroma import ChunkStore, collection_name, vkp_collection_name
from engine.store.chunks import ChunkMeta, StoredChunk, chunk_id, content_of, index_of
from engine.store.client import make_chroma_client


def chunks(sha: str, n: int) -> list[StoredChunk]:
    return [
        StoredChunk(
            id=chunk_id(sha, i),
            text=f"teks {i}",
            vector=[1.0, float(i), 0.5],
            metadata={"file_sha256": sha, "source": "a.pdf", "page": 1},
        )
        for i in range(n)
    ]


class RecordingClient:
    """A real chromadb client whose collections report the size of every upsert."""

    def __init__(self, client, max_batch: int):
        self.client, self.max_batch, self.upserts = client, max_batch, []

    def get_max_batch_size(self) -> int:
        return self.max_batch

    def get_or_create_collection(self, *args, **kwargs):
        collection = self.client.get_or_create_collection(*args, **kwargs)
        upsert = collection.upsert

        def recording_upsert(**kw):
            self.upserts.append(len(kw["ids"]))
            return upsert(**kw)

        collection.upsert = recording_upsert
        return collection

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_writes_are_batched_under_the_servers_limit(settings):
    client = RecordingClient(make_chroma_client(settings), max_batch=10)
    store = ChunkStore(client)

    name = store.add("kelas_10", "ipa", "fake/m", "fake-m", chunks("a" * 64, 25))

    assert client.upserts == [10, 10, 5]
    assert store.collections()[0].count == 25
    assert name == collection_name("kelas_10", "ipa", "fake-m")


def test_collection_names_use_the_exact_checked_names_and_separate_models(settings):
    assert collection_name("kelas_10", "bahasa_indonesia", "all-minilm-l6-v2") == (
        "nexus__kelas_10__bahasa_indonesia__all-minilm-l6-v2"
    )
    assert (
        vkp_collection_name("kelas_10", "ipa", "m", "1.2.0") == "nexus__kelas_10__ipa__m__vkp-1-2-0"
    )
    # nothing is cleaned up: names that could collide with another folder's are refused
    for grade, subject in [("Kelas 10", "ipa"), ("kelas-10", "ipa"), ("kelas_10", "ipa__x")]:
        with pytest.raises(BadName, match="kelas_10|ipa_x"):
            collection_name(grade, subject, "m")
        with pytest.raises(BadName):
            vkp_collection_name(grade, subject, "m", "1.0.0")
    store = ChunkStore(make_chroma_client(settings))
    store.add("kelas_10", "ipa", "fake/a", "model-a", chunks("a" * 64, 2))
    store.add("kelas_10", "ipa", "fake/b", "model-b", chunks("a" * 64, 2))
    assert [c.model_key for c in store.collections()] == ["model-a", "model-b"]


def test_delete_document_removes_only_its_chunks(settings):
    store = ChunkStore(make_chroma_client(settings))
    name = store.add(
        "kelas_10", "ipa", "fake/m", "fake-m", chunks("a" * 64, 3) + chunks("b" * 64, 2)
    )
    store.delete_document(name, "a" * 64)
    assert store.document_shas(name) == {"b" * 64}
    store.delete_document("nexus__no__such__collection", "a" * 64)  # nothing to delete: no error


def test_the_chunk_id_format_is_read_back_by_one_pair_of_functions():
    sha = "ab" * 32
    assert chunk_id(sha, 7) == f"{sha[:24]}-00007"
    assert (content_of(chunk_id(sha, 7)), index_of(chunk_id(sha, 7))) == (sha[:24], 7)
    assert index_of("not-an-id") == -1 and content_of("plain") == ""


def test_chunk_metadata_reads_back_whole_and_old_packages_get_defaults():
    meta = ChunkMeta("kelas_10", "ipa", "a.pdf", "ab" * 32, 3, 4, "3-4", 7, "m", "Bab 1", "iii")
    assert ChunkMeta.of(meta.to_metadata()) == meta
    old = {"grade": "kelas_10", "subject": "ipa", "source": "a.pdf", "file_sha256": "ab", "page": 2}
    assert ChunkMeta.of(old) == ChunkMeta("kelas_10", "ipa", "a.pdf", "ab", 2, 2, "2")
    with pytest.raises(KeyError):
        ChunkMeta.of({"grade": "kelas_10"})
