"""Blob storage: one interface for the places files are published and backed up to.

A `BlobStore` holds objects under `/`-separated keys (`vkp/index.json`). Two kinds exist: a
`FolderStore` (a local folder: the VKP publish folder, a backup target on a USB disk) and
`engine.aws.s3.S3Store` (the bucket under S3_PREFIX). `NullStore` stands in for S3 when
S3_BUCKET_NAME is not set: every call raises `NotConfigured`, a `StoreUnavailable`, so code that
delivers objects treats "no bucket" like "bucket unreachable" (objects stay in the outbox) with
no `None` checks; the few places that must decide up front read `configured`. The stores are
built in the composition root (`engine.app`), never at import time.

Keys are ours, but a folder store's root may be shared with someone else, so a `FolderStore`
refuses keys that are not plain parts (`..`, absolute, NUL, empty parts), resolves the target
and refuses it unless it is inside the root (a planted link cannot lead writes out), lists only
regular files (links are neither followed nor listed), and writes through a temporary file and
a rename, so a reader never sees half a file. Reads are always capped (`max_bytes`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.paths import Outside, confined
from engine.util import sha256_file

TEMP_MARK = ".nexus-tmp-"  # temporary files and staging folders; never a key, never listed
_BLOCK = 1 << 20


class BlobError(Exception):
    """Base of the errors a blob store raises."""


class BadKey(BlobError, ValueError):
    """The key is not a plain relative key, or it leads outside the store."""


class BlobNotFound(BlobError):
    """No object under that key."""


class BlobTooLarge(BlobError):
    """The object is larger than the caller accepts."""


class StoreUnavailable(BlobError):
    """The store cannot be reached or written (S3 down, disk full, no permission...)."""


class NotConfigured(StoreUnavailable):
    """The store is not set up (e.g. S3_BUCKET_NAME is empty)."""


def key_parts(key: str, *, prefix: bool = False) -> list[str]:
    """The parts of `key`, refused unless each is a plain name.

    With `prefix`, `""` and a trailing `/` are accepted (a listing prefix: `vkp/`).

    Raises:
        BadKey: empty parts, `.`/`..`, an absolute key, NUL, or our temporary-file mark.
    """
    if not isinstance(key, str) or "\0" in key:
        raise BadKey(f"{str(key)[:80]!r} is not a key: refused")
    if prefix and key == "":
        return []
    parts = key.split("/")
    if prefix and parts[-1] == "":
        parts.pop()
    for part in parts:
        if part in ("", ".", "..") or part != Path(part).name or part.startswith(TEMP_MARK):
            raise BadKey(f"{key[:80]!r} is not a plain relative key: refused")
    return parts


class BlobStore(ABC):
    """Objects under keys. Implementations: `FolderStore`, `engine.aws.s3.S3Store`, `NullStore`."""

    configured = True

    @abstractmethod
    def put_file(self, key: str, path: Path, sha256: str | None = None) -> bool:
        """Store the file at `path` under `key`; False when the store already has these bytes.

        Raises:
            StoreUnavailable: the store could not be written.
        """

    @abstractmethod
    def get_bytes(self, key: str, *, max_bytes: int) -> bytes:
        """The object's bytes, reading at most `max_bytes` of them.

        Raises:
            BlobNotFound: there is no such object.
            BlobTooLarge: it is larger than `max_bytes`.
        """

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """The keys that start with `prefix`, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object under `key` (nothing happens when there is none)."""

    @abstractmethod
    def sha256(self, key: str) -> str | None:
        """The SHA-256 of the object as the store knows it, or None when it has none."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True when an object is stored under `key`."""

    @abstractmethod
    def within(self, prefix: str) -> BlobStore:
        """The same store seen from below `prefix` (its keys are relative to it)."""

    @abstractmethod
    def url(self, key: str = "") -> str:
        """Where `key` lives, for people: a path, or `s3://bucket/key`."""

    def full_key(self, key: str) -> str:
        """The key as the service behind the store names it (S3: with S3_PREFIX)."""
        return key

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object whose key starts with `prefix` (a folder: `name/`)."""
        if not key_parts(prefix, prefix=True):
            raise BadKey("refusing to delete a whole store")
        for key in self.list_keys(prefix):
            self.delete(key)

    def put_bytes(self, key: str, data: bytes) -> bool:
        """Store `data` under `key`; False when the store already has these bytes."""
        with self.staging() as folder:
            path = folder / "blob"
            path.write_bytes(data)
            return self.put_file(key, path, hashlib.sha256(data).hexdigest())

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A private, empty local folder to prepare files in for `put_tree`, removed after."""
        folder = Path(tempfile.mkdtemp(prefix="nexus-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def put_tree(self, prefix: str, folder: Path, last: str | None = None) -> list[str]:
        """Store every regular file below `folder` under `prefix/`, `last` (a relative path)
        after all others, so that once it is there the rest is too. Returns the keys."""
        key_parts(prefix)
        files = _tree_files(folder, last)
        for relative in files:
            self.put_file(f"{prefix}/{relative}", folder / relative)
        return [f"{prefix}/{relative}" for relative in files]


class NullStore(BlobStore):
    """A store that is not configured: every call raises `NotConfigured(reason)`."""

    configured = False

    def __init__(self, reason: str):
        self.reason = reason

    def _refuse(self, *args, **kwargs):
        raise NotConfigured(self.reason)

    put_file = get_bytes = list_keys = delete = sha256 = exists = _refuse  # type: ignore[assignment]

    def within(self, prefix: str) -> NullStore:
        return self

    def url(self, key: str = "") -> str:
        return f"(not configured: {self.reason}) {key}"


class FolderStore(BlobStore):
    """Objects as files below `root` (created when first written)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FolderStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The resolved file for `key`, refused unless it lies inside the root."""
        parts = key_parts(key)
        try:
            return confined(self.root, self.root.joinpath(*parts))
        except Outside:
            raise BadKey(f"{key[:80]!r} leads outside {self.root}: refused") from None

    def url(self, key: str = "") -> str:
        """The path of `key` as the root was given (`name/` gives the folder's path)."""
        return str(self.root / key) if key else str(self.root)

    def within(self, prefix: str) -> FolderStore:
        return FolderStore(self.path(prefix))

    def put_file(self, key: str, path: Path, sha256: str | None = None) -> bool:
        target = self.path(key)
        with _os_errors(f"cannot write {target}"):
            source = Path(path)
            if target.is_file() and target.stat().st_size == source.stat().st_size:
                if (sha256 or sha256_file(source)) == sha256_file(target):
                    return False
            with source.open("rb") as src:
                mode = stat.S_IMODE(os.fstat(src.fileno()).st_mode) & 0o777  # as shutil.copy2
                _write(target, iter(lambda: src.read(_BLOCK), b""), mode)
        return True

    def put_bytes(self, key: str, data: bytes) -> bool:
        target = self.path(key)
        with _os_errors(f"cannot write {target}"):
            if target.is_file() and target.stat().st_size == len(data):
                if hashlib.sha256(data).hexdigest() == sha256_file(target):
                    return False
            _write(target, [data], None)
        return True

    def get_bytes(self, key: str, *, max_bytes: int) -> bytes:
        target = self.path(key)
        if not target.is_file():
            raise BlobNotFound(f"{self.url(key)} does not exist")
        with _os_errors(f"cannot read {target}"), target.open("rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise BlobTooLarge(f"{self.url(key)} is larger than {max_bytes} bytes")
        return data

    def list_keys(self, prefix: str = "") -> list[str]:
        parts = key_parts(prefix, prefix=True)
        # walk from the folder the prefix names, or the one holding its last, partial part
        start = base = self.root.resolve()
        for part in parts if prefix.endswith("/") else parts[:-1]:
            start = start / part
            if start.is_symlink() or not start.is_dir():
                return []  # a link is not followed, not even as the start of a listing
        keys = []
        for top, dirs, files in os.walk(start):
            dirs[:] = [d for d in dirs if not d.startswith(TEMP_MARK)]  # links are not walked
            for name in files:
                full = os.path.join(top, name)
                if name.startswith(TEMP_MARK) or not stat.S_ISREG(os.lstat(full).st_mode):
                    continue
                key = Path(full).relative_to(base).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        target = self.path(key)
        with _os_errors(f"cannot delete {target}"):
            target.unlink(missing_ok=True)
        self._remove_empty_parents(target)

    def _remove_empty_parents(self, target: Path) -> None:
        """Folders have no life of their own, as in S3: empty ones left by a delete go."""
        base = self.root.resolve()
        for parent in target.parents:
            if parent == base or not parent.is_relative_to(base):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def delete_prefix(self, prefix: str) -> None:
        """With a folder prefix (`name/`), the folder goes whole, with whatever a listing
        leaves out (links are removed, never followed); a link on the way is refused."""
        parts = key_parts(prefix, prefix=True)
        if not prefix.endswith("/"):
            return super().delete_prefix(prefix)
        if not parts:
            raise BadKey("refusing to delete a whole store")
        target = self.root.resolve()
        for part in parts:
            target = target / part
            if target.is_symlink():
                raise BadKey(f"{prefix[:80]!r} leads through a link: refused")
        with _os_errors(f"cannot delete {target}"):
            if target.is_dir():
                shutil.rmtree(target)
        self._remove_empty_parents(target)

    def sha256(self, key: str) -> str | None:
        target = self.path(key)
        return sha256_file(target) if target.is_file() else None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A private folder inside the root, so that `put_tree` of what is prepared there is
        one rename: no second copy, no space needed elsewhere, and the tree appears whole."""
        with _os_errors(f"cannot write {self.root}"):
            self.root.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=TEMP_MARK, dir=self.root))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def put_tree(self, prefix: str, folder: Path, last: str | None = None) -> list[str]:
        staged = folder.parent
        base = self.root.resolve()
        if not (staged.name.startswith(TEMP_MARK) and staged.resolve().parent == base):
            return super().put_tree(prefix, folder, last)
        target = self.path(prefix)
        keys = [f"{prefix}/{relative}" for relative in _tree_files(folder, last)]
        with _os_errors(f"cannot write {target}"):
            if target.exists() or target.is_symlink():
                raise FileExistsError(errno.EEXIST, "File exists", str(target))
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(folder, target)
        return keys


def _tree_files(folder: Path, last: str | None) -> list[str]:
    """The regular files below `folder` as relative keys, sorted, with `last` at the end."""
    files = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    )
    if last in files:
        files.remove(last)
        files.append(last)
    return files


@contextmanager
def _os_errors(what: str) -> Iterator[None]:
    """OSError → StoreUnavailable (the OSError stays as `__cause__` for a precise message)."""
    try:
        yield
    except OSError as exc:
        raise StoreUnavailable(f"{what}: {exc.strerror or exc}") from exc


def _write(target: Path, blocks, mode: int | None) -> None:
    """Write `blocks` to a temporary file next to `target`, then rename it into place; the
    file gets `mode`, or the usual mode for a new file (0o666 less the umask)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{TEMP_MARK}{uuid.uuid4().hex}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            for block in blocks:
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
