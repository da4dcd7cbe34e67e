"""What the PDF reader hands on: a page's paragraphs, each under its chapter/section, and the
page's printed label and kind. Chunking (`engine.ingest.chunk`) packs these into chunks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of a page; a table is one paragraph whose lines are rows "a | b | c"."""

    text: str
    section: str = ""  # "Bab 3 Jaringan Komputer › Graf Berarah"
    kind: str = "text"  # "text" | "table"


@dataclass(frozen=True)
class PageText:
    """One page as the PDF reader found it."""

    paragraphs: list[Paragraph] = field(default_factory=list)
    label: str = ""  # the printed page label ("iv", "41"), "" when the PDF has none
    kind: str = "text"  # "text" | "toc" (a table of contents)
    ocr: bool = False  # the text was read by OCR

    @property
    def text(self) -> str:
        return "\n\n".join(p.text for p in self.paragraphs)
