"""Hybrid fusion (engine/search/fusion.py) on hand-made candidates: no model, no database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.search.fusion import DEFAULT, Candidate, FusionConfig, fuse, minmax, zscore


def best(candidates: list[Candidate], config: FusionConfig = DEFAULT) -> int:
    scores = fuse(candidates, config)
    return max(range(len(scores)), key=scores.__getitem__)


def test_a_chunk_strong_on_both_sides_wins():
    candidates = [
        Candidate(vector=0.62, lexical=3.1, coverage=0.7),
        Candidate(vector=0.65, lexical=0.0, coverage=0.0),  # similar meaning, no shared word
        Candidate(vector=0.20, lexical=3.3, coverage=0.72),  # words, but about something else
    ]
    for normalise in ("minmax", "zscore", "absolute"):
        assert best(candidates, replace(DEFAULT, normalise=normalise)) == 0


def test_reciprocal_rank_fusion_rewards_ranks_not_score_sizes():
    candidates = [
        Candidate(vector=0.62, lexical=30.0),  # first on words by far
        Candidate(vector=0.63, lexical=2.9),  # first on vectors by a hair
        Candidate(vector=0.10, lexical=2.8),
    ]
    rrf = replace(DEFAULT, method="rrf", vector_weight=0.5, lexical_weight=0.5)
    scores = fuse(candidates, rrf)
    assert scores[0] == pytest.approx(scores[1]) and scores[2] < scores[0]


def test_without_any_lexical_match_the_vector_side_decides():
    candidates = [
        Candidate(vector=0.31, lexical=0.0),
        Candidate(vector=0.48, lexical=0.0),
        Candidate(vector=0.12, lexical=0.0),
    ]
    assert best(candidates) == 1


def test_absolute_scores_do_not_depend_on_the_other_candidates():
    chunk = Candidate(vector=0.5, lexical=2.0, coverage=0.6)
    alone = fuse([chunk])[0]
    with_others = fuse([chunk, Candidate(vector=0.9, lexical=9.0, coverage=1.2)])[0]
    assert alone == with_others == pytest.approx(0.2 * 0.5 + 0.8 * 0.6)


def test_adaptive_weighting_trusts_vectors_when_the_words_explain_little():
    weak_words = [
        Candidate(vector=0.55, lexical=0.0, coverage=0.0),
        Candidate(vector=0.30, lexical=1.0, coverage=0.1),  # matched one common word
    ]
    fixed = replace(DEFAULT, vector_weight=0.2, lexical_weight=0.8, adaptive=False)
    assert best(weak_words, fixed) == 1
    assert best(weak_words, replace(fixed, adaptive=True, confident_coverage=0.5)) == 0


def test_table_of_contents_chunks_are_pushed_down():
    toc = Candidate(vector=0.5, lexical=3.0, coverage=0.9, toc=True)
    body = Candidate(vector=0.5, lexical=2.5, coverage=0.75)
    assert best([toc, body]) == 1
    assert best([toc, body], replace(DEFAULT, toc_factor=1.0)) == 0


def test_neighbour_merging_lifts_a_chunk_next_to_a_good_one():
    doc = ("kelas_10", "fisika", "abc")
    candidates = [
        Candidate(vector=0.40, lexical=1.0, coverage=0.3, document=doc, index=1),
        Candidate(vector=0.42, lexical=1.0, coverage=0.3, document=("x", "y", "z"), index=5),
        Candidate(vector=0.60, lexical=2.0, coverage=0.8, document=doc, index=2),
    ]
    scores = fuse(candidates, replace(DEFAULT, neighbour=0.3))
    assert scores[0] > scores[1]
    assert fuse(candidates)[0] < fuse(candidates)[1]


def test_scales():
    assert minmax([2.0, 4.0, None], floor_at_min=False) == [0.5, 1.0, 0.0]
    assert minmax([2.0, 4.0, 3.0], floor_at_min=True) == [0.0, 1.0, 0.5]
    assert minmax([0.0, 0.0], floor_at_min=False) == [0.0, 0.0]
    z = zscore([1.0, 3.0, None])
    assert z[0] == pytest.approx(-1.0) and z[1] == pytest.approx(1.0) and z[2] == z[0]
    assert fuse([]) == []


def test_a_power_of_coverage_silences_incidental_word_matches_but_keeps_full_ones():
    # a paraphrase: the right lesson shares no word, another shares one stemmed word by chance
    right = Candidate(vector=0.15, lexical=0.0, coverage=0.0)
    incidental = Candidate(vector=0.02, lexical=2.0, coverage=0.37)
    linear = replace(DEFAULT, vector_weight=0.7, lexical_weight=0.3)
    cubed = replace(linear, coverage_power=3.0)
    assert best([right, incidental], linear) == 1
    assert best([right, incidental], cubed) == 0
    # a keyword question: the chunk that covers it all still wins over a closer-sounding one
    covered = Candidate(vector=0.30, lexical=9.0, coverage=1.0)
    near = Candidate(vector=0.45, lexical=0.0, coverage=0.0)
    assert best([covered, near], cubed) == 0
