"""Cost-quality curves: hull, area and quality-neutral cost on hand-checked points."""

from __future__ import annotations

import numpy as np
import pytest

from perilune.router import curve


def test_hull_drops_dominated_points_and_is_non_decreasing() -> None:
    pts = [(1.0, 0.5), (2.0, 0.55), (3.0, 0.9), (4.0, 0.8), (3.0, 0.7)]
    assert curve.hull(pts) == [(1.0, 0.5), (3.0, 0.9)]  # (2, .55) lies under the chord; (4, .8) costs more


def test_auc_of_a_single_model_range() -> None:
    # the chord from (0, 0.5) to (10, 1.0) has mean 0.75 over [0, 10]
    assert curve.auc([(0.0, 0.5), (10.0, 1.0)], 0.0, 10.0) == pytest.approx(0.75, abs=1e-6)
    # a point at cost 5: 0 below it, flat after it
    assert curve.auc([(5.0, 0.8)], 0.0, 10.0) == pytest.approx(0.4, abs=1e-3)


def test_cost_to_reach() -> None:
    pts = [(1.0, 0.5), (3.0, 0.9)]
    assert curve.cost_to_reach(pts, 0.7) == pytest.approx(2.0)
    assert curve.cost_to_reach(pts, 0.4) == 1.0
    assert curve.cost_to_reach(pts, 0.95) is None


def test_operating_points_route_by_score() -> None:
    true_q = np.array([[1.0, 0.0], [0.0, 1.0]])
    true_c = np.array([[10.0, 1.0], [10.0, 1.0]])
    pts = curve.operating_points(true_q, true_c, true_q, true_c, weights=(0.0, 100.0))
    assert pts[0] == (5.5, 1.0)  # the oracle at w=0: each prompt to the model that is right
    assert pts[1] == (1.0, 0.5)  # a huge cost weight: the cheap model everywhere
