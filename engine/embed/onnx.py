"""Local embeddings with ONNX Runtime: the packaged all-MiniLM-L6-v2 without torch.

The model runs as an ONNX graph (fp32, or int8 weights: see `engine.embed.onnx_export` for how
it is made and checked) and is tokenized with the fast `tokenizers` library from the packaged,
digest-checked tokenizer.json, truncated to the 256 word pieces (specials included) of
sentence_bert_config.json, as sentence-transformers does. Texts are sorted by length and padded
per batch. Importing this module or embedding with it never imports torch or
sentence-transformers; only exporting a missing cache does (`python -m engine.embed.onnx_export`
prepares it ahead of time).

Model key: fp32 ONNX vectors equal the torch model's (max |difference| 3e-7 on 1,000 chunks,
identical rankings), so they keep its key `all-minilm-l6-v2`. int8 vectors get a key of their
own, `all-minilm-l6-v2-int8`. Measured with bench/encoder.py on 1,000 Indonesian chunks, their
cosine to torch has mean 0.9956 and min 0.990, but on the 118 development questions vector
search hit@5 fell from 0.61 to 0.58 (hybrid 0.81 to 0.80; 0.59 and 0.80 when torch-made chunks
are searched with int8 queries; every int8 recipe tried scored 0.58-0.60) while hit@1 and
MRR@10 rose slightly: the losses are questions at rank 5 that slip to 6 or 7. The rule was
"same key only if hit@5 is not worse", so the vectors are not treated as interchangeable.
Collections of the old key stay searchable under int8: `for_model("all-minilm-l6-v2")`
answers with the fp32 graph (from the same export) for query vectors, so an upgrade never
hides existing chunks; new chunks go to the int8 collection.

ONNX Runtime also runs the plain traced graph (fp32-plain.onnx, below) with the fused graph's
vectors: on 1,000 chunks max |difference| 2e-7, identical rankings, about 5% slower. So the fp32
variant is read from fp32-plain.onnx in a folder without a current fp32.onnx: the CPU image
ships only fp32-plain.onnx and int8.onnx (90 MB less).

OpenVINO (`OpenVinoEmbedder`, the default on a CPU when the `openvino` package is installed,
as it is with this project) runs the plain traced fp32 graph: measured with bench/encoder.py it
was the fastest backend here (71 chunks/s against 47 for int8 ONNX and 18 for torch fp32)
with cosine 0.99997 to torch and the same hit@5, so it shares the torch key and is the "faster
one that keeps quality"; int8 ONNX stays available (`onnx-int8`) where OpenVINO is not.

LOCAL_EMBEDDING_BACKEND picks the implementation (`choose_backend`): `auto` is OpenVINO on CPU
(int8 ONNX Runtime without it) and sentence-transformers on CUDA. "CUDA" is decided without
importing torch: the device setting says `cuda`, or it says `auto`, the NVIDIA driver is loaded
(/proc/driver/nvidia) and the installed torch is not a `+cpu` build. A sentence-transformers
LOCAL_EMBEDDING_MODEL always uses torch (`use-multilingual-v3` never gets here: it has its own
numpy encoder, engine/embed/multilingual.py).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from engine.embed.base import Embedder, EmbeddingResult, ModelInfo
from engine.embed.model_files import packaged_minilm_path
from engine.embed.onnx_export import (
    HIDDEN,
    INPUT_NAMES,
    SHIPPED_DIR,
    OnnxCacheStale,
    check_cache,
    export_models,
)

log = logging.getLogger(__name__)

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_KEY = "all-minilm-l6-v2"  # fp32: shared with the torch backend, see the module docstring
INT8_KEY = "all-minilm-l6-v2-int8"
BACKENDS = ("auto", "openvino", "onnx-int8", "onnx", "torch")
# variants whose vectors another file gives too, in the order they are looked for
SAME_VECTORS = {"fp32": ("fp32", "plain")}


def torch_installed() -> bool:
    """Whether torch could be imported (without importing it)."""
    return importlib.util.find_spec("torch") is not None


class OnnxModelMissing(RuntimeError):
    """No current ONNX export is available and torch is not installed to make one."""


def cache_dir_for(data_dir: Path) -> Path:
    """Where the ONNX export of the packaged model is kept inside a data dir."""
    return data_dir / "models" / "minilm-onnx"


def cuda_available(device: str = "auto") -> bool:
    """Whether a CUDA GPU would be used, decided without importing torch."""
    if device != "auto":
        return device == "cuda"
    if not Path("/proc/driver/nvidia/version").exists():
        return False
    try:
        return "+cpu" not in importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False


def choose_backend(backend: str, device: str = "auto", custom_model: str = "") -> str:
    """Resolve LOCAL_EMBEDDING_BACKEND to `torch`, `openvino`, `onnx` or `onnx-int8`."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown LOCAL_EMBEDDING_BACKEND {backend!r}")
    if backend != "auto":
        return backend
    if custom_model or cuda_available(device):
        return "torch"
    return "openvino" if importlib.util.find_spec("openvino") else "onnx-int8"


class OnnxEmbedder(Embedder):
    """all-MiniLM-L6-v2 under ONNX Runtime on the CPU, loaded lazily and shared by threads.

    Each `embed_batch` call gets several model batches, sorted by length, so less is padded.
    """

    batches_per_call = 8

    def __init__(
        self,
        cache_dir: Path,
        quantized: bool = True,
        batch_size: int = 32,
        threads: int | None = None,
        search_dirs: Sequence[Path] = (SHIPPED_DIR,),
    ):
        """
        Args:
            cache_dir: writable folder for the export (see `cache_dir_for`).
            quantized: int8 weights (faster) instead of fp32.
            batch_size: texts per model call.
            threads: onnxruntime intra-op threads; default one per usable core.
            search_dirs: read-only folders with a prepared export, tried after `cache_dir`.
        """
        self.cache_dir = Path(cache_dir)
        self.variant = "int8" if quantized else "fp32"
        self.batch_size = batch_size
        self.threads = threads or len(os.sched_getaffinity(0))
        self.search_dirs = [Path(d) for d in search_dirs]
        self._info = ModelInfo(MODEL_ID, INT8_KEY if quantized else MODEL_KEY)
        self._fp32: OnnxEmbedder | None = None
        self._lock = threading.Lock()
        self._session = None
        self._tokenizer = None  # truncating, for embedding
        self._counter = None  # not truncating, for count_tokens
        self._max_tokens = 0
        self.model_path: Path | None = None

    @property
    def model(self) -> ModelInfo:
        return self._info

    @property
    def backend(self) -> str:
        return "onnx-int8" if self.variant == "int8" else "onnx"

    def _find_model(self) -> Path:
        reasons = []
        for folder in (self.cache_dir, *self.search_dirs):
            for variant in SAME_VECTORS.get(self.variant, (self.variant,)):
                try:
                    return check_cache(folder, variant)
                except OnnxCacheStale as why:
                    reasons.append(str(why))
        if not torch_installed():
            raise OnnxModelMissing(
                "the ONNX model is not prepared and torch is not installed to export it ("
                + "; ".join(reasons)
                + "). Prepare it where torch is installed with "
                f"`python -m engine.embed.onnx_export {self.cache_dir}` (or, for an image, "
                "`python -m engine.embed.onnx_export` at build time), or set "
                "LOCAL_EMBEDDING_BACKEND=torch"
            )
        log.warning(
            "no current ONNX export of all-MiniLM-L6-v2 (%s); exporting once to %s with torch",
            reasons[0],
            self.cache_dir,
        )
        export_models(self.cache_dir)
        return check_cache(self.cache_dir, self.variant)

    def load(self):
        """Load tokenizer and session (once). Safe to call from several threads."""
        with self._lock:
            if self._session is None:
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                from tokenizers import Tokenizer

                model_dir = packaged_minilm_path(
                    only=("tokenizer.json", "sentence_bert_config.json")
                )
                config = json.loads((model_dir / "sentence_bert_config.json").read_text())
                self._max_tokens = int(config["max_seq_length"])
                # tokenizer.json itself pads and truncates to 128: both are replaced here
                tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
                tokenizer.no_padding()
                counter = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
                counter.no_padding()
                counter.no_truncation()
                tokenizer.enable_truncation(self._max_tokens)

                self.model_path = self._find_model()
                self._session = self._open_session(self.model_path)
                self._tokenizer, self._counter = tokenizer, counter
                log.info(
                    "loaded %s (%s, %d threads) from %s",
                    MODEL_ID,
                    self.backend,
                    self.threads,
                    self.model_path,
                )
        return self._session

    def _open_session(self, path: Path):
        """An object whose `run(None, feed)` returns `[sentence_embeddings]`."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @property
    def max_tokens(self) -> int:
        # counts the [CLS] and [SEP] tokens, like sentence-transformers' max_seq_length
        self.load()
        return self._max_tokens

    def count_tokens(self, text: str) -> int:
        self.load()
        return len(self._counter.encode(text.strip()).ids)

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        import numpy as np

        session = self.load()
        # sentence-transformers strips each text before tokenizing
        encodings = self._tokenizer.encode_batch([str(t).strip() for t in texts])
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(encodings), HIDDEN), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, i in enumerate(rows):
                ids[row, : len(encodings[i].ids)] = encodings[i].ids
                mask[row, : len(encodings[i].ids)] = 1
            feed = dict(zip(INPUT_NAMES, (ids, mask, np.zeros_like(ids)), strict=True))
            out[rows] = session.run(None, feed)[0]
        return EmbeddingResult(vectors=out.tolist(), model=self._info)

    def for_model(self, key: str) -> Embedder | None:
        """int8 also embeds queries for fp32/torch collections, with the fp32 graph."""
        if key == self._info.key:
            return self
        if key == MODEL_KEY:
            with self._lock:
                if self._fp32 is None:
                    self._fp32 = OnnxEmbedder(
                        self.cache_dir, False, self.batch_size, self.threads, self.search_dirs
                    )
            return self._fp32
        return None

    def status(self) -> dict:
        return super().status() | {
            "backend": self.backend,
            "device": "cpu",
            "threads": self.threads,
            "loaded": self._session is not None,
        }


class OpenVinoEmbedder(OnnxEmbedder):
    """The packaged model's plain fp32 graph compiled by OpenVINO for the CPU.

    Vectors match torch's (cosine 0.99997), so it keeps the torch key and answers queries for
    those collections; int8 collections made earlier are queried with the int8 graph.
    """

    def __init__(self, cache_dir: Path, batch_size: int = 32, threads: int | None = None, **kw):
        super().__init__(cache_dir, quantized=False, batch_size=batch_size, threads=threads, **kw)
        self.variant = "plain"
        self._int8: OnnxEmbedder | None = None

    @property
    def backend(self) -> str:
        return "openvino"

    def _open_session(self, path: Path):
        import openvino

        compiled = openvino.Core().compile_model(
            str(path), "CPU", {"INFERENCE_NUM_THREADS": self.threads}
        )
        lock = threading.Lock()  # one infer request: the watcher and the API share it

        class Session:
            def run(self, _outputs, feed):
                with lock:
                    return [compiled(feed)[0]]

        return Session()

    def for_model(self, key: str) -> Embedder | None:
        if key == MODEL_KEY:
            return self
        if key == INT8_KEY:
            with self._lock:
                if self._int8 is None:
                    self._int8 = OnnxEmbedder(
                        self.cache_dir, True, self.batch_size, self.threads, self.search_dirs
                    )
            return self._int8
        return None
