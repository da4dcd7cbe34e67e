"""Getting packages to a school: the catalogue and files from a URL, CloudFront or a folder,
downloads that resume after an interruption, and `nexus vkp serve` for the LAN.

Nothing that comes from a source is trusted here: the catalogue is read with a size cap and
handed back as bytes (its signature is checked in `catalogue.py` before anything in it is
used); a file name must be a plain name and every write is confined to the downloads folder;
a download never writes past the size the signed catalogue declares, and its SHA-256 is
checked before the file gets its final name. A failed fetch leaves no file behind.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from engine.util import sha256_file

log = logging.getLogger(__name__)

MAX_CATALOGUE_BYTES = 16 * 1024**2
BLOCK = 1 << 16


class TransferError(Exception):
    """The catalogue or a package could not be fetched (with the reason)."""


def plain_file_name(name: object) -> str:
    """Return `name` if it is a plain file name (no folder, `..`, NUL or leading dot)."""
    if not (
        isinstance(name, str)
        and name
        and len(name) <= 255
        and "\0" not in name
        and "\\" not in name
        and name == Path(name).name
        and not name.startswith(".")
    ):
        raise TransferError(f"{str(name)[:80]!r} is not a plain file name: refused")
    return name


def confined(root: Path, name: str) -> Path:
    """`root/name`, refused unless it resolves to a file directly inside `root`."""
    root = root.resolve()
    target = (root / plain_file_name(name)).resolve()
    if target.parent != root:
        raise TransferError(f"{name!r} would be written outside {root}: refused")
    return target


class Source:
    """Where packages come from: `https://host/prefix`, a folder, or a URL signer (CloudFront)."""

    def __init__(self, location: str, sign: Callable[[str], str] | None = None):
        self.location = location.rstrip("/")
        self.sign = sign
        self.is_folder = not (location.startswith(("http://", "https://")) or sign)

    def url(self, relative: str) -> str:
        return self.sign(relative) if self.sign else f"{self.location}/{relative}"

    def read_index(self) -> bytes:
        """The catalogue's bytes, unverified (see `catalogue.open_catalogue`), at most
        MAX_CATALOGUE_BYTES."""
        if self.is_folder:
            path = Path(self.location) / "vkp" / "index.json"
            if not path.is_file():
                raise TransferError(f"no catalogue at {path}")
            with path.open("rb") as fh:
                data = fh.read(MAX_CATALOGUE_BYTES + 1)
        else:
            try:
                with urllib.request.urlopen(self.url("vkp/index.json"), timeout=30) as answer:
                    data = answer.read(MAX_CATALOGUE_BYTES + 1)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                raise TransferError(
                    f"cannot read the catalogue at {self.url('vkp/index.json')}: {exc}"
                ) from exc
        if len(data) > MAX_CATALOGUE_BYTES:
            raise TransferError(f"the catalogue is larger than {MAX_CATALOGUE_BYTES} bytes")
        return data

    def fetch(
        self,
        entry: dict,
        downloads: Path,
        progress: Callable[[int, int], None] | None = None,
        attempts: int = 4,
    ) -> Path:
        """Bring `entry` (file, size, sha256 from the verified catalogue) into `downloads`,
        checked; resume a `.part` left by an interruption. Nothing is left behind on failure."""
        name, size = plain_file_name(entry["file"]), entry["size"]
        downloads.mkdir(parents=True, exist_ok=True)
        target, part = confined(downloads, name), confined(downloads, f"{name}.part")
        try:
            if self.is_folder:
                self._copy(name, size, part)
            else:
                self._download_with_retries(name, size, part, progress, attempts)
            got = part.stat().st_size
            if got != size:
                raise TransferError(f"{name}: got {got} bytes, the catalogue says {size}")
            if sha256_file(part) != entry["sha256"]:
                raise TransferError(
                    f"{name}: checksum differs from the catalogue (corrupt or tampered)"
                )
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return target

    def _copy(self, name: str, size: int, part: Path) -> None:
        source = Path(self.location) / "vkp" / name
        try:
            info = source.stat()
        except OSError:
            raise TransferError(f"the catalogue lists {name} but {source} does not exist") from None
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            raise TransferError(f"{source} is not a file of {size} bytes as the catalogue says")
        with source.open("rb") as src, part.open("wb") as out:
            left = size
            while left and (block := src.read(min(BLOCK, left))):
                out.write(block)
                left -= len(block)

    def _download_with_retries(self, name, size, part, progress, attempts) -> None:
        for attempt in range(1, attempts + 1):
            try:
                self._download(name, size, part, progress)
                return
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                if isinstance(exc, urllib.error.HTTPError) and exc.code == 404:
                    raise TransferError(
                        f"the catalogue lists {name} but the server has no such file"
                    ) from exc
                if attempt == attempts:
                    raise TransferError(
                        f"download of {name} failed {attempts} times: {exc}"
                    ) from exc
                log.warning("download interrupted (%s); resuming in %d s", exc, attempt)
                time.sleep(attempt)

    def _download(self, name: str, size: int, part: Path, progress) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have > size:  # not ours to resume
            part.unlink()
            have = 0
        if have == size:
            return
        request = urllib.request.Request(self.url(f"vkp/{urllib.parse.quote(name)}"))
        if have:
            request.add_header("Range", f"bytes={have}-")
        with urllib.request.urlopen(request, timeout=30) as answer:
            if have and answer.status != 206:  # the server ignored Range: start over
                have = 0
            elif have and not answer.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                raise TransferError(f"{name}: the server answered a different byte range")
            length = answer.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > size - have:
                raise TransferError(
                    f"{name}: the server sends {int(length) + have} bytes,"
                    f" the catalogue says {size}"
                )
            with part.open("ab" if have else "wb") as out:
                while have < size and (block := answer.read(min(BLOCK, size - have))):
                    out.write(block)
                    have += len(block)
                    if progress:
                        progress(have, size)
            if have == size and answer.read(1):
                raise TransferError(f"{name}: the server sends more than the catalogue's {size}")
        if have < size:  # the link dropped: keep the .part, the next try resumes it
            raise ConnectionError(f"connection closed after {have} of {size} bytes")


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

    def log_message(self, *args: object) -> None:
        log.debug(*args)

    def send_head(self):
        root = Path(self.directory).resolve()
        path = Path(self.translate_path(self.path)).resolve()
        if not path.is_relative_to(root) or not path.is_file():
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


def serve(folder: Path, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for the publish folder (`<folder>/vkp/index.json` and packages)."""
    return ThreadingHTTPServer((host, port), partial(RangeRequestHandler, directory=str(folder)))
