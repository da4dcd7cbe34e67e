"""Ingestion throughput, measured in one run.

    python bench/ingest.py [--files 4] [--pages 28] [--device cpu|cuda] [--skip-bedrock]

1. **Cold start** (the issue's target): `nexus ingest` of one subject (~400 chunks) in a fresh
   process and data dir, model load included, against the plain fp32 sentence-transformers
   encoder embedding exactly the same chunks, also from a fresh process with its model load
   included. Prints both chunks/s and their ratio (target >= 1.2 on CPU).
2. **Steady state**, as the watcher runs: a warm engine (model loaded, PDF worker running)
   ingesting the same subject into another data dir.
3. **Bedrock** through the local InvokeModel endpoint with injected latency (target >= 0.8 x
   concurrency / latency, without a BEDROCK_MAX_RPM cap).
4. With `--device cuda`: the torch fp16 path (LOCAL_EMBEDDING_BACKEND=torch) on ~250-token
   chunks against plain fp32, encoder chunks/s (goal on one H200: >= 5,000;
   `bench/gpu_encoder.py`, which also runs alone on a machine without the rest of the engine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import make_corpus  # noqa: E402
from engine.app import build_engine  # noqa: E402
from engine.embed.build import bedrock_embedder  # noqa: E402
from engine.settings import Settings  # noqa: E402

PLAIN_ENCODER = """
import json, sys, time
started = time.perf_counter()
from sentence_transformers import SentenceTransformer
from engine.embed.model_files import packaged_minilm_path
texts = json.load(open(sys.argv[1]))
model = SentenceTransformer(str(packaged_minilm_path()), device=sys.argv[2])
model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
print(time.perf_counter() - started)
"""


def chunk_texts(data_dir: Path) -> list[str]:
    engine = build_engine(Settings(NEXUS_DATA_DIR=data_dir))
    return [
        c.text
        for col in engine.store.collections()
        for c in engine.store.get_chunks(col.name)
        if col.grade == "kelas_10"
    ]


def cold(tmp: Path, inbox: Path, device: str) -> None:
    env = os.environ | {"NEXUS_DATA_DIR": str(tmp / "cold"), "LOCAL_EMBEDDING_DEVICE": device}
    env |= {"LOCAL_EMBEDDING_BACKEND": "torch"} if device == "cuda" else {}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "ingest", str(inbox), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    ingest_s = time.perf_counter() - started
    summary = json.loads(proc.stdout)
    texts = chunk_texts(tmp / "cold")
    (tmp / "texts.json").write_text(json.dumps(texts))
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN_ENCODER, str(tmp / "texts.json"), device],
        capture_output=True,
        text=True,
        check=True,
    )
    plain_s = float(proc.stdout.strip().splitlines()[-1])
    n = len(texts)
    model = summary.get("strategy_used") or "?"
    print(f"corpus: one subject, {n} chunks (job: {summary['total_chunks']} chunks, {model})")
    print(f"cold `nexus ingest` (model load included):  {n / ingest_s:6.1f} chunks/s")
    print(f"cold plain fp32 sentence-transformers:        {n / plain_s:6.1f} chunks/s")
    print(f"ratio ingest / plain encoder: {plain_s / ingest_s:.2f}  (target >= 1.2)")


def steady(tmp: Path, inbox: Path) -> None:
    settings = Settings(NEXUS_DATA_DIR=tmp / "steady")
    engine = build_engine(settings)
    warm_up = make_corpus(tmp / "warm-up", 1, 1, grade="warm_up")
    engine.ingestor.run([warm_up], warm_up)  # starts the PDF worker, loads the model
    started = time.perf_counter()
    outcome = engine.ingestor.run([inbox], inbox)
    seconds = time.perf_counter() - started
    engine.ingestor.close()
    chunks = outcome.job.total_chunks
    print(f"steady state (warm engine, as the watcher): {chunks / seconds:6.1f} chunks/s")


def bedrock(tmp: Path, inbox: Path, latency: float, concurrency: int) -> None:
    stub = subprocess.Popen(
        [sys.executable, "-m", "devtools.bedrock_stub", "--latency", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,  # devtools/ is not installed: run from here
    )
    try:
        os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = stub.stdout.readline().strip()
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        settings = Settings(
            NEXUS_DATA_DIR=tmp / "bedrock",
            EMBEDDING_STRATEGY="bedrock",
            BEDROCK_CONCURRENCY=concurrency,
            BEDROCK_MAX_RPM=0,
        )
        engine = build_engine(settings, embedder=bedrock_embedder(settings))
        started = time.perf_counter()
        outcome = engine.ingestor.run([inbox], inbox)
        seconds = time.perf_counter() - started
        engine.ingestor.close()
    finally:
        stub.stdin.close()
        stub.wait()
    target = 0.8 * concurrency / latency
    print(
        f"bedrock (latency {latency * 1000:.0f} ms, concurrency {concurrency}): "
        f"{outcome.job.total_chunks / seconds:.1f} chunks/s (target >= {target:.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--pages", type=int, default=28)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bedrock-latency", type=float, default=0.1)
    parser.add_argument("--bedrock-concurrency", type=int, default=8)
    parser.add_argument("--skip-bedrock", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inbox = make_corpus(tmp / "inbox", args.files, args.pages, subjects=["informatika"])
        cold(tmp, inbox, args.device)
        steady(tmp, inbox)
        if not args.skip_bedrock:
            bedrock(tmp, inbox, args.bedrock_latency, args.bedrock_concurrency)
        if args.device == "cuda":
            from bench.gpu_encoder import ingest

            ingest("", 20_000, "cuda")


if __name__ == "__main__":
    main()
