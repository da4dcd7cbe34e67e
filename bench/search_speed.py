"""Search latency at 10,000 and 100,000 chunks, with the model loaded once (as `nexus up`
keeps it, and as the HTTP API answers).

    python bench/search_speed.py [--chunks 10000,100000] [--queries 100] [--libraries 1,50]
                                 [--modes hybrid,vector,lexical]

`--libraries 50` spreads the chunks over 50 grade/subjects (10 grades x 5 subjects), as a
server holding every textbook of its grades would; each size and spread is measured without a
filter and filtered to one grade + subject. The engine's memory (resident set after the
searches, and its peak) is printed with each size: everything in one process, as with embedded
Chroma.

Chunk texts are Indonesian lesson sentences; their stored vectors are random unit vectors
(search cost does not depend on what the vectors mean, and embedding 10,000 chunks on a CPU
would take minutes). Every query is embedded by the real all-MiniLM-L6-v2, so the figures
include that; the embedder is the one settings pick (on a CPU: the int8 ONNX encoder).
Prints p50 and p95 per mode for each size (target: hybrid p95 <= 300 ms on CPU at 10k), warm
(after one pass over every question, whose own figures are printed as "first pass").
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
from engine.store.chunks import StoredChunk, chunk_id  # noqa: E402

QUESTIONS = Path(__file__).resolve().parent.parent / "tests" / "data" / "questions_dev_id.tsv"


def library_names(libraries: int) -> list[tuple[str, str]]:
    """`libraries` (grade, subject) pairs: kelas_1..kelas_12 x five subjects, in order."""
    subjects = ["matematika", "ipa", "ips", "bahasa_indonesia", "informatika"]
    if libraries == 1:
        return [("kelas_10", "umum")]
    return [(f"kelas_{1 + n // 5}", subjects[n % 5]) for n in range(libraries)]


def fill(engine, chunks: int, dimension: int, libraries: int = 1) -> None:
    rng = random.Random(7)
    pool = sentences()
    names = library_names(libraries)
    per_document = 100
    batch = 20_000  # vectors made per slice, so 1M chunks never hold 2 GB of them at once
    vector_rng = np.random.default_rng(7)
    vectors = np.empty((0, dimension), dtype=np.float32)
    for doc in range(chunks // per_document):
        grade, subject = names[doc % len(names)]
        if doc * per_document % batch == 0:
            vectors = vector_rng.normal(size=(batch, dimension)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        sha = hashlib.sha256(f"modul {doc}".encode()).hexdigest()
        stored = []
        for index in range(per_document):
            text = " ".join(rng.choice(pool) for _ in range(6))[:800]
            meta = {
                "grade": grade,
                "subject": subject,
                "source": f"modul_{doc:03d}.pdf",
                "file_sha256": sha,
                "page": index // 4 + 1,
                "page_end": index // 4 + 1,
                "pages": str(index // 4 + 1),
                "chunk_index": index,
                "embedding_model": engine.embedder.model.model_id,
            }
            vector = vectors[(doc * per_document + index) % batch].tolist()
            stored.append(StoredChunk(chunk_id(sha, index), text, meta, vector))
        model = engine.embedder.model
        engine.store.add(grade, subject, model.model_id, model.key, stored)
        engine.lexical.add(
            grade,
            subject,
            sha,
            [
                LexicalChunk(
                    c.id, c.text, c.metadata["source"], c.metadata["page"], c.metadata["pages"]
                )
                for c in stored
            ],
        )


def rss_mb() -> tuple[float, float]:
    """(resident now, peak) of this process in MB."""
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def timed(engine, questions: list[str], queries: int, **options) -> tuple[float, float]:
    latencies = []
    for number in range(queries):
        started = time.perf_counter()
        engine.searcher.search(questions[number % len(questions)], k=5, **options)
        latencies.append((time.perf_counter() - started) * 1000)
    return statistics.median(latencies), statistics.quantiles(latencies, n=20)[-1]


def measure(size: int, queries: int, libraries: int, modes: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(Settings(NEXUS_DATA_DIR=Path(tmp)))
        embedder = engine.embedder
        dimension = len(embedder.embed(["pemanasan"]).vectors[0])  # load once
        started = time.perf_counter()
        fill(engine, size, dimension, libraries)
        seconds = time.perf_counter() - started
        count = sum(c.count for c in engine.store.collections())
        print(
            f"{count} chunks in {libraries} grade/subject(s), indexed in {seconds:.0f} s"
            f" ({embedder.status().get('backend', type(embedder).__name__)})"
        )
        questions = [q for q, _ in load_questions(QUESTIONS)]
        grade, subject = library_names(libraries)[0]
        for mode in modes:
            # warm: every question once (template shares, the BM25 postings of its terms are
            # read from SQLite on first use); that first pass is printed too
            p50, p95 = timed(engine, questions, len(questions), mode=mode)
            print(f"  {mode:<8} {'first pass':<18} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
            for label, where in (
                ("no filter", {}),
                ("one grade+subject", {"grade": grade, "subject": subject}),
            ):
                p50, p95 = timed(engine, questions, queries, mode=mode, **where)
                print(f"  {mode:<8} {label:<18} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
        now, peak = rss_mb()
        print(f"  engine memory: {now:.0f} MB resident, {peak:.0f} MB peak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--libraries", default="1,50", help="grade/subjects to spread over")
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    for size in (int(n) for n in args.chunks.split(",")):
        for libraries in (int(n) for n in args.libraries.split(",")):
            measure(size, args.queries, libraries, args.modes.split(","))


if __name__ == "__main__":
    main()
