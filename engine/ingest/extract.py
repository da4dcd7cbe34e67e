"""PDF text extraction, page by page, in a worker subprocess with a time limit and memory cap.

PyMuPDF is C code: a hostile file can hang it or make it allocate without bound, and neither can
be stopped from inside the same process. So files are read by `python -m
engine.ingest.extract_worker` under `RLIMIT_AS`, with a wall-clock limit per file. The worker
lives across files (PyMuPDF is imported once); when it times out or dies it is killed and a
fresh one is started for the next file. Every way a file can fail becomes an `ExtractionError`
with a status and a reason a teacher can act on.
"""

from __future__ import annotations

import json
import logging
import resource
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.jobs.base import FileStatus

log = logging.getLogger(__name__)


# How running out of address space shows in the worker's stderr (Python, MuPDF, the loader).
_OUT_OF_MEMORY_SIGNS = (
    "MemoryError",
    "fz_new_context",
    "failed to map segment",
    "Cannot allocate memory",
    "bad_alloc",
)


class ExtractionError(Exception):
    """A file that could not be turned into text, with its status and a readable reason."""

    def __init__(self, status: FileStatus, reason: str):
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass
class Extracted:
    """Text of each page (index 0 = page 1) and notes worth showing (e.g. pages without text)."""

    pages: list[str]
    note: str = ""


class PdfExtractor:
    """Reads PDFs through a capped, restartable worker process. Use as a context manager."""

    def __init__(self, *, max_pages: int, timeout_s: float, memory_mb: int):
        self.max_pages = max_pages
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> PdfExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
                stream.close()
            self._proc = None

    def extract(self, path: Path) -> Extracted:
        """Extract the text of every page of `path`.

        Raises:
            ExtractionError: encrypted, no text layer, corrupt, not a PDF, too many pages,
                timeout, out of memory, or a crash of the worker.
        """
        proc = self._worker()
        request = json.dumps({"path": str(path), "max_pages": self.max_pages})
        try:
            proc.stdin.write((request + "\n").encode())
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # the worker died on start-up; reading its answer reports why
        line = self._read_line(proc)
        if line is None:
            raise self._worker_lost()
        result = json.loads(line)
        if result["status"] == "out_of_memory":
            self.close()
            raise ExtractionError(
                FileStatus.OUT_OF_MEMORY, f"reading the PDF needed more than {self.memory_mb} MB"
            )
        if result["status"] != "ok":
            raise ExtractionError(FileStatus(result["status"]), result["reason"])
        return Extracted(pages=result["pages"], note=result.get("note", ""))

    def _worker(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            cap = self.memory_mb * 1024 * 1024

            def limit_memory() -> None:  # runs in the child before exec
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

            self._proc = subprocess.Popen(
                [sys.executable, "-m", "engine.ingest.extract_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=limit_memory,
            )
        return self._proc

    def _read_line(self, proc: subprocess.Popen) -> bytes | None:
        """One answer line, or None when the time limit passes or the worker exits."""
        deadline = time.monotonic() + self.timeout_s
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while not buffer.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    return None
                data = proc.stdout.read1(1 << 20)
                if not data:
                    return None
                buffer += data
        return buffer

    def _worker_lost(self) -> ExtractionError:
        proc = self._proc
        timed_out = proc.poll() is None
        if timed_out:
            proc.kill()
        proc.wait()
        stderr = proc.stderr.read().decode("utf-8", "replace")
        self.close()
        if timed_out:
            return ExtractionError(
                FileStatus.TIMEOUT, f"reading the PDF took longer than {self.timeout_s:g} s"
            )
        if proc.returncode == -9 or any(sign in stderr for sign in _OUT_OF_MEMORY_SIGNS):
            return ExtractionError(
                FileStatus.OUT_OF_MEMORY, f"reading the PDF needed more than {self.memory_mb} MB"
            )
        last = stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        log.warning("PDF worker died: %s", stderr[-2000:])
        return ExtractionError(FileStatus.FAILED, f"PDF reader crashed: {last[0]}")
