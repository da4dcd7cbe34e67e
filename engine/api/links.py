"""Short-lived links to one document's PDF, for people logged in to the panel.

A browser cannot send an API key with a link, so the panel, whose users have logged in,
asks for a link that carries its own proof: `?t=<expiry>.<hmac>`, an HMAC-SHA256 over the
document id and the expiry time with a secret only this installation has
(`<data>/keys/pdf_links.secret`, 32 random bytes made on first use, mode 0600, written whole
or not at all; any other content is refused, never used as a key). The API serves the PDF for a
valid, unexpired token of that very document; anything else still needs a key. A link lasts
`LINK_TTL_S` (15 minutes): long enough to open it, short enough that a copied link goes stale.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from pathlib import Path

from engine.documents.catalog import Document, document_id
from engine.runtime.probes import api_url
from engine.settings import Settings
from engine.util import SecretError, looks_random, read_or_make_secret

log = logging.getLogger(__name__)

LINK_TTL_S = 15 * 60
_SECRET_BYTES = 32


def _secret(keys_dir: Path) -> bytes:
    """The installation's link secret, made on first use.

    Raises:
        SecretError: the file is empty, short, too long or not a file; no link is made or
            accepted until it is replaced (delete it: a new one is made, open links expire).
    """
    return read_or_make_secret(
        keys_dir / "pdf_links.secret",
        lambda: secrets.token_bytes(_SECRET_BYTES),
        max_bytes=_SECRET_BYTES,
        valid=lambda data: len(data) == _SECRET_BYTES and looks_random(data),
        what="the PDF link secret",
    )


def _mac(keys_dir: Path, doc_id: str, expiry: int) -> str:
    message = f"pdf:{doc_id}:{expiry}".encode()
    return hmac.new(_secret(keys_dir), message, hashlib.sha256).hexdigest()


def pdf_token(keys_dir: Path, doc_id: str, *, now: float | None = None) -> str:
    """A token that opens document `doc_id`'s PDF for the next `LINK_TTL_S` seconds."""
    expiry = int((now or time.time()) + LINK_TTL_S)
    return f"{expiry}.{_mac(keys_dir, doc_id, expiry)}"


def check_pdf_token(keys_dir: Path, doc_id: str, token: str, *, now: float | None = None) -> bool:
    """Is `token` a valid, unexpired link token for document `doc_id`?"""
    expiry_text, _, mac = token.partition(".")
    if not expiry_text.isdigit() or len(expiry_text) > 12 or len(mac) != 64:
        return False
    expiry = int(expiry_text)
    if expiry < (now or time.time()):
        return False
    return hmac.compare_digest(mac, _mac(keys_dir, doc_id, expiry))


def pdf_api_link(settings: Settings, document: Document, page: int) -> str | None:
    """A link that opens the document's PDF at `page` in the browser, served by the HTTP API
    (`…/v1/documents/{id}/pdf?t=<token>#page=N`), or None when this install has no API.

    Only for people logged in to the panel: the token (`engine.api.links`) opens this one
    document for 15 minutes, in place of the API key a browser link cannot send.
    """
    doc_id = document_id(document)
    try:
        token = pdf_token(settings.data_dir / "keys", doc_id)
    except SecretError as exc:  # no link rather than one signed with a damaged key
        log.error("no PDF link: %s", exc)
        return None
    return f"{api_url(settings)}/v1/documents/{doc_id}/pdf?t={token}#page={page}"
