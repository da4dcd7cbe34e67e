"""Where a file sits in the inbox: `<grade>/<subject>/<file>.pdf`, and which names to ignore.

Grade and subject are the first two folder names, checked by `engine.names` (lowercase
letters and digits in words joined by single underscores): a `kelas-10` or `Kelas 10` folder is
refused with a message suggesting `kelas_10`, never cleaned up, so that two folders can never
share a collection.

Outside the inbox (`nexus ingest PATH` of an export from another school, a USB stick) the
folders that name grade and subject are found by `layout_for`, which looks at what PATH holds
and refuses (`LayoutRefused`) rather than guess; `--grade/--subject` label a folder or a PDF
explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.jobs.reasons import sentence
from engine.names import BadName, check_grade_subject, check_name

# Names that are still being written or are editor/OS droppings.
_IGNORED_SUFFIXES = (".part", ".crdownload", ".partial", ".download", ".tmp", ".swp", "~")
_IGNORED_PREFIXES = (".", "~$", "~lock.")


class BadLocation(ValueError):
    """The file is not inside a `<grade>/<subject>/` folder, or those folders' names are not
    allowed grade/subject names (`code` and `params`: the reason, `engine.jobs.reasons`)."""

    def __init__(self, message: str, code: str = "", **params: object):
        super().__init__(message)
        self.code, self.params = code, params


@dataclass(frozen=True)
class Placement:
    grade: str
    subject: str


def is_ignored(path: Path) -> bool:
    """True for temp/partial downloads, office lock files and dotfiles (or files in dot dirs)."""
    name = path.name
    if name.lower().endswith(_IGNORED_SUFFIXES) or name.startswith(_IGNORED_PREFIXES):
        return True
    return any(part.startswith(".") for part in path.parts[:-1] if part not in (".", ".."))


def is_candidate(path: Path) -> bool:
    """A name the engine should look at: a PDF name that is not ignored."""
    return path.suffix.lower() == ".pdf" and not is_ignored(path)


def place(path: Path, root: Path) -> Placement:
    """Grade and subject of `path`, from its first two folders below `root`.

    Deeper folders (`kelas_10/informatika/bab1/materi.pdf`) are allowed; shallower ones are not.

    Raises:
        BadLocation: the file is directly in the inbox or in a grade folder without a subject,
            or a folder name breaks the naming rule (the message says what to rename it to).
    """
    try:
        parts = path.relative_to(root).parts
    except ValueError as exc:
        raise BadLocation(f"{path} is not under {root}") from exc
    if len(parts) < 3:
        found = "/".join(parts)
        raise BadLocation(
            sentence("not_in_subject_folder", {"found": found}),
            "not_in_subject_folder",
            found=found,
        )
    try:
        grade, subject = check_grade_subject(parts[0], parts[1])
    except BadName as exc:
        if exc.hint:
            params = {"kind": exc.kind, "name": exc.name, "hint": exc.hint}
            raise BadLocation(
                sentence("bad_folder_name", params), "bad_folder_name", **params
            ) from exc
        raise BadLocation(f"rename the folder: {exc}") from exc
    return Placement(grade=grade, subject=subject)


class LayoutRefused(ValueError):
    """`nexus ingest PATH` cannot tell which folders name grade and subject (or was given a
    label it cannot use); the message says what was found and how to fix it."""


@dataclass(frozen=True)
class Layout:
    """Where the grade and subject of the files at a PATH come from.

    Attributes:
        root: the folder whose first two levels below are grade and subject (see `place`).
        placement: one label for every file (`--grade/--subject`), or None to read folders.
        source: "inbox", "tree" (PATH holds `<grade>/<subject>/` folders), "folders" (PATH is
            a subject folder, or a PDF in one: the folder names above it), "explicit", or
            "empty" (no PDF to label).
        note: one line telling the user which labels are used ("" for the inbox and "empty").
    """

    root: Path
    placement: Placement | None = None
    source: str = "inbox"
    note: str = ""


_FIX = "pass --grade G --subject S to label it yourself"
_SHOWN = 5  # folder names listed in a message


def layout_for(
    path: Path, inbox: Path, grade: str | None = None, subject: str | None = None
) -> Layout:
    """Decide where the grade and subject of the files at `path` come from; never guess.

    - inside the inbox: the inbox's folders, always (and `grade`/`subject` are refused);
    - `grade` and `subject` given: that label for every PDF at `path`;
    - a folder whose children are grade folders (allowed names, holding subject folders with
      allowed names and PDFs): `path` is the root of a `<grade>/<subject>/` tree;
    - a folder with PDFs directly inside, or a single PDF: a subject folder, labelled by its
      own and its parent's names, only if both are allowed names;
    - anything else (PDFs beside grade folders, folders of PDFs that are no tree) is refused.

    Raises:
        LayoutRefused: the labels cannot be told, a name is not allowed, or only one of
            `grade` and `subject` was given.
    """
    resolved = path.resolve()
    inbox = inbox.resolve()
    in_inbox = resolved == inbox or inbox in resolved.parents
    if grade is not None or subject is not None:
        return _explicit(path, resolved, in_inbox, grade, subject)
    if in_inbox:
        return Layout(inbox)
    if resolved.is_dir():
        return _folder_layout(resolved)
    folder = Path(os.path.abspath(path)).parent.resolve()  # a link is judged where it lies
    return _named_by_parents(folder, f"{path} is read as a PDF in a <grade>/<subject>/ folder")


def _explicit(
    path: Path, resolved: Path, in_inbox: bool, grade: str | None, subject: str | None
) -> Layout:
    if grade is None or subject is None:
        raise LayoutRefused(
            "give both --grade and --subject (for example --grade kelas_10 --subject informatika)"
        )
    try:
        check_grade_subject(grade, subject)
    except BadName as exc:
        raise LayoutRefused(str(exc)) from exc
    if in_inbox:
        raise LayoutRefused(
            f"{path} is in the inbox, where the folders name grade and subject: move it into"
            f" <inbox>/{grade}/{subject}/ instead of passing --grade/--subject"
        )
    root = resolved if resolved.is_dir() else Path(os.path.abspath(path)).parent.resolve()
    note = f"labelling every PDF in {path} as grade {grade!r}, subject {subject!r}"
    return Layout(root, Placement(grade, subject), "explicit", note)


def _folder_layout(folder: Path) -> Layout:
    grades = _grade_folders(folder)
    pairs = _listing([f"{g}/{s}" for g, subjects in grades.items() for s in subjects])
    loose = _holds_pdfs(folder, deep=False)
    if grades and loose:
        raise LayoutRefused(
            f"{folder} holds PDFs directly and also grade folders ({pairs}), so it is neither a"
            " subject folder nor a <grade>/<subject>/ tree: move the loose PDFs into"
            " <grade>/<subject>/ folders, or ingest them one by one with --grade G --subject S"
        )
    if grades:
        return Layout(folder, None, "tree", f"grade/subject from the folders in {folder}: {pairs}")
    if loose:
        return _named_by_parents(folder, f"{folder} holds PDFs, so it is read as a subject folder")
    nested = [f for f in _subfolders(folder) if _holds_pdfs(f)]
    if not nested:
        return Layout(folder, None, "empty")
    bad_names = [str(problem) for problem in map(_name_problem, nested) if problem]
    hint = f" ({'; '.join(bad_names[:_SHOWN])})" if bad_names else ""
    raise LayoutRefused(
        f"{folder} holds no PDF directly, only folders with PDFs"
        f" ({_listing([f.name for f in nested])}), and they are not <grade>/<subject>/ folders"
        f" with allowed names{hint}. If {folder.name!r} is a grade folder, ingest the folder"
        f" above it ({folder.parent}); if it is a subject folder with chapter folders, pass"
        f" --grade G --subject {folder.name}; or {_FIX}"
    )


def _named_by_parents(subject_folder: Path, what: str) -> Layout:
    """Label by `subject_folder`'s name and its parent's, if both are allowed names."""
    grade, subject = subject_folder.parent.name, subject_folder.name
    try:
        check_grade_subject(grade, subject)
    except BadName as exc:
        raise LayoutRefused(
            f"{what}, labelled by the folders above it, but {exc}: {_FIX}, or ingest the folder"
            " that holds the <grade>/<subject>/ folders"
        ) from exc
    note = (
        f"grade {grade!r}, subject {subject!r} from the folder names of {subject_folder};"
        " if that is wrong, pass --grade G --subject S"
    )
    return Layout(subject_folder.parent.parent, None, "folders", note)


def _grade_folders(folder: Path) -> dict[str, list[str]]:
    """Children of `folder` that look like grade folders: an allowed name, holding subject
    folders with allowed names and PDFs. Returns {grade: [subject, ...]}."""
    found: dict[str, list[str]] = {}
    for grade in _subfolders(folder):
        if _name_problem(grade):
            continue
        subjects = [s.name for s in _subfolders(grade) if not _name_problem(s) and _holds_pdfs(s)]
        if subjects:
            found[grade.name] = subjects
    return found


def _name_problem(folder: Path) -> BadName | None:
    try:
        check_name(folder.name, "folder")
    except BadName as exc:
        return exc
    return None


def _subfolders(folder: Path) -> list[Path]:
    """The visible folders directly in `folder` (links to folders are not followed), sorted."""
    try:
        with os.scandir(folder) as entries:
            found = [
                Path(e.path)
                for e in entries
                if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
            ]
    except OSError:
        return []
    return sorted(found)


def _holds_pdfs(folder: Path, deep: bool = True) -> bool:
    """True if a PDF the engine would read lies in `folder` (or anywhere below, if `deep`)."""
    for _top, dirs, files in os.walk(folder):  # links to folders are not followed
        if any(is_candidate(Path(name)) for name in files):
            return True
        if not deep:
            return False
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return False


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
