"""Search latency at 10,000, 100,000 and 1,000,000 chunks, with the model loaded once (as
`nexus up` keeps it, and as the HTTP API answers), and the engine's memory.

    python bench/search_speed.py [--chunks 10000,100000] [--queries 100] [--libraries 1,50]
                                 [--modes hybrid,vector,lexical] [--data DIR]

Each size is filled by one process and searched by a fresh one, so the memory printed is what
an engine opening that library uses (resident after opening, after the searches, and peak),
not what filling it left behind. `--data DIR` keeps the filled data dirs there
(`DIR/<chunks>x<libraries>`) and reuses them in later runs: at 1,000,000 chunks the fill
takes most of an hour on 2 cores (Chroma indexes ~1,000 vectors/s) and ~7 GB of disk.

`--libraries 50` spreads the chunks over 50 grade/subjects (10 grades x 5 subjects), as a
server holding every textbook of its grades would; each size and spread is measured without a
filter and filtered to one grade + subject. The engine's memory (resident set after the
searches, and its peak) is printed with each size: everything in one process, as with embedded
Chroma.

Chunk texts are Indonesian lesson sentences; their stored vectors are random unit vectors
(search cost does not depend on what the vectors mean, and embedding 1,000,000 chunks on a CPU
would take hours). Every query is embedded by the model settings pick (today USE v3), so
the figures include that. Prints p50 and p95 per mode for each size (targets: hybrid p95 <= 150
ms at 100k chunks in one subject, <= 300 ms across 1M without a filter, engine RSS <= 4 GB at
1M), warm (after one pass over every question, whose own figures are printed as "first pass").
"""

from __future__ import annotations

import argparse
import hashlib
import queue
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import sentences  # noqa: E402
from devtools.retrieval_eval import load_questions  # noqa: E402
from engine.app import build_engine  # noqa: E402
from engine.documents.catalog import Document  # noqa: E402
from engine.search.lexical.rows import LexicalChunk  # noqa: E402
from engine.search.searcher import MODES  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.store.chroma import collection_name  # noqa: E402
from engine.store.chunks import StoredChunk, chunk_id  # noqa: E402

QUESTIONS = Path(__file__).resolve().parent.parent / "tests" / "data" / "questions_dev_id.tsv"
FILLED = "bench-filled.txt"  # written once a data dir holds its whole fill


def library_names(libraries: int) -> list[tuple[str, str]]:
    """`libraries` (grade, subject) pairs: kelas_1..kelas_12 x five subjects, in order."""
    subjects = ["matematika", "ipa", "ips", "bahasa_indonesia", "informatika"]
    if libraries == 1:
        return [("kelas_10", "umum")]
    return [(f"kelas_{1 + n // 5}", subjects[n % 5]) for n in range(libraries)]


def fill(engine, chunks: int, dimension: int, libraries: int = 1) -> None:
    """`chunks` chunks in 100-chunk documents spread over `libraries` grade/subjects, each
    grade/subject's documents in one run. Every 50 documents (5,000 chunks) of a grade/subject
    go to Chroma in one batch, on a thread of its own (Chroma releases the GIL while it
    indexes), while this thread commits their catalogue and lexical rows in one transaction,
    as an ingest of a 5,000-chunk textbook would (a transaction per 100-chunk document rewrites
    the posting B-tree's pages 50 times as often: the first try filled 263 chunks/s)."""
    rng = random.Random(7)
    pool = sentences()
    names = library_names(libraries)
    per_document, per_group = 100, 50
    vector_rng = np.random.default_rng(7)
    model = engine.embedder.model
    catalog = engine.catalog
    writes: queue.Queue = queue.Queue(maxsize=2)
    failed: list[BaseException] = []

    def chroma_writer() -> None:
        while (item := writes.get()) is not None:
            try:
                engine.store.add(*item[:2], model.model_id, model.key, item[2])
            except BaseException as exc:  # reported by the main thread
                failed.append(exc)

    def document(doc: int, grade: str, subject: str, vectors: np.ndarray) -> list[StoredChunk]:
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
                "embedding_model": model.model_id,
            }
            stored.append(StoredChunk(chunk_id(sha, index), text, meta, vectors[index]))
        return stored

    def commit(grade: str, subject: str, documents: list[list[StoredChunk]]) -> None:
        with catalog.transaction():  # catalogue rows and lexical rows, as an ingest commits
            for stored in documents:
                meta = stored[0].metadata
                catalog.put(
                    Document(
                        path=str(engine.settings.inbox_dir / grade / subject / meta["source"]),
                        grade=grade,
                        subject=subject,
                        file_name=meta["source"],
                        sha256=meta["file_sha256"],
                        size=80_000,
                        status="ingested",
                        pages=per_document // 4,
                        chunks=per_document,
                        collection=collection_name(grade, subject, model.key),
                    )
                )
                engine.lexical.add(
                    grade, subject, meta["file_sha256"], [LexicalChunk.of(c) for c in stored]
                )

    writer = threading.Thread(target=chroma_writer, name="chroma-fill")
    writer.start()
    started, total = time.perf_counter(), chunks // per_document
    groups = []  # (grade, subject, first document, documents)
    for n, (grade, subject) in enumerate(names):
        first, last = n * total // len(names), (n + 1) * total // len(names)
        groups += [
            (grade, subject, at, min(per_group, last - at)) for at in range(first, last, per_group)
        ]
    try:
        done = 0
        for grade, subject, first, count in groups:
            vectors = vector_rng.normal(size=(count * per_document, dimension))
            vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
            documents = [
                document(first + i, grade, subject, vectors[i * per_document :])
                for i in range(count)
            ]
            writes.put((grade, subject, [c for stored in documents for c in stored]))
            commit(grade, subject, documents)
            if failed:
                raise failed[0]
            before, done = done, done + count * per_document
            if before * 20 // chunks != done * 20 // chunks:
                seconds = time.perf_counter() - started
                print(f"    filled {done:,} chunks in {seconds:.0f} s", flush=True)
    finally:
        writes.put(None)
        writer.join()
    if failed:
        raise failed[0]


def rss_mb() -> tuple[float, float]:
    """(resident now, peak) of this process in MB."""
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def timed(engine, questions: list[str], queries: int, **options) -> tuple[float, float, float]:
    """p50, p95 and the slowest of `queries` searches, in ms."""
    latencies = []
    for number in range(queries):
        started = time.perf_counter()
        engine.searcher.search(questions[number % len(questions)], k=5, **options)
        latencies.append((time.perf_counter() - started) * 1000)
    return statistics.median(latencies), statistics.quantiles(latencies, n=20)[-1], max(latencies)


def fill_step(data: Path, size: int, libraries: int) -> None:
    """Fill `data` with `size` chunks over `libraries` grade/subjects (a process of its own)."""
    engine = build_engine(Settings(NEXUS_DATA_DIR=data))
    dimension = len(engine.embedder.embed(["pemanasan"]).vectors[0])
    started = time.perf_counter()
    fill(engine, size, dimension, libraries)
    seconds = time.perf_counter() - started
    (data / FILLED).write_text(f"{size} {libraries}\n")
    print(
        f"  filled in {seconds:.0f} s ({size / seconds:.0f} chunks/s); filling took"
        f" {rss_mb()[1]:.0f} MB at its peak"
    )


def measure_step(data: Path, size: int, libraries: int, queries: int, modes: list[str]) -> None:
    """Search the filled `data` from a fresh engine (a process of its own)."""
    engine = build_engine(Settings(NEXUS_DATA_DIR=data))
    embedder = engine.embedder
    count = sum(c.count for c in engine.store.collections())
    opened = rss_mb()[0]
    started = time.perf_counter()
    embedder.warm()  # what the API does before it listens
    engine.lexical.warm()
    print(
        f"{count} chunks in {libraries} grade/subject(s)"
        f" ({embedder.status().get('backend', type(embedder).__name__)});"
        f" engine opened: {opened:.0f} MB resident; encoder and BM25 chunk arrays read as the"
        f" API does before it listens: {time.perf_counter() - started:.1f} s,"
        f" {rss_mb()[0]:.0f} MB resident"
    )
    questions = [q for q, _ in load_questions(QUESTIONS)]
    grade, subject = library_names(libraries)[0]
    for mode in modes:
        # warm: every question once (the BM25 postings of its terms are read from SQLite on
        # first use, Chroma loads each collection's index); that first pass is printed too,
        # with its slowest search
        p50, p95, slowest = timed(engine, questions, len(questions), mode=mode)
        print(
            f"  {mode:<8} {'first pass':<18} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms"
            f"   slowest {slowest:9.1f} ms"
        )
        for label, where in (
            ("no filter", {}),
            ("one grade+subject", {"grade": grade, "subject": subject}),
        ):
            p50, p95, _ = timed(engine, questions, queries, mode=mode, **where)
            print(f"  {mode:<8} {label:<18} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    now, peak = rss_mb()
    print(f"  engine memory: {now:.0f} MB resident after the searches, {peak:.0f} MB peak")


def run_step(*args: str) -> None:
    subprocess.run([sys.executable, __file__, *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--libraries", default="1,50", help="grade/subjects to spread over")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--data", type=Path, help="keep (and reuse) the filled data dirs here")
    parser.add_argument("--step", choices=["fill", "measure"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:  # a child: one size, one spread, one data dir
        size, libraries = int(args.chunks), int(args.libraries)
        if args.step == "fill":
            fill_step(args.data, size, libraries)
        else:
            measure_step(args.data, size, libraries, args.queries, args.modes.split(","))
        return
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(n) for n in args.chunks.split(",")):
            for libraries in (int(n) for n in args.libraries.split(",")):
                data = (args.data or Path(tmp)) / f"{size}x{libraries}"
                common = ["--data", str(data), "--chunks", str(size), "--libraries"]
                common.append(str(libraries))
                if not (data / FILLED).exists():
                    print(f"filling {size:,} chunks over {libraries} grade/subject(s)")
                    shutil.rmtree(data, ignore_errors=True)
                    run_step(*common, "--step", "fill")
                run_step(*common, "--step", "measure", "--queries", str(args.queries),
                         "--modes", args.modes)  # fmt: skip


if __name__ == "__main__":
    main()
