"""A rolling success/failure counter over a time window, in fixed buckets (O(1) memory and time)."""

from __future__ import annotations


class RollingCounter:
    """Counts of successes and failures over the last ``window_s`` seconds, in ``buckets`` slots.

    Time is passed in (``now``, seconds on a monotonic clock), so the counter is pure and testable.
    A slot older than the window is cleared when time reaches it again; nothing grows with traffic.
    """

    __slots__ = ("_epochs", "_fail", "_ok", "_width", "buckets")

    def __init__(self, window_s: float, buckets: int = 10) -> None:
        if window_s <= 0 or buckets < 1:
            raise ValueError("window_s must be > 0 and buckets >= 1")
        self.buckets = buckets
        self._width = window_s / buckets
        self._ok = [0] * buckets
        self._fail = [0] * buckets
        self._epochs = [-1] * buckets  # which bucket-epoch each slot currently holds

    def _slot(self, now: float) -> int:
        epoch = int(now // self._width)
        i = epoch % self.buckets
        if self._epochs[i] != epoch:
            self._epochs[i], self._ok[i], self._fail[i] = epoch, 0, 0
        return i

    def add(self, now: float, ok: bool) -> None:
        i = self._slot(now)
        if ok:
            self._ok[i] += 1
        else:
            self._fail[i] += 1

    def counts(self, now: float) -> tuple[int, int]:
        """(successes, failures) within the window ending at ``now``."""
        oldest = int(now // self._width) - self.buckets + 1
        ok = fail = 0
        for i in range(self.buckets):
            if self._epochs[i] >= oldest:
                ok += self._ok[i]
                fail += self._fail[i]
        return ok, fail

    def reset(self) -> None:
        for i in range(self.buckets):
            self._epochs[i], self._ok[i], self._fail[i] = -1, 0, 0
