"""Installing packages on a school server, atomically, with rollback.

A new version is loaded into a collection of its own beside the installed one; only when it
is complete and its content digest matches the manifest does one SQLite transaction switch
the installed pointer, the catalogue rows and the lexical index to it. Any failure before
that leaves the installed version serving queries and removes the half-built collection.
The previous version's collection is kept for `rollback`.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.catalog import Catalog, documents_from_chunks
from engine.ingest.records import lexical_chunk
from engine.jobs.base import utc_now
from engine.lexical.index import LexicalIndex
from engine.store.chroma import ChunkStore, StoredChunk, vkp_collection_name
from engine.vkp.package import (
    Chunk,
    PackageError,
    content_digest,
    load_chunks,
    read_package,
    save_chunks,
)

log = logging.getLogger(__name__)


@dataclass
class Installed:
    package: str
    subject: str
    grade: str
    version: str
    collection: str
    previous_version: str | None
    previous_collection: str | None
    installed_at: str


class PackageInstaller:
    def __init__(
        self,
        store: ChunkStore,
        catalog: Catalog,
        lexical: LexicalIndex,
        trusted_keys: list,
        folder: Path,
    ):
        self.folder = folder  # exact chunks of installed versions, applied deltas start from these
        self.store = store
        self.catalog = catalog
        self.lexical = lexical
        self.trusted_keys = trusted_keys

    def installed(self) -> dict[str, Installed]:
        rows = self.catalog.conn.execute("SELECT * FROM vkp_installed ORDER BY package")
        return {r["package"]: Installed(**dict(r)) for r in rows}

    def active_collections(self) -> set[str]:
        return {i.collection for i in self.installed().values()}

    def verify(self, path: Path) -> dict:
        """The manifest of a package that passes every check (raises PackageError otherwise)."""
        return read_package(path, self.trusted_keys).manifest

    def install(self, path: Path) -> Installed:
        package = read_package(path, self.trusted_keys)
        manifest = package.manifest
        name = f"{manifest['subject']}_{manifest['grade']}"
        current = self.installed().get(name)
        chunks = package.chunks
        if manifest["kind"] == "delta":
            if current is None or current.version != manifest["base_version"]:
                have = current.version if current else "nothing"
                raise PackageError(
                    f"{path.name} updates v{manifest['base_version']} but v{have} is installed; "
                    "install the full package instead"
                )
            base = {c.id: c for c in load_chunks(self._state(name, current.version))}
            for removed in manifest["removed_ids"]:
                base.pop(removed, None)
            base.update({c.id: c for c in chunks})
            chunks = list(base.values())
        if content_digest(chunks) != manifest["content_digest"]:
            raise PackageError(
                f"{path.name} does not produce the collection its manifest describes"
            )
        if current and current.version == manifest["version"]:
            raise PackageError(f"v{manifest['version']} of {name} is already installed")
        return self._switch(name, manifest, chunks, current)

    def _switch(
        self, name: str, manifest: dict, chunks: list[Chunk], current: Installed | None
    ) -> Installed:
        grade, subject, model = manifest["grade"], manifest["subject"], manifest["embedding"]
        stored = [StoredChunk(c.id, c.text, c.metadata, c.vector) for c in chunks]
        collection = vkp_collection_name(grade, subject, model["model_key"], manifest["version"])
        self.store.drop(collection)  # a retry after a failed attempt starts clean
        try:
            self.store.add(
                grade, subject, model["model_id"], model["model_key"], stored, manifest["version"]
            )
            if self._count(collection) != len(stored):
                raise PackageError("the new collection is incomplete")
        except Exception:
            self.store.drop(collection)
            raise
        record = Installed(
            name,
            subject,
            grade,
            manifest["version"],
            collection,
            current.version if current else None,
            current.collection if current else None,
            utc_now(),
        )
        save_chunks(self._state(name, record.version), chunks)
        self._point(record, stored)
        keep = {record.collection, record.previous_collection}
        for info in self.store.collections(grade, subject):  # current and previous only
            if info.vkp_version and info.name not in keep:
                self.store.drop(info.name)
        keep_states = {self._state(name, v).name for v in (record.version, record.previous_version)}
        for state in self.folder.glob(f"{name}-v*"):
            if state.name not in keep_states:
                shutil.rmtree(state, ignore_errors=True)
        log.info("installed %s v%s", name, record.version)
        return record

    def rollback(self, subject: str, grade: str) -> Installed:
        name = f"{subject}_{grade}"
        current = self.installed().get(name)
        if current is None or not current.previous_collection:
            raise PackageError(f"{name} has no previous version to roll back to")
        stored = self.store.get_chunks(current.previous_collection)
        record = Installed(
            name,
            subject,
            grade,
            current.previous_version,
            current.previous_collection,
            current.version,
            current.collection,
            utc_now(),
        )
        self._point(record, stored)
        return record

    def _state(self, name: str, version: str) -> Path:
        return self.folder / f"{name}-v{version}"

    def _count(self, collection: str) -> int:
        return next(c.count for c in self.store.collections() if c.name == collection)

    def _point(self, record: Installed, stored: list[StoredChunk]) -> None:
        """One transaction: the installed pointer, the catalogue rows, the lexical index."""
        prefix = f"vkp://{record.package}/"
        with self.catalog.transaction():
            self.catalog.conn.execute(
                "INSERT OR REPLACE INTO vkp_installed VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.package,
                    record.subject,
                    record.grade,
                    record.version,
                    record.collection,
                    record.previous_version,
                    record.previous_collection,
                    record.installed_at,
                ),
            )
            for old in self.catalog.conn.execute(
                "SELECT sha256 FROM documents WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
            ).fetchall():
                self.lexical.remove(record.grade, record.subject, old[0])
            self.catalog.conn.execute(
                "DELETE FROM documents WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
            )
            for document, chunks in documents_from_chunks(
                stored,
                folder=prefix,
                grade=record.grade,
                subject=record.subject,
                collection=record.collection,
            ):
                self.catalog.put(document)
                self.lexical.add(
                    record.grade,
                    record.subject,
                    document.sha256,
                    [lexical_chunk(c) for c in chunks],
                )
