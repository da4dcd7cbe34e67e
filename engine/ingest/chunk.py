"""Split page texts into overlapping chunks that remember their page numbers.

Chunks are packed from sentences (paragraph and sentence boundaries first, words only when a
sentence alone is too long), up to `size` characters, and never past the embedding model's token
limit: a chunk the model would silently truncate is split instead. Each new chunk starts with
the last sentences of the previous one, up to `overlap` characters, so an answer that straddles
a boundary is found whole in one of them.

Pages come either as plain strings (paragraphs separated by blank lines) or, from the PDF
reader, as `PageText`: paragraphs that know the chapter/section they fall under and whether
they are a table, plus the page's printed label and kind ("toc" for a table of contents). A
table's rows are units of their own, so a row is never split (unless it alone is longer than a
chunk). A chunk never mixes a table of contents with body text, and a new section starts a new
chunk (without overlap), so every chunk has one `section`; only a short lead-in (a chapter
heading followed at once by its first section) is kept with what follows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from engine.pdf.pages import PageText, Paragraph
from engine.pdf.textclean import normalize, one_line

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# A sentence ends at . ! ? (optionally followed by a closing quote/bracket) before whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    page_start: int
    page_end: int
    section: str = ""
    page_label: str = ""  # printed label of page_start (its number when the PDF has none)
    kind: str = "text"  # "text" | "toc"

    @property
    def pages(self) -> str:
        if self.page_start == self.page_end:
            return str(self.page_start)
        return f"{self.page_start}-{self.page_end}"


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of a long one) and the page it is on."""

    text: str
    page: int
    section: str = ""
    kind: str = "text"  # of the page: "text" | "toc"
    label: str = ""


def _clean(paragraph: str) -> str:
    return one_line(normalize(paragraph))


def _split_words(text: str, limit: int) -> list[str]:
    """Cut `text` at spaces into pieces of at most `limit` characters (hard cut if no space)."""
    pieces, current = [], ""
    for word in text.split(" "):
        while len(word) > limit:  # a "word" longer than a chunk: cut it hard
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:limit])
            word = word[limit:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= limit:
            current = candidate
        else:
            pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return pieces


def _as_page(page: str | PageText) -> PageText:
    if isinstance(page, PageText):
        return page
    return PageText([Paragraph(p) for p in _PARAGRAPH_BREAK.split(page.replace("\r", ""))])


def _units(pages: list[str] | list[PageText], size: int) -> list[_Unit]:
    units = []
    for number, page in enumerate(map(_as_page, pages), start=1):
        label = page.label or str(number)
        for paragraph in page.paragraphs:
            if paragraph.kind == "table":  # one unit per row: a row is never split
                pieces = [one_line(row) for row in paragraph.text.split("\n")]
            else:
                pieces = _SENTENCE_END.split(_clean(paragraph.text))
            for piece in pieces:
                piece = piece.strip()
                if piece:
                    units.extend(
                        _Unit(p, number, paragraph.section, page.kind, label)
                        for p in _split_words(piece, size)
                    )
    return units


def chunk_pages(
    pages: list[str] | list[PageText],
    *,
    size: int = 800,
    overlap: int = 100,
    max_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> list[Chunk]:
    """Chunk the text of a document's pages (index 0 is page 1).

    Args:
        pages: text of each page, or the PDF reader's `PageText`s.
        size: most characters per chunk.
        overlap: characters of trailing sentences repeated at the start of the next chunk.
        max_tokens: the embedding model's input limit; chunks are kept within it.
        count_tokens: the model's tokenizer, as text -> number of tokens.
    """
    if overlap >= size:
        raise ValueError("chunk overlap must be smaller than the chunk size")

    token_cache: dict[str, int] = {}

    def tokens(text: str) -> int:
        if text not in token_cache:
            token_cache[text] = count_tokens(text)
        return token_cache[text]

    def fits(units: list[_Unit]) -> bool:
        if sum(len(u.text) + 1 for u in units) - 1 > size:
            return False
        if max_tokens is None or count_tokens is None:
            return True
        # Tokenizers split at spaces first, so a joined text costs about the sum of its
        # sentences (each sentence counted once). Near the limit, count the real text.
        specials = tokens("")
        estimate = specials + sum(tokens(u.text) - specials for u in units)
        if estimate < 0.9 * max_tokens:
            return True
        return count_tokens(" ".join(u.text for u in units)) <= max_tokens

    def shrink(unit: _Unit) -> list[_Unit]:
        """Split one unit in halves (at spaces) until every half fits the token limit."""
        if fits([unit]) or len(unit.text) < 2:
            return [unit]
        half = len(unit.text) // 2
        cut = unit.text.rfind(" ", 0, half)
        cut = cut if cut > 0 else half
        left, right = unit.text[:cut].strip(), unit.text[cut:].strip()
        return shrink(_replace(unit, left)) + shrink(_replace(unit, right))

    chunks: list[Chunk] = []
    current: list[_Unit] = []
    fresh = 0  # units in `current` that are new (not carried over as overlap)

    def emit() -> None:
        text = " ".join(u.text for u in current)
        first = min(current, key=lambda u: u.page)
        last = current[-1]
        pages_of = [u.page for u in current]
        chunks.append(
            Chunk(
                len(chunks),
                text,
                first.page,
                max(pages_of),
                section=last.section,
                page_label=first.label,
                kind=last.kind,
            )
        )

    def starts_anew(unit: _Unit) -> bool:
        """A new section (or a change between TOC and text) starts a new chunk, unless what
        is gathered is only a short lead-in of a parent section (a chapter heading)."""
        nonlocal current
        if not current or (current[-1].section, current[-1].kind) == (unit.section, unit.kind):
            return False
        lead_in = current[len(current) - fresh :] if fresh else []
        if (
            lead_in
            and unit.kind == lead_in[-1].kind
            and unit.section.startswith(lead_in[-1].section)
            and sum(len(u.text) + 1 for u in lead_in) < size // 4
        ):
            current = lead_in  # keep the heading, drop overlap carried from before it
            return False
        return True

    for big in _units(pages, size):
        for unit in shrink(big):
            if starts_anew(unit):
                if fresh:
                    emit()
                current, fresh = [unit], 1
                continue
            if fits([*current, unit]):
                current.append(unit)
                fresh += 1
                continue
            if fresh:
                emit()
            # Carry the previous chunk's last sentences (≤ overlap chars) into the next one.
            carried: list[_Unit] = []
            for prev in reversed(current if fresh else []):
                if sum(len(u.text) + 1 for u in carried) + len(prev.text) > overlap:
                    break
                carried.insert(0, prev)
            if fresh and not carried and overlap:
                # the last sentence alone is longer than the overlap: carry its tail words
                tail = current[-1].text[-overlap:]
                tail = tail[tail.find(" ") + 1 :] if " " in tail else tail
                carried = [_replace(current[-1], tail)]
            while carried and not fits([*carried, unit]):
                carried.pop(0)
            current, fresh = [*carried, unit], 1
    if fresh:
        emit()
    return chunks


def _replace(unit: _Unit, text: str) -> _Unit:
    return _Unit(text, unit.page, unit.section, unit.kind, unit.label)
