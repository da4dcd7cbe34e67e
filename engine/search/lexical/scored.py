"""One grade/subject's BM25 scores for one question, and how the index reads hits from them.

`LexicalIndex._score_library` fills a `Scored` from a grade/subject's in-memory postings
(`postings.py`); the index then asks it for the best `k` (`top`), for given chunks (`among`) or
for every chunk that matched (`every`), as (score, coverage, row id) rounded as hits report them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.search.lexical.postings import Library

# rounding moves a score by at most 5e-7: a chunk whose raw score is this far below the k-th
# best cannot reach or tie it once both are rounded
_ROUNDING_MARGIN = 2e-6


@dataclass
class Scored:
    """One grade/subject's BM25 scores for one question, over its chunk arrays."""

    library: Library
    scores: np.ndarray  # raw BM25 per chunk position
    touched: np.ndarray  # whether the chunk shares a term with the question
    ideal: float  # score of a chunk holding every question term once, at the average length

    def _tuples(self, positions: np.ndarray) -> list[tuple[float, float, int]]:
        """(score, coverage, row id) of these positions, rounded as the index reports them."""
        values = self.scores[positions].tolist()
        rowids = self.library.rowids[positions].tolist()
        ideal = self.ideal
        return [(round(v, 6), round(v / ideal, 6), r) for v, r in zip(values, rowids, strict=True)]

    def every(self) -> list[tuple[float, float, int]]:
        return self._tuples(np.flatnonzero(self.touched))

    def among(self, positions: np.ndarray) -> list[tuple[float, float, int]]:
        return self._tuples(positions[self.touched[positions]])

    def top(self, k: int) -> list[tuple[float, float, int]]:
        """Every chunk that can be among the best `k` once scores are rounded (ties too)."""
        positions = np.flatnonzero(self.touched)
        if len(positions) > k:
            values = self.scores[positions]
            kth = np.partition(values, len(values) - k)[len(values) - k]
            positions = positions[values >= kth - _ROUNDING_MARGIN]
        return self._tuples(positions)


def idf(chunks: int, df: int) -> float:
    """BM25 inverse document frequency (Lucene's form: never negative)."""
    return math.log(1 + (chunks - df + 0.5) / (df + 0.5))
