"""A classroom at once: searches per second and latency of `nexus serve` at 1, 16 and 64
concurrent clients, over loopback, each level for a fixed time (bounded in count and time).

The library is the lessons of tests/data/lessons_id.json, ingested into a fresh data dir with
the default local model; every client asks questions in turn through one API key (a school
app serving a whole class through one key). Prints one line per level and the 16-client to
1-client throughput ratio (the target is at least 1.6 on 2 cores, p95 at most 300 ms, no
errors).

    python -m bench.load [--seconds 10] [--levels 1,16,64]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

LESSONS = Path(__file__).resolve().parent.parent / "tests" / "data" / "lessons_id.json"
QUESTIONS = [
    "apa itu algoritma",
    "bagaimana fotosintesis terjadi di daun",
    "jelaskan topologi jaringan bintang",
    "kenapa nasi terasa manis bila lama dikecap",
    "what is a star network topology",
    "gimana cara kerja sistem pencernaan",
    "hukum newton tentang gerak",
    "apa fungsi kloroplas",
]
MAX_REQUESTS_PER_CLIENT = 5_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nexus(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )


def prepare(data: Path, env: dict) -> str:
    """Ingest the lessons into `data`; returns a fresh API key."""
    from devtools.retrieval_eval import write_lessons

    write_lessons(LESSONS, data / "inbox")
    nexus("ingest", str(data / "inbox"), "--json", env=env)
    created = nexus("admin", "api-key", "create", "kelas", "--json", env=env)
    return json.loads(created.stdout)["key"]


def client(url: str, key: str, stop: float, out: list, errors: list, offset: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    for n in range(MAX_REQUESTS_PER_CLIENT):
        if time.monotonic() >= stop:
            return
        question = QUESTIONS[(offset + n) % len(QUESTIONS)]
        query = urllib.parse.urlencode({"q": question, "k": 5})
        started = time.monotonic()
        try:
            request = urllib.request.Request(f"{url}/v1/search?{query}", headers=headers)
            with urllib.request.urlopen(request, timeout=30) as answer:
                answer.read()
            out.append(time.monotonic() - started)
        except (urllib.error.URLError, OSError) as exc:
            errors.append(str(exc))


def level(url: str, key: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(url, key, stop, latencies, errors, n))
        for n in range(clients)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    elapsed = time.monotonic() - started
    ordered = sorted(latencies) or [0.0]
    return {
        "clients": clients,
        "searches": len(latencies),
        "per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
        "errors": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--levels", default="1,16,64")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        env = os.environ | {
            "NEXUS_DATA_DIR": str(data),
            "API_PORT": str(port),
            # a classroom through one key: the limit sized for the load (README, HTTP API)
            "API_RATE_PER_MIN": "1000000",
        }
        key = prepare(data, env)
        server = subprocess.Popen(
            [sys.executable, "-m", "engine.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"{url}/v1/health", timeout=2)
                    break
                except OSError:
                    time.sleep(0.5)
            level(url, key, 2, 3)  # warm the model and the caches
            results = [level(url, key, int(n), args.seconds) for n in args.levels.split(",")]
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
    for r in results:
        print(
            f"{r['clients']:>3} clients: {r['per_s']:6.1f} searches/s  p50 {r['p50_ms']:6.0f} ms"
            f"  p95 {r['p95_ms']:6.0f} ms  errors {r['errors']}  ({r['searches']} searches)"
        )
    by_clients = {r["clients"]: r for r in results}
    if 1 in by_clients and 16 in by_clients:
        ratio = by_clients[16]["per_s"] / by_clients[1]["per_s"]
        print(f"throughput 16 clients / 1 client: {ratio:.2f}x")


if __name__ == "__main__":
    main()
