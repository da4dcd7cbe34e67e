"""The signed catalogue `vkp/index.json`: which packages exist, their files, sizes and digests.

Like apt's InRelease, the catalogue is signed with the package key and its signature is
checked before anything in it is used; like TUF's metadata, it carries a version number so
that an older (validly signed) catalogue cannot be replayed to hold a school back:

    {"format": 2, "signed": "<payload: JSON text>", "signature": "<base64 Ed25519>"}

    payload = {"type": "nexus-vkp-catalogue", "version": 1716800000, "published_at": "...",
               "packages": {"kelas_10__informatika": {"grade", "subject", "latest",
                            "full": {version, file, size, sha256},
                            "versions": [...], "deltas": [{from, to, file, size, sha256}]}}}

The signature covers `keys.CATALOGUE` + the payload's UTF-8 bytes. The version only grows
(the publisher takes max(previous + 1, Unix time), so a publish folder rebuilt from scratch
still moves forward); a school keeps, per signing key, the highest version it has accepted
(`<data>/vkp/catalogue_seen.json`) and refuses any catalogue below it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from engine.names import BadName
from engine.vkp.manifest import check_version, package_key
from engine.vkp.transfer import TransferError, plain_file_name

log = logging.getLogger(__name__)

FORMAT = 2
TYPE = "nexus-vkp-catalogue"
MAX_PACKAGE_BYTES = 4 * 1024**3
MAX_PACKAGES = 10_000
_SHA256 = re.compile(r"[0-9a-f]{64}")


class CatalogueError(TransferError):
    """A catalogue that must not be used: unsigned, badly signed, malformed or replayed."""


@dataclass
class Catalogue:
    version: int
    published_at: str
    packages: dict[str, dict]
    key_id: str = ""


def sign_catalogue(packages: dict, version: int, published_at: str, sign) -> bytes:
    """The bytes of `index.json` for `packages`, signed with `sign(bytes) -> bytes`."""
    from engine.vkp.keys import CATALOGUE

    payload = json.dumps(
        {"type": TYPE, "version": version, "published_at": published_at, "packages": packages},
        ensure_ascii=False,
        indent=1,
        sort_keys=True,
    )
    _check_payload(json.loads(payload))  # never sign what a school would refuse
    signature = sign(CATALOGUE + payload.encode())
    envelope = {
        "format": FORMAT,
        "signed": payload,
        "signature": base64.b64encode(signature).decode(),
    }
    return json.dumps(envelope, ensure_ascii=False, indent=1).encode()


def unverified_payload(data: bytes) -> dict | None:
    """The payload of our own published catalogue (admin side, no key needed), or None."""
    try:
        envelope = json.loads(data)
        if envelope.get("format") == FORMAT:
            return json.loads(envelope["signed"])
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def open_catalogue(data: bytes, trusted_keys: list) -> Catalogue:
    """Verify the catalogue's signature, then check every field; raise `CatalogueError`."""
    from engine.vkp.keys import CATALOGUE, key_id, signing_key

    try:
        envelope = json.loads(data)
        if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
            raise ValueError("not a signed catalogue (format 2)")
        payload_text, signature_text = envelope["signed"], envelope["signature"]
        if not (isinstance(payload_text, str) and isinstance(signature_text, str)):
            raise ValueError("signed and signature must be text")
        signature = base64.b64decode(signature_text, validate=True)
    except (ValueError, KeyError, TypeError, RecursionError, binascii.Error) as exc:
        raise CatalogueError(f"the catalogue is not a signed catalogue: {exc}") from None
    key = signing_key(CATALOGUE + payload_text.encode(), signature, trusted_keys)
    if key is None:
        raise CatalogueError("the catalogue's signature does not match any trusted key")
    try:
        payload = _check_payload(json.loads(payload_text))
    except (ValueError, KeyError, TypeError, RecursionError, BadName) as exc:
        raise CatalogueError(f"the signed catalogue is not valid: {exc}") from None
    return Catalogue(payload["version"], payload["published_at"], payload["packages"], key_id(key))


def _check_payload(payload: object) -> dict:
    if not isinstance(payload, dict) or payload.get("type") != TYPE:
        raise ValueError(f"type is not {TYPE}")
    if not _is_int(payload["version"], 1, 2**53):
        raise ValueError("version is not a positive number")
    if not isinstance(payload["published_at"], str):
        raise ValueError("published_at is not text")
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
    if not _is_int(entry["size"], 1, MAX_PACKAGE_BYTES):
        raise ValueError(f"{entry['file']}: size out of range")
    if not (isinstance(entry["sha256"], str) and _SHA256.fullmatch(entry["sha256"])):
        raise ValueError(f"{entry['file']}: sha256 is not a SHA-256")


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


class SeenCatalogues:
    """The highest catalogue version accepted per signing key, kept across runs."""

    def __init__(self, path: Path):
        self.path = path

    def _load(self) -> dict:
        try:
            seen = json.loads(self.path.read_text())
            return seen if isinstance(seen, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # fail closed: without the record, an old catalogue could be replayed unnoticed
            raise CatalogueError(f"cannot read {self.path}: {exc}") from exc

    def accept(self, catalogue: Catalogue) -> None:
        """Refuse a catalogue older than the newest one seen; remember it otherwise."""
        seen = self._load()
        last = seen.get(catalogue.key_id, {})
        if catalogue.version < last.get("version", 0):
            raise CatalogueError(
                f"the catalogue (version {catalogue.version}, published"
                f" {catalogue.published_at[:19]}) is older than one already seen (version"
                f" {last['version']}, published {str(last.get('published_at'))[:19]}):"
                " an old catalogue replayed? refused"
            )
        if catalogue.version > last.get("version", 0):
            seen[catalogue.key_id] = {
                "version": catalogue.version,
                "published_at": catalogue.published_at,
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(seen, indent=1, sort_keys=True))
            tmp.replace(self.path)
