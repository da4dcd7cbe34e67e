"""Start and stop the Chroma server that `nexus up` shares between the engine and the panel."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from engine.settings import Settings

log = logging.getLogger(__name__)


class ChromaServerError(RuntimeError):
    pass


def _chroma_executable() -> str:
    beside_python = Path(sys.executable).parent / "chroma"
    found = str(beside_python) if beside_python.exists() else shutil.which("chroma")
    if not found:
        raise ChromaServerError("the `chroma` command (from the chromadb package) is not installed")
    return found


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


class ChromaServer:
    """`chroma run --path <data>/chroma` as a child process, announced in `<data>/run/`."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1"):
        self.settings = settings
        self.host = host
        self.port = settings.chroma_port
        self.proc: subprocess.Popen | None = None
        self.run_file = settings.run_dir / "chroma.json"

    def start(self, timeout_s: float = 60.0) -> None:
        if not _port_free(self.host, self.port):
            raise ChromaServerError(
                f"port {self.port} is already in use; set CHROMA_PORT to a free port"
            )
        self.settings.chroma_dir.mkdir(parents=True, exist_ok=True)
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.settings.log_dir / "chroma.log").open("ab")
        cmd = [_chroma_executable(), "run", "--path", str(self.settings.chroma_dir)]
        cmd += ["--host", self.host, "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
        log_file.close()
        deadline = time.monotonic() + timeout_s
        while _port_free(self.host, self.port):
            if self.proc.poll() is not None:
                log_path = self.settings.log_dir / "chroma.log"
                raise ChromaServerError(
                    f"chroma exited with code {self.proc.returncode}; see {log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ChromaServerError(f"chroma did not start within {timeout_s:g} s")
            time.sleep(0.2)
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"host": self.host, "port": self.port, "pid": self.proc.pid}))
        os.replace(tmp, self.run_file)
        log.info(
            "Chroma server on %s:%s (data in %s)", self.host, self.port, self.settings.chroma_dir
        )

    def stop(self) -> None:
        self.run_file.unlink(missing_ok=True)
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
