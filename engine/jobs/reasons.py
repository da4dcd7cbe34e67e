"""Why a file got its status, as a code with parameters and as an English sentence.

The CLI, JSON output and logs keep the English sentence (`FileResult.reason`); the panel shows
the code in its own language (`reason.<code>` in `ui/i18n`), and falls back to the sentence for
a code it does not know (an older record, or a reason that has no code yet). Each sentence is
made here, from its code, so the two can never say different things.
"""

from __future__ import annotations

# code -> English template; the parameters are `str.format` fields.
REASONS: dict[str, str] = {
    "unchanged": "unchanged since last ingest",
    "duplicate": "same content as {path}, already ingested",
    "empty": "the file is empty (0 bytes)",
    "too_large": "{size_mb:.1f} MB, more than the limit of {limit_mb:g} MB",
    "changed_while_read": "the file changed while it was read; it will be read again",
    "encrypted": "the PDF is password-protected; save it without a password",
    "truncated": "the PDF is truncated (incomplete copy or download)",
    "damaged": "damaged PDF: its structure cannot be read",
    "no_pages": "the PDF has no pages",
    "no_text": "no text found on any page",
    "not_in_subject_folder": (
        "file must be inside <grade>/<subject>/ (for example kelas_10/informatika/bab1.pdf),"
        " found at {found}"
    ),
    "bad_folder_name": (
        "rename the folder: {kind} {name!r} is not allowed: use lowercase letters and digits"
        " joined by single underscores (for example {hint!r})"
    ),
    "special_entry": "{what} with a PDF name, not a PDF file",
    "broken_link": "a broken link: it points to {target}, which cannot be opened",
    "link_outside": (
        "a link to {target}, outside the inbox; links are followed only to files inside the"
        " inbox: copy the file in instead"
    ),
    "link_to_folder": "a link to a folder; links to folders are not followed",
    "hard_link": (
        "{path} has {names} names (a hard link); only files with one name are read: copy the "
        "file into the inbox instead"
    ),
}


def sentence(code: str, params: dict) -> str:
    """The English sentence of reason `code` with `params` (the code itself if unknown)."""
    template = REASONS.get(code)
    if template is None:
        return code
    try:
        return template.format(**params)
    except (KeyError, ValueError, IndexError):
        return template
