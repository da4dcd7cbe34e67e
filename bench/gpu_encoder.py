"""The GPU encoder in one run on a CUDA machine: fp16 ingest throughput and question latency.

    python bench/gpu_encoder.py [--chunks 50000] [--model FOLDER] [--device cuda]

Imports only the encoder (`engine.embed.local`), torch and sentence-transformers, so it runs
on a GPU machine that lacks the rest of the engine. `--model` is a sentence-transformers folder
(default: the packaged all-MiniLM-L6-v2, the engine's model on a CUDA GPU). `--device cpu`
only tries the script out (fp32 on both sides there).

1. **Ingest**: the engine's GPU path (`LocalEmbedder` on cuda: fp16, length-sorted batches of
   256, the next batch tokenised while the GPU runs this one) against plain fp32
   sentence-transformers `encode` (batch 256) on the same ~250-token chunks: chunks/s of each,
   their ratio, and the cosine between their vectors.
2. **Questions**: one `embed_queries` call of 1, 16 and 64 questions, as the API's
   micro-batcher makes when that many arrive together: p50 / p95 over 50 calls each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import sentences  # noqa: E402
from engine.embed.local import LocalEmbedder  # noqa: E402


def chunk_texts(count: int) -> list[str]:
    """Indonesian chunks of about the 256 tokens the engine makes for MiniLM (lesson
    sentences, cut at 760 characters)."""
    pool = sentences()
    return [" ".join(pool[(i + j) % len(pool)] for j in range(8))[:760] for i in range(count)]


def timed(encode, texts: list[str]) -> tuple[float, object]:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    vectors = encode(texts)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started, vectors


def ingest(model: str, count: int, device: str) -> None:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    texts = chunk_texts(count)
    local = LocalEmbedder(model_name=model, device=device)
    local.embed(texts[:512])  # load, warm up the kernels
    tokens = sum(local.count_tokens(t) for t in texts[:200]) / 200
    gpu = device == "cuda"
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    fp16_s, fp16 = timed(lambda t: np.asarray(local.embed(t).vectors), texts)
    fp16_mb = torch.cuda.max_memory_allocated() / 2**20 if gpu else 0

    plain = SentenceTransformer(model or str(local_model_path()), device=device)
    plain.float()  # fp32 compute, whatever the stored weights' type
    plain.encode(texts[:512], batch_size=256)
    plain_texts = texts[: count // 2]
    fp32_s, fp32 = timed(
        lambda t: plain.encode(t, batch_size=256, normalize_embeddings=True), plain_texts
    )
    a, b = np.float64(fp16[: len(plain_texts)]), np.float64(fp32)
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    print(f"chunks: {count:,} of {tokens:.0f} tokens on average")
    print(
        f"  engine GPU path (fp16, overlapped): {count / fp16_s:9,.0f} chunks/s"
        f"  (GPU memory peak {fp16_mb:,.0f} MB)"
    )
    print(f"  plain fp32 encode, batch 256:       {len(plain_texts) / fp32_s:9,.0f} chunks/s")
    print(f"  ratio fp16 path / fp32: {(count / fp16_s) / (len(plain_texts) / fp32_s):.2f}x")
    print(f"  cosine fp16 vs fp32: min {cosine.min():.6f}, mean {cosine.mean():.6f}")


def parts(model: str, count: int, device: str) -> None:
    """Where the engine path's time goes: tokenising (on the CPU, batches of 256), the forward
    pass of already tokenised batches (fp16 on the GPU), and turning vectors into lists."""
    import numpy as np
    import torch

    texts = chunk_texts(count)
    local = LocalEmbedder(model_name=model, device=device)
    st = local.load()
    batches = [texts[i : i + 256] for i in range(0, count, 256)]
    tokenize = lambda b: st.tokenizer(  # noqa: E731
        b, padding=True, truncation=True, max_length=st.max_seq_length, return_tensors="pt"
    )
    started = time.perf_counter()
    encoded = [tokenize(b) for b in batches]
    tokenizing = time.perf_counter() - started
    transformer = st[0].auto_model
    with torch.inference_mode():
        forward_s, _ = timed(
            lambda e: [transformer(**{k: v.to(device) for k, v in x.items()}) for x in e], encoded
        )
    vectors = np.random.default_rng(0).random((count, 384), dtype=np.float32)
    started = time.perf_counter()
    vectors.tolist()
    listing = time.perf_counter() - started
    print(
        f"  {count:,} chunks: tokenising {count / tokenizing:9,.0f}/s, forward"
        f" {count / forward_s:9,.0f}/s, vectors to lists {count / listing:9,.0f}/s"
    )


def questions(model: str, device: str) -> None:
    pool = [s for s in sentences() if 20 < len(s) < 90]
    local = LocalEmbedder(model_name=model, device=device)
    local.embed_queries(pool[:64])  # load, warm up
    for size in (1, 16, 64):
        times = []
        for n in range(50):
            asked = [pool[(n * size + i) % len(pool)] for i in range(size)]
            times.append(timed(local.embed_queries, asked)[0] * 1000)
        p95 = statistics.quantiles(times, n=20)[-1]
        print(
            f"  {size:>2} question(s) in one call: p50 {statistics.median(times):6.2f} ms"
            f"   p95 {p95:6.2f} ms"
        )


def local_model_path() -> Path:
    from engine.embed.model_files import packaged_minilm_path

    return packaged_minilm_path()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--model", default="", help="sentence-transformers folder")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--parts", action="store_true", help="only where the time goes")
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: this bench measures the GPU path (--device cpu tries it out)")
    gpu = "cpu"
    if args.device == "cuda":
        query = ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        gpu = subprocess.run(["nvidia-smi", *query], capture_output=True, text=True).stdout
    model = args.model or "packaged all-MiniLM-L6-v2"
    print(f"{gpu.strip()}; torch {torch.__version__}; model {model}")
    if args.parts:
        parallel = os.environ.get("TOKENIZERS_PARALLELISM", "unset")
        print(f"where the time goes (TOKENIZERS_PARALLELISM={parallel}):")
        parts(args.model, args.chunks, args.device)
        return
    ingest(args.model, args.chunks, args.device)
    print("questions (the API's micro-batches):")
    questions(args.model, args.device)


if __name__ == "__main__":
    main()
