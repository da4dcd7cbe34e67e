"""Where a file sits in the inbox: `<grade>/<subject>/<file>.pdf`, and which names to ignore.

Grade and subject are the first two folder names, checked by `engine.names` (lowercase
letters and digits in words joined by single underscores): a `kelas-10` or `Kelas 10` folder is
refused with a message suggesting `kelas_10`, never cleaned up, so that two folders can never
share a collection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine.names import BadName, check_grade_subject

# Names that are still being written or are editor/OS droppings.
_IGNORED_SUFFIXES = (".part", ".crdownload", ".partial", ".download", ".tmp", ".swp", "~")
_IGNORED_PREFIXES = (".", "~$", "~lock.")


class BadLocation(ValueError):
    """The file is not inside a `<grade>/<subject>/` folder, or those folders' names are not
    allowed grade/subject names."""


@dataclass(frozen=True)
class Placement:
    grade: str
    subject: str


def is_ignored(path: Path) -> bool:
    """True for temp/partial downloads, office lock files and dotfiles (or files in dot dirs)."""
    name = path.name
    if name.lower().endswith(_IGNORED_SUFFIXES) or name.startswith(_IGNORED_PREFIXES):
        return True
    return any(part.startswith(".") for part in path.parts[:-1] if part not in (".", ".."))


def is_candidate(path: Path) -> bool:
    """A name the engine should look at: a PDF name that is not ignored."""
    return path.suffix.lower() == ".pdf" and not is_ignored(path)


def place(path: Path, root: Path) -> Placement:
    """Grade and subject of `path`, from its first two folders below `root`.

    Deeper folders (`kelas_10/informatika/bab1/materi.pdf`) are allowed; shallower ones are not.

    Raises:
        BadLocation: the file is directly in the inbox or in a grade folder without a subject,
            or a folder name breaks the naming rule (the message says what to rename it to).
    """
    try:
        parts = path.relative_to(root).parts
    except ValueError as exc:
        raise BadLocation(f"{path} is not under {root}") from exc
    if len(parts) < 3:
        raise BadLocation(
            "file must be inside <grade>/<subject>/ (for example kelas_10/informatika/bab1.pdf),"
            f" found at {'/'.join(parts)}"
        )
    try:
        grade, subject = check_grade_subject(parts[0], parts[1])
    except BadName as exc:
        raise BadLocation(f"rename the folder: {exc}") from exc
    return Placement(grade=grade, subject=subject)


def root_for(path: Path, inbox: Path) -> Path:
    """The folder that `path`'s grade/subject are read from.

    Inside the inbox that is the inbox. Elsewhere, a PDF is `<grade>/<subject>/<file>.pdf` and
    a folder is a `<grade>/<subject>/` tree, so the root is two levels above.
    """
    path = path.resolve()
    inbox = inbox.resolve()
    if path == inbox or inbox in path.parents:
        return inbox
    if path.is_dir():
        return path.parent.parent
    return path.parent.parent.parent


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    with path.open("rb") as fh:
        return sha256_stream(fh, block)


def sha256_stream(fh: BinaryIO, block: int = 1 << 20) -> str:
    """sha256 of what is left to read in `fh`."""
    digest = hashlib.sha256()
    while chunk := fh.read(block):
        digest.update(chunk)
    return digest.hexdigest()
