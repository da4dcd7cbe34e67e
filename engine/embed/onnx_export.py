"""Export the packaged all-MiniLM-L6-v2 to ONNX once, so that embedding never needs torch.

    python -m engine.embed.onnx_export [DIR]

writes `fp32.onnx`, `int8.onnx` and `manifest.json` to DIR, or, without DIR, to the shipped
location inside the Python prefix (`<prefix>/share/openclass-nexus/minilm-onnx`) that a Docker
build fills so the image carries the models outside the `/data` volume. `engine.embed.onnx`
looks in `<data dir>/models/minilm-onnx` first, then in the shipped location, and exports into
the data dir on first use when neither is current and torch is installed.

The graph is the Hugging Face BertModel traced with input_ids, attention_mask and
token_type_ids (dynamic batch and sequence axes; position ids come from the model's own buffer,
which the trace slices to the sequence length), followed by sentence-transformers' mean pooling
over the attention mask and L2 normalisation, so the one output `sentence_embedding` is what
`SentenceTransformer.encode(normalize_embeddings=True)` returns (max |difference| ~2e-7).
onnxruntime's transformer optimizer then fuses attention, GELU and layer norms (fp32.onnx).

int8.onnx is `quantize_dynamic` of that graph: int8 weights, per output channel. Measured on
~1,000 Indonesian chunks (cosine to torch fp32): per-tensor scales give a mean of only 0.887;
per-channel 0.989 (min 0.973); additionally keeping the six FFN down-projections
(`layer.N/output/dense`, whose GELU inputs have a wide range) in fp32 gives 0.996 (min 0.99)
at about the same speed, which is the recipe here. `reduce_range` only lowered quality; leaving
the embedding table unquantized changed nothing that mattered (0.9964) and doubled the size.
These vectors get their own model key: see `engine.embed.onnx`.

The manifest records the digests of the source files, the recipe and the digests of the
outputs; a cache whose manifest differs from what this code would write is stale and is
exported again. Files are written to temporary names and renamed into place, manifest last,
under a lock file, so a reader never sees a half-written model.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from engine.embed.model_files import PACKAGED_MINILM_SHA256, packaged_minilm_path
from engine.util import sha256_file

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1
MANIFEST = "manifest.json"
# plain: the traced fp32 graph before onnxruntime fuses it (OpenVINO reads only standard ops)
VARIANT_FILES = {"fp32": "fp32.onnx", "int8": "int8.onnx", "plain": "fp32-plain.onnx"}
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "sentence_embedding"
OPSET = 17
LAYERS, HEADS, HIDDEN = 6, 12, 384
FP32_NODES = tuple(f"/m/encoder/layer.{i}/output/dense/MatMul" for i in range(LAYERS))
RECIPE = {
    "opset": OPSET,
    "pooling": "mean+l2",
    "fusion": f"onnxruntime.transformers bert heads={HEADS} hidden={HIDDEN}",
    "int8": {"weights": "QInt8", "per_channel": True, "reduce_range": False, "fp32": FP32_NODES},
}
# Files that shape a vector; the model dir was verified against these digests before export.
SOURCE_FILES = (
    "model.safetensors",
    "config.json",
    "tokenizer.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)
SHIPPED_DIR = Path(sys.prefix) / "share" / "openclass-nexus" / "minilm-onnx"


class OnnxCacheStale(Exception):
    """The ONNX cache is missing, was made from other source files, or a file differs."""


def expected_source() -> dict[str, str]:
    """Digests of the packaged source files that an export must have been made from."""
    return {name: PACKAGED_MINILM_SHA256[name] for name in SOURCE_FILES}


def check_cache(cache_dir: Path, variant: str) -> Path:
    """The model file of `variant` in `cache_dir`, if the cache is current and intact.

    Raises:
        OnnxCacheStale: saying what is missing or differs.
    """
    try:
        manifest = json.loads((cache_dir / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise OnnxCacheStale(f"no ONNX export in {cache_dir}") from exc
    except (OSError, ValueError) as exc:
        raise OnnxCacheStale(f"unreadable manifest in {cache_dir}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise OnnxCacheStale(f"unreadable manifest in {cache_dir}")
    recipe = json.loads(json.dumps(RECIPE))  # tuples as the JSON file holds them
    if (manifest.get("format"), manifest.get("recipe")) != (EXPORT_FORMAT, recipe):
        raise OnnxCacheStale(f"the ONNX export in {cache_dir} was made by another version")
    if manifest.get("source") != expected_source():
        raise OnnxCacheStale(f"the ONNX export in {cache_dir} was made from other model files")
    path = cache_dir / VARIANT_FILES[variant]
    expected = (manifest.get("files") or {}).get(path.name)
    if not path.is_file() or expected != sha256_file(path):
        raise OnnxCacheStale(f"{path} is missing or differs from its manifest")
    return path


@contextmanager
def _export_lock(cache_dir: Path):
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".export.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _replace_atomically(source: Path, target: Path) -> None:
    with source.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(source, target)


def export_fp32_graph(model_dir: Path, target: Path) -> None:
    """Trace the transformer plus pooling into `target` (unfused fp32 ONNX). Needs torch."""
    import torch
    from transformers import AutoModel

    class SentenceEncoder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.m = bert  # the name shows in node names, see FP32_NODES

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.m(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    encoder = SentenceEncoder(bert).eval()
    # two rows of different length, so the traced graph handles padding
    input_ids = torch.tensor([[101, 7592, 2088, 2003, 102], [101, 7592, 102, 0, 0]])
    attention_mask = (input_ids != 0).long()
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's warnings concern branches that do not depend on the input's values
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder,
            (input_ids, attention_mask, torch.zeros_like(input_ids)),
            str(target),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes | {OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter; the dynamo one needs onnxscript
        )


def _fuse(source: Path, target: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(
        str(source), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN, opt_level=1
    )
    fused.save_model_to_file(str(target))


def _quiet_quantizer(record: logging.LogRecord) -> bool:
    """Drop the quantizer's per-tensor INFO lines, which it logs on the root logger."""
    return record.levelno >= logging.WARNING or "quantization" not in record.pathname


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    root.addFilter(_quiet_quantizer)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=False,
            nodes_to_exclude=list(FP32_NODES),
            # fused contrib ops have no inferred types; their outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.removeFilter(_quiet_quantizer)


def export_models(cache_dir: Path, model_dir: Path | None = None) -> dict:
    """Export fp32.onnx and int8.onnx into `cache_dir` unless it is already current.

    Needs torch, transformers and onnx (export time only). Returns the manifest.
    """
    with _export_lock(cache_dir):
        try:
            for variant in VARIANT_FILES:
                check_cache(cache_dir, variant)
            log.info("the ONNX export in %s is current", cache_dir)
            return json.loads((cache_dir / MANIFEST).read_text(encoding="utf-8"))
        except OnnxCacheStale as why:
            log.info("exporting all-MiniLM-L6-v2 to ONNX in %s (%s)", cache_dir, why)
        import torch

        model_dir = model_dir or packaged_minilm_path()
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".export-") as tmp:
            tmp = Path(tmp)
            export_fp32_graph(model_dir, tmp / "traced.onnx")
            _fuse(tmp / "traced.onnx", tmp / VARIANT_FILES["fp32"])
            _quantize(tmp / VARIANT_FILES["fp32"], tmp / VARIANT_FILES["int8"])
            shutil.copyfile(tmp / "traced.onnx", tmp / VARIANT_FILES["plain"])
            manifest = {
                "format": EXPORT_FORMAT,
                "recipe": RECIPE,
                "source": expected_source(),
                "files": {name: sha256_file(tmp / name) for name in VARIANT_FILES.values()},
                "made_with": {"torch": torch.__version__, "onnxruntime": _ort_version()},
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            for name in (*VARIANT_FILES.values(), MANIFEST):  # manifest last
                _replace_atomically(tmp / name, cache_dir / name)
        log.info("ONNX export written to %s", cache_dir)
        return json.loads(json.dumps(manifest))


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path, default=SHIPPED_DIR, help="target folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    manifest = export_models(args.dir)
    print(f"{args.dir}: {', '.join(manifest['files'])}")


if __name__ == "__main__":
    main()
