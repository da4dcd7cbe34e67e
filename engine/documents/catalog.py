"""The catalogue of documents the engine knows: path → sha256, status, and its collection.

It is how the engine decides that a file is unchanged (skip), changed (replace its chunks),
deleted (remove its chunks) or a duplicate of a file already ingested in the same grade/subject.

Paths are stored relative to the inbox (`kelas_10/ipa/bab1.pdf`), so a data dir copied,
restored or mounted elsewhere keeps its library: callers still see and pass full path keys
(`engine.paths.path_key`), made from wherever the inbox is now. Files ingested from
outside the inbox keep their full key, and installed packages their `vkp://` key.
Databases written before relative keys are adopted once by `adopt_paths`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from engine import db
from engine.paths import path_for_key, path_key
from engine.store.chunks import CONTENT_PREFIX, content_of
from engine.util import sha256_file, utc_now

log = logging.getLogger(__name__)


@dataclass
class Document:
    path: str
    grade: str
    subject: str
    file_name: str
    sha256: str
    size: int
    status: str
    reason: str = ""
    pages: int = 0
    chunks: int = 0
    collection: str = ""
    updated_at: str = ""


def documents_from_chunks(
    chunks: list, *, folder: str, grade: str, subject: str, collection: str
) -> list[tuple[Document, list]]:
    """Catalogue rows for stored chunks, one per document (grouped by file sha256), each
    with its chunks. `folder` is the path prefix the documents are listed under."""
    by_document: dict[str, list] = {}
    for chunk in chunks:
        by_document.setdefault(chunk.meta.file_sha256, []).append(chunk)
    rows = []
    for sha, doc_chunks in by_document.items():
        source = doc_chunks[0].meta.source
        document = Document(
            path=f"{folder}{source}",
            grade=grade,
            subject=subject,
            file_name=source,
            sha256=sha,
            size=0,
            status="ingested",
            pages=max(c.meta.page_end for c in doc_chunks),
            chunks=len(doc_chunks),
            collection=collection,
        )
        rows.append((document, doc_chunks))
    return rows


def document_id(doc: Document) -> str:
    """A document's public id: the first 16 hex digits of the SHA-256 of its catalogue key (its
    path), so it stays the same across restarts and re-ingests and says nothing about the
    server's folders."""
    return hashlib.sha256(doc.path.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Catalog:
    """Documents table of the engine's SQLite database.

    Args:
        database: the engine database.
        inbox: the inbox that relative keys are relative to (None: keys are stored as given).
    """

    def __init__(self, database: db.Database, inbox: Path | None = None):
        self.db = database
        self._prefix = path_key(inbox.resolve()).rstrip("/") + "/" if inbox else None

    def _stored(self, key: str) -> str:
        """The form of path key `key` kept in the table."""
        if self._prefix and key.startswith(self._prefix):
            return key[len(self._prefix) :]
        return key

    def _full(self, stored: str) -> str:
        """The full path key of a stored path, as callers see it."""
        if not self._prefix or stored.startswith("/") or "://" in stored:
            return stored
        return self._prefix + stored

    def _document(self, row) -> Document:
        document = Document(**dict(row))
        document.path = self._full(document.path)
        return document

    @property
    def conn(self):
        """This thread's connection: the writer inside `transaction()`, else read-only."""
        return self.db.conn

    def get(self, path: str) -> Document | None:
        row = self.conn.execute(
            "SELECT * FROM documents WHERE path = ?", (self._stored(path),)
        ).fetchone()
        return self._document(row) if row else None

    def put(self, doc: Document) -> None:
        doc.updated_at = utc_now()
        data = vars(doc) | {"path": self._stored(doc.path)}
        with self.db.write() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO documents ({', '.join(data)}) "
                f"VALUES ({', '.join(':' + k for k in data)})",
                data,
            )

    def remove(self, path: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM documents WHERE path = ?", (self._stored(path),))

    def stored_copy(self, grade: str, subject: str, sha256: str, exclude: str) -> Document | None:
        """Another document of this grade/subject with the same content, already ingested."""
        row = self.conn.execute(
            "SELECT * FROM documents WHERE grade = ? AND subject = ? AND sha256 = ? "
            "AND path != ? AND status = 'ingested' LIMIT 1",
            (grade, subject, sha256, self._stored(exclude)),
        ).fetchone()
        return self._document(row) if row else None

    def copies(self, grade: str, subject: str, sha256: str) -> list[Document]:
        """Every document of this grade/subject with this content."""
        rows = self.conn.execute(
            "SELECT * FROM documents WHERE grade = ? AND subject = ? AND sha256 = ? ORDER BY path",
            (grade, subject, sha256),
        )
        return [self._document(r) for r in rows]

    def with_content(self, grade: str, subject: str, prefix: str) -> list[Document]:
        """Documents of a grade/subject whose sha256 starts with `prefix`, the start of a chunk
        id (exactly CONTENT_PREFIX hex digits, anything else matches nothing), by full path: a
        range on the (grade, subject, sha256) index, never a scan."""
        if len(prefix) != CONTENT_PREFIX or prefix.strip("0123456789abcdef"):
            return []
        rows = self.conn.execute(
            "SELECT * FROM documents WHERE grade = ? AND subject = ? AND sha256 >= ?"
            " AND sha256 < ?",
            (grade, subject, prefix, prefix + "g"),
        ).fetchall()
        # sorted by the full key, as callers see paths (stored keys are inbox-relative)
        return sorted((self._document(row) for row in rows), key=lambda d: d.path)

    def document_id_of(self, grade: str, subject: str, chunk_id: str) -> str | None:
        """The id of the ingested document a chunk came from (identical copies share chunks:
        the first by path), or None for a package's chunk."""
        try:
            documents = self.with_content(grade, subject, content_of(chunk_id))
        except sqlite3.Error:  # naming the document must never cost the search its answer
            log.warning("no document id for %s: the catalogue cannot be read", chunk_id)
            return None
        for document in documents:
            if document.status == "ingested":
                return document_id(document)
        return None

    def transaction(self):
        """Group writes (catalogue and lexical index) so a crash keeps all or none."""
        return self.db.write()

    def referenced_shas(self, collection: str) -> set[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT sha256 FROM documents WHERE collection = ? AND status = 'ingested'",
            (collection,),
        ).fetchall()
        return {r[0] for r in rows}

    def paths_under(self, root: Path) -> list[str]:
        """Full keys (see `engine.paths.path_key`) of the documents below folder `root`."""
        prefix = self._stored(path_key(root.resolve()).rstrip("/") + "/")
        if prefix:
            rows = self.conn.execute(
                "SELECT path FROM documents WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
            )
        else:  # the inbox itself: every relative key
            rows = self.conn.execute(
                "SELECT path FROM documents WHERE path NOT LIKE '/%' AND path NOT LIKE '%://%'"
            )
        return [self._full(r[0]) for r in rows.fetchall()]

    def all(self) -> list[Document]:
        rows = self.conn.execute("SELECT * FROM documents ORDER BY grade, subject, path")
        return [self._document(r) for r in rows]

    def adopt_paths(self, inbox: Path) -> int:
        """Store full paths of an older database relative to `inbox`; returns how many.

        A row is adopted when its path lies under today's inbox, or when the data dir was
        moved or copied before this version: the path lies under another inbox
        (`…/<grade>/<subject>/…`) and today's inbox holds the same relative file, either with
        the old one gone or with the very content the row recorded (a copy whose original
        is still there). Anything else (files ingested from outside the inbox) keeps its
        full path.
        """
        adopted = []
        for path, grade, subject, sha256 in self.conn.execute(
            "SELECT path, grade, subject, sha256 FROM documents WHERE path LIKE '/%'"
        ).fetchall():
            relative = self._stored(path)
            if relative == path:
                relative = self._moved_here(path, grade, subject, sha256)
                if relative is None:
                    continue
            adopted.append((relative, path))
        if adopted:
            with self.db.write() as conn:
                conn.executemany("UPDATE OR IGNORE documents SET path = ? WHERE path = ?", adopted)
        return len(adopted)

    def _moved_here(self, path: str, grade: str, subject: str, sha256: str) -> str | None:
        """The relative key of a document catalogued under another inbox whose file is in
        today's inbox, or None."""
        marker = path.rfind(f"/{grade}/{subject}/")
        if marker < 0:
            return None
        candidate = path[marker + 1 :]
        here = path_for_key(self._full(candidate))
        if not here.is_file() or here.is_symlink():
            return None
        if not os.path.lexists(path_for_key(path)):
            return candidate
        try:
            return candidate if sha256_file(here) == sha256 else None
        except OSError:
            return None
