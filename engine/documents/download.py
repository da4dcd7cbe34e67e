"""The PDF behind a search hit, for the panel's download button, confined to the inbox."""

from __future__ import annotations

import os
from collections.abc import Callable

from engine.documents.catalog import Catalog, Document
from engine.inbox.scan import Refused, open_inbox_file
from engine.paths import path_for_key
from engine.settings import Settings
from engine.store.chunks import content_of


def find_document(catalog: Catalog, grade: str, subject: str, chunk_id: str) -> Document | None:
    """The catalogue entry whose chunks include `chunk_id` (`<sha256[:24]>-<index>`).

    Identical copies share chunks; the first copy whose file is still there wins.
    """
    documents = catalog.with_content(grade, subject, content_of(chunk_id))
    present = [d for d in documents if path_for_key(d.path).is_file()]
    return (present or documents or [None])[0]


def pdf_download(settings: Settings, document: Document) -> Callable[[], bytes] | None:
    """A function that reads the document's PDF (at most MAX_FILE_MB), or None when refused.

    The file is opened the way the API serves it (`open_inbox_file`: the inbox's link policy,
    a regular file opened without following links, and the opened file must lie inside the
    inbox), both now and again when the button is clicked.
    """
    inbox, limit = settings.inbox_dir, int(settings.max_file_mb * 2**20)

    def opened():
        try:
            return open_inbox_file(document.path, inbox, document.sha256)
        except (OSError, Refused):
            return None

    handle = opened()
    if handle is None:
        return None
    with handle:
        if os.fstat(handle.fileno()).st_size > limit:
            return None

    def read() -> bytes:
        again = opened()
        if again is None:
            return b""
        with again:
            data = again.read(limit + 1)
        return data if len(data) <= limit else b""

    return read
