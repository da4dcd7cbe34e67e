"""Fail an image build whose runtime cannot do its job offline. Run by Dockerfile.cpu.

Checks, in the image being built: torch (and with it CUDA) is not installed; the local model
that the settings choose by default embeds a sentence without torch; the shipped ONNX export
of all-MiniLM-L6-v2 is current, whichever model is the default; Tesseract reads Indonesian and
English. Nothing is left behind: the data dir it needs is a temporary folder.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def check_no_torch() -> None:
    for module in ("torch", "nvidia", "sentence_transformers"):
        if importlib.util.find_spec(module) is not None:
            sys.exit(f"image check: {module} is installed; the CPU image must run without it")


def check_default_model_embeds() -> str:
    from engine.app import build_embedder
    from engine.settings import Settings

    with tempfile.TemporaryDirectory() as data:
        settings = Settings(NEXUS_DATA_DIR=Path(data), EMBEDDING_STRATEGY="local")
        embedder = build_embedder(settings)
        [vector] = embedder.embed_batch(["Algoritma adalah langkah-langkah."]).vectors
        if not any(vector):
            sys.exit("image check: the default local model gave an empty vector")
        if importlib.util.find_spec("torch") is not None or "torch" in sys.modules:
            sys.exit("image check: embedding imported torch")
        return f"{embedder.model.model_id} ({len(vector)} dimensions)"


def check_shipped_export() -> None:
    from engine.embed.onnx_export import SHIPPED_DIR, VARIANT_FILES, check_cache

    for variant in VARIANT_FILES:
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
    model = check_default_model_embeds()
    check_tesseract()
    print(f"image check: default local model {model} runs without torch; export and OCR ready")


if __name__ == "__main__":
    main()
