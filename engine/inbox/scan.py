"""Finding teachers' files in the inbox, naming them safely, and deciding which may be opened.

Everything in the inbox comes from outside and is treated as hostile: its names, its kinds of
entry and its links.

File names. A name that is not valid UTF-8 is still ingested: everything the engine records
uses its key (`engine.paths.path_key`), and the file itself is always opened through the real
path.

Kinds of entry. Every entry with a PDF name is reported, whatever it is: a folder named `x.pdf`,
a named pipe, a device, a socket or a link that cannot be followed gets a status
(`not_a_file`, `outside_inbox`) instead of being skipped silently. Nothing is opened before
`lstat`/`stat` say it is a regular file, and files are opened with `O_NONBLOCK | O_NOFOLLOW`
and checked again with `fstat`, so a FIFO swapped in at the last moment can never block a read.

Symlink policy. A link is followed only when its fully resolved target is a regular file inside
the inbox (the root being ingested); its grade and subject come from where the link sits.
A link to anything else is refused with a status: a broken (dangling or looping) link and a
link to something that is not a regular file are `not_a_file`, a link whose target lies outside
the inbox (`/etc/passwd`, `/dev/zero`, a USB stick) is `outside_inbox`. Links to folders are
never descended into; they are reported too, so a teacher learns why their files are not read.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from engine.inbox.layout import is_candidate, is_ignored
from engine.jobs.base import FileStatus
from engine.jobs.reasons import sentence
from engine.paths import path_for_key, path_key
from engine.util import sha256_stream

log = logging.getLogger(__name__)

_OPEN_FLAGS = (
    os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
)


class Refused(Exception):
    """An inbox entry that is not opened, with the status and reason to record (and the
    reason's code and parameters, `engine.jobs.reasons`, where it has one)."""

    def __init__(self, status: FileStatus, reason: str, code: str = "", **params: object):
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.code, self.params = code, params

    def record(self, result) -> None:
        """Put this refusal into a `FileResult`."""
        result.status, result.reason = self.status, self.reason
        result.reason_code, result.reason_params = self.code, self.params


class NotRegularFile(OSError):
    """The opened path is not a regular file (a FIFO or device swapped in after the checks)."""


# --- finding entries -------------------------------------------------------------------------
def is_reportable(path: Path) -> bool:
    """An entry the engine reports on: a PDF name, or a link to a folder (never followed)."""
    if is_ignored(path):
        return False
    return is_candidate(path) or (os.path.islink(path) and os.path.isdir(path))


def inbox_entries(folder: Path) -> list[Path]:
    """Every reportable entry below `folder`, of any kind, sorted; links are not descended into.

    Hidden folders are skipped (editors' and the OS's droppings); a folder that cannot be listed
    is logged.
    """

    def unreadable(exc: OSError) -> None:
        log.warning("cannot list %s: %s", path_key(exc.filename or ""), exc.strerror)

    found: list[Path] = []
    for top, dirs, files in os.walk(folder, onerror=unreadable):  # followlinks=False
        top_path = Path(top)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in dirs + files:
            entry = top_path / name
            relative = entry.relative_to(folder)
            if is_ignored(relative):
                continue
            if is_candidate(relative) or (os.path.islink(entry) and os.path.isdir(entry)):
                found.append(entry)
    return sorted(found)


def normalise(path: Path | str) -> Path:
    """Absolute, with the folders above it resolved but the entry itself kept (a link stays a
    link, so that the symlink policy can judge it)."""
    path = Path(os.path.abspath(path))
    return path.parent.resolve() / path.name


def expand(paths: Iterable[Path], root: Path) -> tuple[list[Path], list[Path]]:
    """Split `paths` into entries to look at and folders whose vanished files to look for.

    A folder given directly (the inbox, a grade folder) is walked even when it is reached
    through a link; a link to a folder found *inside* it is reported, not followed.
    """
    entries: list[Path] = []
    folders: list[Path] = []
    for given in paths:
        path = normalise(given)
        if path.resolve() == root or (path.is_dir() and not path.is_symlink()):
            folder = root if path.resolve() == root else path
            folders.append(folder)
            entries.extend(inbox_entries(folder))
        elif os.path.lexists(path):
            if is_reportable(path):
                entries.append(path)
        else:
            entries.append(path)  # gone: the caller decides whether the catalogue knew it
    return entries, folders


# --- what may be opened ------------------------------------------------------------------------
def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def regular_source(path: Path, root: Path) -> Path:
    """The path to open for inbox entry `path` under the (resolved) `root`, by the symlink
    policy in the module docstring.

    Raises:
        FileNotFoundError: nothing is there any more.
        Refused: a folder, FIFO, device, socket, broken link or link leaving the inbox.
    """
    st = os.lstat(path)
    if not stat.S_ISLNK(st.st_mode):
        if not stat.S_ISREG(st.st_mode):
            what = _kind(st.st_mode)
            raise Refused(
                FileStatus.NOT_A_FILE,
                sentence("special_entry", {"what": what}),
                "special_entry",
                what=what,
            )
        return path
    try:
        target_st = os.stat(path)
    except OSError as exc:
        pointed = path_key(os.readlink(path))
        raise Refused(
            FileStatus.NOT_A_FILE,
            f"a broken link: it points to {pointed}, which cannot be opened"
            f" ({exc.strerror or type(exc).__name__})",
            "broken_link",
            target=pointed,
        ) from exc
    target = Path(os.path.realpath(path))
    if not target.is_relative_to(root):
        params = {"target": path_key(target)}
        raise Refused(
            FileStatus.OUTSIDE_INBOX, sentence("link_outside", params), "link_outside", **params
        )
    if stat.S_ISDIR(target_st.st_mode):
        raise Refused(FileStatus.NOT_A_FILE, sentence("link_to_folder", {}), "link_to_folder")
    if not stat.S_ISREG(target_st.st_mode):
        raise Refused(FileStatus.NOT_A_FILE, f"a link to {_kind(target_st.st_mode)}, not a PDF")
    return target


def open_regular(path: Path, root: Path | None = None) -> BinaryIO:
    """Open `path` for reading only if it is, at the moment of opening, a regular file (and,
    with `root`, one that really lies inside `root`).

    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer; O_NOFOLLOW
    refuses a link swapped in after `regular_source` looked; `fstat` checks what was opened.
    O_NOFOLLOW guards only the last part of the path: a parent folder swapped for a link
    between the scan and the open would lead elsewhere, so with `root` the file actually
    opened (`/proc/self/fd/N`) must resolve inside it. The PDF worker then must read the very
    same file (same device and inode), so a swap after this open is refused too.

    Raises:
        NotRegularFile: a FIFO, device, socket or folder.
        Refused: (with `root`) the opened file lies outside `root` (`outside_inbox`), or it
            has more than one name (`not_a_file`: a hard link could be any file of the
            data dir, a signing key included).
        OSError: it cannot be opened (including ELOOP for a swapped-in link).
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise NotRegularFile(f"{path_key(path)} is {_kind(status.st_mode)}")
        if status.st_nlink > 1:  # another name may be a file of the data dir (a key, a db)
            params = {"path": path_key(path), "names": status.st_nlink}
            raise Refused(
                FileStatus.NOT_A_FILE, sentence("hard_link", params), "hard_link", **params
            )
        opened = f"/proc/self/fd/{fd}"
        if root is not None and os.path.exists(opened):
            real = Path(os.readlink(opened))
            if not real.is_relative_to(root.resolve()):
                raise Refused(
                    FileStatus.OUTSIDE_INBOX,
                    f"{path_key(path)} led outside the inbox when opened (a folder on its way"
                    " was replaced by a link); refused",
                )
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def open_inbox_file(key: str, inbox: Path, sha256: str | None = None) -> BinaryIO:
    """Open the regular file that catalogue key `key` names, only if it lies inside `inbox`
    (and, with `sha256`, only if it still holds the content the catalogue recorded).

    Raises:
        OSError: it is gone, cannot be opened, is not inside the inbox, or its content is
            not the recorded one.
        Refused: the inbox's policy refuses it (a link leaving the inbox, a FIFO, a file with
            more than one name...).
    """
    root = inbox.resolve()
    source = regular_source(path_for_key(key), root)
    if not Path(os.path.realpath(source)).is_relative_to(root):
        raise FileNotFoundError(f"{key} is not inside the inbox")
    handle = open_regular(source)
    try:
        opened = Path(f"/proc/self/fd/{handle.fileno()}")
        if opened.exists() and not Path(os.readlink(opened)).is_relative_to(root):
            raise FileNotFoundError(f"{key} moved outside the inbox while being opened")
        if sha256 is not None:
            if sha256_stream(handle) != sha256:
                raise FileNotFoundError(f"{key} changed since it was ingested")
            handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle
