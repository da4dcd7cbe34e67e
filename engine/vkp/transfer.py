"""Getting packages to a school: the catalogue and files from a URL, CloudFront or a folder,
downloads that resume after an interruption, and `nexus vkp serve` for the LAN."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from engine.ingest.layout import sha256_file

log = logging.getLogger(__name__)


class TransferError(Exception):
    """The catalogue or a package could not be fetched (with the reason)."""


class Source:
    """Where packages come from: `https://host/prefix`, a folder, or a URL signer (CloudFront)."""

    def __init__(self, location: str, sign: Callable[[str], str] | None = None):
        self.location = location.rstrip("/")
        self.sign = sign
        self.is_folder = not (location.startswith(("http://", "https://")) or sign)

    def url(self, relative: str) -> str:
        return self.sign(relative) if self.sign else f"{self.location}/{relative}"

    def read_index(self) -> dict:
        if self.is_folder:
            path = Path(self.location) / "vkp" / "index.json"
            if not path.exists():
                raise TransferError(f"no catalogue at {path}")
            return json.loads(path.read_text())
        try:
            with urllib.request.urlopen(self.url("vkp/index.json"), timeout=30) as answer:
                return json.loads(answer.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TransferError(
                f"cannot read the catalogue at {self.url('vkp/index.json')}: {exc}"
            ) from exc

    def fetch(
        self,
        entry: dict,
        downloads: Path,
        progress: Callable[[int, int], None] | None = None,
        attempts: int = 4,
    ) -> Path:
        """Bring `entry` (file, size, sha256) into `downloads`, verified; resume a `.part`."""
        downloads.mkdir(parents=True, exist_ok=True)
        target, part = downloads / entry["file"], downloads / f"{entry['file']}.part"
        if self.is_folder:
            source = Path(self.location) / "vkp" / entry["file"]
            if not source.exists():
                raise TransferError(
                    f"the catalogue lists {entry['file']} but {source} does not exist"
                )
            shutil.copyfile(source, part)
        else:
            for attempt in range(1, attempts + 1):
                try:
                    self._download(entry, part, progress)
                    break
                except (urllib.error.URLError, OSError, TimeoutError) as exc:
                    if isinstance(exc, urllib.error.HTTPError) and exc.code == 404:
                        raise TransferError(
                            f"the catalogue lists {entry['file']} but the server has no such file"
                        ) from exc
                    if attempt == attempts:
                        raise TransferError(
                            f"download of {entry['file']} failed {attempts} times: {exc}"
                        ) from exc
                    log.warning("download interrupted (%s); resuming in %d s", exc, attempt)
                    time.sleep(attempt)
        size = part.stat().st_size
        if size != entry["size"]:
            part.unlink()
            raise TransferError(
                f"{entry['file']}: got {size} bytes, the catalogue says {entry['size']}"
            )
        if sha256_file(part) != entry["sha256"]:
            part.unlink()
            raise TransferError(
                f"{entry['file']}: checksum differs from the catalogue (corrupt or tampered)"
            )
        os.replace(part, target)
        return target

    def _download(self, entry: dict, part: Path, progress) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have >= entry["size"]:
            return
        request = urllib.request.Request(self.url(f"vkp/{entry['file']}"))
        if have:
            request.add_header("Range", f"bytes={have}-")
        with urllib.request.urlopen(request, timeout=30) as answer:
            if have and answer.status != 206:  # the server ignored Range: start over
                have = 0
            with part.open("ab" if have else "wb") as out:
                while block := answer.read(1 << 16):
                    out.write(block)
                    have += len(block)
                    if progress:
                        progress(have, entry["size"])
        if have < entry["size"]:  # the link dropped: keep the .part, the next try resumes it
            raise ConnectionError(f"connection closed after {have} of {entry['size']} bytes")


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Static files with single `Range: bytes=N-M` support, so downloads can resume."""

    def log_message(self, *args: object) -> None:
        log.debug(*args)

    def send_head(self):
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not match or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        start = int(match[1])
        end = min(int(match[2]) if match[2] else size - 1, size - 1)
        if start >= size:
            self.send_error(416, "Requested Range Not Satisfiable")
            return None
        handle = path.open("rb")
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start + 1
        return handle

    def copyfile(self, source, outputfile) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        while remaining > 0 and (block := source.read(min(1 << 16, remaining))):
            outputfile.write(block)
            remaining -= len(block)


def serve(folder: Path, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for the publish folder (`<folder>/vkp/index.json` and packages)."""
    return ThreadingHTTPServer((host, port), partial(RangeRequestHandler, directory=str(folder)))
