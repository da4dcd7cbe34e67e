"""Ingestion throughput: bare encoder vs the whole pipeline, and Bedrock under latency.

    python bench/ingest.py [--files 16] [--pages 20] [--bedrock-latency 0.1]

Prints, from one run: the bare encoder's chunks/s on exactly the chunks the pipeline made,
the end-to-end pipeline's chunks/s (extraction in the capped worker, chunking, embedding,
Chroma writes, job records), and their ratio (target >= 0.90 on CPU). Then the same corpus on
Bedrock through the local InvokeModel endpoint with injected latency (target >= 0.8 x
concurrency / latency). The model is loaded once before timing, as `nexus up` keeps it warm.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import make_corpus  # noqa: E402
from engine.app import _bedrock, build_engine  # noqa: E402
from engine.embed.local import LocalEmbedder  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.store.server import ChromaServer  # noqa: E402


def ingest(settings: Settings, embedder, inbox: Path) -> tuple[float, list[str]]:
    """Time one ingest of `inbox` by an engine that is already warm, as `nexus up` keeps it."""
    engine = build_engine(settings, embedder=embedder)
    warm_up = make_corpus(inbox.parent / f"warm-up-{embedder.model.key}", 1, 1, grade="warm_up")
    engine.ingestor.run([warm_up], warm_up)  # starts the PDF worker, loads the model
    started = time.perf_counter()
    outcome = engine.ingestor.run([inbox], inbox)
    seconds = time.perf_counter() - started
    assert outcome.job.status == "completed", outcome.job.errors
    texts = [
        c.text
        for col in engine.store.collections()
        for c in engine.store.get_chunks(col.name)
        if col.model_key == embedder.model.key and col.grade == "kelas_10"
    ]
    return seconds, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--bedrock-latency", type=float, default=0.1)
    parser.add_argument("--bedrock-concurrency", type=int, default=8)
    parser.add_argument("--skip-local", action="store_true", help="only the Bedrock figure")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inbox = make_corpus(tmp / "inbox", args.files, args.pages)

        # as under `nexus up`: the engine writes to a Chroma server
        server = ChromaServer(Settings(NEXUS_DATA_DIR=tmp / "chroma", CHROMA_PORT=free_port()))
        server.start()
        try:
            if not args.skip_local:
                bench_local(tmp, inbox, args, server)
            bench_bedrock(tmp, inbox, args, server)
        finally:
            server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_local(tmp: Path, inbox: Path, args: argparse.Namespace, server: ChromaServer) -> None:
    local = LocalEmbedder()
    local.embed(["pemanasan model"] * 64)  # load and warm up before timing
    settings = Settings(
        NEXUS_DATA_DIR=tmp / "local", CHROMA_HOST=server.host, CHROMA_PORT=server.port
    )
    e2e_s, texts = ingest(settings, local, inbox)
    started = time.perf_counter()
    local.embed(texts)
    bare_s = time.perf_counter() - started
    n = len(texts)
    print(f"corpus: {args.files} PDFs x {args.pages} pages -> {n} chunks")
    print(f"local  ({local.device}): bare encoder {n / bare_s:7.1f} chunks/s")
    print(f"local  ({local.device}): end-to-end   {n / e2e_s:7.1f} chunks/s")
    print(f"local  ratio end-to-end / bare: {bare_s / e2e_s:.2f}  (target >= 0.90)")


def bench_bedrock(tmp: Path, inbox: Path, args: argparse.Namespace, server: ChromaServer) -> None:

    # the endpoint runs in its own process, as a remote service would
    stub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.devtools.bedrock_stub",
            "--latency",
            str(args.bedrock_latency),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = stub.stdout.readline().strip()
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        settings = Settings(
            NEXUS_DATA_DIR=tmp / "bedrock",
            BEDROCK_CONCURRENCY=args.bedrock_concurrency,
            CHROMA_HOST=server.host,
            CHROMA_PORT=server.port,
        )
        seconds, texts = ingest(settings, _bedrock(settings), inbox)
    finally:
        stub.stdin.close()
        stub.wait()
    target = 0.8 * args.bedrock_concurrency / args.bedrock_latency
    print(
        f"bedrock (latency {args.bedrock_latency * 1000:.0f} ms, concurrency "
        f"{args.bedrock_concurrency}): end-to-end {len(texts) / seconds:.1f} chunks/s "
        f"(target >= {target:.0f})"
    )


if __name__ == "__main__":
    main()
