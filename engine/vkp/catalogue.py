"""The signed catalogue `vkp/index.json`: which packages exist, their files, sizes and digests.

Like apt's InRelease, the catalogue is signed with the package key and its signature is
checked before anything in it is used; like TUF's metadata, it carries a version number so
that an older (validly signed) catalogue cannot be replayed to hold a school back, and may
carry an expiry time:

    {"format": 2, "signed": "<payload: JSON text>", "signature": "<base64 Ed25519>"}

    payload = {"type": "nexus-vkp-catalogue", "version": 1716800000, "published_at": "...",
               "expires": "2026-07-01T00:00:00+00:00",      (optional)
               "packages": {"kelas_10__informatika": {"grade", "subject", "latest",
                            "full": {version, file, size, sha256},
                            "versions": [...], "deltas": [{from, to, file, size, sha256}]}}}

The signature covers `keys.CATALOGUE` + the payload's UTF-8 bytes. The version is an integer
from 1 to MAX_VERSION (2**53 - 1, what any JSON reader holds exactly), checked the same way
when signing and when reading. It only grows: the publisher takes max(previous + 1, Unix
time), so a publish folder rebuilt from scratch still moves forward (see `publish.py` for
why a previous version is only trusted if this installation signed it and it is not far
ahead of the clock). A school keeps the highest version it has accepted, whichever trusted
key signed it (`<data>/vkp/catalogue_seen.json`; during a key rotation an old catalogue
signed by the other key is no way back), and refuses any catalogue below it.

`expires` is set by the publisher only when VKP_CATALOGUE_EXPIRES_DAYS is (default: never,
because a school updating from a USB stick may go months without a new catalogue); when it
is present and past, the school refuses the catalogue. A school's clock is not checked
otherwise: an offline server's clock is often wrong, and a version is never compared to it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.names import BadName
from engine.util import is_int_in, is_sha256_hex
from engine.vkp.manifest import check_version, package_key
from engine.vkp.transfer import TransferError, plain_file_name

log = logging.getLogger(__name__)

FORMAT = 2
TYPE = "nexus-vkp-catalogue"
MAX_PACKAGE_BYTES = 4 * 1024**3
MAX_PACKAGES = 10_000
MAX_VERSION = 2**53 - 1


class CatalogueError(TransferError):
    """A catalogue that must not be used: unsigned, badly signed, malformed or replayed."""


@dataclass
class Catalogue:
    version: int
    published_at: str
    packages: dict[str, dict]
    key_id: str = ""
    expires: str | None = None


def sign_catalogue(
    packages: dict, version: int, published_at: str, sign, expires: str | None = None
) -> bytes:
    """The bytes of `index.json` for `packages`, signed with `sign(bytes) -> bytes`.

    Raises:
        ValueError: the payload is one a school would refuse (a version out of range...).
    """
    from engine.vkp.keys import CATALOGUE

    payload = {"type": TYPE, "version": version, "published_at": published_at}
    if expires is not None:
        payload["expires"] = expires
    text = json.dumps(
        payload | {"packages": packages}, ensure_ascii=False, indent=1, sort_keys=True
    )
    _check_payload(json.loads(text))  # never sign what a school would refuse
    signature = sign(CATALOGUE + text.encode())
    envelope = {
        "format": FORMAT,
        "signed": text,
        "signature": base64.b64encode(signature).decode(),
    }
    return json.dumps(envelope, ensure_ascii=False, indent=1).encode()


def open_catalogue(data: bytes, trusted_keys: list, now: datetime | None = None) -> Catalogue:
    """Verify the catalogue's signature, check every field, and refuse it once expired.

    Raises:
        CatalogueError: unsigned, signed by no trusted key, malformed, or expired.
    """
    catalogue = verify_catalogue(data, trusted_keys)
    if catalogue.expires is not None:
        now = now or datetime.now(UTC)
        if now >= datetime.fromisoformat(catalogue.expires):
            raise CatalogueError(
                f"the catalogue (version {catalogue.version}) expired on"
                f" {catalogue.expires[:19]}: the source serves an old catalogue, or this"
                " server's clock is wrong"
            )
    return catalogue


def verify_catalogue(data: bytes, trusted_keys: list) -> Catalogue:
    """Verify the catalogue's signature, then check every field (not its expiry: the
    publisher reads its own last catalogue with this); raise `CatalogueError`."""
    from engine.vkp.keys import CATALOGUE, key_id, signing_key

    try:
        envelope = json.loads(data)
        if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
            raise ValueError("not a signed catalogue (format 2)")
        payload_text, signature_text = envelope["signed"], envelope["signature"]
        if not (isinstance(payload_text, str) and isinstance(signature_text, str)):
            raise ValueError("signed and signature must be text")
        signature = base64.b64decode(signature_text, validate=True)
        message = CATALOGUE + payload_text.encode()
    except (ValueError, KeyError, TypeError, RecursionError, binascii.Error) as exc:
        raise CatalogueError(f"the catalogue is not a signed catalogue: {exc}") from None
    key = signing_key(message, signature, trusted_keys)
    if key is None:
        raise CatalogueError("the catalogue's signature does not match any trusted key")
    try:
        payload = _check_payload(json.loads(payload_text))
    except (ValueError, KeyError, TypeError, RecursionError, BadName) as exc:
        raise CatalogueError(f"the signed catalogue is not valid: {exc}") from None
    return Catalogue(
        payload["version"],
        payload["published_at"],
        payload["packages"],
        key_id(key),
        payload.get("expires"),
    )


def _check_payload(payload: object) -> dict:
    if not isinstance(payload, dict) or payload.get("type") != TYPE:
        raise ValueError(f"type is not {TYPE}")
    if not is_int_in(payload["version"], 1, MAX_VERSION):
        raise ValueError(f"version is not a whole number from 1 to {MAX_VERSION}")
    if not isinstance(payload["published_at"], str):
        raise ValueError("published_at is not text")
    if "expires" in payload:
        _check_time(payload["expires"], "expires")
    packages = payload["packages"]
    if not isinstance(packages, dict) or len(packages) > MAX_PACKAGES:
        raise ValueError("packages is not an object")
    for name, package in packages.items():
        _check_package(name, package)
    return payload


def _check_package(name: str, package: object) -> None:
    if not isinstance(package, dict):
        raise TypeError(f"{name[:80]!r} is not an object")
    if name != package_key(package["grade"], package["subject"]):
        raise ValueError(f"{name[:80]!r} is not <grade>__<subject> of its entry")
    check_version(package["latest"], "latest")
    if package["full"]["version"] != package["latest"]:
        raise ValueError(f"{name}: the full package is not the latest version")
    for entry in [package["full"], *package["versions"]]:
        check_version(entry["version"])
        _check_file(entry)
    for delta in package["deltas"]:
        check_version(delta["from"], "from")
        check_version(delta["to"], "to")
        _check_file(delta)


def _check_file(entry: dict) -> None:
    try:
        plain_file_name(entry["file"])
    except TransferError as exc:
        raise ValueError(str(exc)) from None
    if not str(entry["file"]).endswith(".vkp"):
        raise ValueError(f"{entry['file'][:80]!r} is not a .vkp file")
    if not is_int_in(entry["size"], 1, MAX_PACKAGE_BYTES):
        raise ValueError(f"{entry['file']}: size out of range")
    if not is_sha256_hex(entry["sha256"]):
        raise ValueError(f"{entry['file']}: sha256 is not a SHA-256")


def _check_time(value: object, what: str) -> None:
    """An ISO 8601 time with its UTC offset (a time without one means nothing to compare)."""
    if not (isinstance(value, str) and len(value) <= 40):
        raise ValueError(f"{what} is not a time")
    if datetime.fromisoformat(value).utcoffset() is None:
        raise ValueError(f"{what} {value!r} has no UTC offset")


class SeenCatalogues:
    """The highest catalogue version accepted, whichever trusted key signed it, kept across
    runs as `{"version", "published_at", "key_id"}` (a record from before, one entry per key,
    counts with its highest version)."""

    def __init__(self, path: Path):
        self.path = path

    def highest(self) -> dict:
        """`{"version": int, "published_at": str, ...}` of the newest catalogue seen."""
        try:
            seen = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"version": 0}
        except (OSError, ValueError, RecursionError) as exc:
            # fail closed: without the record, an old catalogue could be replayed unnoticed
            raise CatalogueError(f"cannot read {self.path}: {exc}") from exc
        if not isinstance(seen, dict):
            raise CatalogueError(f"{self.path} is not a record of catalogues seen")
        if "version" in seen:
            records = [seen]
        else:  # the old layout: {key id: {"version", "published_at"}}
            records = [r for r in seen.values() if isinstance(r, dict) and "version" in r]
        if not all(is_int_in(r["version"], 0, 2**64) for r in records):
            raise CatalogueError(f"{self.path} holds a version that is not a number")
        return max(records, key=lambda r: r["version"], default={"version": 0})

    def accept(self, catalogue: Catalogue) -> None:
        """Refuse a catalogue older than the newest one seen; remember it otherwise."""
        last = self.highest()
        if catalogue.version < last["version"]:
            raise CatalogueError(
                f"the catalogue (version {catalogue.version}, published"
                f" {catalogue.published_at[:19]}) is older than one already seen (version"
                f" {last['version']}, published {str(last.get('published_at'))[:19]}):"
                " an old catalogue replayed? refused"
            )
        if catalogue.version > last["version"]:
            record = {
                "version": catalogue.version,
                "published_at": catalogue.published_at,
                "key_id": catalogue.key_id,
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
            tmp.replace(self.path)
