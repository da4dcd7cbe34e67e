"""Hybrid fusion: one ranking from a vector score and a BM25 score per candidate chunk.

Pure functions over `Candidate`s, so every variant can be scored offline on the development set
(bench/retrieval.py --variants) and unit-tested without a model. The variants measured there:

- `weighted` with `normalise`:
  - `minmax`: each side min-max scaled within the candidates (the first version: BM25 divided by
    the best BM25, cosine min-max);
  - `zscore`: each side standardised within the candidates;
  - `absolute`: cosine as it is and BM25 as `coverage` (the share of the question's weighted
    terms a chunk explains in its own grade/subject), so no score depends on the other
    candidates;
  with `coverage_power` p, the lexical side is coverage^p: a chunk that shares one incidental
  (stemmed) word with the question scores far below one that covers it, while full matches
  keep their weight;
- `rrf`: reciprocal-rank fusion, weight / (rrf_k + rank) per side;
- `adaptive`: the lexical weight shrinks when the best lexical match explains little of the
  question (English or paraphrased questions), so the vector side decides;
- `toc_factor`: table-of-contents chunks (`kind: "toc"`) have their fused score multiplied by it;
- `neighbour`: a chunk gains this share of the best fused score among its adjacent chunks in the
  same document (an answer spread over two chunks);
- `boilerplate`: a chunk's fused score is multiplied by 1 - boilerplate x its template share
  (the part of its text repeated across many documents of its subject, see
  `engine.search.lexical.boilerplate`), on both sides at once;
- `lesson`: lesson-level evidence, a chunk gains this share of the mean of its lesson's next
  best candidate scores (measured, not chosen for any model).

DEFAULT is the variant that scored best on the development questions with all-MiniLM-L6-v2;
`for_model` gives the one chosen for another model, because cosine scales differ between
models and so do the weights that work (same development set, same table of variants: run
bench/retrieval.py --variants --model MODEL). FUSION_VECTOR_WEIGHT/FUSION_LEXICAL_WEIGHT, when
set, override the weights for every model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

Method = Literal["weighted", "rrf"]
Normalise = Literal["minmax", "zscore", "absolute"]


@dataclass(frozen=True)
class FusionConfig:
    method: Method = "weighted"
    normalise: Normalise = "absolute"
    vector_weight: float = 0.2
    lexical_weight: float = 0.8
    adaptive: bool = False
    confident_coverage: float = 0.5  # adaptive: lexical coverage at which BM25 gets full weight
    rrf_k: float = 60.0
    toc_factor: float = 0.5
    neighbour: float = 0.0
    coverage_power: float = 1.0  # absolute: lexical side = coverage ** coverage_power
    boilerplate: float = 0.0  # a chunk's score x (1 - boilerplate x its template share)
    lesson: float = 0.0  # a chunk gains this share of its lesson's other best chunks' scores
    lesson_depth: int = 3  # how many of a lesson's best chunks count as its evidence

    def with_weights(self, vector: float, lexical: float) -> FusionConfig:
        return replace(self, vector_weight=vector, lexical_weight=lexical)


DEFAULT = FusionConfig()

# Chosen on the development questions (dev hit@1/hit@5 in the README's retrieval tables):
# USE v3 on the teaching-module set (bench/retrieval_modules.py --techniques), where template
# text repeated across a subject's modules is weighed down by half.
BY_MODEL: dict[str, FusionConfig] = {
    "use-multilingual-v3": FusionConfig(vector_weight=0.7, lexical_weight=0.3, boilerplate=0.5),
}


def for_model(model_key: str) -> FusionConfig:
    """The fusion chosen for vectors of `model_key` (DEFAULT for models not measured)."""
    return BY_MODEL.get(model_key, DEFAULT)


@dataclass
class Candidate:
    """What fusion knows about one candidate chunk."""

    vector: float | None  # cosine similarity (None: no vector for this chunk)
    lexical: float  # BM25 within its grade/subject (0: no question term)
    coverage: float = 0.0  # BM25 / ideal BM25 for the question in its grade/subject
    toc: bool = False
    document: tuple = ()  # (grade, subject, sha prefix) for neighbour merging
    index: int = -1  # chunk index within the document (-1: unknown)
    model: str = ""  # key of the model whose collection holds the chunk ("": none queried)
    boilerplate: float = 0.0  # share of its text repeated across its subject's documents


def fuse(candidates: list[Candidate], config: FusionConfig = DEFAULT) -> list[float]:
    """Fused score of each candidate (same order), higher is better."""
    if not candidates:
        return []
    vector_weight, lexical_weight = config.vector_weight, config.lexical_weight
    if config.adaptive:
        lexical_weight *= lexical_confidence(candidates, config.confident_coverage)
    if config.method == "rrf":
        vec = _reciprocal_ranks([c.vector for c in candidates], config.rrf_k)
        lex = _reciprocal_ranks([c.lexical or None for c in candidates], config.rrf_k)
    elif config.normalise == "absolute":
        vec = [c.vector if c.vector is not None else 0.0 for c in candidates]
        lex = [c.coverage**config.coverage_power for c in candidates]
    elif config.normalise == "zscore":
        vec = zscore([c.vector for c in candidates])
        lex = zscore([c.lexical for c in candidates])
    elif config.normalise == "minmax":
        vec = minmax([c.vector for c in candidates], floor_at_min=True)
        lex = minmax([c.lexical for c in candidates], floor_at_min=False)
    else:
        raise ValueError(f"unknown normalisation {config.normalise!r}")
    total = vector_weight + lexical_weight or 1.0
    scores = [
        (vector_weight * v + lexical_weight * lx) / total for v, lx in zip(vec, lex, strict=True)
    ]
    if config.toc_factor != 1.0:
        scores = [
            s * config.toc_factor if c.toc else s for s, c in zip(scores, candidates, strict=True)
        ]
    if config.neighbour:
        scores = _merge_neighbours(candidates, scores, config.neighbour)
    if config.boilerplate:
        scores = [
            s * (1 - config.boilerplate * c.boilerplate)
            for s, c in zip(scores, candidates, strict=True)
        ]
    if config.lesson:
        scores = _lesson_evidence(candidates, scores, config.lesson, config.lesson_depth)
    return scores


def _lesson_evidence(
    candidates: list[Candidate], scores: list[float], share: float, depth: int
) -> list[float]:
    """Each chunk plus `share` x the mean of the next best `depth - 1` chunk scores of its
    lesson (0 for each missing one): a lesson that answers with several chunks outranks a
    single chunk that matches by chance, e.g. template text."""
    by_document: dict[tuple, list[tuple[float, int]]] = {}
    for i, (c, s) in enumerate(zip(candidates, scores, strict=True)):
        if c.document:
            by_document.setdefault(c.document, []).append((s, i))
    out = list(scores)
    others = max(1, depth - 1)
    for members in by_document.values():
        members.sort(reverse=True)
        for s, i in members:
            rest = [score for score, j in members if j != i][:others]
            out[i] = s + share * sum(rest) / others
    return out


def lexical_confidence(candidates: list[Candidate], confident_coverage: float) -> float:
    """0..1: how much of the question the best lexical match explains, relative to the level
    (`confident_coverage`) at which BM25 is trusted fully."""
    best = max((c.coverage for c in candidates), default=0.0)
    if confident_coverage <= 0:
        return 1.0
    return min(1.0, best / confident_coverage)


def minmax(values: list[float | None], *, floor_at_min: bool) -> list[float]:
    """Scale to 0..1 within the list (missing values count as 0).

    With `floor_at_min` false the scale starts at 0, not at the smallest value, so a score of 0
    (e.g. BM25 without any question term) stays 0.
    """
    known = [v for v in values if v is not None]
    if not known:
        return [0.0] * len(values)
    top = max(known)
    bottom = min(known) if floor_at_min else 0.0
    span = top - bottom
    if span <= 0:
        return [1.0 if v is not None and top > 0 else 0.0 for v in values]
    return [0.0 if v is None else (v - bottom) / span for v in values]


def zscore(values: list[float | None]) -> list[float]:
    """Standardise within the list (missing values get the lowest z-score)."""
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return [0.0 if v is None else 1.0 for v in values]
    mean = sum(known) / len(known)
    sd = math.sqrt(sum((v - mean) ** 2 for v in known) / len(known)) or 1.0
    low = min((v - mean) / sd for v in known)
    return [low if v is None else (v - mean) / sd for v in values]


def _reciprocal_ranks(values: list[float | None], k: float) -> list[float]:
    order = sorted((i for i, v in enumerate(values) if v is not None), key=lambda i: -values[i])
    ranks = [0.0] * len(values)
    for rank, i in enumerate(order, start=1):
        ranks[i] = (k + 1) / (k + rank)  # 1 for the best, like the other scales
    return ranks


def _merge_neighbours(candidates: list[Candidate], scores: list[float], share: float) -> list:
    by_position = {
        (c.document, c.index): s
        for c, s in zip(candidates, scores, strict=True)
        if c.document and c.index >= 0
    }
    merged = []
    for c, s in zip(candidates, scores, strict=True):
        if c.document and c.index >= 0:
            near = max(
                by_position.get((c.document, c.index - 1), 0.0),
                by_position.get((c.document, c.index + 1), 0.0),
            )
            s += share * near
        merged.append(s)
    return merged
