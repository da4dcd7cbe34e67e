"""Package names, versions, and the check of a signed manifest before any value in it is used.

Names come from `engine.names`: a package is `<grade>__<subject>` (`kelas_10__informatika`),
its files `kelas_10__informatika__v1.2.0.vkp` and, for a delta,
`kelas_10__informatika__v1.1.0_to_v1.2.0.vkp`. Grade and subject never contain `__` and a
version never contains `_`, so every name maps back to exactly one package and version.

A manifest is only looked at after its signature verified; even so, every value that ends up
in a path, a glob, a collection name or a deletion (grade, subject, version, base version) is
checked here against the same rules the builder follows, and the sizes and digests that bound
the rest of the package are checked for type and range.
"""

from __future__ import annotations

import re

from engine.names import BadName, check_grade_subject, library_key
from engine.util import is_int_in, is_sha256_hex

FORMAT_VERSION = 2
MAX_MEMBER_BYTES = 1024**3  # chunks.jsonl or vectors.f32, whatever the signed manifest says
MAX_DIMENSION = 16384
MAX_REMOVED_IDS = 1_000_000

_VERSION = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})")
_MODEL_KEY = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,78}[a-z0-9])?")
KINDS = ("full", "delta")
PAYLOAD_MEMBERS = ("chunks.jsonl", "vectors.f32")


class PackageError(Exception):
    """A package that must not be installed: the message says why."""


def check_version(version: object, what: str = "version") -> str:
    """Return `version` if it is `MAJOR.MINOR.PATCH` (plain decimal numbers), else raise
    `ValueError`."""
    if not (isinstance(version, str) and _VERSION.fullmatch(version)):
        raise ValueError(f"{what} {str(version)[:40]!r} is not MAJOR.MINOR.PATCH")
    return version


def version_key(version: str) -> tuple[int, int, int]:
    """`"1.10.0"` → `(1, 10, 0)`, for comparing versions."""
    major, minor, patch = map(int, check_version(version).split("."))
    return major, minor, patch


def package_key(grade: str, subject: str) -> str:
    """The package's name: `kelas_10__informatika` (raises `BadName` for bad names)."""
    return library_key(grade, subject)


def package_file(grade: str, subject: str, version: str, base: str | None = None) -> str:
    """The file name of a full package, or of the delta from `base` to `version`."""
    key = package_key(grade, subject)
    check_version(version)
    if base is not None:
        check_version(base, "base version")
        return f"{key}__v{base}_to_v{version}.vkp"
    return f"{key}__v{version}.vkp"


def check_manifest(manifest: object) -> dict:
    """Check a (signature-verified) manifest's shape; raise `PackageError` naming the problem."""
    try:
        return _check(manifest)
    except (BadName, ValueError, TypeError, KeyError) as exc:
        raise PackageError(f"the manifest is not valid: {exc}") from exc


def _check(m: object) -> dict:
    if not isinstance(m, dict):
        raise TypeError("it is not an object")
    if m.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"unsupported format {str(m.get('format_version'))[:20]} (this server reads"
            f" format {FORMAT_VERSION}; rebuild the package)"
        )
    check_grade_subject(m["grade"], m["subject"])
    check_version(m["version"])
    if m["kind"] not in KINDS:
        raise ValueError(f"kind {str(m['kind'])[:20]!r} is not full or delta")
    if m["kind"] == "delta":
        check_version(m["base_version"], "base version")
        removed = m["removed_ids"]
        if not isinstance(removed, list) or len(removed) > MAX_REMOVED_IDS:
            raise ValueError("removed_ids is not a list of ids")
        if not all(isinstance(i, str) for i in removed):
            raise ValueError("removed_ids holds something other than ids")
    embedding = m["embedding"]
    if not (isinstance(embedding, dict) and isinstance(embedding["model_id"], str)):
        raise ValueError("embedding is not {model_id, model_key, dimension}")
    model_key = embedding["model_key"]
    if not (isinstance(model_key, str) and _MODEL_KEY.fullmatch(model_key)):
        raise ValueError(f"model key {str(model_key)[:40]!r} is not allowed")
    dimension = embedding["dimension"]
    if not is_int_in(dimension, 1, MAX_DIMENSION):
        raise ValueError(f"dimension {str(dimension)[:20]} is out of range")
    count = m["chunk_count"]
    if not is_int_in(count, 0, MAX_MEMBER_BYTES):
        raise ValueError("chunk_count is out of range")
    if not is_sha256_hex(m["content_digest"]):
        raise ValueError("content_digest is not a SHA-256")
    members = m["members"]
    if not isinstance(members, dict) or sorted(members) != sorted(PAYLOAD_MEMBERS):
        raise ValueError(f"members must describe exactly {', '.join(PAYLOAD_MEMBERS)}")
    for name, member in members.items():
        if not (
            isinstance(member, dict)
            and is_sha256_hex(member.get("sha256"))
            and is_int_in(member.get("size"), 0, MAX_MEMBER_BYTES)
        ):
            raise ValueError(f"{name} needs a sha256 and a size up to {MAX_MEMBER_BYTES} bytes")
    if members["vectors.f32"]["size"] != count * dimension * 4:
        raise ValueError("vectors.f32's size does not fit chunk_count × dimension")
    return m
