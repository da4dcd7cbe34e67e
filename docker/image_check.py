"""Fail an image build whose runtime cannot do its job offline. Run by Dockerfile.cpu.

Checks, in the image being built: torch (and with it CUDA) is not installed; the local model
that the settings choose by default embeds a sentence without torch, and so does the packaged
MiniLM under each CPU backend (OpenVINO, ONNX Runtime fp32 and int8) from the shipped ONNX
export, which must be current (the image ships the plain fp32 graph and int8, not the fused
fp32 graph: ONNX Runtime's fp32 runs the plain one, and its vectors must equal OpenVINO's);
Tesseract reads Indonesian and English. Nothing is left behind: the data dirs it needs are
temporary folders.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SENTENCE = "Algoritma adalah langkah-langkah."
SHIPPED_VARIANTS = ("plain", "int8")  # engine.embed.onnx_export.VARIANT_FILES but fused fp32


def check_no_torch() -> None:
    for module in ("torch", "nvidia", "sentence_transformers"):
        if importlib.util.find_spec(module) is not None:
            sys.exit(f"image check: {module} is installed; the CPU image must run without it")


def embed(data: Path, **settings: str) -> tuple[str, list[float]]:
    """The model key and vector of one sentence, embedded with `settings` in data dir `data`."""
    from engine.app import build_embedder
    from engine.settings import Settings

    embedder = build_embedder(Settings(NEXUS_DATA_DIR=data, EMBEDDING_STRATEGY="local", **settings))
    [vector] = embedder.embed_batch([SENTENCE]).vectors
    if not any(vector):
        sys.exit(f"image check: {settings or 'the default local model'} gave an empty vector")
    if importlib.util.find_spec("torch") is not None or "torch" in sys.modules:
        sys.exit("image check: embedding imported torch")
    return embedder.model.key, vector


def check_local_models_embed() -> str:
    """The default model, then MiniLM under each CPU backend; returns what ran."""
    ran = []
    with tempfile.TemporaryDirectory() as data:
        key, vector = embed(Path(data))
        ran.append(f"default {key} ({len(vector)} dimensions)")
    minilm = {}
    for backend in ("openvino", "onnx", "onnx-int8"):
        with tempfile.TemporaryDirectory() as data:
            key, minilm[backend] = embed(Path(data), LOCAL_EMBEDDING_BACKEND=backend)
            ran.append(f"{backend} {key}")
    cosine = sum(a * b for a, b in zip(minilm["openvino"], minilm["onnx"], strict=True))
    if cosine < 0.9999:  # both run the plain fp32 graph (measured: 0.99997)
        sys.exit(f"image check: ONNX Runtime fp32 and OpenVINO disagree (cosine {cosine:.5f})")
    return ", ".join(ran)


def check_shipped_export() -> None:
    from engine.embed.onnx_export import SHIPPED_DIR, check_cache

    for variant in SHIPPED_VARIANTS:
        check_cache(SHIPPED_DIR, variant)


def check_tesseract() -> None:
    langs = subprocess.run(
        ["tesseract", "--list-langs"], capture_output=True, text=True, check=True
    ).stdout.split()
    if not {"ind", "eng"} <= set(langs):
        sys.exit(f"image check: Tesseract lacks ind or eng ({langs})")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    check_no_torch()
    check_shipped_export()
    models = check_local_models_embed()
    check_tesseract()
    print(f"image check: {models} embed without torch; export and OCR ready")


if __name__ == "__main__":
    main()
