"""Small helpers every layer may use: time stamps, file digests, process and folder checks.

Nothing here imports from the rest of the engine, so any module can import it without
running up the layers.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)


def utc_now() -> str:
    """The current time in UTC, ISO 8601 with milliseconds (`2026-11-29T14:05:00.123+00:00`)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def sha256_stream(fh: BinaryIO, block: int = 1 << 20) -> str:
    """sha256 of what is left to read in `fh`."""
    digest = hashlib.sha256()
    while chunk := fh.read(block):
        digest.update(chunk)
    return digest.hexdigest()


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def is_sha256_hex(value: object) -> bool:
    """Is `value` a sha256 digest as this project writes it (64 lower-case hex digits)?"""
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


def is_int_in(value: object, low: int, high: int) -> bool:
    """Is `value` an int (not a bool) within low..high? For fields read from untrusted JSON."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    with path.open("rb") as fh:
        return sha256_stream(fh, block)


def local_url(address: str, port: int) -> str:
    """`http://host:port` of a server listening on `address`, as seen from this machine: a
    wildcard address (`0.0.0.0`, `::`, empty) is reached on loopback; IPv6 hosts get brackets."""
    host = "127.0.0.1" if address in ("0.0.0.0", "", "::", "[::]") else address.strip("[]")
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def pid_alive(pid: int) -> bool:
    """Is process `pid` running (on this machine)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def folder_mb(path: Path) -> float:
    """Size of everything under `path`, in MB (0 when it does not exist)."""
    if not path.exists():
        return 0.0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


class SecretError(RuntimeError):
    """A secret file of the installation (key, salt, hash) is unreadable, empty or malformed.

    Whatever the secret protects stays refused until the admin repairs or replaces it: a
    short HMAC key or salt would let anyone forge what it signs.
    """


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> bool:
    """Write a secret readable by its owner only, from the first byte (mode 0600 at creation,
    never through a link), and whole: the bytes go to a temporary file, are fsynced, and only
    then take the name, so a crash or a full disk never leaves an empty or partial secret.

    Replaces `path` atomically; with `exclusive`, keeps an existing file instead (two
    processes making the same salt agree on the first). True when written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(temp, flags, 0o600)
    except FileExistsError:
        os.unlink(temp)  # a stale temp file of a dead process with our pid
        fd = os.open(temp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            if not link_new(temp, path, mode=0o600):
                return False
        else:
            os.replace(temp, path)
        _fsync_folder(path.parent)
        return True
    finally:
        temp.unlink(missing_ok=True)


# errno values of file systems that have no hard links (vfat, exFAT, some network mounts)
_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV)


def link_new(source: Path, target: Path, mode: int = 0o666) -> bool:
    """Give `source`'s bytes the name `target` unless that name exists (then False).

    A hard link fails atomically when the name is taken, so a file that appeared meanwhile is
    never overwritten; file systems without hard links get an exclusive create (`mode`, never
    through a link) of a copy, fsynced.
    """
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(source.read_bytes())
        out.flush()
        os.fsync(out.fileno())
    return True


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_secret(path: Path, *, max_bytes: int, valid: Callable[[bytes], bool], what: str) -> bytes:
    """The bytes of secret file `path`, never through a link and at most `max_bytes`.

    Args:
        valid: the format check (length, alphabet) the content must pass.
        what: the secret's name in the error ("the PDF link secret").

    Raises:
        FileNotFoundError: there is no such file (the caller may make one).
        SecretError: it is a link, unreadable, too big, or fails `valid`; the message names
            the file and what to do.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SecretError(f"{what} at {path} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SecretError(f"{what} at {path} is not a regular file")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes or not valid(data):
        raise SecretError(
            f"{what} at {path} is malformed ({len(data)} bytes): refused; replace it "
            "(see README, Security) or restore it from a backup"
        )
    return data


def looks_random(data: bytes, min_distinct: int = 8) -> bool:
    """Could `data` be random bytes (or hex digits) as the engine makes them? A file of zeros,
    a sparse file left by a crash, or one character repeated is not: a key anyone can guess.
    32 random bytes have ~30 distinct values, 64 hex digits ~16; 8 is never missed by chance
    in practice (odds below 1e-20)."""
    return len(set(data)) >= min_distinct


def read_or_make_secret(
    path: Path,
    make: Callable[[], bytes],
    *,
    max_bytes: int,
    valid: Callable[[bytes], bool],
    what: str,
) -> bytes:
    """`read_secret`, after writing `make()` there if there is no file yet (the first process
    to write it wins; the others read theirs)."""
    try:
        return read_secret(path, max_bytes=max_bytes, valid=valid, what=what)
    except FileNotFoundError:
        write_private(path, make(), exclusive=True)
        return read_secret(path, max_bytes=max_bytes, valid=valid, what=what)


def every(seconds: float, job: Callable[[], None], stop: threading.Event, name: str):
    """Run `job` every `seconds` on a thread until `stop` is set; a failure is logged and the
    next round still runs (a scheduled job never takes the engine down). Returns the thread."""

    def loop() -> None:
        while not stop.wait(seconds):
            try:
                job()
            except Exception:
                log.exception("scheduled %s failed", name)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


def parse_duration(text: str) -> float:
    """Seconds in "90", "30s", "15m", "1h" or "2d".

    Raises:
        ValueError: anything else.
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{text!r} is not a duration like 30m, 1h or 2d") from exc
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds
