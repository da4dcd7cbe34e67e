"""Search latency at 10,000 and 100,000 chunks, with the model loaded once (as `nexus up`
keeps it, and as the HTTP API answers).

    python bench/search_speed.py [--chunks 10000,100000] [--queries 100]

Chunk texts are Indonesian lesson sentences; their stored vectors are random unit vectors
(search cost does not depend on what the vectors mean, and embedding 10,000 chunks on a CPU
would take minutes). Every query is embedded by the real all-MiniLM-L6-v2, so the figures
include that; the embedder is the one settings pick (on a CPU: the int8 ONNX encoder).
Prints p50 and p95 per mode for each size (target: hybrid p95 <= 300 ms on CPU at 10k).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import sentences  # noqa: E402
from devtools.retrieval_eval import load_questions  # noqa: E402
from engine.app import build_engine  # noqa: E402
from engine.search.lexical.index import LexicalChunk  # noqa: E402
from engine.search.searcher import MODES  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.store.chroma import StoredChunk, chunk_id  # noqa: E402

QUESTIONS = Path(__file__).resolve().parent.parent / "tests" / "data" / "questions_dev_id.tsv"


def fill(engine, chunks: int, dimension: int) -> None:
    rng = random.Random(7)
    pool = sentences()
    vectors = np.random.default_rng(7).normal(size=(chunks, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    per_document = 100
    for doc in range(chunks // per_document):
        sha = hashlib.sha256(f"modul {doc}".encode()).hexdigest()
        stored = []
        for index in range(per_document):
            text = " ".join(rng.choice(pool) for _ in range(6))[:800]
            meta = {
                "grade": "kelas_10",
                "subject": "umum",
                "source": f"modul_{doc:03d}.pdf",
                "file_sha256": sha,
                "page": index // 4 + 1,
                "page_end": index // 4 + 1,
                "pages": str(index // 4 + 1),
                "chunk_index": index,
                "embedding_model": engine.embedder.model.model_id,
            }
            vector = vectors[doc * per_document + index].tolist()
            stored.append(StoredChunk(chunk_id(sha, index), text, meta, vector))
        model = engine.embedder.model
        engine.store.add("kelas_10", "umum", model.model_id, model.key, stored)
        engine.lexical.add(
            "kelas_10",
            "umum",
            sha,
            [
                LexicalChunk(
                    c.id, c.text, c.metadata["source"], c.metadata["page"], c.metadata["pages"]
                )
                for c in stored
            ],
        )


def measure(size: int, queries: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(Settings(NEXUS_DATA_DIR=Path(tmp)))
        embedder = engine.embedder
        dimension = len(embedder.embed(["pemanasan"]).vectors[0])  # load once
        started = time.perf_counter()
        fill(engine, size, dimension)
        seconds = time.perf_counter() - started
        count = engine.store.collections()[0].count
        print(f"{count} chunks indexed in {seconds:.0f} s ({embedder.status().get('backend', '')})")
        questions = [q for q, _ in load_questions(QUESTIONS)]
        for mode in MODES:
            latencies = []
            for number in range(queries):
                started = time.perf_counter()
                engine.searcher.search(questions[number % len(questions)], k=5, mode=mode)
                latencies.append((time.perf_counter() - started) * 1000)
            p95 = statistics.quantiles(latencies, n=20)[-1]
            print(f"  {mode:<8} p50 {statistics.median(latencies):7.1f} ms   p95 {p95:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    for size in (int(n) for n in args.chunks.split(",")):
        measure(size, args.queries)


if __name__ == "__main__":
    main()
