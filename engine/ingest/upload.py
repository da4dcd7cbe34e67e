"""Saving an uploaded PDF into the inbox without touching what is already there."""

from __future__ import annotations

import os
from pathlib import Path


def save_upload(inbox: Path, grade: str, subject: str, name: str, data: bytes) -> Path:
    """Write `data` as `<inbox>/<grade>/<subject>/<name>` and return the path.

    Raises:
        ValueError: a grade, subject or file name that would leave its folder.

    The file is written under a dot-name (ignored by the watcher) and renamed when complete. An
    existing file of the same name is never replaced: the upload gets `name (2).pdf`, unless
    it holds the same bytes, in which case nothing is written.
    """
    for part in (grade, subject):
        if not part or part in (".", "..") or "/" in part or "\\" in part or part.startswith("."):
            raise ValueError(f"{part!r} is not a folder name")
    folder = inbox / grade / subject
    folder.mkdir(parents=True, exist_ok=True)
    base = Path(name.replace("\\", "/")).name
    if not base or base.startswith("."):
        raise ValueError(f"{name!r} is not a file name")
    stem, suffix = Path(base).stem, Path(base).suffix or ".pdf"
    target, number = folder / f"{stem}{suffix}", 1
    while target.exists():
        if target.read_bytes() == data:
            return target
        number += 1
        target = folder / f"{stem} ({number}){suffix}"
    partial = folder / f".{target.name}.part"
    partial.write_bytes(data)
    os.replace(partial, target)
    return target
