"""Cost-quality curves: routing a labelled set at a sweep of cost weights, the hull, its area.

A router operated at a budget can mix two of its operating points at random, and never has to spend
more to get less, so its curve is the upper concave hull of its (mean cost, mean quality) points,
flat after its best point and 0 below its cheapest one. The area is taken over the cost range of
the single models (the cheapest model's mean cost to the most expensive one's) and divided by that
range: the mean quality a router gives over the budgets that matter, in [0, 1].
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Point = tuple[float, float]  # (mean cost, mean quality)

# cost weights swept to trace a router's curve: 0, then 1e-3 .. 1e3
COST_WEIGHTS: tuple[float, ...] = (0.0, *(float(w) for w in np.logspace(-3, 3, 61)))


def choose(pred_q: F64, pred_c: F64, cost_weight: float) -> npt.NDArray[np.int64]:
    """Per row, the column with the lowest router score; ties to the cheaper column."""
    max_c = pred_c.max(axis=1, keepdims=True)
    max_c[max_c <= 0] = 1.0
    s = (1.0 - pred_q) + cost_weight * pred_c / max_c
    s = s + 1e-12 * pred_c / max_c  # tie-break towards the cheaper model
    pick: npt.NDArray[np.int64] = np.argmin(s, axis=1)
    return pick


def operating_points(pred_q: F64, pred_c: F64, true_q: F64, true_c: F64,
                     weights: Iterable[float] = COST_WEIGHTS) -> list[Point]:
    rows = np.arange(len(true_q))
    out = []
    for w in weights:
        pick = choose(pred_q, pred_c, w)
        out.append((float(true_c[rows, pick].mean()), float(true_q[rows, pick].mean())))
    return out


def hull(points: Sequence[Point]) -> list[Point]:
    """Upper concave hull, non-decreasing in quality, sorted by cost."""
    best_at: dict[float, float] = {}
    for c, q in points:
        best_at[c] = max(q, best_at.get(c, q))
    pts = sorted(best_at.items())
    upper: list[Point] = []
    for p in pts:
        while len(upper) >= 2:
            (x1, y1), (x2, y2) = upper[-2], upper[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:  # upper[-1] is below the chord
                upper.pop()
            else:
                break
        upper.append(p)
    best = max(range(len(upper)), key=lambda i: (upper[i][1], -upper[i][0]))
    return upper[:best + 1]


def quality_at(h: Sequence[Point], cost: F64) -> F64:
    xs = np.array([p[0] for p in h])
    ys = np.array([p[1] for p in h])
    q = np.interp(cost, xs, ys, left=0.0, right=ys[-1])
    q[cost < xs[0]] = 0.0
    out: F64 = np.asarray(q, dtype=np.float64)
    return out


def auc(points: Sequence[Point], c_lo: float, c_hi: float, steps: int = 4001) -> float:
    """Normalised area under the hull between the cheapest and the dearest single model's mean cost."""
    if c_hi <= c_lo:
        return float(max(q for _, q in points))
    grid = np.linspace(c_lo, c_hi, steps)
    return float(np.trapezoid(quality_at(hull(points), grid), grid) / (c_hi - c_lo))


def cost_to_reach(points: Sequence[Point], target: float) -> float | None:
    """The least mean cost at which the hull reaches ``target`` quality (None: never)."""
    h = hull(points)
    if h[-1][1] < target:
        return None
    if h[0][1] >= target:
        return h[0][0]
    for (x1, y1), (x2, y2) in itertools.pairwise(h):
        if y2 >= target:
            return x1 + (x2 - x1) * (target - y1) / (y2 - y1)
    return None  # pragma: no cover - the last point reaches it
