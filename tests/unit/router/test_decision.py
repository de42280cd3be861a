"""The decision maths: the score formula, the ranking, and monotonicity in cost_weight."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perilune.router.decision import cluster_weights, predicted_quality, rank, score


def test_score_formula() -> None:
    assert score(0.9, 50, 200, 2.0) == pytest.approx((1 - 0.9) + 2.0 * 50 / 200)
    assert score(0.7, 0, 0, 5.0) == pytest.approx(0.3)  # all free: cost plays no part
    assert score(1.0, 200, 200, 0.0) == 0.0


def test_rank_orders_by_score_then_cost_then_id() -> None:
    ranked = rank({"a": 0.9, "b": 0.8, "c": 0.8, "d": 0.8}, {"a": 100, "b": 10, "c": 10, "d": 5}, 0.0)
    assert [c.model for c in ranked] == ["a", "d", "b", "c"]
    ranked = rank({"a": 0.9, "b": 0.8}, {"a": 100, "b": 10}, 1.0)
    assert ranked[0].model == "b"
    assert ranked[0].score == pytest.approx(0.2 + 0.1) and ranked[1].score == pytest.approx(0.1 + 1.0)


def test_negative_cost_weight_is_refused() -> None:
    with pytest.raises(ValueError):
        rank({"a": 0.5, "b": 0.5}, {"a": 1, "b": 2}, -0.1)


def test_cluster_weights_hard_and_soft() -> None:
    c = np.array([[1, 0], [0, 1]], dtype=np.float32)
    x = np.array([0.8, 0.6], dtype=np.float32)
    assert list(cluster_weights(x, c, "hard", 0.05)) == [1.0, 0.0]
    soft = cluster_weights(x, c, "soft", 0.1)
    assert soft.sum() == pytest.approx(1.0) and soft[0] > soft[1] > 0
    assert soft[0] / soft[1] == pytest.approx(np.exp((0.8 - 0.6) / 0.1), rel=1e-5)
    assert predicted_quality(soft, [1.0, 0.0]) == pytest.approx(soft[0])


models = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3),
                         st.tuples(st.floats(0, 1), st.integers(0, 10**10)), min_size=2, max_size=12)


@settings(max_examples=300, deadline=None)
@given(models, st.floats(0, 1000), st.floats(0, 1000))
def test_a_higher_cost_weight_never_picks_a_dearer_model(pool: dict[str, tuple[float, int]], w1: float,
                                                         w2: float) -> None:
    lo, hi = sorted((w1, w2))
    q = {m: v[0] for m, v in pool.items()}
    c = {m: v[1] for m, v in pool.items()}
    cheap_pick, dear_pick = rank(q, c, hi)[0], rank(q, c, lo)[0]
    assert cheap_pick.expected_cost_pusd <= dear_pick.expected_cost_pusd
    # and it does not buy that saving with quality it could have had for the same price
    assert dear_pick.predicted_quality >= cheap_pick.predicted_quality or \
        dear_pick.expected_cost_pusd == cheap_pick.expected_cost_pusd


@settings(max_examples=100, deadline=None)
@given(models)
def test_zero_cost_weight_picks_the_best_predicted_quality(pool: dict[str, tuple[float, int]]) -> None:
    q = {m: v[0] for m, v in pool.items()}
    c = {m: v[1] for m, v in pool.items()}
    best = rank(q, c, 0.0)[0]
    assert all(1.0 - best.predicted_quality <= 1.0 - v for v in q.values())  # in the score's float arithmetic
    assert best.score == 1.0 - best.predicted_quality
