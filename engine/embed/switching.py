"""A local model switch in progress: the new model embeds, the previous one still answers.

When an admin changes LOCAL_EMBEDDING_MODEL, files are embedded again with the new model the
next time `nexus ingest` or the watcher sees them (a document whose collection the embedder
cannot query counts as not yet ingested), as ordinary jobs with progress. Each file's old
chunks are deleted only after its new ones are stored, so until a file has been re-embedded
its chunks are the previous model's. This embedder keeps those searchable by meaning: it
embeds with the new model, and `query_embedder` also offers the previous model (loaded only if
a search meets one of its collections), while `for_model`, which ingestion asks, offers only
the new one, so those files still count as due for re-embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.embed.base import Embedder, EmbeddingResult, ModelInfo, Progress


class SwitchingEmbedder(Embedder):
    def __init__(self, current: Embedder, previous: Embedder):
        self.current = current
        self.previous = previous
        self.batch_size = current.batch_size
        self.batches_per_call = current.batches_per_call

    @property
    def model(self) -> ModelInfo:
        return self.current.model

    @property
    def max_tokens(self) -> int | None:
        return self.current.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.current.count_tokens(text)

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> EmbeddingResult:
        return self.current.embed(texts, progress)

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        return self.current.embed_batch(texts)

    def embed_queries(self, texts: Sequence[str]) -> EmbeddingResult:
        return self.current.embed_queries(texts)

    def warm(self) -> None:
        self.current.warm()
        self.previous.warm()  # until the switch ends, questions ask its collections too

    def for_model(self, key: str) -> Embedder | None:
        return self.current.for_model(key)  # ingestion re-embeds what only `previous` reads

    def query_embedder(self, key: str) -> Embedder | None:
        return self.current.query_embedder(key) or self.previous.query_embedder(key)

    def status(self) -> dict:
        return self.current.status() | {"previous": self.previous.status()}
