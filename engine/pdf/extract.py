"""PDF text extraction, page by page, in a worker subprocess with a time limit and memory cap.

PyMuPDF is C code: a hostile file can hang it or make it allocate without bound, and neither can
be stopped from inside the same process. So files are read by `python -m
engine.pdf.worker` under `RLIMIT_AS`, with a wall-clock limit per file and caps on
the characters of text per page and per file (text bombs). The worker lives across files
(PyMuPDF is imported once); when it times out or dies it is killed and a fresh one is started
for the next file. Every way a file can fail becomes an `ExtractionError` with a status and a
reason a teacher can act on.

Answers come back on a pipe of their own (passed to the worker with `pass_fds`), never on the
worker's stdout, where MuPDF prints its messages. Each answer echoes the request's id and path
and is checked against them, so one file's text can never be recorded under another's name.
The worker's stdout and stderr share one pipe that is drained while waiting, keeping a tail for
diagnosing crashes (a full, undrained pipe would otherwise stall a chatty worker).

OCR time limits: Tesseract runs inside the worker (through PyMuPDF), in C code that a Python
signal handler cannot interrupt, so the limit is kept here. Before each page it OCRs, the
worker sends a progress message; the deadline then becomes that moment plus
OCR_PAGE_TIMEOUT_S (and EXTRACT_TIMEOUT_S again once OCR is over). A page that runs past its
limit costs the worker (killed, restarted) and the file is read again with that page left out
(its note says so), at most twice; a third slow page fails the file as `timeout`. So a 300-page
scan is not cut off by EXTRACT_TIMEOUT_S, yet no single page can hang the engine.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.jobs.base import FileStatus
from engine.jobs.reasons import REASONS
from engine.pdf.pages import PageText, Paragraph

log = logging.getLogger(__name__)


# How running out of address space shows in the worker's stderr (Python, MuPDF, the loader).
_OUT_OF_MEMORY_SIGNS = (
    "MemoryError",
    "fz_new_context",
    "failed to map segment",
    "Cannot allocate memory",
    "bad_alloc",
)
_DIAGNOSTICS_KEPT = 64 * 1024  # bytes of the worker's stdout/stderr kept for error messages


_OCR_RETRIES = 2  # pages that may run past OCR_PAGE_TIMEOUT_S before the file times out


class ExtractionError(Exception):
    """A file that could not be turned into text, with its status and a readable reason."""

    def __init__(self, status: FileStatus, reason: str, code: str = ""):
        super().__init__(f"{status}: {reason}")
        self.code = code
        self.status = status
        self.reason = reason


class _OcrPageTimeout(ExtractionError):
    def __init__(self, page: int, seconds: float):
        super().__init__(
            FileStatus.TIMEOUT,
            f"OCR of page {page} took longer than {seconds:g} s (OCR_PAGE_TIMEOUT_S)",
        )
        self.page = page


@dataclass
class Extracted:
    """Text of each page (index 0 = page 1) and notes worth showing (e.g. pages without text).

    `layout` holds the same pages as paragraphs with their sections, page labels and kinds.
    """

    pages: list[str]
    note: str = ""
    file_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the file the worker read
    layout: list[PageText] = field(default_factory=list)
    ocr_pages: int = 0  # pages whose text was read by OCR


class PdfExtractor:
    """Reads PDFs through a capped, restartable worker process. Use as a context manager."""

    def __init__(
        self,
        *,
        max_pages: int,
        timeout_s: float,
        memory_mb: int,
        max_page_chars: int = 100_000,
        max_file_chars: int = 5_000_000,
        ocr_enabled: bool = True,
        ocr_languages: str = "ind+eng",
        ocr_dpi: int = 200,
        ocr_page_timeout_s: float = 60.0,
    ):
        self.max_pages = max_pages
        self.ocr = {"enabled": ocr_enabled, "languages": ocr_languages, "dpi": ocr_dpi}
        self.ocr_page_timeout_s = ocr_page_timeout_s
        self._ocr_page: int | None = None  # the page being OCR'd, while it is
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.max_page_chars = max_page_chars
        self.max_file_chars = max_file_chars
        self._proc: subprocess.Popen | None = None
        self._results: int | None = None  # read end of the worker's answer pipe
        self._diagnostics = b""
        self._request_id = 0
        self._deadline = 0.0

    def __enter__(self) -> PdfExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                stream.close()
            self._proc = None
        if self._results is not None:
            os.close(self._results)
            self._results = None

    def extract(self, path: Path) -> Extracted:
        """Extract the text of every page of `path` (OCR'ing pages without a text layer).

        Raises:
            ExtractionError: encrypted, no text layer (and OCR off or failed), corrupt, not a
                PDF, too many pages, too much text, timeout, out of memory, or a crash of the
                worker.
        """
        skipped: list[int] = []
        while True:
            try:
                return self._extract(path, skipped)
            except _OcrPageTimeout as exc:
                log.warning("%s: %s", path, exc.reason)
                if len(skipped) >= _OCR_RETRIES:
                    raise
                skipped.append(exc.page)

    def _extract(self, path: Path, skip_ocr_pages: list[int]) -> Extracted:
        proc = self._worker()
        self._request_id += 1
        request = {
            "id": self._request_id,
            "path": str(path),
            "max_pages": self.max_pages,
            "max_page_chars": self.max_page_chars,
            "max_file_chars": self.max_file_chars,
            "ocr": self.ocr | {"skip_pages": skip_ocr_pages},
        }
        try:  # ensure_ascii: undecodable bytes of a name travel as \udcXX escapes
            proc.stdin.write((json.dumps(request, ensure_ascii=True) + "\n").encode("ascii"))
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # the worker died on start-up; reading its answer reports why
        line = self._read_answer(proc, request)
        if line is None:
            raise self._worker_lost(timed_out=time.monotonic() >= self._deadline)
        try:
            result = json.loads(line)
            matches = result.get("id") == request["id"] and result.get("path") == request["path"]
        except (ValueError, AttributeError):
            result, matches = {}, False
        if not matches:
            self.close()  # out of step: never trust this worker's next answer either
            log.error("PDF worker answered out of turn for %r", request["path"])
            raise ExtractionError(
                FileStatus.FAILED, "the PDF reader gave an answer for another request"
            )
        if result["status"] == "out_of_memory":
            self.close()
            raise ExtractionError(
                FileStatus.OUT_OF_MEMORY, f"reading the PDF needed more than {self.memory_mb} MB"
            )
        if result["status"] != "ok":
            code = result.get("code")
            code = code if isinstance(code, str) and code in REASONS else ""
            raise ExtractionError(FileStatus(result["status"]), result["reason"], code)
        file_id = tuple(result["file"]) if result.get("file") else None
        layout = [
            PageText(
                [Paragraph(text, section, kind) for text, section, kind in page["paragraphs"]],
                label=page.get("label", ""),
                kind=page.get("kind", "text"),
                ocr=bool(page.get("ocr")),
            )
            for page in result["pages"]
        ]
        return Extracted(
            pages=[page.text for page in layout],
            note=result.get("note", ""),
            file_id=file_id,
            layout=layout,
            ocr_pages=int(result.get("ocr_pages", 0)),
        )

    def _worker(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            cap = self.memory_mb * 1024 * 1024

            def limit_memory() -> None:  # runs in the child before exec
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

            read_end, write_end = os.pipe()
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "engine.pdf.worker", str(write_end)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    pass_fds=(write_end,),
                    preexec_fn=limit_memory,
                )
            except BaseException:
                os.close(read_end)
                raise
            finally:
                os.close(write_end)
            self._results = read_end
            self._diagnostics = b""
            os.set_blocking(self._proc.stdout.fileno(), False)
        return self._proc

    def _read_answer(self, proc: subprocess.Popen, request: dict) -> bytes | None:
        """The answer line, or None when the time limit passes or the worker exits.

        Progress messages of this request move the deadline (see the module docstring). The
        worker's messages are drained meanwhile (keeping a tail) so it never stalls on a full
        pipe.
        """
        self._ocr_page = None
        self._deadline = time.monotonic() + self.timeout_s
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._results, selectors.EVENT_READ, "results")
            selector.register(proc.stdout, selectors.EVENT_READ, "messages")
            while True:
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not self._progress(line, request):
                        return line + b"\n"
                remaining = self._deadline - time.monotonic()
                events = selector.select(remaining) if remaining > 0 else []
                if not events:
                    return None
                for key, _ in events:
                    if key.data == "messages":
                        if not self._drain_messages(proc):
                            selector.unregister(proc.stdout)
                        continue
                    data = os.read(self._results, 1 << 20)
                    if not data:
                        return None
                    buffer += data

    def _progress(self, line: bytes, request: dict) -> bool:
        """Take a progress message of `request` into account; False for anything else."""
        try:
            message = json.loads(line)
            if message.get("status") != "progress" or message.get("id") != request["id"]:
                return False
        except (ValueError, AttributeError):
            return False
        if message.get("ocr_page"):
            self._ocr_page = int(message["ocr_page"])
            self._deadline = time.monotonic() + self.ocr_page_timeout_s
        else:
            self._ocr_page = None
            self._deadline = time.monotonic() + self.timeout_s
        return True

    def _drain_messages(self, proc: subprocess.Popen) -> bool:
        """Keep the tail of what the worker printed; False once the pipe is closed."""
        try:
            data = proc.stdout.read()
        except BlockingIOError:
            return True
        if data is None:
            return True
        self._diagnostics = (self._diagnostics + data)[-_DIAGNOSTICS_KEPT:]
        return bool(data)

    def _worker_lost(self, *, timed_out: bool) -> ExtractionError:
        """Why the worker gave no answer: the time limit, memory, or a crash."""
        proc = self._proc
        try:  # closed its answer pipe: it is exiting, give it a moment
            proc.wait(timeout=0 if timed_out else 5)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            proc.wait()
        os.set_blocking(proc.stdout.fileno(), True)
        self._diagnostics = (self._diagnostics + proc.stdout.read())[-_DIAGNOSTICS_KEPT:]
        messages = self._diagnostics.decode("utf-8", "replace")
        self.close()
        if timed_out and self._ocr_page is not None:
            return _OcrPageTimeout(self._ocr_page, self.ocr_page_timeout_s)
        if timed_out:
            return ExtractionError(
                FileStatus.TIMEOUT, f"reading the PDF took longer than {self.timeout_s:g} s"
            )
        if proc.returncode == -9 or any(sign in messages for sign in _OUT_OF_MEMORY_SIGNS):
            return ExtractionError(
                FileStatus.OUT_OF_MEMORY, f"reading the PDF needed more than {self.memory_mb} MB"
            )
        last = messages.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        log.warning("PDF worker died: %s", messages[-2000:])
        return ExtractionError(FileStatus.FAILED, f"PDF reader crashed: {last[0]}")
