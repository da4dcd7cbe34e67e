"""Installing packages on a school server, atomically, with rollback.

A new version is loaded into a collection of its own beside the installed one; only when it
is complete and its content digest matches the manifest does one SQLite transaction switch
the installed pointer, the catalogue rows and the lexical index to it. Any failure before
that leaves the installed version serving queries and removes the half-built collection.
The previous version's collection is kept for `rollback`.

Installing a version older than the installed one is refused unless the caller passes
`allow_downgrade` (`nexus vkp install|pull --allow-downgrade`); `rollback` is the everyday
way back. A caller that knows which package it expects (pull, from the signed catalogue)
passes `expected`, and a validly signed package of another subject, grade, version or kind
is refused before its content is read.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from engine.documents.catalog import Catalog, documents_from_chunks
from engine.names import BadName, check_grade_subject
from engine.search.lexical.index import LexicalIndex
from engine.search.lexical.rows import LexicalChunk
from engine.store.chroma import ChunkStore, vkp_collection_name
from engine.store.chunks import StoredChunk
from engine.util import utc_now
from engine.vkp.manifest import check_version, package_key, version_key
from engine.vkp.package import (
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
        trusted_keys: list | Callable[[], list],
        folder: Path,
        lock: Callable[[], AbstractContextManager] = nullcontext,
    ):
        self.lock = lock  # the ingestion lock: an install never interleaves with a job
        self.folder = folder  # exact chunks of installed versions, applied deltas start from these
        self.store = store
        self.catalog = catalog
        self.lexical = lexical
        self._trusted_keys = trusted_keys

    @property
    def trusted_keys(self) -> list:
        """The keys packages must be signed with; read only when a package or catalogue is
        checked, so a damaged key file stops installs, never searches of what is installed."""
        keys = self._trusted_keys
        return keys() if callable(keys) else keys

    def installed(self) -> dict[str, Installed]:
        """Installed packages by `<grade>__<subject>` (rows stored under the old
        `<subject>_<grade>` names are found by their grade and subject, and renamed by the
        next install or rollback)."""
        rows = self.catalog.conn.execute("SELECT * FROM vkp_installed ORDER BY package")
        found = {}
        for row in rows:
            record = Installed(**dict(row))
            try:
                found[package_key(record.grade, record.subject)] = record
            except BadName:
                found[record.package] = record
        return found

    def active_collections(self) -> set[str]:
        return {i.collection for i in self.installed().values()}

    def verify(self, path: Path) -> dict:
        """The manifest of a package that passes every check (raises PackageError otherwise).

        Members are streamed and hashed, never held, so memory stays small for any file."""
        return read_package(path, self.trusted_keys, load=False).manifest

    def install(
        self, path: Path, expected: dict | None = None, allow_downgrade: bool = False
    ) -> Installed:
        """Install a package file.

        Args:
            path: the .vkp file.
            expected: manifest values the package must have (grade, subject, version, kind,
                base_version), e.g. what the catalogue promised; others are refused.
            allow_downgrade: install even if it is older than the installed version.

        Raises:
            PackageError: the package is refused (the message says why); nothing changed.
        """
        with self.lock():
            return self._install(path, expected, allow_downgrade)

    def _install(self, path: Path, expected: dict | None, allow_downgrade: bool) -> Installed:
        installed = self.installed()

        def check(manifest: dict) -> None:
            for key, value in (expected or {}).items():
                if manifest.get(key) != value:
                    raise PackageError(
                        f"the catalogue promised {key} {value!r}, the package has"
                        f" {str(manifest.get(key))[:40]!r}"
                    )
            current = installed.get(package_key(manifest["grade"], manifest["subject"]))
            have = current.version if current else None
            if manifest["kind"] == "delta" and have != manifest["base_version"]:
                raise PackageError(
                    f"it updates v{manifest['base_version']} but"
                    f" {f'v{have}' if have else 'nothing'} is installed;"
                    " install the full package instead"
                )
            if current is None:
                return
            if current.version == manifest["version"]:
                raise PackageError(f"v{current.version} of {current.package} is already installed")
            older = version_key(manifest["version"]) < version_key(current.version)
            if older and not allow_downgrade:
                raise PackageError(
                    f"v{manifest['version']} is older than the installed v{current.version}:"
                    " refused (use `nexus vkp rollback`, or --allow-downgrade to install it)"
                )

        package = read_package(path, self.trusted_keys, check=check)
        manifest = package.manifest
        name = package_key(manifest["grade"], manifest["subject"])
        current = installed.get(name)
        chunks = package.chunks
        if manifest["kind"] == "delta":  # its base is the installed version (checked above)
            try:  # current.package: the name it was installed under (maybe an old one)
                base = {c.id: c for c in load_chunks(self._state(current.package, current.version))}
            except FileNotFoundError:
                raise PackageError(
                    f"the exact chunks of the installed v{current.version} are missing;"
                    " install the full package instead"
                ) from None
            for removed in manifest["removed_ids"]:
                base.pop(removed, None)
            base.update({c.id: c for c in chunks})
            chunks = list(base.values())
        if content_digest(chunks) != manifest["content_digest"]:
            raise PackageError(
                f"{path.name} does not produce the collection its manifest describes"
            )
        return self._switch(name, manifest, chunks, current)

    def _switch(
        self, name: str, manifest: dict, chunks: list[StoredChunk], current: Installed | None
    ) -> Installed:
        grade, subject, model = manifest["grade"], manifest["subject"], manifest["embedding"]
        stored = chunks
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
        keep_states = {
            self._state(name, v).name for v in (record.version, record.previous_version) if v
        }
        for state in self.folder.glob(f"{name}-v*"):
            if state.name not in keep_states:
                shutil.rmtree(state, ignore_errors=True)
        log.info("installed %s v%s", name, record.version)
        return record

    def rollback(self, subject: str, grade: str) -> Installed:
        """Go back to the previously installed version (kept beside the current one)."""
        with self.lock():
            return self._rollback(subject, grade)

    def _rollback(self, subject: str, grade: str) -> Installed:
        try:
            check_grade_subject(grade, subject)
        except BadName as exc:
            raise PackageError(str(exc)) from None
        name = package_key(grade, subject)
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
        # name is a package_key (no "-"), version MAJOR.MINOR.PATCH: `<name>-v*` globs only it
        return self.folder / f"{name}-v{check_version(version)}"

    def _count(self, collection: str) -> int:
        return next(c.count for c in self.store.collections() if c.name == collection)

    def _point(self, record: Installed, stored: list[StoredChunk]) -> None:
        """One transaction: the installed pointer, the catalogue rows, the lexical index."""
        prefix = f"vkp://{record.package}/"
        with self.catalog.transaction():
            self._forget_old_names(record)
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
            self._remove_documents(record, record.package)
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
                    [LexicalChunk.of(c) for c in chunks],
                )

    def _forget_old_names(self, record: Installed) -> None:
        """Drop the row and documents of this grade/subject stored under an old name."""
        old_names = self.catalog.conn.execute(
            "SELECT package FROM vkp_installed WHERE grade = ? AND subject = ? AND package != ?",
            (record.grade, record.subject, record.package),
        ).fetchall()
        for (old,) in old_names:
            self._remove_documents(record, old)
            self.catalog.conn.execute("DELETE FROM vkp_installed WHERE package = ?", (old,))

    def _remove_documents(self, record: Installed, package: str) -> None:
        """Drop the catalogue rows and lexical entries of the documents installed as `package`
        (inside the caller's transaction)."""
        prefix = f"vkp://{package}/"
        for (sha,) in self.catalog.conn.execute(
            "SELECT sha256 FROM documents WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
        ).fetchall():
            self.lexical.remove(record.grade, record.subject, sha)
        self.catalog.conn.execute(
            "DELETE FROM documents WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
        )
