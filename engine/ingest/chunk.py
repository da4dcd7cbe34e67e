"""Split page texts into overlapping chunks that remember their page numbers.

Chunks are packed from sentences (paragraph and sentence boundaries first, words only when a
sentence alone is too long), up to `size` characters, and never past the embedding model's token
limit: a chunk the model would silently truncate is split instead. Each new chunk starts with
the last sentences of the previous one, up to `overlap` characters, so an answer that straddles
a boundary is found whole in one of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# A sentence ends at . ! ? (optionally followed by a closing quote/bracket) before whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")
_HYPHENATED_LINE_END = re.compile(r"(\w)-\n(\w)")


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    page_start: int
    page_end: int

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


def _clean(paragraph: str) -> str:
    paragraph = _HYPHENATED_LINE_END.sub(r"\1\2", paragraph)
    return " ".join(paragraph.split())


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


def _units(pages: list[str], size: int) -> list[_Unit]:
    units = []
    for number, page_text in enumerate(pages, start=1):
        for paragraph in _PARAGRAPH_BREAK.split(page_text.replace("\r", "")):
            cleaned = _clean(paragraph)
            if not cleaned:
                continue
            for sentence in _SENTENCE_END.split(cleaned):
                sentence = sentence.strip()
                if sentence:
                    units.extend(_Unit(p, number) for p in _split_words(sentence, size))
    return units


def chunk_pages(
    pages: list[str],
    *,
    size: int = 800,
    overlap: int = 100,
    max_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> list[Chunk]:
    """Chunk the text of a document's pages (index 0 is page 1).

    Args:
        pages: text of each page.
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
        return shrink(_Unit(left, unit.page)) + shrink(_Unit(right, unit.page))

    chunks: list[Chunk] = []
    current: list[_Unit] = []
    fresh = 0  # units in `current` that are new (not carried over as overlap)

    def emit() -> None:
        text = " ".join(u.text for u in current)
        pages_of = [u.page for u in current]
        chunks.append(Chunk(len(chunks), text, min(pages_of), max(pages_of)))

    for big in _units(pages, size):
        for unit in shrink(big):
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
                carried = [_Unit(tail, current[-1].page)]
            while carried and not fits([*carried, unit]):
                carried.pop(0)
            current, fresh = [*carried, unit], 1
    if fresh:
        emit()
    return chunks
