"""Grade and subject names: what is allowed, and the names built from them.

Grade and subject come from outside (teachers' folder names, a package's manifest, a catalogue
entry, a panel form) and end up in collection names, package file names, S3 keys and paths.
So they are checked here, once, against one rule, and every derived name is built here too:

- a name is 1–64 characters of lowercase ASCII letters and digits, in words joined by single
  underscores (`kelas_10`, `pendidikan_pancasila_dan_kewarganegaraan`);
- nothing is "cleaned up": `kelas-10`, `Kelas 10` or `kelas__10` are refused with a message
  that says what to rename them to, so two folders can never map to the same collection;
- because a name never contains `__`, joining names with `__` is unambiguous
  (`kelas_10__informatika` can only be grade `kelas_10`, subject `informatika`).

File names from outside (an upload, an S3 key, a catalogue entry) pass `check_file_name`: one
plain name that any file system here can hold.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_LENGTH = 64
NAME_MAX_BYTES = 255  # NAME_MAX of ext4, xfs, btrfs, NTFS (in UTF-16 units) and most others
_NAME = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
SEPARATOR = "__"


class BadName(ValueError):
    """A grade or subject name that breaks the naming rule; the message says how to fix it
    (and `kind`, `name`, `hint` say it as data, where the rule was about characters)."""

    def __init__(self, message: str, *, kind: str = "", name: str = "", hint: str = ""):
        super().__init__(message)
        self.kind, self.name, self.hint = kind, name, hint


def check_file_name(name: object, max_bytes: int = NAME_MAX_BYTES) -> str:
    """Return `name` if it is one plain file name (no folder, `.`/`..`, NUL or control
    character, at most `max_bytes` in UTF-8), else raise `BadName` saying what to change."""
    if not isinstance(name, str) or not name:
        raise BadName("the file has no name")
    shown = repr(name[:80])
    if "\x00" in name:
        raise BadName(f"{shown} contains a NUL character: rename the file")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise BadName(f"{shown} contains control characters: rename the file")
    if "/" in name or "\\" in name:
        raise BadName(f"{shown} is a path, not a file name")
    if name in (".", ".."):
        raise BadName(f"{shown} is not a file name")
    size = len(name.encode("utf-8"))
    if size > max_bytes:
        raise BadName(
            f"{shown}… is too long ({size} bytes; at most {max_bytes}): give the file a"
            " shorter name"
        )
    return name


def suggest(name: str) -> str:
    """The allowed name closest to `name` (`Kelas-10` → `kelas_10`), for error messages."""
    words = re.findall(r"[a-z0-9]+", name.lower())
    return "_".join(words)[:MAX_NAME_LENGTH].strip("_")


def check_name(name: str, kind: str = "name") -> str:
    """Return `name` unchanged if it follows the rule, else raise `BadName`.

    Args:
        name: the grade or subject as found (folder name, manifest field...).
        kind: "grade" or "subject", used in the message.
    """
    if not isinstance(name, str):
        raise BadName(f"{kind} must be text, got {type(name).__name__}")
    if len(name) > MAX_NAME_LENGTH:
        raise BadName(f"{kind} {name[:80]!r}… is longer than {MAX_NAME_LENGTH} characters")
    if not _NAME.fullmatch(name):
        hint = suggest(name)
        fix = f" (for example {hint!r})" if hint else ""
        raise BadName(
            f"{kind} {name!r} is not allowed: use lowercase letters and digits joined by single"
            f" underscores{fix}",
            kind=kind,
            name=name,
            hint=hint,
        )
    return name


def check_grade_subject(grade: str, subject: str) -> tuple[str, str]:
    """Check both names; raise `BadName` naming the first that is wrong."""
    return check_name(grade, "grade"), check_name(subject, "subject")


def library_key(grade: str, subject: str) -> str:
    """The one unambiguous name of a grade + subject: `kelas_10__informatika`.

    Used for collections, package file names, S3 keys and wherever the CLI or panel shows a
    package. Raises `BadName` for names that break the rule.
    """
    check_grade_subject(grade, subject)
    return f"{grade}{SEPARATOR}{subject}"


def split_library_key(key: str) -> tuple[str, str]:
    """Inverse of `library_key`; raises `BadName` for anything `library_key` cannot produce."""
    grade, sep, subject = key.partition(SEPARATOR)
    if not sep:
        raise BadName(f"{key!r} is not a <grade>__<subject> name")
    return check_grade_subject(grade, subject)
