"""Saving an uploaded PDF into the inbox without touching what is already there.

Uploads are hostile: the browser sends the file name and the bytes, and both are checked here
before anything is written. Names are refused, never cleaned up (a name the watcher would
ignore, a path, `..`, NUL, control characters, more than the file system allows), the size is
capped, and the write is confined to `<inbox>/<grade>/<subject>/`.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from engine.inbox.layout import is_candidate, is_ignored
from engine.names import NAME_MAX_BYTES, BadName, check_file_name, check_grade_subject
from engine.paths import Outside, confined
from engine.util import link_new

log = logging.getLogger(__name__)

_COPY_SUFFIX_RESERVE = len(" (999)")


class UploadRefused(ValueError):
    """An upload that is not written; the message says why, in words a teacher understands."""


def check_upload_name(name: str) -> str:
    """Return `name` if a PDF may be saved under it, else raise `UploadRefused`."""
    try:
        check_file_name(name, NAME_MAX_BYTES - _COPY_SUFFIX_RESERVE)
    except BadName as exc:
        raise UploadRefused(f"{exc} (upload the file itself)") from None
    shown = repr(name[:80])
    if ".." in name:
        raise UploadRefused(f"{shown} contains '..': rename the file")
    if is_ignored(Path(name)):
        raise UploadRefused(
            f"{shown} looks like a temporary, lock or hidden file (the engine ignores names "
            "starting with '.', '~$' or ending in .part, .tmp, …): rename the file"
        )
    if not is_candidate(Path(name)):
        raise UploadRefused(f"{shown} is not a .pdf file")
    return name


def save_upload(
    inbox: Path,
    grade: str,
    subject: str,
    name: str,
    data: bytes,
    *,
    max_bytes: int | None = None,
) -> Path:
    """Write `data` as `<inbox>/<grade>/<subject>/<name>` and return the path.

    Args:
        inbox: the watched inbox.
        grade, subject: folder names; they must follow `engine.names`.
        name: the file name the browser sent.
        data: the file's bytes.
        max_bytes: the largest upload accepted (UPLOAD_MAX_MB); None = no cap.

    Raises:
        UploadRefused: a bad grade, subject or file name, or a file over the size cap.

    The file is written under a dot-name (ignored by the watcher) and linked to its name when
    complete. An existing file of the same name is never replaced: the upload gets
    `name (2).pdf`, unless it holds the same bytes, in which case nothing is written.
    """
    try:
        check_grade_subject(grade, subject)
    except BadName as exc:
        raise UploadRefused(str(exc)) from exc
    check_upload_name(name)
    if max_bytes is not None and len(data) > max_bytes:
        raise UploadRefused(
            f"{name[:80]!r} is {len(data) / 2**20:.1f} MB; the limit is "
            f"{max_bytes / 2**20:.0f} MB (UPLOAD_MAX_MB)"
        )
    root = inbox.resolve()
    try:
        folder = confined(root, inbox / grade / subject)
    except Outside:
        raise UploadRefused(f"{grade}/{subject} leads outside the inbox") from None
    folder.mkdir(parents=True, exist_ok=True)
    if folder.resolve() != folder:  # a link swapped in meanwhile
        raise UploadRefused(f"{grade}/{subject} leads outside the inbox")
    stem, suffix = Path(name).stem, Path(name).suffix
    partial = folder / f".upload-{secrets.token_hex(8)}.part"
    partial.write_bytes(data)
    try:
        for number in range(1, 1000):
            target = folder / (name if number == 1 else f"{stem} ({number}){suffix}")
            try:
                confined(root, target)
            except Outside:
                raise UploadRefused(f"{name[:80]!r} leads outside the inbox") from None
            if _same_file(target, data):
                return target
            if link_new(partial, target):
                partial.unlink()  # at once: a file with two names is not read (hard links)
                log.info("upload saved as %s", target)
                return target
        raise UploadRefused(f"{name[:80]!r}: 999 files of that name already; rename the file")
    finally:
        partial.unlink(missing_ok=True)


def _same_file(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False
