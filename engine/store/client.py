"""Which Chroma to talk to.

Chroma's embedded mode is not safe for two processes on one folder, and the engine and the panel
are two processes. So: CHROMA_HOST set → that server; a live `nexus up` in this data dir → its
server (found through `<data>/run/chroma.json`); otherwise, for one-shot commands, embedded.
"""

from __future__ import annotations

import json
import logging

from engine.settings import Settings
from engine.util import pid_alive

log = logging.getLogger(__name__)


def running_server(settings: Settings) -> tuple[str, int] | None:
    """Host and port of the Chroma server started by `nexus up`, if it is still alive."""
    run_file = settings.run_dir / "chroma.json"
    try:
        info = json.loads(run_file.read_text())
    except (OSError, ValueError):
        return None
    if not pid_alive(info.get("pid", -1)):
        return None
    return info["host"], info["port"]


def make_chroma_client(settings: Settings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    server = (settings.chroma_host, settings.chroma_port) if settings.chroma_host else None
    server = server or running_server(settings)
    if server:
        log.debug("using Chroma server at %s:%s", *server)
        return chromadb.HttpClient(host=server[0], port=server[1], settings=chroma_settings)
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)
