"""A classroom at once: searches per second and latency of `nexus serve` at 1, 16 and 64
concurrent clients, over loopback, each level for a fixed time (bounded in count and time).

The library is the lessons of tests/data/lessons_id.json, ingested into a fresh data dir with
the default local model; every client asks questions in turn through one API key (a school
app serving a whole class through one key). Prints one line per level and the 16-client to
1-client throughput ratio (the target is at least 1.6 on 2 cores, p95 at most 300 ms, no
errors).

Several server set-ups can be measured in one run, over the same data dir, one after the other
(`--config "NAME:VAR=VALUE,VAR=VALUE"`, repeatable; e.g. `"2 workers:API_WORKERS=2"` or
`"alone:SEARCH_BATCH_MAX=1"`); `--baseline DIR` adds the server of another checkout (e.g. a
`git worktree` of an older commit) as the first set-up, for before/after in one run. The load
average before and after each set-up is printed: other work on the machine skews the figures.

Each level runs twice: with a new connection per search (the worst case: a TCP handshake and
a fresh request parser each time) and with one kept-alive connection per client, as browsers
and HTTP client libraries do (`--connections new` or `keep-alive` for one of them). The load
generator runs on the same cores as the server; its own CPU per search is printed too.

    python -m bench.load [--seconds 10] [--levels 1,16,64] [--connections new,keep-alive]
                         [--config ...] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.processes import interrupt  # noqa: E402

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


def client(
    url: str, key: str, stop: float, out: list, errors: list, offset: int, keep_alive: bool
) -> None:
    """Ask questions in turn until `stop`: each over a new connection, or (`keep_alive`) all
    over one kept-alive HTTP/1.1 connection, as a browser or an app's HTTP client does."""
    headers = {"Authorization": f"Bearer {key}"}
    address = urllib.parse.urlsplit(url)
    connection = None
    for n in range(MAX_REQUESTS_PER_CLIENT):
        if time.monotonic() >= stop:
            break
        question = QUESTIONS[(offset + n) % len(QUESTIONS)]
        path = "/v1/search?" + urllib.parse.urlencode({"q": question, "k": 5})
        started = time.monotonic()
        try:
            if keep_alive:
                if connection is None:
                    connection = http.client.HTTPConnection(
                        address.hostname, address.port, timeout=30
                    )
                connection.request("GET", path, headers=headers)
                answer = connection.getresponse()
                answer.read()
                if answer.status != 200:
                    raise OSError(f"HTTP {answer.status}")
            else:
                request = urllib.request.Request(url + path, headers=headers)
                with urllib.request.urlopen(request, timeout=30) as reply:
                    reply.read()
            out.append(time.monotonic() - started)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            errors.append(str(exc))
            if connection is not None:
                connection.close()
                connection = None
    if connection is not None:
        connection.close()


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by process `pid` and its live descendants (Linux /proc)."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # ended meanwhile
    return total


def level(
    url: str, key: str, clients: int, seconds: float, server_pid: int = 0, keep_alive=False
) -> dict:
    cpu_before = tree_cpu_s(server_pid) if server_pid else 0.0
    own_before = time.process_time()
    latencies: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(url, key, stop, latencies, errors, n, keep_alive))
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
        # the server's own CPU per search: less skewed by other work than searches/s
        "cpu_ms": (tree_cpu_s(server_pid) - cpu_before) * 1000 / max(1, len(latencies))
        if server_pid
        else 0.0,
        # and this load generator's, which shares the machine's cores with the server
        "client_cpu_ms": (time.process_time() - own_before) * 1000 / max(1, len(latencies)),
    }


def serve(data: Path, env: dict, port: int, code: Path | None) -> subprocess.Popen:
    """`nexus serve` on `port` (from the checkout `code`, default this one), once it answers."""
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "serve", "--port", str(port)],
        env=env | ({"PYTHONPATH": str(code)} if code else {}),
        cwd=str(code) if code else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers and Chroma server end with it
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2)
            return server
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"nexus serve exited with {server.returncode}") from None
            time.sleep(0.5)
    interrupt(server)
    raise RuntimeError("nexus serve did not answer within 120 s")


def parse_config(text: str) -> tuple[str, dict]:
    name, _, variables = text.partition(":")
    pairs = [item.split("=", 1) for item in variables.split(",") if item.strip()]
    return name.strip(), {key.strip(): value.strip() for key, value in pairs}


def measure(
    url: str, key: str, levels: list[int], seconds: float, pid: int, styles: list[str]
) -> list[dict]:
    level(url, key, 4, 3)  # warm every worker's model and caches
    return [
        level(url, key, n, seconds, pid, style == "keep-alive") | {"connections": style}
        for style in styles
        for n in levels
    ]


def report(name: str, results: list[dict], load: tuple[float, float]) -> None:
    print(f"{name} (load average {load[0]:.1f} before, {load[1]:.1f} after)")
    for r in results:
        print(
            f"  {r['connections']:>10} {r['clients']:>3} clients: {r['per_s']:6.1f} searches/s"
            f"  p50 {r['p50_ms']:6.0f} ms  p95 {r['p95_ms']:6.0f} ms  errors {r['errors']}"
            f"  ({r['searches']} searches, CPU per search: server {r['cpu_ms']:.1f} ms,"
            f" load generator {r['client_cpu_ms']:.1f} ms)"
        )
    for style in dict.fromkeys(r["connections"] for r in results):
        by_clients = {r["clients"]: r for r in results if r["connections"] == style}
        if 1 in by_clients and 16 in by_clients and by_clients[1]["per_s"]:
            ratio = by_clients[16]["per_s"] / by_clients[1]["per_s"]
            print(f"  {style}: throughput 16 clients / 1 client {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--levels", default="1,16,64")
    parser.add_argument("--config", action="append", default=[], help="NAME:VAR=VALUE,...")
    parser.add_argument("--baseline", type=Path, help="a checkout whose server runs first")
    parser.add_argument(
        "--connections",
        default="new,keep-alive",
        help="new (a connection per search), keep-alive (one per client), or both",
    )
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    configs = [parse_config(c) for c in args.config] or [("this checkout", {})]
    runs = [(name, variables, None) for name, variables in configs]
    if args.baseline:
        runs.insert(0, (f"baseline {args.baseline}", {}, args.baseline.resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        env = os.environ | {
            "NEXUS_DATA_DIR": str(data),
            # a classroom through one key: the limit sized for the load (README, HTTP API)
            "API_RATE_PER_MIN": "1000000",
        }
        key = prepare(data, env)
        for name, variables, code in runs:
            port = free_port()
            server_env = env | {"API_PORT": str(port), "CHROMA_PORT": str(free_port())}
            server = serve(data, server_env | variables, port, code)
            before = os.getloadavg()[0]
            try:
                results = measure(
                    f"http://127.0.0.1:{port}",
                    key,
                    levels,
                    args.seconds,
                    server.pid,
                    args.connections.split(","),
                )
            finally:
                interrupt(server)
            report(name, results, (before, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
