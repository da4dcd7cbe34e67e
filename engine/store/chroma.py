"""Chunks in ChromaDB: one collection per grade + subject + embedding model.

Collections made before grade/subject names were checked (`nexus__kelas-10__...`, from a
lossy slug) are still found and searched through their metadata.

Chunk ids (`engine.store.chunks.chunk_id`: the file's sha256 prefix and the chunk's index) make
storing the same document again (a retry after a crash, the same PDF dropped twice) overwrite
instead of duplicating. Writes go in
batches below the server's maximum batch size.

With a change marker (`engine.store.changes`, as the engine builds it) the listing of collections
and their handles are kept in memory until any writer of the data dir says the store changed, so
a search makes no listing or counting call and no `get_collection` call of its own; every write
here says so once it is done. `nearest_many` asks one collection for several questions in one
call (the searcher's micro-batches): each question gets exactly the hits a query of its own gets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from engine.names import SEPARATOR, library_key
from engine.store.changes import ChangeMarker
from engine.store.chunks import FILE_SHA256, StoredChunk

log = logging.getLogger(__name__)

_NAME_PREFIX = "nexus"


def collection_name(grade: str, subject: str, model_key: str) -> str:
    """`nexus__kelas_10__informatika__all-minilm-l6-v2`, from the exact grade and subject.

    Names are checked, never cleaned up (`engine.names`), so `kelas_10` and `kelas-10` can never
    share a collection: the second is refused. At most 5 + 2 + 129 + 2 + len(model_key)
    characters, well within Chroma's limit.

    Raises:
        BadName: grade or subject break the naming rule.
    """
    return SEPARATOR.join([_NAME_PREFIX, library_key(grade, subject), model_key])


def vkp_collection_name(grade: str, subject: str, model_key: str, version: str) -> str:
    """The collection of one installed package version (beside the others, until switched)."""
    return f"{collection_name(grade, subject, model_key)}__vkp-{version.replace('.', '-')}"


@dataclass
class CollectionInfo:
    name: str
    grade: str
    subject: str
    model_key: str
    model_id: str
    count: int
    vkp_version: str = ""  # set on collections installed from a knowledge package


class Nearest(NamedTuple):
    id: str
    score: float  # cosine similarity (rounded to 1e-4), 1 = same direction


class ChunkStore:
    """Thin layer over a chromadb client (HttpClient or PersistentClient).

    Args:
        client: the chromadb client.
        changes: the data dir's change marker; with it, listings and collection handles are
            reused until a write (None: every call asks Chroma, as a one-off store does).
    """

    def __init__(self, client, changes: ChangeMarker | None = None):
        self.client = client
        self.changes = changes
        self._max_batch: int | None = None
        self._cache_lock = threading.Lock()
        self._cached_token: bytes | None = None
        self._listing: list[CollectionInfo] | None = None
        self._handles: dict[str, object] = {}

    def _collection(self, name: str, create: dict | None = None):
        if create is None:
            return self.client.get_collection(name, embedding_function=None)
        return self.client.get_or_create_collection(
            name,
            embedding_function=None,
            metadata=create,
            configuration={"hnsw": {"space": "cosine"}},
        )

    def _fresh(self) -> bool:
        """Whether the cached listing and handles are still valid (dropping them if not)."""
        if self.changes is None:
            return False
        token = self.changes.token()
        with self._cache_lock:
            if token != self._cached_token:
                self._cached_token, self._listing, self._handles = token, None, {}
                return False
            return True

    def _changed(self) -> None:
        """After a write: this process and every other reader of the data dir list again."""
        with self._cache_lock:
            self._cached_token, self._listing, self._handles = None, None, {}
        if self.changes is not None:
            self.changes.touch()

    def _reader(self, name: str):
        """The collection `name` for reading: its kept handle while nothing changed. A kept
        handle is used without reading the marker again: `collections()`, which every search
        calls first, reads it once per search and drops the handles after a change."""
        if self.changes is None:
            return self._collection(name)
        with self._cache_lock:
            handle = self._handles.get(name) if self._cached_token is not None else None
        if handle is not None:
            return handle
        if not self._fresh():
            return self._collection(name)
        with self._cache_lock:
            handle = self._handles.get(name)
        if handle is None:
            token = self._cached_token
            handle = self._collection(name)
            with self._cache_lock:
                if self._cached_token == token:
                    self._handles[name] = handle
        return handle

    def _read(self, name: str, call: Callable):
        """`call(collection)` on the kept handle of collection `name`; should the handle have
        gone stale (another process dropped and made it again since this search listed the
        collections: a restore, a package reinstalled), once more on a handle looked up now."""
        handle = self._reader(name)
        try:
            return call(handle)
        except Exception:
            with self._cache_lock:
                if self._handles.get(name) is not handle:
                    raise  # not a kept handle: the error is the collection's own
                del self._handles[name]
        return call(self._collection(name))

    @property
    def max_batch(self) -> int:
        if self._max_batch is None:
            self._max_batch = min(self.client.get_max_batch_size(), 1000)
        return self._max_batch

    def add(
        self,
        grade: str,
        subject: str,
        model_id: str,
        model_key: str,
        chunks: list[StoredChunk],
        vkp_version: str = "",
    ) -> str:
        """Upsert `chunks` into the grade/subject/model collection (or, with `vkp_version`,
        into that package version's own collection); return its name."""
        name = collection_name(grade, subject, model_key)
        metadata = {
            "grade": grade,
            "subject": subject,
            "model_key": model_key,
            "model_id": model_id,
        }
        if vkp_version:
            name = vkp_collection_name(grade, subject, model_key, vkp_version)
            metadata["vkp_version"] = vkp_version
        try:
            collection = self._collection(name, create=metadata)
            for start in range(0, len(chunks), self.max_batch):
                batch = chunks[start : start + self.max_batch]
                collection.upsert(
                    ids=[c.id for c in batch],
                    documents=[c.text for c in batch],
                    metadatas=[c.metadata for c in batch],
                    embeddings=[c.vector for c in batch],
                )
        finally:
            self._changed()  # even a half-done write may have changed what a listing says
        return name

    def delete_document(self, name: str, sha256: str) -> None:
        """Remove every chunk of the document with this sha256 from collection `name`."""
        try:
            collection = self._collection(name)
        except Exception:  # the collection does not exist: nothing to delete
            return
        try:
            collection.delete(where={FILE_SHA256: sha256})
        finally:
            self._changed()

    def relabel_document(self, name: str, sha256: str, *, source: str) -> None:
        """Change the `source` file name on every chunk of one document."""
        collection = self._collection(name)
        ids = collection.get(where={FILE_SHA256: sha256}, include=[])["ids"]
        if ids:
            collection.update(ids=ids, metadatas=[{"source": source}] * len(ids))

    def drop(self, name: str) -> None:
        try:
            self.client.delete_collection(name)
        except Exception:  # already gone
            pass
        finally:
            self._changed()

    def document_shas(self, name: str) -> set[str]:
        """Every document sha256 that has chunks in collection `name`."""
        collection = self._collection(name)
        shas: set[str] = set()
        total, offset = collection.count(), 0
        while offset < total:
            page = collection.get(include=["metadatas"], limit=5000, offset=offset)
            shas.update(m[FILE_SHA256] for m in page["metadatas"])
            offset += 5000
        return shas

    def collections(
        self, grade: str | None = None, subject: str | None = None
    ) -> list[CollectionInfo]:
        """The engine's collections (of one grade and/or subject), by name, with their counts.

        With a change marker, the listing is read from Chroma once per change of the store.
        """
        listing = self._listing if self._fresh() else None
        if listing is None:
            token = self._cached_token
            listing = self._list()
            with self._cache_lock:
                if self.changes is not None and self._cached_token == token:
                    self._listing = listing
        return [
            replace(c)  # copies: a caller may change its own
            for c in listing
            if not (grade and c.grade != grade or subject and c.subject != subject)
        ]

    def _list(self) -> list[CollectionInfo]:
        infos = []
        for collection in self.client.list_collections():
            meta = collection.metadata or {}
            if not collection.name.startswith(_NAME_PREFIX + "__") or "grade" not in meta:
                continue
            infos.append(
                CollectionInfo(
                    name=collection.name,
                    grade=meta["grade"],
                    subject=meta["subject"],
                    model_key=meta["model_key"],
                    model_id=meta.get("model_id", meta["model_key"]),
                    count=collection.count(),
                    vkp_version=meta.get("vkp_version", ""),
                )
            )
        return sorted(infos, key=lambda c: c.name)

    def nearest(self, name: str, vector: list[float], k: int) -> list[Nearest]:
        """The `k` chunks of collection `name` nearest to `vector`, nearest first."""
        return self.nearest_many(name, [vector], k)[0]

    def nearest_many(
        self, name: str, vectors: Sequence[list[float]], k: int
    ) -> list[list[Nearest]]:
        """`nearest` for several vectors in one call to Chroma: one list per vector, each the
        same as a query of its own would give. Ids and scores only: asking Chroma for the
        texts and metadata too doubles a query's cost (~1.1 ms more per collection), and a
        search needs them for its final hits only (`texts`)."""
        if not vectors:
            return []
        result = self._read(
            name,
            lambda collection: collection.query(
                query_embeddings=np.asarray(vectors, dtype=np.float32),  # as Chroma makes lists
                n_results=k,
                include=["distances"],
            ),
        )
        return [
            [Nearest(id_, round(1.0 - dist, 4)) for id_, dist in zip(ids, distances, strict=True)]
            for ids, distances in zip(result["ids"], result["distances"], strict=True)
        ]

    def texts(self, name: str, ids: list[str]) -> list[StoredChunk]:
        """The chunks `ids` that exist in collection `name`, with text and metadata (no
        vectors)."""
        page = self._read(name, lambda c: c.get(ids=ids, include=["documents", "metadatas"]))
        return [
            StoredChunk(id=i, text=t, metadata=m, vector=[])
            for i, t, m in zip(page["ids"], page["documents"], page["metadatas"], strict=True)
        ]

    def get_vectors(self, name: str, ids: list[str]) -> dict[str, list[float]]:
        """Stored vectors of the chunks `ids` that exist in collection `name`."""
        page = self._read(name, lambda c: c.get(ids=ids, include=["embeddings"]))
        return dict(zip(page["ids"], page["embeddings"], strict=True))

    def get_chunks(self, name: str, where: dict | None = None) -> list[StoredChunk]:
        """All chunks of a collection (or those matching `where`), with vectors."""
        page = self._collection(name).get(
            where=where, include=["documents", "metadatas", "embeddings"]
        )
        return [
            StoredChunk(id=i, text=t, metadata=m, vector=list(map(float, v)))
            for i, t, m, v in zip(
                page["ids"], page["documents"], page["metadatas"], page["embeddings"], strict=True
            )
        ]
