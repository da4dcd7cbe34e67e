"""Local encoder backends side by side: speed, load time, agreement with torch, retrieval.

    python bench/encoder.py [--chunks 1000] [--questions tests/data/questions_dev_id.tsv]

On the same ~1,000 Indonesian chunks (the lessons of tests/data/lessons_id.json, then pages of
their sentences reshuffled as in bench/corpus.py, chunked as ingestion does: 800 characters,
100 overlap, at most 256 word pieces) it measures, per backend: model load time, chunks/s,
and mean/min cosine of its vectors to sentence-transformers fp32. Then for each backend the
lessons are ingested and the development questions scored (hit@5 for vector and hybrid search),
plus "torch→int8": chunks embedded by torch, queries by int8 ONNX, which is what sharing one
model key would mean for existing collections (the engine instead gives int8 its own key and
embeds queries for old collections with fp32: see engine/embed/onnx.py).

Backends: torch (sentence-transformers, CPU), onnx (fp32), onnx-int8, and openvino (the
unfused fp32 graph under OpenVINO) when the `openvino` package is installed; last, the other
local model, use-multilingual-v3 (numpy; another model, so no cosine to torch). The ONNX export is
made once into a tmp dir first and its time is printed; load times then exclude it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import LESSONS, sentences  # noqa: E402
from devtools.retrieval_eval import evaluate, load_questions, write_lessons  # noqa: E402
from engine.app import build_engine  # noqa: E402
from engine.embed.base import Embedder, EmbeddingResult, ModelInfo  # noqa: E402
from engine.embed.onnx import OnnxEmbedder  # noqa: E402
from engine.embed.onnx_export import export_fp32_graph, export_models  # noqa: E402
from engine.ingest.chunk import chunk_pages  # noqa: E402
from engine.settings import Settings  # noqa: E402

DEV_QUESTIONS = Path(__file__).resolve().parent.parent / "tests" / "data" / "questions_dev_id.tsv"


def make_chunks(count_tokens, n: int) -> list[str]:
    """Real lesson chunks first, then chunks of reshuffled lesson sentences, `n` in all."""

    def chunk(pages: list[str]) -> list[str]:
        found = chunk_pages(pages, size=800, overlap=100, max_tokens=256, count_tokens=count_tokens)
        return [c.text for c in found]

    texts = [t for lesson in json.loads(LESSONS.read_text()) for t in chunk(lesson["pages"])]
    rng, pool = random.Random(42), sentences()
    while len(texts) < n:
        pages = []
        for _ in range(3):
            page: list[str] = []
            while sum(len(s) + 1 for s in page) < 2400:
                page.append(rng.choice(pool))
            pages.append(" ".join(page))
        texts.extend(chunk(pages))
    return texts[:n]


class OpenVinoEmbedder(OnnxEmbedder):
    """The unfused fp32 ONNX graph compiled by OpenVINO (benchmark only)."""

    def __init__(self, graph: Path, **kwargs):
        super().__init__(graph.parent, quantized=False, search_dirs=(), **kwargs)
        self.graph = graph

    @property
    def backend(self) -> str:
        return "openvino"

    def _find_model(self) -> Path:
        return self.graph

    def _open_session(self, path: Path):
        import openvino

        compiled = openvino.Core().compile_model(
            str(path), "CPU", {"INFERENCE_NUM_THREADS": self.threads}
        )

        class Session:
            def run(self, _outputs, feed):
                return [compiled(feed)[0]]

        return Session()


class QueriesFor(Embedder):
    """`embedder`'s vectors presented under another model's key (the torch→int8 row)."""

    def __init__(self, embedder: Embedder, model: ModelInfo):
        self.embedder, self._model = embedder, model

    @property
    def model(self) -> ModelInfo:
        return self._model

    def embed_batch(self, texts):
        return EmbeddingResult(self.embedder.embed_batch(texts).vectors, self._model)


def make_backends(tmp: Path) -> dict:
    """name -> embedder factory; exports the ONNX models (timed) first."""
    from engine.embed.local import LocalEmbedder
    from engine.embed.model_files import packaged_minilm_path
    from engine.embed.multilingual import MODEL_NAME as MULTILINGUAL
    from engine.embed.multilingual import MultilingualEmbedder

    started = time.perf_counter()
    export_models(tmp / "minilm-onnx")
    print(f"ONNX export (fp32 + int8, once): {time.perf_counter() - started:.1f} s")
    backends = {
        "torch": lambda: LocalEmbedder(device="cpu"),
        "onnx": lambda: OnnxEmbedder(tmp / "minilm-onnx", quantized=False, search_dirs=()),
        "onnx-int8": lambda: OnnxEmbedder(tmp / "minilm-onnx", quantized=True, search_dirs=()),
    }
    try:
        import openvino  # noqa: F401
    except ImportError:
        print("openvino not installed: skipped")
    else:
        (tmp / "ov").mkdir()
        export_fp32_graph(packaged_minilm_path(), tmp / "ov" / "traced.onnx")
        backends["openvino"] = lambda: OpenVinoEmbedder(tmp / "ov" / "traced.onnx")
    backends[MULTILINGUAL] = MultilingualEmbedder
    return backends


def hit_at_5(tmp: Path, name: str, embedder, questions, query_embedder=None) -> tuple:
    """Ingest the lessons with `embedder`, then score vector and hybrid search."""
    inbox = write_lessons(LESSONS, tmp / f"inbox-{name}")
    engine = build_engine(Settings(NEXUS_DATA_DIR=tmp / f"data-{name}"), embedder=embedder)
    outcome = engine.ingestor.run([inbox], inbox)
    if query_embedder is not None:
        engine.searcher.embedder = query_embedder
    return tuple(evaluate(engine.searcher, questions, m).hit_at_5 for m in ("vector", "hybrid")) + (
        outcome.job.total_chunks,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--questions", type=Path, default=DEV_QUESTIONS)
    args = parser.parse_args()
    questions = load_questions(args.questions)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        factories = make_backends(tmp)
        embedders, rows, reference = {}, {}, None
        for name, factory in factories.items():
            started = time.perf_counter()
            embedder = factory()
            embedder.load()
            loaded = time.perf_counter() - started
            if reference is None:  # torch comes first; its tokenizer cuts the chunks
                chunks = make_chunks(embedder.count_tokens, args.chunks)
                lengths = [embedder.count_tokens(c) for c in chunks]
                print(
                    f"{len(chunks)} chunks, {np.mean(lengths):.0f} word pieces on average "
                    f"(max {max(lengths)}); {embedder.batch_size} per batch"
                )
            started = time.perf_counter()
            vectors = np.array(embedder.embed(chunks).vectors)
            speed = len(chunks) / (time.perf_counter() - started)
            reference = vectors if reference is None else reference
            if vectors.shape == reference.shape:
                cosines = (vectors * reference).sum(1)
            else:  # another model (the multilingual one): nothing to compare with
                cosines = np.array([float("nan")])
            embedders[name] = embedder
            rows[name] = [loaded, speed, cosines.mean(), cosines.min()]

        for name, embedder in embedders.items():
            rows[name] += hit_at_5(tmp, name, embedder, questions)
        if "onnx-int8" in embedders:
            torch_model, int8 = embedders["torch"], embedders["onnx-int8"]
            cross = hit_at_5(
                tmp, "cross", torch_model, questions, QueriesFor(int8, torch_model.model)
            )
            rows["torch→int8"] = [float("nan")] * 4 + list(cross)

    print(f"\n{len(questions)} questions from {args.questions.name}; lessons: {LESSONS.name}")
    print(
        f"{'backend':<19} {'load s':>7} {'chunks/s':>9} {'mean cos':>9} {'min cos':>8} "
        f"{'vec hit@5':>9} {'hyb hit@5':>9}"
    )
    for name, (loaded, speed, mean, low, vec, hyb, _) in rows.items():
        print(
            f"{name:<19} {loaded:>7.2f} {speed:>9.1f} {mean:>9.5f} {low:>8.5f} "
            f"{vec:>9.2f} {hyb:>9.2f}"
        )
    print("(one run on a shared machine: speeds and load times are noisy)")


if __name__ == "__main__":
    main()
