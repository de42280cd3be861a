"""The routing decision (pure maths, no I/O).

For a prompt with embedding ``x``, cluster weights ``w`` (one-hot for the nearest centroid, or a
softmax over cosine similarities), each candidate model ``m`` gets

    predicted_quality(m) = sum_k w_k * quality[m][k]                 (estimated P(correct), in [0, 1])
    score(m)             = (1 - predicted_quality(m))
                           + cost_weight * expected_cost(m) / max(expected_cost over the candidates)

and the lowest score wins; ties go to the cheaper model, then to the smaller id. For a fixed prompt
and candidate set the normaliser is a constant, so raising ``cost_weight`` can never select a more
expensive model (if i beats j at w1 and j beats i at w2 > w1, then (w2 - w1)(c_j - c_i) < 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Candidate:
    model: str
    predicted_quality: float
    expected_cost_pusd: int
    score: float


def batch_weights(x: npt.NDArray[np.float32], centroids: npt.NDArray[np.float32], assignment: str,
                  temperature: float) -> npt.NDArray[np.float64]:
    """Cluster weights, one row per (L2-normalised) embedding: one-hot at the most similar centroid
    (``hard``), or a softmax over the cosine similarities divided by ``temperature`` (``soft``)."""
    sims = (x @ centroids.T).astype(np.float64)
    if assignment == "soft":
        z = (sims - sims.max(axis=1, keepdims=True)) / max(temperature, 1e-6)
        e = np.exp(z)
        out: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
        return out
    w = np.zeros_like(sims)
    w[np.arange(len(sims)), np.argmax(sims, axis=1)] = 1.0
    return w


def cluster_weights(x: Vector, centroids: npt.NDArray[np.float32], assignment: str,
                    temperature: float) -> npt.NDArray[np.float64]:
    """Weights over the clusters for one embedding."""
    row: npt.NDArray[np.float64] = batch_weights(x[None, :], centroids, assignment, temperature)[0]
    return row


def predicted_quality(weights: npt.NDArray[np.float64], quality: Sequence[float]) -> float:
    q = float(np.dot(weights, np.asarray(quality, dtype=np.float64)))
    return min(1.0, max(0.0, q))


def score(quality: float, cost_pusd: int, max_cost_pusd: int, cost_weight: float) -> float:
    """The router's score (lower is better)."""
    relative = cost_pusd / max_cost_pusd if max_cost_pusd > 0 else 0.0
    return (1.0 - quality) + cost_weight * relative


def rank(qualities: dict[str, float], costs_pusd: dict[str, int], cost_weight: float) -> list[Candidate]:
    """Candidates ordered best first (lowest score; then cheaper; then id)."""
    if cost_weight < 0:
        raise ValueError("cost_weight must be >= 0")
    max_cost = max(costs_pusd.values(), default=0)
    out = [Candidate(m, q, costs_pusd[m], score(q, costs_pusd[m], max_cost, cost_weight))
           for m, q in qualities.items()]
    out.sort(key=lambda c: (c.score, c.expected_cost_pusd, c.model))
    return out
