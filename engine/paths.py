"""Paths the engine stores and the folders its writes must stay in: one place for both.

Keys. On Linux a file name is bytes; Python hands undecodable bytes over as lone surrogates
(`os.fsdecode(b"bab\\xe9.pdf")` is `"bab\\udce9.pdf"`), which SQLite, JSON and Chroma cannot
store. Everything the engine records about a file (catalogue, job results, chunk `source`, logs)
uses its *key*, `path_key(path)`, in which every byte that is not valid UTF-8, and every control
character, is written as `%XX` (`bab%E9.pdf`); `path_for_key` turns a stored key back into the
real path. Keys of ordinary names are the names themselves. Limitation: a file literally named
`bab%E9.pdf` and one whose raw name is `bab<0xE9>.pdf` in the same folder share one key; the
literal name wins.

Layout. `DataDirLayout` names the data dir's folders (inbox, database, Chroma, outbox, ...).

Confinement. `confined(root, target)` resolves first, then checks: a write goes only where the
resolved path lies inside the resolved root, so `..` or a planted link cannot lead it out.
"""

from __future__ import annotations

import os
from pathlib import Path

_ESCAPED_BYTES = frozenset([*range(0x20), 0x7F])  # control characters


class Outside(ValueError):
    """A path that resolves outside the folder it must stay in."""


def confined(root: Path, target: Path, *, follow_final_link: bool = True) -> Path:
    """`target` resolved, refused (`Outside`) unless it lies inside `root` (resolved too).

    Its folder is resolved without creating anything. A final component that is a link is
    followed by default (a plain `open()` would write where it points); callers that replace
    the entry without following it (`O_NOFOLLOW`, a rename) pass `follow_final_link=False`.
    """
    root = root.resolve()
    if target.name in ("", ".", ".."):  # a path that names a folder, not an entry in one
        raise Outside(f"{target} does not name an entry: refused")
    resolved = target.resolve() if follow_final_link else target.parent.resolve() / target.name
    if resolved == root or not resolved.is_relative_to(root):
        raise Outside(f"{target} resolves outside {root}: refused")
    return resolved


def path_key(path: Path | str) -> str:
    """The storable, readable form of a path: valid UTF-8, control characters and undecodable
    bytes written as `%XX`. Ordinary paths are returned unchanged."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if text.isprintable():
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            pass
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape hands it over
            out.append(f"%{code - 0xDC00:02X}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate that no file name can hold
            out.append("\ufffd")
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            out.append("".join(f"%{b:02X}" for b in char.encode("utf-8")))
        else:
            out.append(char)
    return "".join(out)


def clean_text(text: str) -> str:
    """`text` (a reason, an error message) made storable: no lone surrogates."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unescape(key: str) -> bytes:
    raw = bytearray()
    i = 0
    while i < len(key):
        char = key[i]
        if char == "%" and _is_escape(key[i + 1 : i + 3]):
            raw.append(int(key[i + 1 : i + 3], 16))
            i += 3
            continue
        raw.extend(char.encode("utf-8"))
        i += 1
    return bytes(raw)


def _is_escape(hex_digits: str) -> bool:
    if len(hex_digits) != 2 or any(c not in "0123456789ABCDEF" for c in hex_digits):
        return False
    value = int(hex_digits, 16)
    return value in _ESCAPED_BYTES or value >= 0x80


def path_for_key(key: str) -> Path:
    """The real path a stored key stands for (the inverse of `path_key`)."""
    literal = Path(key)
    if "%" not in key or os.path.lexists(literal):
        return literal
    return Path(os.fsdecode(_unescape(key)))


class DataDirLayout:
    """Where each part of the data dir lives, mixed into `Settings` (which holds `data_dir`,
    `inbox_dir_override` and `backup_dir_override`)."""

    data_dir: Path
    inbox_dir_override: Path | None
    backup_dir_override: Path | None

    @property
    def inbox_dir(self) -> Path:
        return self.inbox_dir_override or self.data_dir / "inbox"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "nexus.db"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def run_dir(self) -> Path:
        """Runtime files (server pid/port files) of a running `nexus up`."""
        return self.data_dir / "run"

    @property
    def outbox_dir(self) -> Path:
        """Publishes waiting for AWS (survives restarts)."""
        return self.data_dir / "outbox"

    @property
    def text_dir(self) -> Path:
        """Extracted text of each ingested document, by sha256 (published to S3)."""
        return self.data_dir / "text"

    @property
    def vkp_dir(self) -> Path:
        """Built packages (`built/`), the local publish folder (`publish/`), downloads."""
        return self.data_dir / "vkp"

    @property
    def backup_dir(self) -> Path:
        """Where `nexus backup` writes by default (under the data dir, writable in Docker)."""
        return self.backup_dir_override or self.data_dir / "backups"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"
