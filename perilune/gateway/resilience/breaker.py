"""A circuit breaker for one deployment (provider x model): closed, open, half-open with one probe.

* **closed**: every request may go. It opens on ``failures`` consecutive failures, or when the error
  rate over the last ``window_s`` reaches ``error_rate`` (once ``min_requests`` were seen), or at once
  when the upstream sent ``Retry-After`` (that is the cooldown, capped by ``retry_after_max_s``).
* **open**: nothing goes until the cooldown ends. Cooldowns grow (x2 per consecutive trip, from
  ``cooldown_s`` up to ``cooldown_max_s``) and always end.
* **half-open**: exactly one probe may go. Success closes the breaker; failure re-opens it. A probe
  that never reports (its client hung up) frees the slot after ``probe_timeout_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from perilune.gateway.resilience.window import RollingCounter


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures: int = 5
    error_rate: float = 0.5
    min_requests: int = 20
    window_s: float = 30.0
    cooldown_s: float = 5.0
    cooldown_max_s: float = 60.0
    retry_after_max_s: float = 300.0
    probe_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.failures < 1 or self.min_requests < 1:
            raise ValueError("breaker failures and min_requests must be >= 1")
        if not 0 < self.error_rate <= 1:
            raise ValueError("breaker error_rate must be in (0, 1]")
        if min(self.window_s, self.cooldown_s, self.cooldown_max_s, self.retry_after_max_s,
               self.probe_timeout_s) <= 0:
            raise ValueError("breaker durations must be > 0")


class CircuitBreaker:
    __slots__ = ("_counts", "_probe_at", "_state", "consecutive", "open_until", "policy", "trips")

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self._state = State.CLOSED
        self._counts = RollingCounter(policy.window_s)
        self._probe_at: float | None = None  # when the half-open probe was let through
        self.consecutive = 0  # consecutive failures
        self.trips = 0  # consecutive openings without a success in between
        self.open_until = 0.0

    def state(self, now: float) -> State:
        """The state at ``now``, without side effects (an open breaker past its cooldown is half-open)."""
        if self._state is State.OPEN and now >= self.open_until:
            return State.HALF_OPEN
        return self._state

    def allow(self, now: float) -> bool:
        """May a request go now? In half-open, True for exactly one caller (the probe)."""
        state = self.state(now)
        if state is State.CLOSED:
            return True
        if state is State.OPEN:
            return False
        if self._state is State.OPEN:  # cooldown just ended
            self._state, self._probe_at = State.HALF_OPEN, None
        if self._probe_at is None or now - self._probe_at >= self.policy.probe_timeout_s:
            self._probe_at = now
            return True
        return False

    def would_allow(self, now: float) -> bool:
        """``allow`` without taking the probe slot (for ordering a plan)."""
        state = self.state(now)
        if state is State.CLOSED:
            return True
        if state is State.OPEN:
            return False
        return self._state is State.OPEN or self._probe_at is None or \
            now - self._probe_at >= self.policy.probe_timeout_s

    def record(self, now: float, ok: bool, retry_after_s: float | None = None) -> None:
        """The outcome of one attempt on this deployment."""
        self._counts.add(now, ok)
        state = self.state(now)
        if ok:
            self.consecutive = 0
            if state is not State.OPEN:  # a probe (or a late answer after the cooldown) succeeded
                if state is State.HALF_OPEN:
                    self._counts.reset()
                self._state, self._probe_at, self.trips = State.CLOSED, None, 0
            return
        self.consecutive += 1
        if retry_after_s is not None and retry_after_s > 0:
            self._open(now, min(retry_after_s, self.policy.retry_after_max_s), escalate=False)
        elif state is State.HALF_OPEN or (state is State.CLOSED and self._should_trip(now)):
            self._open(now, self._cooldown())

    def _should_trip(self, now: float) -> bool:
        p = self.policy
        if self.consecutive >= p.failures:
            return True
        ok, fail = self._counts.counts(now)
        total = ok + fail
        return total >= p.min_requests and fail >= p.error_rate * total

    def _cooldown(self) -> float:
        p = self.policy
        return min(p.cooldown_s * (2.0 ** self.trips), p.cooldown_max_s)

    def _open(self, now: float, cooldown_s: float, *, escalate: bool = True) -> None:
        still_open = self._state is State.OPEN and now < self.open_until
        self.open_until = max(self.open_until, now + cooldown_s) if still_open else now + cooldown_s
        self._state, self._probe_at = State.OPEN, None
        if escalate:
            self.trips += 1
