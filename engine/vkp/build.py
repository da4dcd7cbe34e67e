"""Building packages on the admin side: next version, full file, delta from the last one.

Versioning is automatic: a new embedding model is a major bump, added/changed/removed
documents a minor bump, the same documents chunked differently a patch; nothing changed is
refused. What each version held (chunk digests) is kept in `<data>/vkp/built/<package>.json`
so the next build can make a delta without the old file.

A build holds the data dir's writer lock (`engine.locking.writer_lock`), the one ingestion
takes, so a package never mixes old and new chunks of a file being re-ingested.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from engine.locking import writer_lock
from engine.settings import Settings
from engine.store.chroma import ChunkStore
from engine.vkp.manifest import package_file, package_key, version_key
from engine.vkp.package import chunk_digest, content_digest, write_package


class NothingToBuild(Exception):
    """The grade/subject has not changed since the last package (or has no chunks)."""


@dataclass
class Built:
    package: str
    version: str
    file: str
    size: int
    delta_file: str | None = None
    delta_size: int | None = None
    base_version: str | None = None
    chunks: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _bump(previous: dict | None, model_key: str, documents: dict, digests: dict) -> str:
    if previous is None:
        return "1.0.0"
    major, minor, patch = version_key(previous["version"])
    if previous["model_key"] != model_key:
        return f"{major + 1}.0.0"
    if previous["documents"] != documents:
        return f"{major}.{minor + 1}.0"
    if previous["digests"] != digests:
        return f"{major}.{minor}.{patch + 1}"
    raise NothingToBuild(f"nothing changed since v{previous['version']}; no new version built")


class PackageBuilder:
    def __init__(self, settings: Settings, store: ChunkStore, preferred_model_key: str, sign):
        self.settings = settings
        self.store = store
        self.preferred_model_key = preferred_model_key
        self.sign = sign
        self.folder = settings.vkp_dir / "built"

    def history(self, package: str) -> list[dict]:
        """What was built for `package` (a `package_key`), oldest first."""
        path = self.folder / f"{package}.json"
        return json.loads(path.read_text()) if path.exists() else []

    def build(self, subject: str, grade: str) -> Built:
        """Build the next version of grade/subject (raises `BadName` for invalid names)."""
        package = package_key(grade, subject)
        with writer_lock(self.settings.run_dir):
            return self._build(package, subject, grade)

    def _build(self, package: str, subject: str, grade: str) -> Built:
        collections = self.store.collections(grade, subject)
        collections = [c for c in collections if not c.vkp_version]
        if not collections:
            raise NothingToBuild(f"nothing is ingested for {grade}/{subject}")
        collection = next(
            (c for c in collections if c.model_key == self.preferred_model_key), collections[0]
        )
        chunks = self.store.get_chunks(collection.name)
        chunks.sort(key=lambda c: c.id)
        documents = {c.meta.file_sha256: c.meta.source for c in chunks}
        digests = {c.id: chunk_digest(c) for c in chunks}
        # before names were unambiguous, history was kept as `<subject>_<grade>.json`
        history = self.history(package) or self.history(f"{subject}_{grade}")
        previous = history[-1] if history else None
        version = _bump(previous, collection.model_key, documents, digests)
        manifest = {
            "subject": subject,
            "grade": grade,
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "embedding": {
                "model_id": collection.model_id,
                "model_key": collection.model_key,
                "dimension": len(chunks[0].vector),
            },
            "documents": sorted(
                (
                    {
                        "file": name,
                        "sha256": sha,
                        "chunks": sum(1 for c in chunks if c.meta.file_sha256 == sha),
                    }
                    for sha, name in documents.items()
                ),
                key=lambda d: d["file"],
            ),
            "total_chunk_count": len(chunks),
            "content_digest": content_digest(chunks),
        }
        full = write_package(
            self.folder / package_file(grade, subject, version),
            manifest | {"kind": "full"},
            chunks,
            self.sign,
        )
        built = Built(package, version, full.name, full.stat().st_size, chunks=len(chunks))
        if previous and previous["model_key"] == collection.model_key:
            changed = [c for c in chunks if previous["digests"].get(c.id) != digests[c.id]]
            removed = sorted(set(previous["digests"]) - set(digests))
            delta = write_package(
                self.folder / package_file(grade, subject, version, previous["version"]),
                manifest
                | {"kind": "delta", "base_version": previous["version"], "removed_ids": removed},
                changed,
                self.sign,
            )
            built.delta_file, built.delta_size = delta.name, delta.stat().st_size
            built.base_version = previous["version"]
        history.append(
            {
                "version": version,
                "model_key": collection.model_key,
                "documents": documents,
                "digests": digests,
                "file": full.name,
                "delta_file": built.delta_file,
            }
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"{package}.json.tmp"
        tmp.write_text(json.dumps(history[-self.settings.vkp_keep_versions :]))
        tmp.replace(self.folder / f"{package}.json")
        return built
