"""The PII guard: nothing leaves the machine unless it passes this check.

A payload must have exactly the seed's shape (`school_id_hash`, `timestamp`, `metrics`), only
known metric names, numbers that are finite and non-negative, enumerated or pattern-bound
strings — and every string (keys included) is scanned for e-mail addresses, phone numbers,
Indonesian NIK (16 digits), IP addresses and free text. Anything else fails, with a reason.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

from engine.names import MAX_NAME_LENGTH

EMBEDDING_STRATEGIES = {"local", "bedrock", "hybrid"}
NUMERIC_METRICS = {
    "query_count",
    "avg_latency_ms",
    "p95_latency_ms",
    "error_count",
    "storage_usage_mb",
}
METRICS = NUMERIC_METRICS | {"model_version", "embedding_strategy", "vkp_versions"}

_HASH = re.compile(r"[0-9a-f]{64}")
_HOUR = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:00:00Z")
_MODEL = re.compile(r"[A-Za-z][A-Za-z0-9._:/-]{0,99}")  # e.g. amazon.titan-embed-text-v2:0
# a package: `<subject>_<grade>` or `<grade>__<subject>`, names as in engine.names (each up to
# MAX_NAME_LENGTH): lowercase words joined by single underscores (or a hyphen, from older names)
_PACKAGE = re.compile(r"[a-z0-9]+(?:(?:_|__|-)[a-z0-9]+)+")
_PACKAGE_MAX = 2 * MAX_NAME_LENGTH + 2
_SEMVER = re.compile(r"\d{1,4}\.\d{1,4}\.\d{1,4}")

_SCANS = {
    "an e-mail address": re.compile(r"[^\s@]+@[^\s@]+"),
    "a NIK (16 digits)": re.compile(r"\d{16}"),
    "a phone number": re.compile(r"(\+?62|0)8\d{7,12}|\+\d{8,15}|\d{9,15}"),
    "an IP address": re.compile(
        r"\b\d{1,3}(\.\d{1,3}){3}\b|\b[0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,7}\b", re.I
    ),
    "free text": re.compile(r"\s"),
}


def _scan(value: str, where: str) -> list[str]:
    return [
        f"{where} looks like {what}" for what, pattern in _SCANS.items() if pattern.search(value)
    ]


def check_payload(payload: object) -> list[str]:
    """Every reason `payload` may not be sent; an empty list means it is safe."""
    if not isinstance(payload, dict):
        return ["payload is not an object"]
    problems = []
    if set(payload) != {"school_id_hash", "timestamp", "metrics"}:
        found = ", ".join(sorted(map(str, payload)))[:200]
        problems.append(f"top-level keys must be school_id_hash, timestamp, metrics; got {found}")
    school = payload.get("school_id_hash")
    if not (isinstance(school, str) and _HASH.fullmatch(school)):
        problems.append("school_id_hash is not a SHA-256 hex digest")
    stamp = payload.get("timestamp")
    if not (isinstance(stamp, str) and _HOUR.fullmatch(stamp)):
        problems.append("timestamp is not an hour (YYYY-MM-DDTHH:00:00Z)")
    metrics = payload.get("metrics")
    if not isinstance(metrics, dict):
        return problems + ["metrics is not an object"]
    for key, value in metrics.items():
        if key not in METRICS:
            problems.append(f"unknown metric {str(key)[:40]!r}")
        elif key in NUMERIC_METRICS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{key} is not a number")
            elif not math.isfinite(value) or value < 0 or value > 1e12:
                problems.append(f"{key} is out of range")
        elif key == "embedding_strategy":
            if value not in EMBEDDING_STRATEGIES:
                problems.append("embedding_strategy is not local, bedrock or hybrid")
        elif key == "model_version":
            if not (isinstance(value, str) and _MODEL.fullmatch(value)):
                problems.append("model_version is not a model id")
            else:
                problems += _scan(value, "model_version")
        elif key == "vkp_versions":
            problems += _check_versions(value)
    return problems


def _check_versions(value: object) -> list[str]:
    if not isinstance(value, dict):
        return ["vkp_versions is not an object"]
    problems = []
    for name, version in value.items():
        if not (isinstance(name, str) and len(name) <= _PACKAGE_MAX and _PACKAGE.fullmatch(name)):
            problems.append("a vkp_versions key is not <subject>_<grade>")
        else:
            problems += _scan(name, "a vkp_versions key")
        if not (isinstance(version, str) and _SEMVER.fullmatch(version)):
            problems.append("a vkp_versions value is not MAJOR.MINOR.PATCH")
    return problems


def model_label(model_id: str, salt: str = "") -> str:
    """What telemetry reports as `model_version`: the model id, or a short hash of a local path.

    Hub and Bedrock ids (`sentence-transformers/all-MiniLM-L6-v2`, `amazon.titan-embed-text-v2:0`)
    are sent as they are. A model loaded from a folder (`/models/multilingual`,
    `C:\\models\\x`, `./m`) is reported as `local-xxxx-xxxx-xxxx`, a hash of the path salted
    with the deployment's salt: the same folder gives the same label on this server, and no
    path (which may hold a user name) leaves the machine, not even as a guessable hash. The
    hash is grouped by four so no run of digits can look like a phone number.
    """
    if _is_path(model_id):
        path = model_id.rstrip("/\\")
        digest = hashlib.sha256(f"{salt}:{path}".encode("utf-8", "replace")).hexdigest()
        return "local-" + "-".join(digest[i : i + 4] for i in range(0, 12, 4))
    return model_id


def _is_path(model_id: str) -> bool:
    if model_id.startswith(("/", "~", ".")) or "\\" in model_id:
        return True
    if re.match(r"[A-Za-z]:[\\/]", model_id) or model_id.count("/") > 1:
        return True  # a drive letter; hub ids are exactly <owner>/<name>
    try:
        return Path(model_id).is_dir()  # a relative folder that happens to look like an id
    except OSError:
        return False
