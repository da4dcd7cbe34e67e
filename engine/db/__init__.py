"""SQLite connection and numbered migrations for the engine's local database.

Done the datasette way: WAL mode so the panel can read while the engine writes, a list of
numbered migrations applied in order and recorded in the database, and **one writer per
database per process** (`Database`): every write goes through `Database.write()`, which holds
the process's write lock and one explicit `BEGIN IMMEDIATE … COMMIT` on the single write
connection. A thread that is not inside `write()` gets its own read-only connection
(`PRAGMA query_only`), so a write outside the write path fails loudly, and one thread's writes
can never join another thread's open transaction. Other processes (the panel, `nexus search`)
have their own `Database`; SQLite's file lock orders their writes.

`pieces.py` beside this holds a stored format the migrations and the lexical index share: how
chunk text is cut into template pieces and keyed (migration 12 counts them with it).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MIGRATIONS: list[str] = [
    # 1: jobs, their files, and the catalogue of ingested documents.
    """
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        timestamp TEXT NOT NULL,
        job_type TEXT NOT NULL,
        status TEXT NOT NULL,
        input_dir TEXT,
        config TEXT,
        total_files INTEGER DEFAULT 0,
        successful_files INTEGER DEFAULT 0,
        failed_files INTEGER DEFAULT 0,
        skipped_files INTEGER DEFAULT 0,
        processed_files INTEGER DEFAULT 0,
        total_chunks INTEGER DEFAULT 0,
        total_embeddings INTEGER DEFAULT 0,
        input_tokens INTEGER DEFAULT 0,
        processing_time REAL DEFAULT 0,
        estimated_cost REAL DEFAULT 0,
        errors TEXT,
        strategy_used TEXT,
        fallback_reason TEXT,
        current_file TEXT,
        pid INTEGER,
        host TEXT,
        created_at TEXT NOT NULL,
        completed_at TEXT
    );
    CREATE INDEX jobs_by_time ON jobs (timestamp);
    CREATE TABLE job_files (
        job_id TEXT NOT NULL REFERENCES jobs(job_id),
        path TEXT NOT NULL,
        grade TEXT,
        subject TEXT,
        sha256 TEXT,
        status TEXT NOT NULL,
        reason TEXT,
        pages INTEGER DEFAULT 0,
        chunks INTEGER DEFAULT 0,
        seconds REAL DEFAULT 0,
        finished_at TEXT NOT NULL,
        PRIMARY KEY (job_id, path)
    );
    CREATE TABLE documents (
        path TEXT PRIMARY KEY,
        grade TEXT NOT NULL,
        subject TEXT NOT NULL,
        file_name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        pages INTEGER DEFAULT 0,
        chunks INTEGER DEFAULT 0,
        collection TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX documents_by_sha ON documents (grade, subject, sha256);
    """,
    # 2: the lexical (BM25) index beside the vectors; `terms` holds analysed (stemmed) words.
    """
    CREATE VIRTUAL TABLE lexical USING fts5(
        terms,
        grade UNINDEXED,
        subject UNINDEXED,
        sha256 UNINDEXED,
        chunk_id UNINDEXED,
        source UNINDEXED,
        page UNINDEXED,
        pages UNINDEXED,
        text UNINDEXED,
        tokenize = 'unicode61'
    );
    """,
    # 3: Bedrock tokens per grade/subject (cost per subject), and job records awaiting sync.
    """
    ALTER TABLE jobs ADD COLUMN tokens_by_subject TEXT;
    CREATE TABLE sync_queue (
        job_id TEXT PRIMARY KEY,
        queued_at TEXT NOT NULL
    );
    """,
    # 4: telemetry: per-hour query aggregates, the outgoing queue, and privacy status.
    """
    CREATE TABLE telemetry_queries (
        hour TEXT NOT NULL,
        latency_ms REAL NOT NULL,
        error INTEGER NOT NULL
    );
    CREATE INDEX telemetry_queries_by_hour ON telemetry_queries (hour);
    CREATE TABLE telemetry_queue (
        hour TEXT PRIMARY KEY,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE telemetry_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 5: rolled-up telemetry kept locally for the panel's charts (sent or not).
    """
    CREATE TABLE telemetry_history (
        hour TEXT PRIMARY KEY,
        payload TEXT NOT NULL
    );
    """,
    # 6: knowledge packages installed on this server (current and previous, for rollback).
    """
    CREATE TABLE vkp_installed (
        package TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        grade TEXT NOT NULL,
        version TEXT NOT NULL,
        collection TEXT NOT NULL,
        previous_version TEXT,
        previous_collection TEXT,
        installed_at TEXT NOT NULL
    );
    """,
    # 7: the lexical index scores BM25 itself from per-grade/subject term statistics (so a
    # subject ranks the same whatever else is installed); the FTS5 table goes, and the index is
    # rebuilt from the chunks by the next recovery (Ingestor.sync_lexical).
    """
    DROP TABLE lexical;
    CREATE TABLE lexical (
        id INTEGER PRIMARY KEY,
        grade TEXT NOT NULL,
        subject TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        chunk_id TEXT NOT NULL,
        source TEXT NOT NULL,
        page INTEGER NOT NULL,
        pages TEXT NOT NULL,
        text TEXT NOT NULL,
        terms TEXT NOT NULL,
        length INTEGER NOT NULL,
        section TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX lexical_by_document ON lexical (grade, subject, sha256);
    CREATE TABLE lexical_postings (
        grade TEXT NOT NULL,
        subject TEXT NOT NULL,
        term TEXT NOT NULL,
        chunk INTEGER NOT NULL,
        tf INTEGER NOT NULL,
        length INTEGER NOT NULL,
        PRIMARY KEY (grade, subject, term, chunk)
    ) WITHOUT ROWID;
    CREATE INDEX lexical_postings_by_chunk ON lexical_postings (chunk);
    """,
    # 8: how many pages of each file were read by OCR.
    """
    ALTER TABLE job_files ADD COLUMN ocr_pages INTEGER DEFAULT 0;
    """,
    # 9: why a file got its status as a code with parameters (the panel translates it).
    """
    ALTER TABLE job_files ADD COLUMN reason_code TEXT DEFAULT '';
    ALTER TABLE job_files ADD COLUMN reason_params TEXT DEFAULT '{}';
    """,
    # 10: each grade/subject's BM25 statistics kept beside its rows (a search no longer sums
    # every row of the lexical table), and a version that changes with every write to them.
    """
    CREATE TABLE lexical_stats (
        grade TEXT NOT NULL,
        subject TEXT NOT NULL,
        chunks INTEGER NOT NULL,
        terms INTEGER NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (grade, subject)
    ) WITHOUT ROWID;
    INSERT INTO lexical_stats (grade, subject, chunks, terms, version)
        SELECT grade, subject, sum(kind != 'toc'),
               coalesce(sum(CASE WHEN kind != 'toc' THEN length END), 0), 1
        FROM lexical GROUP BY grade, subject;
    """,
    # 11: chunks found by id: a search reads its vector hits' texts and citations here.
    """
    CREATE INDEX lexical_by_chunk ON lexical (chunk_id);
    """,
    # 12: each template piece's number of documents per grade/subject, and each grade/subject's
    # number of documents (engine.search.lexical.boilerplate), counted from the rows already
    # there (`_count_template_pieces`) instead of reading a whole subject at search time.
    """
    CREATE TABLE lexical_pieces (
        grade TEXT NOT NULL,
        subject TEXT NOT NULL,
        piece INTEGER NOT NULL,
        documents INTEGER NOT NULL,
        PRIMARY KEY (grade, subject, piece)
    ) WITHOUT ROWID;
    ALTER TABLE lexical_stats ADD COLUMN documents INTEGER NOT NULL DEFAULT 0;
    """,
]


def _count_template_pieces(conn: sqlite3.Connection) -> None:
    """Migration 12's counts of the rows already indexed (90 s for a million chunks)."""
    from engine.db.pieces import recount_pieces

    recount_pieces(conn)


# Python steps run after the SQL of the migration with that number, in its transaction.
AFTER: dict[int, Callable[[sqlite3.Connection], None]] = {12: _count_template_pieces}


class Database:
    """The engine database of one process: one write connection, a read connection per thread.

    Args:
        path: the SQLite file (created and migrated on first use).
    """

    def __init__(self, path: Path):
        self.path = path
        self._writer = connect(path)
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._local = threading.local()

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection for this thread: the writer inside `write()`, else a read-only one."""
        if self._owner == threading.get_ident():
            return self._writer
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            reader.row_factory = sqlite3.Row
            reader.execute("PRAGMA query_only = ON")
            self._local.reader = reader
        return reader

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Hold the write lock and one transaction; nested calls in the same thread join it."""
        with self._lock:
            if self._owner == threading.get_ident():
                yield self._writer  # nested in this thread's own transaction
                return
            self._writer.execute("BEGIN IMMEDIATE")
            self._owner = threading.get_ident()
            try:
                yield self._writer
            except BaseException:
                self._owner = None
                self._writer.execute("ROLLBACK")
                raise
            self._owner = None
            self._writer.execute("COMMIT")


@contextmanager
def single_table(
    path: Path, schema: str, *, transaction: bool = False
) -> Iterator[sqlite3.Connection]:
    """A short-lived connection to a small one-table SQLite file kept beside the engine
    database (API keys, login attempts): created with `schema` if new, closed afterwards;
    with `transaction`, the block runs in one BEGIN IMMEDIATE … COMMIT (ROLLBACK on error)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute(schema)
        if not transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the database at `path` in WAL mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    migrate(conn)
    return conn


_migrate_lock = threading.Lock()
BUSY_TIMEOUT_S = 30  # how long a statement waits for another process's write lock
MIGRATION_WAIT_S = 900  # how long a process waits for another one's migration to finish


class NewerDatabase(RuntimeError):
    """The database was migrated by a newer engine than this one."""


def migrate(conn: sqlite3.Connection, upto: int | None = None) -> None:
    """Apply every migration newer than the database's `user_version` (up to number `upto`).

    A process that finds another one migrating waits for it (up to `MIGRATION_WAIT_S`, not
    the usual busy timeout: counting a large index takes minutes) and then finds nothing left
    to do. A database from a newer engine is refused: this engine would write rows without
    the bookkeeping the newer schema keeps beside them."""
    with _migrate_lock:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise NewerDatabase(
                f"the database has schema version {version}, this engine knows 1 to"
                f" {len(MIGRATIONS)}: it was opened by a newer OpenClass Nexus; run that"
                " version or newer"
            )
        wanted = MIGRATIONS[version:upto]
        if not wanted:
            return
        usual = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute(f"PRAGMA busy_timeout = {MIGRATION_WAIT_S * 1000}")
        try:
            for number, script in enumerate(wanted, start=version + 1):
                _apply(conn, number, script)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {usual}")


def _apply(conn: sqlite3.Connection, number: int, script: str) -> None:
    """Migration `number` in one transaction, unless another process applied it meanwhile."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        # re-check inside the write lock: another process may have migrated meanwhile
        if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
            conn.execute("COMMIT")
            return
        for statement in script.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        if number in AFTER:
            AFTER[number](conn)
        conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
