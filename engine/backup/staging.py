"""Bringing an untrusted backup into a private staging folder, checked, before a restore.

Backup folders (a USB stick, a shared drive) and buckets are not ours: whoever can write there
can plant files. So a restore never reads a backup in place. It:

1. reads `manifest.json` first, at most `MANIFEST_CAP` bytes, and checks its shape: every name is
   a plain relative path (no `..`, no absolute path, no NUL or backslash, no empty part) in one
   of the areas a backup has, every entry has a size and a sha256, and the required files (the
   SQLite database, each Chroma collection's three files) are listed;
2. refuses a backup that holds anything its manifest does not list, or that lacks something it
   does, and (for folders) any symbolic link, FIFO, device or socket, found with `lstat` and never
   followed (PEP 706's tarfile "data" filter is the model: refused, not cleaned up);
3. copies every listed file into a private `mkdtemp` folder (mode 0700), reading at most the
   size the manifest gives and hashing while it copies; folder files are opened one path part at
   a time with `O_NOFOLLOW`, so a link swapped in after the walk is refused too;
4. checks what the engine will read: the database is SQLite, passes `quick_check` and holds
   exactly the tables and indexes this engine's migrations create, no triggers or views (SQL
   that would run on every later write, e.g. planting search rows after a signed install); each
   collection's meta.json names the collection it sits in and its chunks load.

Only then does `engine.backup.restore` write into the data dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from engine.embed.choice import RECORD_NAME
from engine.util import is_sha256_hex

MANIFEST = "manifest.json"
MANIFEST_CAP = 32 * 2**20  # ~200k files' entries; a bigger manifest is refused unread
META_CAP = 64 * 2**10
MAX_FILES = 500_000
MAX_PART_BYTES = 255
MAX_NAME_BYTES = 4096
BLOCK = 2**20
COLLECTION_FILES = frozenset({"meta.json", "chunks.jsonl", "vectors.f32"})
TREE_AREAS = ("inbox", "text", "vkp")


class BackupError(Exception):
    """A backup that cannot be used (corrupt, partial, hostile) or a refused backup/restore."""


def show(name: str) -> str:
    """A printable form of a name from outside (control characters and odd bytes escaped)."""
    return ascii(name)[1:-1] if not name.isprintable() else name


def safe_relative(name: object) -> PurePosixPath:
    """`name` as a relative path of plain parts, or BackupError.

    Refused: non-text, empty, absolute, NUL, backslash, empty parts (`a//b`, trailing `/`),
    `.` and `..`, names that do not round-trip through UTF-8, parts over 255 bytes.
    """
    if not isinstance(name, str) or not name:
        raise BackupError(f"the backup names an entry {name!r}: not a file name")
    shown = show(name)
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise BackupError(f"the backup names an entry that is too long: {shown[:80]}…")
    if "\x00" in name or "\\" in name or name.startswith("/"):
        raise BackupError(f"the backup names an unsafe path {shown!r}")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BackupError(f"the backup names an unsafe path {shown!r}")
    try:
        encoded = [part.encode("utf-8") for part in parts]
    except UnicodeEncodeError as exc:
        raise BackupError(f"the backup names a path that is not UTF-8: {shown!r}") from exc
    if any(len(part) > MAX_PART_BYTES for part in encoded):
        raise BackupError(f"the backup names a path with a part over 255 bytes: {shown[:80]}…")
    return PurePosixPath(*parts)


def _check_area(path: PurePosixPath) -> None:
    """Refuse names outside the areas a backup has (nexus.db, the embedding-model record,
    chroma, inbox, text, vkp, keys)."""
    parts = path.parts
    if parts in (("nexus.db",), (RECORD_NAME,)):
        return
    if parts[0] in TREE_AREAS and len(parts) >= 2:
        return
    if parts[0] == "keys" and len(parts) == 2:
        return
    if parts[0] == "chroma" and len(parts) == 3 and parts[2] in COLLECTION_FILES:
        return
    raise BackupError(f"the backup lists {show(str(path))!r}, which is not part of a backup")


def check_manifest(raw: bytes) -> dict:
    """The manifest in `raw`, checked for shape, names and required files (BackupError if not).

    Required: `nexus.db` (an empty manifest is not a backup) and, for each of the manifest's
    `collections`, one `chroma/<name>/` folder with meta.json, chunks.jsonl and vectors.f32.
    Keys are not required: an installation that never made one has none to back up.
    """
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"manifest.json is damaged: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != 1:
        raise BackupError("manifest.json is not a format-1 backup manifest")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BackupError("manifest.json lists no files: not a backup")
    if len(files) > MAX_FILES:
        raise BackupError(f"manifest.json lists {len(files)} files, more than {MAX_FILES}")
    for key, kind in (("inbox", str), ("host", str), ("created_at", str), ("collections", int)):
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise BackupError(f"manifest.json has no valid {key!r}")
    paths = set()
    for name, entry in files.items():
        path = safe_relative(name)
        if str(path) == MANIFEST:
            raise BackupError("manifest.json lists itself")
        _check_area(path)
        size, sha = (entry.get("size"), entry.get("sha256")) if isinstance(entry, dict) else (0, 0)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BackupError(f"manifest.json has no valid size for {show(name)!r}")
        if not is_sha256_hex(sha):
            raise BackupError(f"manifest.json has no valid sha256 for {show(name)!r}")
        paths.add(path)
    folders = {parent for path in paths for parent in path.parents}
    if clash := sorted(str(p) for p in paths & folders):
        raise BackupError(f"manifest.json lists {show(clash[0])!r} as a file and a folder")
    if PurePosixPath("nexus.db") not in paths:
        raise BackupError("the backup is incomplete: manifest.json does not list nexus.db")
    collections: dict[str, set[str]] = {}
    for path in paths:
        if path.parts[0] == "chroma":
            collections.setdefault(path.parts[1], set()).add(path.parts[2])
    for name, present in sorted(collections.items()):
        if present != COLLECTION_FILES:
            missing = sorted(COLLECTION_FILES - present)
            raise BackupError(f"the backup is incomplete: collection {show(name)} lacks {missing}")
    if len(collections) != manifest["collections"]:
        raise BackupError(
            f"the backup is incomplete: manifest.json counts {manifest['collections']}"
            f" collection(s), its files hold {len(collections)}"
        )
    return manifest


def private_folder() -> Path:
    """A new folder only this user can read (mkdtemp makes it 0700)."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="nexus-restore-"))


def receive(blocks: Iterable[bytes], target: Path, size: int, sha256: str, name: str) -> None:
    """Write `blocks` to the new file `target`, at most `size` bytes, and check the sha256."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest, count = hashlib.sha256(), 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with open(fd, "wb") as out:
        for block in blocks:
            count += len(block)
            if count > size:
                raise BackupError(f"{show(name)} is larger than its manifest says: refused")
            digest.update(block)
            out.write(block)
    if count != size or digest.hexdigest() != sha256:
        raise BackupError(f"{show(name)} does not match its checksum: the backup is corrupt")


def _read_blocks(fd: int, cap: int) -> Iterator[bytes]:
    """Up to `cap + 1` bytes from `fd` (one more than allowed, so an excess is seen)."""
    left = cap + 1
    while left > 0 and (block := os.read(fd, min(BLOCK, left))):
        left -= len(block)
        yield block


def _open_beneath(root: Path, path: PurePosixPath) -> int:
    """Open `root/path` for reading, refusing a link at any part and anything not a plain file."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in path.parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK  # NONBLOCK: a FIFO cannot hang us
        file_fd = os.open(path.parts[-1], flags, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise BackupError(f"{show(str(path))} in the backup is not a regular file: refused")
    return file_fd


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def walk_regular(folder: Path) -> set[str]:
    """Every regular file under `folder`, relative; BackupError at the first link or special
    file (checked with lstat, never followed)."""
    found: set[str] = set()
    pending = [(folder, "")]
    while pending:
        current, prefix = pending.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                rel = prefix + entry.name
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    pending.append((Path(entry.path), rel + "/"))
                elif stat.S_ISREG(mode):
                    found.add(rel)
                else:
                    raise BackupError(f"{show(rel)} in the backup is {_kind(mode)}: refused")
                if len(found) > MAX_FILES:
                    raise BackupError(f"the backup holds more than {MAX_FILES} files")
    return found


def _compare(listed: set[str], manifest: dict) -> None:
    """The backup holds exactly the manifest's files (and the manifest)."""
    present = listed - {MANIFEST}
    if missing := sorted(set(manifest["files"]) - present):
        raise BackupError(
            f"the backup is incomplete: {len(missing)} file(s) missing, e.g. {show(missing[0])}"
        )
    if extra := sorted(present - set(manifest["files"])):
        raise BackupError(
            f"the backup holds files its manifest does not list, e.g. {show(extra[0])}"
        )


def _check_space(staging: Path, manifest: dict) -> None:
    needed = sum(entry["size"] for entry in manifest["files"].values())
    if shutil.disk_usage(staging).free < needed:
        raise BackupError(f"not enough space in {staging.parent} to check a {needed} byte backup")


def stage_folder(folder: Path, staging: Path, progress=None) -> dict:
    """Check the backup folder `folder` and copy its files into `staging`; the manifest."""
    if not folder.is_dir():
        raise BackupError(f"{folder} is not a folder")
    listed = walk_regular(folder)
    if MANIFEST not in listed:
        raise BackupError(f"{folder} has no manifest.json: not a backup, or an unfinished one")
    fd = _open_beneath(folder, PurePosixPath(MANIFEST))
    with open(fd, "rb") as fh:
        raw = fh.read(MANIFEST_CAP + 1)
    if len(raw) > MANIFEST_CAP:
        raise BackupError(f"manifest.json is larger than {MANIFEST_CAP} bytes: refused")
    manifest = check_manifest(raw)
    _compare(listed, manifest)
    _check_space(staging, manifest)
    for number, (name, entry) in enumerate(sorted(manifest["files"].items()), start=1):
        path = safe_relative(name)
        fd = _open_beneath(folder, path)
        try:
            receive(
                _read_blocks(fd, entry["size"]),
                staging / path,
                entry["size"],
                entry["sha256"],
                name,
            )
        finally:
            os.close(fd)
        if progress:
            progress("verify", number, len(manifest["files"]))
    return manifest


def _body_blocks(body, cap: int) -> Iterator[bytes]:
    left = cap + 1
    try:
        while left > 0 and (block := body.read(min(BLOCK, left))):
            left -= len(block)
            yield block
    finally:
        body.close()


def stage_s3(client, bucket: str, prefix: str, staging: Path, progress=None) -> dict:
    """Check the backup under `s3://bucket/prefix/` and download it into `staging`.

    Every key is checked before anything is downloaded; the manifest is read first with a cap,
    then each file with the manifest's size as its cap.
    """
    prefix = prefix.strip("/") + "/"
    sizes: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) :]
            if obj["Size"] == 0 and (rel == "" or rel.endswith("/")):
                continue  # a console's "folder" marker: nothing to write
            sizes[str(safe_relative(rel))] = obj["Size"]
            if len(sizes) > MAX_FILES:
                raise BackupError(f"the backup holds more than {MAX_FILES} files")
    if MANIFEST not in sizes:
        raise BackupError(f"s3://{bucket}/{prefix} has no manifest.json: not a backup")
    if sizes[MANIFEST] > MANIFEST_CAP:
        raise BackupError(f"manifest.json is larger than {MANIFEST_CAP} bytes: refused")
    body = client.get_object(Bucket=bucket, Key=prefix + MANIFEST)["Body"]
    raw = b"".join(_body_blocks(body, MANIFEST_CAP))
    if len(raw) > MANIFEST_CAP:
        raise BackupError(f"manifest.json is larger than {MANIFEST_CAP} bytes: refused")
    manifest = check_manifest(raw)
    _compare(set(sizes), manifest)
    for name, entry in manifest["files"].items():
        if sizes[name] != entry["size"]:
            raise BackupError(f"{show(name)} is not the size its manifest says: refused")
    _check_space(staging, manifest)
    for number, (name, entry) in enumerate(sorted(manifest["files"].items()), start=1):
        body = client.get_object(Bucket=bucket, Key=prefix + name)["Body"]
        target = staging / safe_relative(name)
        receive(_body_blocks(body, entry["size"]), target, entry["size"], entry["sha256"], name)
        if progress:
            progress("download", number, len(manifest["files"]))
    return manifest
