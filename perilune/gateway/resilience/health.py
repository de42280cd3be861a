"""Health of every deployment (provider x model): its breaker and its live figures.

The pipeline asks ``allow(d)`` before an attempt and calls ``report(d, ...)`` after every attempt;
routing asks ``available(d)`` (no side effects) to move open deployments last; ``GET /v1/providers``
and ``GET /v1/models`` read ``snapshot``/``status``. One process, one Health: the figures are this
instance's view (each gateway instance measures its own upstream traffic).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

from perilune.gateway.resilience.breaker import BreakerPolicy, CircuitBreaker, State
from perilune.gateway.resilience.hedge import HedgePolicy
from perilune.gateway.resilience.retry import Clock, RetryPolicy
from perilune.gateway.resilience.stats import DeploymentStats, Snapshot
from perilune.settings import Resilience

Status = Literal["ok", "degraded", "down"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


class DeploymentLike(Protocol):
    """What Health needs of a deployment: ``provider.name`` and ``model.id``."""

    @property
    def provider(self) -> _Named: ...

    @property
    def model(self) -> _Identified: ...


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    hedge: HedgePolicy = field(default_factory=HedgePolicy)
    stats_window_s: float = 60.0
    degraded_error_rate: float = 0.1  # at or above it (over the stats window) a deployment is "degraded"
    degraded_min_requests: int = 5


class _Entry:
    __slots__ = ("breaker", "last_status", "stats")

    def __init__(self, policy: HealthPolicy) -> None:
        self.breaker = CircuitBreaker(policy.breaker)
        self.stats = DeploymentStats(policy.stats_window_s)
        self.last_status: int | None = None


class Health:
    def __init__(self, policy: HealthPolicy | None = None, clock: Clock = time.monotonic) -> None:
        self.policy = policy or HealthPolicy()
        self.clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._unreachable: set[str] = set()  # providers the reachability probe cannot connect to

    def _entry(self, provider: str, model: str) -> _Entry:
        key = (provider, model)
        e = self._entries.get(key)
        if e is None:
            e = self._entries[key] = _Entry(self.policy)
        return e

    def _of(self, d: DeploymentLike) -> _Entry:
        return self._entry(d.provider.name, d.model.id)

    def allow(self, d: DeploymentLike) -> bool:
        """May an attempt go to ``d`` now? (Takes the single half-open probe slot when it is free.)"""
        return d.provider.name not in self._unreachable and self._of(d).breaker.allow(self.clock())

    def available(self, d: DeploymentLike) -> bool:
        """Would ``allow`` say yes? No side effects: for ordering a plan."""
        return d.provider.name not in self._unreachable and self._of(d).breaker.would_allow(self.clock())

    def set_reachable(self, provider: str, ok: bool) -> None:
        """What the reachability probe found (a TCP connect to the provider's host)."""
        if ok:
            self._unreachable.discard(provider)
        else:
            self._unreachable.add(provider)

    def reachable(self, provider: str) -> bool:
        return provider not in self._unreachable

    def report(self, d: DeploymentLike, ok: bool, status: int | None = None, retry_after_s: float | None = None,
               ttft_ms: float | None = None, tokens_per_s: float | None = None,
               latency_ms: float | None = None) -> None:
        """The outcome of one attempt. ``ok=False`` only for the deployment's own failures
        (connection, timeout, 429, 5xx); a request the upstream rejected as wrong is ``ok=True``."""
        now = self.clock()
        e = self._of(d)
        e.last_status = status
        e.breaker.record(now, ok, retry_after_s)
        e.stats.add(now, ok, latency_ms=latency_ms, ttft_ms=ttft_ms, tokens_per_s=tokens_per_s)

    def finish(self, d: DeploymentLike, ok: bool, *, latency_ms: float | None = None,
               tokens_per_s: float | None = None) -> None:
        """The end of an attempt that had opened (reported then): a stream's total time and speed, or
        its failure after the first content (which counts against the breaker, not as a new request)."""
        now = self.clock()
        e = self._of(d)
        if ok:
            if latency_ms is not None:
                e.stats.latency_ms.add(now, latency_ms)
            if tokens_per_s is not None and tokens_per_s > 0:
                e.stats.tokens_per_s.add(now, tokens_per_s)
        else:
            e.breaker.record(now, False)

    def state(self, d: DeploymentLike) -> State:
        return self._of(d).breaker.state(self.clock())

    def snapshot(self, provider: str, model: str) -> Snapshot:
        return self._entry(provider, model).stats.snapshot(self.clock())

    def status(self, provider: str, model: str) -> Status:
        e = self._entry(provider, model)
        now = self.clock()
        if provider in self._unreachable or e.breaker.state(now) is not State.CLOSED:
            return "down"
        ok, fail = e.stats.counts.counts(now)
        total = ok + fail
        if total >= self.policy.degraded_min_requests and fail >= self.policy.degraded_error_rate * total:
            return "degraded"
        return "ok"

    def stats(self, d: DeploymentLike) -> DeploymentStats:
        return self._of(d).stats

    def hedge_delay_ms(self, d: DeploymentLike) -> float | None:
        return self.policy.hedge.delay_ms(self._of(d).stats, self.clock())

    def ttft_ms(self, d: DeploymentLike, q: float = 0.5) -> float | None:
        return self._of(d).stats.ttft_ms.quantile(self.clock(), q)

    def throughput_tps(self, d: DeploymentLike) -> float | None:
        return self._of(d).stats.tokens_per_s.quantile(self.clock(), 0.5)

    def breaker_state(self, provider: str, model: str) -> str:
        return self._entry(provider, model).breaker.state(self.clock()).value

    def measured_throughput(self) -> dict[str, float]:
        """Model id -> median tokens/s over its measured providers (only models with a figure)."""
        out: dict[str, float] = {}
        for model in {m for (_, m) in self._entries}:
            tps = self.model_throughput_tps(model)
            if tps is not None:
                out[model] = tps
        return out

    def model_throughput_tps(self, model: str) -> float | None:
        """Median tokens/s over every provider of ``model`` that has been measured (GET /v1/models)."""
        now = self.clock()
        values = [t for (_, m), e in self._entries.items() if m == model
                  if (t := e.stats.tokens_per_s.quantile(now, 0.5)) is not None]
        if not values:
            return None
        values.sort()
        return round(values[(len(values) - 1) // 2], 1)


def policy_from_settings(r: Resilience) -> HealthPolicy:
    """``[resilience]`` settings as the policies."""
    return HealthPolicy(
        breaker=BreakerPolicy(failures=r.breaker_failures, error_rate=r.breaker_error_rate,
                              min_requests=r.breaker_min_requests, window_s=r.breaker_window_s,
                              cooldown_s=r.breaker_cooldown_s, cooldown_max_s=r.breaker_cooldown_max_s,
                              retry_after_max_s=r.retry_after_max_s, probe_timeout_s=r.probe_timeout_s),
        retry=RetryPolicy(rounds=r.retry_rounds, base_s=r.retry_base_ms / 1000.0, max_s=r.retry_max_ms / 1000.0),
        hedge=HedgePolicy(quantile=r.hedge_quantile, min_samples=r.hedge_min_samples, default_ms=r.hedge_default_ms,
                          min_ms=r.hedge_min_ms, max_ms=r.hedge_max_ms, median_multiple=r.hedge_median_multiple),
        stats_window_s=r.stats_window_s,
        degraded_error_rate=r.degraded_error_rate,
    )
