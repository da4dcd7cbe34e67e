"""What a chunk is embedded with besides its own text: its lesson's title and section path.

A chunk of a teaching module often does not name its topic ("Pada topologi bintang..."), and a
template chunk names none at all; prefixing the lesson title (the file name made readable:
`sistem_pencernaan_2.pdf` → "sistem pencernaan 2") and the section heading gives the encoder
the context a reader has. Only the embedded text changes: the stored and cited text, and the
lexical index, stay the chunk's own.
"""

from __future__ import annotations

import re
from pathlib import PurePath

_SEPARATORS = re.compile(r"[_\-.]+")


def document_title(path: str) -> str:
    """A readable title from a file path: the stem with separators turned into spaces."""
    return _SEPARATORS.sub(" ", PurePath(path).stem).strip()


def with_context(title: str, section: str, text: str) -> str:
    """The text to embed for a chunk: "title › section" on its own line, then the chunk."""
    path = " › ".join(part for part in (title, section) if part)
    return f"{path}\n{text}" if path else text
