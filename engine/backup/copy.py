"""Copying files into a backup and back: what leaves the machine, how a restore writes, and
how errors read.

- keys/ is an allow-list: without --include-secrets only files whose content parses as a PEM or
  OpenSSH public key, and that never mention "PRIVATE", are copied; the file name decides
  nothing (a private key called `old.pub` stays home; salts and passwords too);
- the inbox, text and packages are copied as regular files only: FIFOs (which would hang the
  copy), devices, sockets, dangling links and links to folders are left out with a warning;
- a restore writes each file by walking from the resolved root one folder at a time without
  following links (`place`), so nothing swapped in during the restore can redirect a write;
- file-system errors become one sentence (`filesystem_message`) instead of a traceback.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from pathlib import Path, PurePosixPath

from engine.backup.staging import BackupError
from engine.paths import Outside, confined

log = logging.getLogger(__name__)

PUBLIC_KEY_CAP = 64 * 2**10


def filesystem_message(exc: OSError, where: Path | str) -> str:
    """A sentence for an OSError (permission denied, disk full...) instead of a traceback."""
    reason = {
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EROFS: "the file system is read-only",
        errno.EEXIST: "it already exists",
    }.get(exc.errno, exc.strerror or str(exc))
    name = f" ({exc.filename})" if exc.filename else ""
    return f"cannot write {where}: {reason}{name}"


def is_public_key(data: bytes) -> bool:
    """True for a PEM or OpenSSH public key that holds nothing private."""
    from cryptography.hazmat.primitives import serialization

    if len(data) > PUBLIC_KEY_CAP or b"PRIVATE" in data.upper():
        return False
    for load in (serialization.load_pem_public_key, serialization.load_ssh_public_key):
        try:
            load(data.strip())
            return True
        except Exception:  # noqa: BLE001 (whatever the parser says: not a public key)
            continue
    return False


def copy_keys(keys: Path, target: Path, include_secrets: bool) -> None:
    """Copy keys/: by default only files whose content is a public key (an allow-list), never
    anything that mentions a private key; everything with `include_secrets`."""
    for key in sorted(keys.iterdir()) if keys.is_dir() else []:
        if not stat.S_ISREG(key.lstat().st_mode):
            log.warning("backup: skipping %s (not a regular file)", key)
            continue
        with key.open("rb") as fh:
            head = fh.read(PUBLIC_KEY_CAP + 1)
        if not include_secrets and not is_public_key(head):
            log.info("backup: %s is not a public key; left out (see --include-secrets)", key.name)
            continue
        target.mkdir(mode=0o700, exist_ok=True)
        shutil.copyfile(key, target / key.name)
        os.chmod(target / key.name, 0o600)


def copy_tree(source: Path, target: Path) -> None:
    """Copy a data dir area: regular files only (links to regular files are copied as files);
    FIFOs, devices, sockets, dangling links and links to folders are left out with a warning."""
    for current, folders, files in os.walk(source):
        here = Path(current)
        for name in list(folders):
            if (here / name).is_symlink():
                log.warning("backup: skipping %s (a link to a folder)", here / name)
                folders.remove(name)
            elif name == "downloads":
                folders.remove(name)
        for name in files:
            path = here / name
            if name.endswith(".part"):
                continue
            if not path.is_file():  # follows a link; False for FIFOs, devices, dangling links
                log.warning("backup: skipping %s (not a regular file)", path)
                continue
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)


def destination_below(target: Path, root: Path) -> PurePosixPath:
    """`target` as a path below `root` (resolved), refused unless its folder resolves inside.

    This is the early check, before anything is written; `_place` then walks the returned parts
    from `root` without following a link at any of them, so a folder swapped for a link while
    the restore waited for the ingestion lock cannot redirect a write.
    """
    try:  # resolved before any mkdir: no folder made through a link
        destination = confined(root, target, follow_final_link=False)
    except Outside:
        raise BackupError(f"refused to write {target}: it resolves outside {root}") from None
    if destination.is_dir() and not destination.is_symlink():
        raise BackupError(f"refused to write {destination}: a folder is in the way")
    return PurePosixPath(destination.relative_to(root).as_posix())


def open_folder_beneath(root: Path, parts: tuple[str, ...]) -> int:
    """A directory fd for `root/parts…`, creating folders, never following a link below
    `root` (the resolved data dir or inbox, which may itself be a link the admin made)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:  # ELOOP / ENOTDIR: a link or a file where a folder should be
                reason = f"{part!r} is not a plain folder ({exc.strerror})"
                raise BackupError(f"refused to write below {root}: {reason}") from exc
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def place(source: Path, root: Path, relative: PurePosixPath, mode: int) -> None:
    """Copy `source` to `root/relative` through a temporary name, never through a link."""
    folder = open_folder_beneath(root, relative.parts[:-1])
    name = relative.parts[-1]
    partial = f".{name}.restoring"
    try:
        try:
            os.unlink(partial, dir_fd=folder)
        except FileNotFoundError:
            pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        out = os.open(partial, flags, 0o600 if mode >= 0 else 0o644, dir_fd=folder)
        with open(out, "wb") as target, source.open("rb") as data:
            shutil.copyfileobj(data, target, 1 << 20)
        if mode >= 0:
            os.chmod(partial, mode, dir_fd=folder, follow_symlinks=False)
        # replaces a link itself, never writes through it
        os.replace(partial, name, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)
