"""RFM scores and segments: quintile edges, ties, the segment grid and the suppressed summary."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from analytics import rfm_model
from analytics.release import suppressed_cells
from analytics.rfm_model import SCORES, SEGMENTS, Rfm, quintile_scores, score, segment, segment_summary


def test_distinct_values_split_into_five_equal_quintiles_best_last() -> None:
    values = [float(v) for v in range(1, 101)]
    random.Random(1).shuffle(values)
    scores = quintile_scores(values)
    by_score = {s: sorted(v for v, sc in zip(values, scores, strict=True) if sc == s) for s in SCORES}
    # The edges: each quintile is the next 20 values, 1..20 scoring 1 and 81..100 scoring 5.
    for s in SCORES:
        assert by_score[s] == [float(v) for v in range(20 * (s - 1) + 1, 20 * s + 1)]


def test_recency_scores_fewer_days_higher() -> None:
    days = [float(d) for d in range(50)]
    scores = quintile_scores(days, higher_is_better=False)
    assert [scores[d] for d in (0, 9, 10, 49)] == [5, 5, 4, 1]


def test_equal_values_score_alike_whatever_the_order() -> None:
    rng = random.Random(7)
    values = [float(rng.choice([1, 1, 1, 2, 3, 5, 8])) for _ in range(503)]
    scores = dict(zip(values, quintile_scores(values), strict=True))
    for _ in range(5):
        rng.shuffle(values)
        assert dict(zip(values, quintile_scores(values), strict=True)) == scores
    for v, s in scores.items():
        below = sum(1 for w in values if w < v)
        assert s == 1 + (5 * below) // len(values)


def test_every_score_pair_belongs_to_exactly_one_segment() -> None:
    owners: Counter[tuple[int, int]] = Counter()
    for recency_scores, frequency_scores, name in rfm_model._GRID:
        cells = {(r, f) for r in recency_scores for f in frequency_scores}
        owners.update(cells - ({(1, 1)} if name == rfm_model.HIBERNATING else set()))
    assert set(owners) == {(r, f) for r in SCORES for f in SCORES}
    assert set(owners.values()) == {1}
    assert {segment(r, f) for r in SCORES for f in SCORES} == set(SEGMENTS)
    assert segment(5, 5) == rfm_model.CHAMPIONS
    assert segment(1, 1) == rfm_model.LOST
    assert segment(1, 5) == rfm_model.CANT_LOSE
    with pytest.raises(ValueError, match="from 1 to 5"):
        segment(0, 3)


def _people(n: int, seed: int) -> list[Rfm]:
    rng = random.Random(seed)
    return [Rfm(float(rng.randrange(365)), rng.randrange(1, 12), round(rng.uniform(5, 500), 2)) for _ in range(n)]


def test_people_get_their_three_scores_and_the_segment_of_r_and_f() -> None:
    people = _people(400, seed=3)
    scores = score(people)
    assert [s.recency for s in scores] == quintile_scores([p.recency_days for p in people], higher_is_better=False)
    assert [s.frequency for s in scores] == quintile_scores([float(p.frequency) for p in people])
    assert [s.monetary for s in scores] == quintile_scores([p.monetary for p in people])
    assert all(s.segment == segment(s.recency, s.frequency) for s in scores)
    assert scores[0].code == f"{scores[0].recency}{scores[0].frequency}{scores[0].monetary}"
    with pytest.raises(ValueError, match="describes buyers"):
        score([Rfm(3.0, 0, 0.0)])


def test_the_segment_summary_adds_up_and_suppresses_small_segments() -> None:
    people = _people(300, seed=4)
    scores = score(people)
    sizes = Counter(s.segment for s in scores)
    k = min(sizes.values()) + 1  # hides the smallest segment (and, by the secondary rule, more)
    summary = segment_summary(people, scores, k=k)
    assert [row.segment for row in summary] == list(SEGMENTS)
    hidden = suppressed_cells({name: sizes.get(name, 0) for name in SEGMENTS}, k)
    assert {row.segment for row in summary if row.suppressed} == hidden != set()
    for row in summary:
        if not row.suppressed:
            members = [p.monetary for p, s in zip(people, scores, strict=True) if s.segment == row.segment]
            assert row.people == len(members)
            assert row.total_value == pytest.approx(sum(members))
            assert row.mean_value == (pytest.approx(sum(members) / len(members)) if members else None)
