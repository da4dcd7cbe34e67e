"""Which local embedding model a data dir uses, and the record that keeps it.

With LOCAL_EMBEDDING_MODEL empty, a new data dir gets `DEFAULT_LOCAL_MODEL`, the model that
measured best on Indonesian teaching modules at MiniLM's ingest speed (README, Retrieval).
The choice is written to `<data dir>/embedding-model.json` the first time the engine builds its
embedder, so a later release with another default never changes the model of an existing data
dir: only an admin does, by setting LOCAL_EMBEDDING_MODEL (which always wins and is recorded,
with the model it replaces: engine.embed.switching keeps that one's stored chunks searchable
until every file is embedded again). A data dir that already holds documents but no record was
built before the record existed, when MiniLM was the default, and keeps MiniLM.

MiniLM is also what an empty setting means where only MiniLM can run as asked: a CUDA GPU
(the torch path) or an explicit LOCAL_EMBEDDING_BACKEND (torch, OpenVINO, ONNX). Packages carry
their own model key either way (engine.vkp), whatever this data dir uses.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

from engine.embed.packaged import USE

log = logging.getLogger(__name__)

MINILM = "all-minilm-l6-v2"  # LOCAL_EMBEDDING_MODEL value that asks for the packaged MiniLM
DEFAULT_LOCAL_MODEL = USE
RECORD_NAME = "embedding-model.json"


def record_path(data_dir: Path) -> Path:
    return Path(data_dir) / RECORD_NAME


def _record(data_dir: Path) -> dict:
    try:
        data = json.loads(record_path(data_dir).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", record_path(data_dir), exc)
        return {}
    return data if isinstance(data, dict) else {}


def recorded_model(data_dir: Path) -> str | None:
    """The LOCAL_EMBEDDING_MODEL recorded for `data_dir`, or None (no record, or unreadable)."""
    model = _record(data_dir).get("local_embedding_model")
    return model if isinstance(model, str) else None


def previous_model(data_dir: Path) -> str | None:
    """The model the data dir used before the last switch (its chunks may still be stored)."""
    model = _record(data_dir).get("previous")
    return model if isinstance(model, str) and model else None


def record_model(data_dir: Path, model: str, previous: str | None = None) -> None:
    """Record `model` (and the one it replaces) as the data dir's local model (atomically;
    never through a link)."""
    path = record_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{RECORD_NAME}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"local_embedding_model": model, "previous": previous or ""}, fh)
    os.replace(tmp, path)


def holds_documents(db_path: Path) -> bool:
    """Whether the engine database already indexes any chunk (read-only, never creates it)."""
    if not Path(db_path).is_file():
        return False
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT 1 FROM lexical LIMIT 1").fetchone() is not None
    except sqlite3.Error:
        return False


def local_model(settings) -> str:
    """The LOCAL_EMBEDDING_MODEL in force for this data dir (see the module docstring), recorded
    in the data dir when it was not yet."""
    from engine.embed.onnx import cuda_available

    chosen = settings.local_embedding_model
    recorded = recorded_model(settings.data_dir)
    if not chosen:
        if settings.local_embedding_backend != "auto":
            chosen = MINILM  # the backends to choose from are MiniLM's
        elif recorded is not None:
            chosen = recorded
        elif cuda_available(settings.local_embedding_device):
            chosen = MINILM  # the torch path on the GPU
        elif holds_documents(settings.db_path):
            chosen = MINILM  # built before the record, when MiniLM was the default
        else:
            chosen = DEFAULT_LOCAL_MODEL
    if chosen != recorded:
        if recorded is not None:
            log.info("local embedding model %s replaces %s in this data dir", chosen, recorded)
        try:
            record_model(settings.data_dir, chosen, previous=recorded)
        except OSError as exc:  # a read-only data dir still searches; it is told once here
            log.warning("could not record the embedding model in %s: %s", settings.data_dir, exc)
    return chosen
