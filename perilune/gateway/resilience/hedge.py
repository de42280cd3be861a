"""When to hedge: start the next deployment if the first token has not come within the deployment's
live TTFT quantile (p90 by default; see ``HedgePolicy.quantile``)."""

from __future__ import annotations

from dataclasses import dataclass

from perilune.gateway.resilience.stats import DeploymentStats


@dataclass(frozen=True, slots=True)
class HedgePolicy:
    """``quantile`` of the live TTFT after which a hedge starts, once ``min_samples`` are measured.

    Until then ``default_ms`` is used (None: no hedge before the deployment is measured). The delay is
    kept within [``min_ms``, ``max_ms``]. With a slow tail of share s, a quantile above 1 - s lies inside
    the tail and the hedge starts too late to help: p95 suits tails under 5 %; the default p90 suits
    tails up to ~10 %. Attempts cancelled by a winning hedge report no TTFT, so the measured tail
    shrinks once hedging works.
    """

    quantile: float = 0.9
    min_samples: int = 20
    default_ms: float | None = None
    min_ms: float = 20.0
    max_ms: float = 30_000.0

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ValueError("hedge quantile must be in (0, 1)")
        if self.min_samples < 1 or self.min_ms < 0 or self.max_ms < self.min_ms:
            raise ValueError("hedge min_samples >= 1 and 0 <= min_ms <= max_ms")

    def delay_ms(self, stats: DeploymentStats, now: float) -> float | None:
        """Milliseconds to wait for the first token before starting a hedge; None = do not hedge."""
        ttft = stats.ttft_ms
        value = ttft.quantile(now, self.quantile) if ttft.count(now) >= self.min_samples else self.default_ms
        if value is None:
            return None
        return min(max(value, self.min_ms), self.max_ms)
