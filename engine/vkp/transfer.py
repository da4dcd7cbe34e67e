"""Getting packages to a school: the catalogue and files from a URL, CloudFront or a folder,
and downloads that resume after an interruption (`nexus vkp serve`, the LAN server, is
`serve.py`; its names are re-exported here).

Nothing that comes from a source is trusted here: the catalogue is read with a size cap and
handed back as bytes (its signature is checked in `catalogue.py` before anything in it is
used); a file name must be a plain name and every write is confined to the downloads folder;
a download never writes past the size the signed catalogue declares, and its SHA-256 is
checked before the file gets its final name. Every HTTP request has a deadline and a minimum
rate (`deadline.py`), so a source that drips bytes cannot hold a pull forever.

A failed fetch leaves no file behind, with one exception: a download stopped by its deadline
or for being too slow keeps its `.part` (the bytes so far, never more than the signed size),
so the next pull resumes it; the SHA-256 is still checked once it is complete.
"""

from __future__ import annotations

import http.client
import logging
import os
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from engine.names import BadName, check_file_name
from engine.paths import Outside, confined
from engine.util import sha256_file
from engine.vkp.deadline import Deadline, Limits, TimedOut, timed_request
from engine.vkp.serve import RangeRequestHandler, parse_range, serve

__all__ = [
    "Limits",
    "RangeRequestHandler",
    "Source",
    "TransferError",
    "TransferTimeout",
    "confined_name",
    "parse_range",
    "package_object_key",
    "plain_file_name",
    "serve",
]

log = logging.getLogger(__name__)

MAX_CATALOGUE_BYTES = 16 * 1024**2
BLOCK = 1 << 16


class TransferError(Exception):
    """The catalogue or a package could not be fetched (with the reason)."""


class TransferTimeout(TransferError):
    """A fetch ran past its deadline or below the minimum rate; a partial download is kept."""


def plain_file_name(name: object) -> str:
    """Return `name` if it is a plain file name (`engine.names.check_file_name`) that does
    not start with a dot."""
    try:
        check_file_name(name)
    except BadName:
        raise TransferError(f"{str(name)[:80]!r} is not a plain file name: refused") from None
    if name.startswith("."):
        raise TransferError(f"{str(name)[:80]!r} is not a plain file name (hidden): refused")
    return name


def package_object_key(file_name: str) -> str:
    """The key of a package file or of the catalogue in a publish store or bucket:
    `vkp/<file>` (plain names only)."""
    return f"vkp/{plain_file_name(file_name)}"


def confined_name(root: Path, name: str) -> Path:
    """`root/name`, refused unless it resolves to a file directly inside `root`."""
    try:
        target = confined(root, root / plain_file_name(name))
    except Outside:
        target = None
    if target is None or target.parent != root.resolve():
        raise TransferError(f"{name!r} would be written outside {root}: refused")
    return target


class Source:
    """Where packages come from: `https://host/prefix`, a folder, or a URL signer (CloudFront).

    `limits` sets the deadlines and minimum rates of HTTP requests (tests make them short).
    """

    def __init__(
        self,
        location: str,
        sign: Callable[[str], str] | None = None,
        *,
        limits: Limits | None = None,
    ):
        self.location = location.rstrip("/")
        self.sign = sign
        self.limits = limits or Limits()
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
            url = self.url("vkp/index.json")
            deadline = Deadline(self.limits.index_deadline_s, "reading the catalogue")
            try:
                with timed_request(url, deadline, self.limits) as answer:
                    data = answer.read_all(MAX_CATALOGUE_BYTES + 1)
            except TimedOut as exc:
                raise TransferTimeout(f"cannot read the catalogue at {url}: {exc}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                raise TransferError(f"cannot read the catalogue at {url}: {exc}") from exc
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
        checked; resume a `.part` left by an interruption. Nothing is left behind on failure,
        except the `.part` of a download stopped as too slow (`TransferTimeout`)."""
        name, size = plain_file_name(entry["file"]), entry["size"]
        downloads.mkdir(parents=True, exist_ok=True)
        target, part = confined_name(downloads, name), confined_name(downloads, f"{name}.part")
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
        except TransferTimeout:
            raise  # keep the .part: within the signed size, checked when complete
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
        deadline = Deadline(self.limits.package_deadline(size), f"the download of {name}")
        for attempt in range(1, attempts + 1):
            try:
                self._download(name, size, part, progress, deadline)
                return
            except TimedOut as exc:
                have = part.stat().st_size if part.exists() else 0
                raise TransferTimeout(
                    f"{name}: {exc}; {have} of {size} bytes are kept and the next pull resumes"
                ) from None
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
                time.sleep(max(0.0, min(attempt, deadline.left())))

    def _download(self, name: str, size: int, part: Path, progress, deadline: Deadline) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have > size:  # not ours to resume
            part.unlink()
            have = 0
        if have == size:
            return
        request = urllib.request.Request(self.url(f"vkp/{urllib.parse.quote(name)}"))
        if have:
            request.add_header("Range", f"bytes={have}-")
        with timed_request(request, deadline, self.limits) as answer:
            if have and answer.status != 206:  # the server ignored Range: start over
                have = 0
            elif have and not answer.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                raise TransferError(f"{name}: the server answered a different byte range")
            length = answer.headers.get("Content-Length", "")
            if _decimal(length) and (len(length) > 18 or int(length) > size - have):
                raise TransferError(
                    f"{name}: the server sends {length[:20]} bytes from byte {have},"
                    f" the catalogue says {size} in all"
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


def _decimal(text: str) -> bool:
    """ASCII digits only (`str.isdigit` also takes "²", which `int` refuses)."""
    return text.isascii() and text.isdigit()
