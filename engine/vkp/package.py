"""The .vkp file: a zip with exactly four members, checked before anything is trusted.

    manifest.json   format, subject, grade, version, kind (full|delta), base version, model,
                    documents (with sha256), chunk count, removed ids, sha256 of every member
    manifest.sig    Ed25519 signature of manifest.json's bytes
    chunks.jsonl    one {"id", "text", "metadata"} per line (deflated)
    vectors.f32     the chunks' vectors, float32 little-endian, in the same order (stored)

Reading never extracts to disk: members are read by their fixed names, so no path in the
archive can escape anywhere. Links, unknown or duplicate members, oversized members and
compression bombs are refused before their content is read.
"""

from __future__ import annotations

import hashlib
import json
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
MEMBERS = ("manifest.json", "manifest.sig", "chunks.jsonl", "vectors.f32")
MAX_MEMBER_BYTES = 2 * 1024**3
MAX_RATIO = 200  # uncompressed / compressed


class PackageError(Exception):
    """A package that must not be installed: the message says why."""


@dataclass
class Chunk:
    id: str
    text: str
    metadata: dict
    vector: list[float]


@dataclass
class Package:
    manifest: dict
    manifest_bytes: bytes
    signature: bytes
    chunks: list[Chunk]


def content_digest(chunks: list[Chunk]) -> str:
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


def chunk_digest(chunk: Chunk) -> str:
    return content_digest([chunk])


def package_name(subject: str, grade: str, version: str, base: str | None = None) -> str:
    if base:
        return f"{subject}_{grade}_v{base}_to_v{version}.vkp"
    return f"{subject}_{grade}_v{version}.vkp"


def write_package(path: Path, manifest: dict, chunks: list[Chunk], sign) -> Path:
    """Write a package atomically (`.tmp` then rename). `sign(bytes) -> bytes`."""
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
            "chunks.jsonl": hashlib.sha256(lines).hexdigest(),
            "vectors.f32": hashlib.sha256(vectors).hexdigest(),
        },
    }
    manifest_bytes = json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=1).encode()
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(tmp, "w") as archive:
        archive.writestr("manifest.json", manifest_bytes, zipfile.ZIP_DEFLATED)
        archive.writestr("manifest.sig", sign(manifest_bytes), zipfile.ZIP_STORED)
        archive.writestr("chunks.jsonl", lines, zipfile.ZIP_DEFLATED)
        archive.writestr("vectors.f32", vectors, zipfile.ZIP_STORED)
    tmp.replace(path)
    return path


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
        if info.file_size > MAX_MEMBER_BYTES:
            raise PackageError(f"{info.filename} is too large ({info.file_size} bytes)")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
            raise PackageError(f"{info.filename} looks like a compression bomb")


def read_package(path: Path, trusted_keys: list) -> Package:
    """Open, check and verify a package; its content is returned only if all is well.

    Raises:
        PackageError: not a package, truncated, tampered, unsigned or signed by an unknown key.
    """
    from engine.vkp.keys import verify

    try:
        with zipfile.ZipFile(path) as archive:
            _check_members(archive)
            data = {name: archive.read(name) for name in MEMBERS}
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, ValueError) as exc:
        raise PackageError(
            f"{path.name} is not a complete package (truncated or damaged): {exc}"
        ) from exc
    except (zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise PackageError(f"{path.name} cannot be read: {exc}") from exc
    if not verify(data["manifest.json"], data["manifest.sig"], trusted_keys):
        raise PackageError(f"{path.name}: the signature does not match any trusted key")
    manifest = json.loads(data["manifest.json"])
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PackageError(f"{path.name}: unsupported format {manifest.get('format_version')}")
    for name in ("chunks.jsonl", "vectors.f32"):
        if hashlib.sha256(data[name]).hexdigest() != manifest["members"][name]:
            raise PackageError(f"{path.name}: {name} does not match its checksum (tampered?)")
    lines = [json.loads(line) for line in data["chunks.jsonl"].decode().splitlines() if line]
    dimension = manifest["embedding"]["dimension"]
    vectors = np.frombuffer(data["vectors.f32"], dtype="<f4")
    if len(lines) != manifest["chunk_count"] or vectors.size != len(lines) * dimension:
        raise PackageError(f"{path.name}: chunk and vector counts disagree with the manifest")
    vectors = vectors.reshape(len(lines), dimension)
    chunks = [
        Chunk(c["id"], c["text"], c["metadata"], vectors[i].tolist()) for i, c in enumerate(lines)
    ]
    return Package(manifest, data["manifest.json"], data["manifest.sig"], chunks)


def save_chunks(folder: Path, chunks: list[Chunk]) -> None:
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


def load_chunks(folder: Path) -> list[Chunk]:
    lines = [
        json.loads(line)
        for line in (folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    vectors = (
        np.fromfile(folder / "vectors.f32", dtype="<f4").reshape(len(lines), -1) if lines else []
    )
    return [
        Chunk(c["id"], c["text"], c["metadata"], vectors[i].tolist()) for i, c in enumerate(lines)
    ]
