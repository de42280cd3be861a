"""Live figures of one deployment over a recent window, in bounded memory.

Each measure (latency, TTFT, tokens/s) keeps its last ``capacity`` samples in a ring buffer with their
times; a quantile is computed over the samples still inside the window and cached for ``CACHE_S``
(until the next sample while there are few), so the hot path (``add``) is a couple of list stores.
Request and error counts come from a :class:`RollingCounter`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perilune.gateway.resilience.window import RollingCounter

CACHE_S = 0.25  # a quantile is recomputed (one sort of <= capacity floats) at most this often


class Samples:
    """The last ``capacity`` (time, value) samples; quantiles over those newer than ``window_s``."""

    __slots__ = ("_cache", "_n", "_next", "_times", "_values", "capacity", "window_s")

    def __init__(self, window_s: float, capacity: int = 256) -> None:
        self.window_s = window_s
        self.capacity = capacity
        self._times = [0.0] * capacity
        self._values = [0.0] * capacity
        self._next = 0
        self._n = 0
        self._cache: tuple[float, list[float]] | None = None  # (computed at, sorted window values)

    def add(self, now: float, value: float) -> None:
        i = self._next
        self._times[i], self._values[i] = now, value
        self._next = (i + 1) % self.capacity
        self._n = min(self._n + 1, self.capacity)
        if self._cache is not None and len(self._cache[1]) < 8:
            self._cache = None  # few samples: each one counts; otherwise the cache expires by time

    def _window(self, now: float) -> list[float]:
        cached = self._cache
        if cached is not None and 0 <= now - cached[0] < CACHE_S:
            return cached[1]
        oldest = now - self.window_s
        values = sorted(self._values[i] for i in range(self._n) if self._times[i] >= oldest)
        self._cache = (now, values)
        return values

    def count(self, now: float) -> int:
        return len(self._window(now))

    def quantile(self, now: float, q: float) -> float | None:
        """Nearest-rank quantile (q in [0, 1]) of the samples in the window; None without samples."""
        values = self._window(now)
        if not values:
            return None
        rank = max(1, math.ceil(q * len(values)))
        return values[rank - 1]

    def mean(self, now: float) -> float | None:
        values = self._window(now)
        return sum(values) / len(values) if values else None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What ``GET /v1/providers`` shows for one deployment (None = not measured yet)."""

    requests: int
    errors: int
    error_rate: float | None
    latency_ms_p50: float | None
    ttft_ms_p50: float | None
    ttft_ms_p95: float | None
    throughput_tps: float | None


class DeploymentStats:
    __slots__ = ("counts", "latency_ms", "tokens_per_s", "ttft_ms")

    def __init__(self, window_s: float = 60.0, capacity: int = 256) -> None:
        self.counts = RollingCounter(window_s)
        self.latency_ms = Samples(window_s, capacity)
        self.ttft_ms = Samples(window_s, capacity)
        self.tokens_per_s = Samples(window_s, capacity)

    def add(self, now: float, ok: bool, *, latency_ms: float | None = None, ttft_ms: float | None = None,
            tokens_per_s: float | None = None) -> None:
        self.counts.add(now, ok)
        if not ok:
            return  # a failure's timings describe the failure, not the deployment's speed
        if latency_ms is not None:
            self.latency_ms.add(now, latency_ms)
        if ttft_ms is not None:
            self.ttft_ms.add(now, ttft_ms)
        if tokens_per_s is not None and tokens_per_s > 0:
            self.tokens_per_s.add(now, tokens_per_s)

    def snapshot(self, now: float) -> Snapshot:
        ok, fail = self.counts.counts(now)
        total = ok + fail
        return Snapshot(
            requests=total,
            errors=fail,
            error_rate=(fail / total) if total else None,
            latency_ms_p50=_round(self.latency_ms.quantile(now, 0.5)),
            ttft_ms_p50=_round(self.ttft_ms.quantile(now, 0.5)),
            ttft_ms_p95=_round(self.ttft_ms.quantile(now, 0.95)),
            throughput_tps=_round(self.tokens_per_s.quantile(now, 0.5)),
        )


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)
