"""Retries with jittered exponential backoff, always inside the request's total deadline."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


class Deadline:
    """The request's total time budget (``timeouts.total_s``), on an injectable monotonic clock."""

    __slots__ = ("at", "clock")

    def __init__(self, total_s: float, clock: Clock) -> None:
        self.clock = clock
        self.at = clock() + total_s

    def remaining_s(self) -> float:
        return max(self.at - self.clock(), 0.0)

    @property
    def expired(self) -> bool:
        return self.clock() >= self.at


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``rounds``: how many more passes over the plan after the first one fails retryably.

    The delay before retry ``n`` (0-based) is uniform in [0, min(max_s, base_s * 2**n)] ("full
    jitter"), raised to the upstream's ``Retry-After`` when it sent one. A retry that could not start
    before the deadline (leaving ``min_left_s`` for the attempt itself) is not made.
    """

    rounds: int = 1
    base_s: float = 0.05
    max_s: float = 2.0
    min_left_s: float = 0.5

    def __post_init__(self) -> None:
        if self.rounds < 0 or self.base_s < 0 or self.max_s < 0 or self.min_left_s < 0:
            raise ValueError("retry settings must be >= 0")

    def delay_s(self, retry: int, rng: random.Random, retry_after_s: float | None = None) -> float:
        cap = min(self.max_s, self.base_s * (2.0 ** retry))
        delay = rng.uniform(0.0, cap)
        if retry_after_s is not None and retry_after_s > delay:
            delay = retry_after_s
        return delay

    def next_delay_s(self, retry: int, deadline: Deadline, rng: random.Random,
                     retry_after_s: float | None = None) -> float | None:
        """The wait before retry ``retry`` or None when no retry may be made."""
        if retry >= self.rounds:
            return None
        delay = self.delay_s(retry, rng, retry_after_s)
        if delay + self.min_left_s > deadline.remaining_s():
            return None
        return delay
