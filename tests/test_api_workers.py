"""`nexus serve --workers N`: several API processes answer, over one Chroma server, and share
each key's rate limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devtools.processes import interrupt
from engine.api.app import create_app
from engine.app import build_engine
from engine.auth.api_keys import api_key_store
from engine.settings import Settings
from tests.support.cli import nexus
from tests.support.fakes import FakeEmbedder
from tests.support.net import free_port


def test_each_worker_limits_a_key_to_its_share_of_the_rate(monkeypatch, settings):
    monkeypatch.setenv("API_RATE_PER_MIN", "6")
    engine = build_engine(Settings(), embedder=FakeEmbedder())
    client = TestClient(create_app(engine, workers=2))
    key = api_key_store(settings.data_dir).create("kelas")
    headers = {"Authorization": f"Bearer {key}"}

    codes = [client.get("/v1/packages", headers=headers).status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]  # 3 of 6 in this worker: 6 in all, never 12


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_ticks(pid: int) -> int:
    """User and system CPU time of a process, in clock ticks (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def workers_of(pid: int) -> list[int]:
    """uvicorn's worker processes (multiprocessing spawns them), not the Chroma server."""
    return [
        child
        for child in children(pid)
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


@pytest.mark.slow
def test_two_api_workers_answer_searches_side_by_side(settings):
    key = json.loads(nexus("admin", "api-key", "create", "kelas", "--json").stdout)["key"]
    port = free_port()
    env = os.environ | {"API_PORT": str(port), "CHROMA_PORT": str(free_port())}
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "serve", "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/v1/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.3)
        workers = workers_of(server.pid)
        assert len(workers) == 2
        statuses: list[int] = []

        def ask() -> None:
            query = urllib.parse.urlencode({"q": "apa itu fotosintesis"})
            request = urllib.request.Request(
                f"{url}/v1/search?{query}", headers={"Authorization": f"Bearer {key}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    statuses.append(answer.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)

        # each worker builds its engine before it takes a connection; once both sit idle, a
        # worker that answers searches spends CPU doing so
        deadline = time.monotonic() + 60
        before = {w: -1 for w in workers}
        while time.monotonic() < deadline and before != {w: cpu_ticks(w) for w in workers}:
            before = {w: cpu_ticks(w) for w in workers}
            time.sleep(0.5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            cpu_ticks(w) - before[w] >= 3 for w in workers
        ):
            threads = [threading.Thread(target=ask) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=40)

        assert all(cpu_ticks(w) - before[w] >= 3 for w in workers)  # both answered
        assert statuses and set(statuses) == {200}
        chroma = [c for c in children(server.pid) if c not in workers]
        assert chroma, "a Chroma server shared by the workers"
    finally:
        interrupt(server)
    assert not (settings.run_dir / "chroma.json").exists()  # its Chroma server stopped with it
