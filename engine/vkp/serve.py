"""`nexus vkp serve`: the publish folder over HTTP on the LAN, with byte ranges so downloads resume.

Every client is a stranger here, so the server bounds what one can hold: each connection gets
`TIMEOUT_S` per socket operation (an idle or silent connection is closed, not kept forever)
and at most `MAX_CONNECTIONS` are served at once; a connection beyond that is answered
`503 Service Unavailable` and closed straight away, from the accepting thread, without
reading its request. A school's pull retries and resumes, so a busy server only delays it.

    TIMEOUT_S = 30: a LAN peer that sends nothing (or reads nothing) for 30 s is gone or
        hostile; `nexus vkp pull` itself gives up on a silent server after 30 s.
    MAX_CONNECTIONS = 64: one thread and one file descriptor each, far below the usual
        1024-descriptor limit; more school servers than that pulling at the same second is
        not a LAN this tool is for, and they get a 503 and retry.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from engine.paths import Outside, confined

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0
MAX_CONNECTIONS = 64
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)
_UNSATISFIABLE = (-1, -1)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The byte range `(first, last)` a `Range` header asks of a `size`-byte file.

    Returns None when the header is to be ignored (not a single `bytes=` range: the whole file
    is sent, as RFC 9110 allows for multiple ranges) and `_UNSATISFIABLE` when no byte can be
    sent (`bytes=5-3`, `bytes=-0`, a start at or past the end): the answer is then 416.
    """
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or not (match[1] or match[2]):
        return None
    if not match[1]:  # bytes=-N: the last N bytes
        suffix = int(match[2])
        return (max(0, size - suffix), size - 1) if suffix and size else _UNSATISFIABLE
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    if (match[2] and int(match[2]) < first) or first >= size:
        return _UNSATISFIABLE
    return first, last


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Plain files of the served folder, with single `Range: bytes=` requests so downloads
    resume. No directory listings, nothing outside the folder (links included)."""

    timeout = TIMEOUT_S  # applied to the connection's socket by StreamRequestHandler.setup

    def log_message(self, *args: object) -> None:
        log.debug(*args)

    def send_head(self):
        try:
            path = confined(Path(self.directory), Path(self.translate_path(self.path)))
        except Outside:
            path = None
        if path is None or not path.is_file():
            self.send_error(404, "File not found")
            return None
        size = path.stat().st_size
        wanted = parse_range(self.headers.get("Range", ""), size)
        if wanted == _UNSATISFIABLE:
            self.send_response(416, "Range Not Satisfiable")
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        first, last = wanted or (0, size - 1)
        handle = path.open("rb")
        handle.seek(first)
        self.send_response(206 if wanted else 200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        if wanted:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(max(0, last - first + 1)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = max(0, last - first + 1)
        return handle

    def copyfile(self, source, outputfile) -> None:
        remaining = self._remaining
        while remaining > 0 and (block := source.read(min(1 << 16, remaining))):
            outputfile.write(block)
            remaining -= len(block)


class PackageServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most `max_connections` connections at once."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: extra connections get their 503 promptly

    def __init__(self, address, handler, max_connections: int = MAX_CONNECTIONS):
        super().__init__(address, handler)
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refusing = False

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            if not self._refusing:  # once per busy spell: a flood must not flood the log too
                log.warning("%d connections open: new ones get 503", self.max_connections)
            self._refusing = True
            self._refuse(request)
            return
        self._refusing = False
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        try:
            request.setblocking(False)  # a small answer into an empty send buffer; never wait
            request.send(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)


def serve(
    folder: Path,
    host: str,
    port: int,
    *,
    timeout: float = TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> PackageServer:
    """An HTTP server for the publish folder (`<folder>/vkp/index.json` and packages)."""
    handler = type("Handler", (RangeRequestHandler,), {"timeout": timeout})
    return PackageServer(
        (host, port), partial(handler, directory=str(folder)), max_connections=max_connections
    )
