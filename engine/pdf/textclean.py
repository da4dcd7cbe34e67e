"""Normalise extracted text once, so stored passages read like the book.

- Unicode NFKC: ligature glyphs ("ﬁ", "ﬂ", "ﬃ") become letters, no-break and other odd spaces
  become spaces, full-width forms become ASCII.
- Soft hyphens and zero-width characters are removed.
- Words hyphenated at line ends are rejoined ("ja-\\nringan" → "jaringan"), but only when the
  next line starts with a lowercase letter. Indonesian reduplication keeps its hyphen: when the
  two halves are equal or one repeats the other ("anak-\\nanak", "sehari-\\nhari",
  "kebarat-\\nbaratan"), or when the document writes the hyphenated form elsewhere on one line
  (`keep`), the result is "anak-anak".
- Dot leaders (a table of contents' "Bab 1 Jaringan ........ 12") shrink to " ... ".

Standard library only: the PDF worker process (`engine.pdf.worker`) imports it.
"""

from __future__ import annotations

import re
import unicodedata

_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None)
_LINE_END_HYPHEN = re.compile(r"(\w+)[-\u2010\u2011][ \t]*\n[ \t]*([a-z\u00e0-\u00ff]\w*)")
_HYPHENATED_WORD = re.compile(r"\b\w+(?:-\w+)+\b")
_SOFT_HYPHEN_BREAK = re.compile(r"\u00ad[ \t]*\n[ \t]*")
_LEADERS = re.compile(r"(?:[ \t]?[.·…_]){4,}[ \t]?")
_SPACES = re.compile(r"[ \t\f\v]+")


def normalize(text: str, keep: frozenset[str] | set[str] = frozenset()) -> str:
    """`text` with ligatures, odd spaces, soft hyphens and line-end hyphenation undone.

    Line breaks are kept (except those of rejoined words); runs of spaces become one space.

    Args:
        text: extracted text, lines separated by "\\n".
        keep: lowercase hyphenated words ("sehari-hari") the document writes on one line:
            when one of them is broken at its hyphen, the hyphen stays.
    """
    text = _SOFT_HYPHEN_BREAK.sub("", text)  # a soft hyphen at a line end marks a broken word
    text = unicodedata.normalize("NFKC", text.translate(_INVISIBLE))
    text = text.replace("\r\n", "\n").replace("\r", "\n")

    def join(match: re.Match) -> str:
        head, tail = match.group(1), match.group(2)
        if _is_reduplication(head, tail) or f"{head}-{tail}".lower() in keep:
            return f"{head}-{tail}"
        return head + tail

    text = _LINE_END_HYPHEN.sub(join, text)
    text = _LEADERS.sub(" ... ", text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))


def hyphenated_words(text: str) -> set[str]:
    """Lowercase hyphenated words written within one line of `text` (for `normalize`'s keep)."""
    return {word.lower() for line in text.split("\n") for word in _HYPHENATED_WORD.findall(line)}


def _is_reduplication(head: str, tail: str) -> bool:
    """anak-anak, sehari-hari, kebarat-baratan, bermain-main: one half repeats the other."""
    a, b = head.lower(), tail.lower()
    if a == b or a.endswith(b) or b.startswith(a):
        return True
    return any(a.endswith(b[:k]) for k in range(4, len(b) + 1))


def one_line(text: str) -> str:
    """All whitespace collapsed to single spaces (how chunks are stored)."""
    return " ".join(text.split())
