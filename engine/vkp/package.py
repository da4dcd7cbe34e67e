"""The .vkp file: a zip with exactly four members, checked before anything is trusted.

    manifest.json   format, subject, grade, version, kind (full|delta), base version, model,
                    documents (with sha256), chunk count, removed ids, and the sha256 and
                    size of the two payload members
    manifest.sig    Ed25519 signature of `keys.MANIFEST` + manifest.json's bytes
    chunks.jsonl    one {"id", "text", "metadata"} per line (deflated)
    vectors.f32     the chunks' vectors, float32 little-endian, in the same order (stored)

Reading never extracts to disk: members are read by their fixed names, so no path in the
archive can escape anywhere. The order of the checks is what bounds memory for any input:

1. the zip's end record must announce exactly four entries and a small central directory
   (read before `zipfile` parses the directory, which it would load whole);
2. links, encrypted, unknown or duplicate members and unusual compression are refused;
3. manifest.json and manifest.sig are read with small caps, counting what actually
   decompresses (a member's `file_size` is only a claim), and the signature is verified;
4. the signed manifest is checked (`manifest.check_manifest`), then the payload members are
   streamed with the signed sizes as hard limits and their digests checked before they are
   parsed. `verify` only streams and hashes, so its memory does not grow with the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.store.chunks import StoredChunk
from engine.vkp.manifest import (
    FORMAT_VERSION,
    MAX_MEMBER_BYTES,
    PackageError,
    check_manifest,
)

__all__ = ["FORMAT_VERSION", "MAX_MEMBER_BYTES", "PackageError"]

MEMBERS = ("manifest.json", "manifest.sig", "chunks.jsonl", "vectors.f32")
MAX_MANIFEST_BYTES = 1024**2
MAX_SIGNATURE_BYTES = 1024
MAX_DIRECTORY_BYTES = 64 * 1024
MAX_RATIO = 200  # uncompressed / compressed, a cheap first look at the claimed sizes
BLOCK = 1024**2
_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SEARCH = _EOCD.size + 0xFFFF  # the record plus the longest zip comment


@dataclass
class Package:
    manifest: dict
    manifest_bytes: bytes
    signature: bytes
    chunks: list[StoredChunk]


def content_digest(chunks: list[StoredChunk]) -> str:
    """One SHA-256 over every chunk's id, text, metadata and float32 vector, in id order: two
    installations with the same digest hold byte-for-byte the same collection."""
    digest = hashlib.sha256()
    for chunk in sorted(chunks, key=lambda c: c.id):
        digest.update(chunk.id.encode() + b"\0" + chunk.text.encode() + b"\0")
        digest.update(
            json.dumps(chunk.metadata, sort_keys=True, ensure_ascii=False).encode() + b"\0"
        )
        digest.update(np.asarray(chunk.vector, dtype="<f4").tobytes())
    return digest.hexdigest()


def chunk_digest(chunk: StoredChunk) -> str:
    return content_digest([chunk])


def write_package(path: Path, manifest: dict, chunks: list[StoredChunk], sign) -> Path:
    """Write a package atomically (`.tmp` then rename). `sign(bytes) -> bytes`."""
    from engine.vkp.keys import MANIFEST

    lines = "".join(
        json.dumps(
            {"id": c.id, "text": c.text, "metadata": c.metadata}, ensure_ascii=False, sort_keys=True
        )
        + "\n"
        for c in chunks
    ).encode()
    dimension = manifest["embedding"]["dimension"]
    vectors = (
        np.asarray([c.vector for c in chunks], dtype="<f4")
        .reshape(len(chunks), dimension)
        .tobytes()
    )
    manifest = manifest | {
        "format_version": FORMAT_VERSION,
        "chunk_count": len(chunks),
        "members": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in (("chunks.jsonl", lines), ("vectors.f32", vectors))
        },
    }
    check_manifest(manifest)  # never sign what a school would refuse
    manifest_bytes = json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=1).encode()
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise PackageError(f"the manifest would be over {MAX_MANIFEST_BYTES} bytes")
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(tmp, "w") as archive:
        archive.writestr("manifest.json", manifest_bytes, zipfile.ZIP_DEFLATED)
        archive.writestr("manifest.sig", sign(MANIFEST + manifest_bytes), zipfile.ZIP_STORED)
        archive.writestr("chunks.jsonl", lines, zipfile.ZIP_DEFLATED)
        archive.writestr("vectors.f32", vectors, zipfile.ZIP_STORED)
    tmp.replace(path)
    return path


def _check_directory(fh) -> None:
    """Refuse a zip whose end record announces anything but four entries in a small central
    directory, before `zipfile` reads that directory into memory."""
    if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
        raise PackageError("not a regular file")
    size = fh.seek(0, 2)
    tail_start = max(0, size - _EOCD_SEARCH)
    fh.seek(tail_start)
    tail = fh.read(_EOCD_SEARCH)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        raise PackageError("not a zip archive (no end record)")
    _, disk, cd_disk, disk_entries, entries, cd_size, _, _ = _EOCD.unpack_from(tail, at)
    end_record = tail_start + at
    if end_record >= 20:  # a zip64 locator would override the counts checked here
        fh.seek(end_record - 20)
        if fh.read(4) == b"PK\x06\x07":
            raise PackageError("zip64 archives are not packages")
    if (disk, cd_disk, disk_entries, entries) != (0, 0, len(MEMBERS), len(MEMBERS)):
        raise PackageError(f"the archive announces {entries} members, a package has {len(MEMBERS)}")
    if cd_size > MAX_DIRECTORY_BYTES:
        raise PackageError(f"the archive's directory is too large ({cd_size} bytes)")
    fh.seek(0)


def _check_members(archive: zipfile.ZipFile) -> None:
    infos = archive.infolist()
    names = [i.filename for i in infos]
    if len(infos) != len(MEMBERS) or sorted(names) != sorted(MEMBERS):
        shown = ", ".join(n[:60] for n in names[:10])
        raise PackageError(f"unexpected members (want exactly {', '.join(MEMBERS)}; found {shown})")
    for info in infos:
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise PackageError(f"{info.filename} is a link")
        if info.flag_bits & 0x1:
            raise PackageError(f"{info.filename} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PackageError(f"{info.filename} uses an unsupported compression")
        if info.file_size > MAX_MEMBER_BYTES:
            raise PackageError(f"{info.filename} is too large ({info.file_size} bytes)")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
            raise PackageError(f"{info.filename} looks like a compression bomb")


def _stream(archive: zipfile.ZipFile, name: str, limit: int) -> Iterator[bytes]:
    """The member's bytes in blocks; refuses it as soon as more than `limit` bytes come out."""
    got = 0
    with archive.open(name) as member:
        while block := member.read(min(BLOCK, limit + 1 - got)):
            got += len(block)
            if got > limit:
                raise PackageError(f"{name} is larger than {limit} bytes")
            yield block


def _read_small(archive: zipfile.ZipFile, name: str, cap: int) -> bytes:
    return b"".join(_stream(archive, name, cap))


def _read_member(archive: zipfile.ZipFile, name: str, member: dict, keep: bool) -> bytearray | None:
    """Stream a payload member within its signed size; check size and digest; keep the bytes
    only if asked (and only once they are known to be the signed ones)."""
    digest, data, got = hashlib.sha256(), bytearray() if keep else None, 0
    for block in _stream(archive, name, member["size"]):
        digest.update(block)
        got += len(block)
        if data is not None:
            data += block
    if got != member["size"]:
        raise PackageError(f"{name} has {got} bytes, its manifest says {member['size']}")
    if digest.hexdigest() != member["sha256"]:
        raise PackageError(f"{name} does not match its checksum (tampered?)")
    return data


def read_package(
    path: Path,
    trusted_keys: list,
    *,
    load: bool = True,
    check: Callable[[dict], None] | None = None,
) -> Package:
    """Open, check and verify a package; its content is returned only if all is well.

    Args:
        path: the .vkp file.
        trusted_keys: public keys whose signature is accepted.
        load: False only verifies (streams and hashes) and returns no chunks.
        check: called with the verified manifest before the payload is read, to refuse a
            package that is validly signed but not the one expected (raise PackageError).

    Raises:
        PackageError: not a package, truncated, tampered, unsigned or signed by an unknown key.
    """
    try:
        with path.open("rb") as fh:
            _check_directory(fh)
            with zipfile.ZipFile(fh) as archive:
                _check_members(archive)
                manifest_bytes = _read_small(archive, "manifest.json", MAX_MANIFEST_BYTES)
                signature = _read_small(archive, "manifest.sig", MAX_SIGNATURE_BYTES)
                manifest = _verified_manifest(manifest_bytes, signature, trusted_keys)
                if check is not None:
                    check(manifest)
                data = {
                    name: _read_member(archive, name, manifest["members"][name], load)
                    for name in ("chunks.jsonl", "vectors.f32")
                }
    except PackageError as exc:
        raise PackageError(f"{path.name}: {exc}") from None
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, ValueError) as exc:
        raise PackageError(
            f"{path.name} is not a complete package (truncated or damaged): {exc}"
        ) from exc
    except (zipfile.LargeZipFile, OSError, EOFError, struct.error) as exc:
        raise PackageError(f"{path.name} cannot be read: {exc}") from exc
    chunks = _parse(path, manifest, data) if load else []
    return Package(manifest, manifest_bytes, signature, chunks)


def _verified_manifest(manifest_bytes: bytes, signature: bytes, trusted_keys: list) -> dict:
    from engine.vkp.keys import MANIFEST, verify

    if not verify(MANIFEST + manifest_bytes, signature, trusted_keys):
        raise PackageError("the signature does not match any trusted key")
    try:
        manifest = json.loads(manifest_bytes)
    except (ValueError, RecursionError) as exc:
        raise PackageError(f"the signed manifest is not JSON: {exc}") from None
    return check_manifest(manifest)


def _parse(path: Path, manifest: dict, data: dict) -> list[StoredChunk]:
    try:
        lines = [json.loads(line) for line in data["chunks.jsonl"].decode().splitlines() if line]
        if len(lines) != manifest["chunk_count"]:
            raise ValueError("chunk count differs from the manifest")
        dimension = manifest["embedding"]["dimension"]
        vectors = np.frombuffer(bytes(data["vectors.f32"]), dtype="<f4")
        vectors = vectors.reshape(len(lines), dimension)
        chunks = [
            StoredChunk(c["id"], c["text"], c["metadata"], vectors[i].tolist())
            for i, c in enumerate(lines)
        ]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise PackageError(f"{path.name}: the signed content is malformed: {exc}") from None
    for c in chunks:
        if not (isinstance(c.id, str) and isinstance(c.text, str) and isinstance(c.metadata, dict)):
            raise PackageError(f"{path.name}: a chunk is not {{id, text, metadata}}")
    return chunks


def save_chunks(folder: Path, chunks: list[StoredChunk]) -> None:
    """Keep an installed version's exact chunks (Chroma's copy of a vector may differ in its
    last bits, so deltas are applied to this copy, never to what Chroma returns)."""
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as fh:
        for c in chunks:
            fh.write(
                json.dumps({"id": c.id, "text": c.text, "metadata": c.metadata}, ensure_ascii=False)
                + "\n"
            )
    np.asarray([c.vector for c in chunks], dtype="<f4").tofile(tmp / "vectors.f32")
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)


def load_chunks(folder: Path) -> list[StoredChunk]:
    lines = [
        json.loads(line)
        for line in (folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    vectors = (
        np.fromfile(folder / "vectors.f32", dtype="<f4").reshape(len(lines), -1) if lines else []
    )
    return [
        StoredChunk(c["id"], c["text"], c["metadata"], vectors[i].tolist())
        for i, c in enumerate(lines)
    ]
