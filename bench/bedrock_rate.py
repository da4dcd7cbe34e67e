"""Bedrock embedding rate at the account quota: achieved requests per minute vs BEDROCK_MAX_RPM.

    python bench/bedrock_rate.py [--latency 0.1] [--seconds 20] [--rpm 600 1500]

Runs the Bedrock embedder (real boto3 over HTTP, built like the engine builds it) against the
local InvokeModel endpoint (`devtools.bedrock_stub`) with injected latency, embedding
about `--seconds` worth of texts at each limit, file by file as ingestion does (100 chunks a
file). Three conditions per limit:

- `clean`: the endpoint never throttles;
- `concurrency`: the endpoint throttles above N calls at once, N = ceil(limit x latency) + 1
  (one more than the limit needs: AIMD must find the ceiling without losing the rate);
- `quota`: the endpoint throttles above 80 % of the limit, like an account whose real quota is
  lower than BEDROCK_MAX_RPM says (the rate can only reach the quota; nothing may fail).

Prints, per run: achieved RPM and its ratio to the limit (target >= 0.90 for `clean` and
`concurrency`), the highest concurrency reached (calls the endpoint served at once, and the
pacer's window), throttled requests, and failed chunks (target 0).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.bedrock_stub import BedrockStub  # noqa: E402
from engine.embed.base import EmbeddingUnavailable  # noqa: E402
from engine.embed.build import bedrock_embedder  # noqa: E402
from engine.settings import Settings  # noqa: E402

CHUNKS_PER_FILE = 100


def run(rpm: int, latency: float, seconds: float, condition: str, concurrency: int) -> dict:
    """Embed ~`seconds` worth of texts at `rpm` under `condition`; the figures of the run."""
    need = rpm / 60 * latency  # calls in flight the limit needs
    stub = BedrockStub(
        latency_s=latency,
        max_concurrent=math.ceil(need) + 1 if condition == "concurrency" else 0,
        quota_rpm=0.8 * rpm if condition == "quota" else 0,
    )
    texts = [
        f"bab {i} tentang jaringan komputer dan internet" for i in range(int(rpm * seconds / 60))
    ]
    with stub:
        os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = stub.url
        settings = Settings(
            BEDROCK_MAX_RPM=rpm, BEDROCK_CONCURRENCY=concurrency, BEDROCK_DIMENSIONS=256
        )
        embedder = bedrock_embedder(settings)
        failed = embedded = 0
        started = time.perf_counter()
        for start in range(0, len(texts), CHUNKS_PER_FILE):
            file_chunks = texts[start : start + CHUNKS_PER_FILE]
            try:
                embedded += len(embedder.embed(file_chunks).vectors)
            except EmbeddingUnavailable:
                failed += len(file_chunks)
        elapsed = time.perf_counter() - started
    pacing = embedder.status()["pacing"]
    achieved = embedded / elapsed * 60
    return {
        "condition": condition,
        "limit_rpm": rpm,
        "achieved_rpm": achieved,
        "ratio": achieved / rpm,
        "seconds": elapsed,
        "stub_throttles_above": stub.max_concurrent
        or (f"{stub.quota_rpm:.0f} rpm" if stub.quota_rpm else "-"),
        "peak_served": stub.max_served_in_flight,
        "peak_window": embedder.pacer.limit.peak,
        "final_window": pacing["concurrency"],
        "throttled": stub.throttled,
        "requests": stub.requests,
        "failed_chunks": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per call")
    parser.add_argument("--seconds", type=float, default=20.0, help="run length per condition")
    parser.add_argument("--rpm", type=int, nargs="+", default=[600, 1500], help="BEDROCK_MAX_RPM")
    parser.add_argument("--concurrency", type=int, default=8, help="BEDROCK_CONCURRENCY")
    parser.add_argument(
        "--conditions", nargs="+", default=["clean", "concurrency", "quota"], help="see docstring"
    )
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    print(
        f"{'condition':<12} {'limit':>6} {'achieved':>9} {'ratio':>6} {'throttles@':>11} "
        f"{'peak conc':>9} {'window':>9} {'throttled':>13} {'failed':>6}"
    )
    for rpm in args.rpm:
        for condition in args.conditions:
            r = run(rpm, args.latency, args.seconds, condition, args.concurrency)
            print(
                f"{r['condition']:<12} {r['limit_rpm']:>6} {r['achieved_rpm']:>9.0f} "
                f"{r['ratio']:>6.3f} {r['stub_throttles_above']!s:>11} {r['peak_served']:>9} "
                f"{r['peak_window']:>4}/{r['final_window']:<4} "
                f"{r['throttled']:>5}/{r['requests']:<7} {r['failed_chunks']:>6}",
                flush=True,
            )
    print(
        "ratio = chunks embedded per minute / BEDROCK_MAX_RPM (target >= 0.90 for clean and "
        "concurrency; quota runs can reach only 0.80); peak conc = most calls the endpoint served "
        "at once; window = AIMD peak/final; throttled = 429s/requests"
    )


if __name__ == "__main__":
    main()
