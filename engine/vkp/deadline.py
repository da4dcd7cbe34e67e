"""Time limits for HTTP requests to a source that may be hostile, or at the end of a thin link.

`urlopen(timeout=30)` bounds each socket read, not a request: a server that sends one byte
every 20 s never trips it, in the status line, the headers or the body. Here each request
runs under a `Deadline`, enforced by a watchdog timer that shuts the connection's socket down
when time is up (which wakes a read blocked anywhere inside http.client or ssl), and its body
must keep a minimum rate, checked between reads (curl's `--speed-limit`/`--speed-time`).

The numbers (`Limits`), and why:

    read_timeout_s = 30        one socket read, and the TCP connect.
    index_deadline_s = 60      the whole catalogue request. A catalogue takes 1-2 KB per
                               package: 60 s at 20 KB/s is 1.2 MB, several hundred packages.
    package deadline           max(120 s, size / 20 KB/s) for a whole download, its retries
                               included. 20 KB/s (160 kbit/s) is what one download still gets
                               on a thin school link (a shared ADSL or 3G line): a 50 MB
                               package has 43 minutes. What arrived is kept: the next pull
                               resumes it, so even a slower link gets there over a few pulls.
    stall: 64 KiB per 60 s     the answer must start (headers) within 60 s, and the body bring
                               at least 64 KiB in every 60 s (about 1 KiB/s); slower than that,
                               a package would not arrive anyway, and a dripping server is
                               dropped after a minute instead of at the deadline.

The one step the watchdog cannot cut is name resolution (there is no socket yet); the
system resolver's own timeouts bound it.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

KiB = 1024


class TimedOut(Exception):
    """The request ran past its deadline or below the minimum rate (the message says which)."""


@dataclass(frozen=True)
class Limits:
    """How long requests may take (see the module docstring for the reasoning)."""

    read_timeout_s: float = 30.0
    index_deadline_s: float = 60.0
    package_deadline_floor_s: float = 120.0
    min_rate: float = 20 * KiB  # bytes per second over a whole package
    stall_window_s: float = 60.0
    stall_bytes: int = 64 * KiB  # at least this much in every stall window

    def package_deadline(self, size: int) -> float:
        return max(self.package_deadline_floor_s, size / self.min_rate)


class Deadline:
    """A moment after which a request (or a download with its retries) is abandoned."""

    def __init__(self, seconds: float, what: str):
        self.seconds = seconds
        self.what = what
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return self._end - time.monotonic()

    def expired_reason(self) -> str:
        return f"{self.what} did not finish within its deadline of {self.seconds:g} s"


class _Cutter:
    """Shuts a request's connections down when its timer fires.

    It keeps a duplicate of each connection's socket: shutting the duplicate down ends the
    TCP connection for every user of it (TLS wrapping detaches the original), and the
    duplicate stays ours until `close`, so its descriptor number can never be someone else's.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self.reason: str | None = None

    def watch(self, sock: socket.socket) -> None:
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            if self.reason is not None:
                _shutdown(duplicate)

    def arm(self, seconds: float, reason: str) -> None:
        """Cut the connections after `seconds` (from now) with `reason`, replacing any timer."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(max(0.0, seconds), self._cut, (reason,))
            self._timer.daemon = True
            self._timer.start()

    def _cut(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            for sock in self._sockets:
                _shutdown(sock)

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _watched_connection(cutter: _Cutter, http_class, *args, **kwargs):
    """An `http_class` connection whose socket the cutter sees as soon as TCP connects
    (before a TLS handshake or anything else can be dragged out)."""
    connection = http_class(*args, **kwargs)
    create = connection._create_connection

    def create_watched(*a, **k):
        sock = create(*a, **k)
        cutter.watch(sock)
        return sock

    connection._create_connection = create_watched
    return connection


class _Watching:
    cutter: _Cutter

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(partial(_watched_connection, self.cutter, http_class), req, **kwargs)


class _HTTPHandler(_Watching, urllib.request.HTTPHandler):
    pass


class _HTTPSHandler(_Watching, urllib.request.HTTPSHandler):
    pass


class Body:
    """A response body read with the stall check; `read` returns b"" at the end."""

    def __init__(self, answer, cutter: _Cutter, limits: Limits):
        self.answer = answer
        self.status = answer.status
        self.headers = answer.headers
        self._cutter = cutter
        self._limits = limits
        self._window_start = time.monotonic()
        self._window_bytes = 0

    def read(self, size: int) -> bytes:
        """At most `size` bytes, from a single read of the socket (whatever has arrived)."""
        self._check()
        try:
            block = self.answer.read1(size)
        except (OSError, http.client.HTTPException) as exc:
            self._check(exc)
            raise
        self._check()  # a cut socket reads as the end of the body
        self._window_bytes += len(block)
        now = time.monotonic()
        if now - self._window_start >= self._limits.stall_window_s:
            if self._window_bytes < self._limits.stall_bytes:
                raise TimedOut(
                    f"the server sent {self._window_bytes} bytes in"
                    f" {now - self._window_start:.0f} s, less than"
                    f" {self._limits.stall_bytes // KiB} KiB per"
                    f" {self._limits.stall_window_s:g} s (stalled, or dripping on purpose)"
                )
            self._window_start, self._window_bytes = now, 0
        return block

    def read_all(self, cap: int) -> bytes:
        """The rest of the body, but never more than `cap` bytes."""
        data = bytearray()
        while len(data) < cap and (block := self.read(cap - len(data))):
            data += block
        return bytes(data)

    def _check(self, cause: BaseException | None = None) -> None:
        if self._cutter.reason is not None:
            raise TimedOut(self._cutter.reason) from cause


@contextmanager
def timed_request(request, deadline: Deadline, limits: Limits) -> Iterator[Body]:
    """Open `request` (a URL or `urllib.request.Request`) under `deadline`.

    Raises:
        TimedOut: past the deadline, no answer within the stall window, or too slow.
        urllib.error.URLError, OSError, http.client.HTTPException: as `urlopen` does.
    """
    left = deadline.left()
    if left <= 0:
        raise TimedOut(deadline.expired_reason())
    cutter = _Cutter()
    handlers = [_HTTPHandler(), _HTTPSHandler()]
    for handler in handlers:
        handler.cutter = cutter
    opener = urllib.request.build_opener(*handlers)
    if limits.stall_window_s < left:
        cutter.arm(limits.stall_window_s, f"no answer within {limits.stall_window_s:g} s")
    else:
        cutter.arm(left, deadline.expired_reason())
    try:
        try:
            answer = opener.open(request, timeout=min(limits.read_timeout_s, left))
        except (OSError, http.client.HTTPException) as exc:
            if cutter.reason is not None:
                raise TimedOut(cutter.reason) from exc
            raise
        with answer:
            cutter.arm(deadline.left(), deadline.expired_reason())
            yield Body(answer, cutter, limits)
    finally:
        cutter.close()
