"""When to hedge: start the next deployment if the first token has not come within the deployment's
live p95 TTFT, capped at a multiple of its median (see ``HedgePolicy``)."""

from __future__ import annotations

from dataclasses import dataclass

from perilune.gateway.resilience.stats import DeploymentStats


@dataclass(frozen=True, slots=True)
class HedgePolicy:
    """Wait ``min(q-quantile, median_multiple x median)`` of the live TTFT, once ``min_samples`` are
    measured; until then ``default_ms`` (None: no hedge before the deployment is measured). The delay is
    kept within [``min_ms``, ``max_ms``].

    Why the cap: with a slow tail of share s, a quantile above 1 - s lies inside the tail, so a hedge
    started there arrives too late to help, and the slow answers it loses to keep the tail in the
    figures (a stable bad state). The tail is far from the median by definition, so a few medians is
    a robust bound; for a wide but tail-free distribution the quantile is the smaller one.
    """

    quantile: float = 0.95
    min_samples: int = 20
    default_ms: float | None = None
    min_ms: float = 20.0
    max_ms: float = 30_000.0
    median_multiple: float = 3.0

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ValueError("hedge quantile must be in (0, 1)")
        if self.min_samples < 1 or self.min_ms < 0 or self.max_ms < self.min_ms or self.median_multiple < 0:
            raise ValueError("hedge min_samples >= 1, 0 <= min_ms <= max_ms, median_multiple >= 0")

    def delay_ms(self, stats: DeploymentStats, now: float) -> float | None:
        """Milliseconds to wait for the first token before starting a hedge; None = do not hedge."""
        ttft = stats.ttft_ms
        value = ttft.quantile(now, self.quantile) if ttft.count(now) >= self.min_samples else self.default_ms
        if value is None:
            return None
        median = ttft.quantile(now, 0.5) if ttft.count(now) >= self.min_samples else None
        if median is not None and self.median_multiple > 0:
            value = min(value, median * self.median_multiple)
        return min(max(value, self.min_ms), self.max_ms)
