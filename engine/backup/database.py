"""What a staged backup's database and collections must be before a restore reads them.

`nexus.db` must be an undamaged SQLite database whose schema is exactly what this engine's
migrations make (each object's SQL compared, not only its name), with no triggers or views, and
whose trusted rows (installed packages, catalogue paths) are well formed; every collection
must load and be the collection its meta.json says.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path, PurePosixPath

from engine.backup.staging import META_CAP, BackupError, show

log = logging.getLogger(__name__)


def check_contents(staging: Path, manifest: dict) -> None:
    """What the restore will read is what it expects: a SQLite database, loadable collections."""
    from engine.store.chroma import collection_name, vkp_collection_name
    from engine.vkp.package import load_chunks

    db = staging / "nexus.db"
    with db.open("rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise BackupError("nexus.db in the backup is not an SQLite database")
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            conn.execute("PRAGMA trusted_schema = OFF")
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
        conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"nexus.db in the backup is damaged: {exc}") from exc
    if result != "ok":
        raise BackupError(f"nexus.db in the backup is damaged: {result}")
    _check_schema(db, staging)
    chroma = staging / "chroma"
    for folder in sorted(chroma.iterdir()) if chroma.exists() else []:
        meta_path = folder / "meta.json"
        if meta_path.stat().st_size > META_CAP:
            raise BackupError(f"{show(folder.name)}/meta.json is too large: refused")
        try:
            meta = json.loads(meta_path.read_bytes())
            fields = [meta[k] for k in ("grade", "subject", "model_key", "model_id")]
            version = meta.get("vkp_version") or ""
            if not all(isinstance(f, str) and f for f in fields) or not isinstance(version, str):
                raise ValueError("grade, subject, model_key and model_id must be text")
            grade, subject, model_key, _ = fields
            expected = (
                vkp_collection_name(grade, subject, model_key, version)
                if version
                else collection_name(grade, subject, model_key)
            )
            if expected != folder.name:
                raise ValueError(f"its meta.json describes collection {expected}")
            load_chunks(folder)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupError(
                f"collection {show(folder.name)} in the backup is damaged: {exc}"
            ) from exc


# SQLite's own tables that a database may gain by itself (ANALYZE, AUTOINCREMENT); any other
# object, whatever its name (`sqlite_x` can be planted with writable_schema), is compared.
_SQLITE_TABLES = {"sqlite_sequence", "sqlite_stat1", "sqlite_stat2", "sqlite_stat3", "sqlite_stat4"}


def _schema(conn: sqlite3.Connection) -> set[tuple[str, str, str, str]]:
    """Every schema object as (type, name, table, SQL with its spacing folded)."""
    rows = conn.execute("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master")
    return {
        (kind, name, table, " ".join(sql.split()))
        for kind, name, table, sql in rows
        if not (kind == "table" and name in _SQLITE_TABLES)
    }


def _reference_schema(staging: Path, version: int) -> set[tuple[str, str, str, str]]:
    """The schema this engine's migrations make at `version`, in an empty database."""
    from engine.db import migrate

    reference = staging / ".reference.db"
    fresh = sqlite3.connect(reference, isolation_level=None)
    try:
        migrate(fresh, upto=version)
        return _schema(fresh)
    finally:
        fresh.close()
        reference.unlink(missing_ok=True)


def _check_schema(db: Path, staging: Path) -> None:
    """Refuse a database whose schema is not exactly what this engine's migrations make.

    Each object's SQL is compared, not only its name: a table re-created under the same name
    with another constraint, default or collation (`CHECK (version = 'never')`) would pass a
    name check and break every later write. An older engine's backup (a lower
    `user_version`) is compared with the schema of that version; it is migrated on open.
    """
    from engine.db import MIGRATIONS

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.execute("PRAGMA trusted_schema = OFF")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        found = _schema(conn)
    conn.close()
    code = sorted(
        f"{kind} {show(name)}" for kind, name, _, _ in found if kind in ("trigger", "view")
    )
    if code:
        raise BackupError(f"nexus.db in the backup holds SQL that would run later: {code[:3]}")
    if not 1 <= version <= len(MIGRATIONS):
        raise BackupError(
            f"nexus.db in the backup has schema version {version}, this engine knows 1 to"
            f" {len(MIGRATIONS)}; restore with the engine version that made it"
        )
    expected = _reference_schema(staging, version)
    if found != expected:
        odd = sorted(f"{kind} {show(name)}" for kind, name, _, _ in found ^ expected)
        raise BackupError(
            f"nexus.db in the backup does not have this engine's schema (differs in"
            f" {', '.join(dict.fromkeys(odd[:4]))}); restore with the engine version that made it"
        )
    _check_rows(db)


def _check_rows(db: Path) -> None:
    """Rows the engine later trusts: installed packages and catalogue paths."""
    from engine.names import BadName, library_key
    from engine.vkp.manifest import check_version

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.execute("PRAGMA trusted_schema = OFF")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        installed = (
            conn.execute(
                "SELECT package, grade, subject, version, previous_version FROM vkp_installed"
            ).fetchall()
            if "vkp_installed" in tables
            else []
        )
        paths = conn.execute("SELECT path FROM documents").fetchall()
    conn.close()
    try:
        for package, grade, subject, version, previous in installed:
            key = library_key(grade, subject)
            if package not in (key, f"{subject}_{grade}"):
                raise ValueError(f"package {show(str(package))} is not named for {key}")
            check_version(version)
            if previous is not None:
                check_version(previous, "previous version")
        for (path,) in paths:
            _check_document_path(path)
    except (BadName, ValueError, TypeError) as exc:
        raise BackupError(f"nexus.db in the backup holds a row this engine refuses: {exc}") from exc


def _check_document_path(path: object) -> None:
    """A catalogue path: inbox-relative, a `vkp://` key, or (older backups, files from outside
    the inbox) an absolute path; never one that climbs (`..`) or holds a NUL."""
    if not isinstance(path, str) or not path or "\0" in path or len(path) > 4096:
        raise ValueError(f"document path {show(str(path))} is not a path")
    rest = path.removeprefix("vkp://")
    parts = PurePosixPath(rest).parts
    if ".." in parts or (rest != path and rest.startswith("/")):
        raise ValueError(f"document path {show(path)} climbs out of its folder")


def restored_model(staging: Path) -> str | None:
    """The model named by the backup's embedding-model record, when it is one this engine
    ships (a name, never a path: a path in a backup could load any model files); None when
    there is no record or it names something else (the restored server then follows
    LOCAL_EMBEDDING_MODEL, and a warning says so)."""
    from engine.embed.choice import MINILM, RECORD_NAME
    from engine.embed.packaged import PACKAGED

    path = staging / RECORD_NAME
    if not path.is_file() or path.is_symlink():
        return None
    if path.stat().st_size > META_CAP:
        raise BackupError(f"{RECORD_NAME} in the backup is too large: refused")
    try:
        model = json.loads(path.read_bytes()).get("local_embedding_model")
    except (ValueError, AttributeError):
        raise BackupError(f"{RECORD_NAME} in the backup is not a model record") from None
    if model in (MINILM, *PACKAGED):
        return model
    log.warning(
        "the backup's data dir used embedding model %s, which is not restored: set"
        " LOCAL_EMBEDDING_MODEL on this server to search its collections",
        show(str(model))[:200],
    )
    return None
