"""Circuit breaker, live stats, retries and hedging: pure, on a fake clock."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from perilune.errors import UpstreamRateLimited, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from perilune.gateway.resilience import (
    BreakerPolicy,
    CircuitBreaker,
    Deadline,
    DeploymentStats,
    Health,
    HealthPolicy,
    HedgePolicy,
    RetryPolicy,
    RollingCounter,
    Samples,
    State,
    falls_through,
    is_context_overflow,
)


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


@dataclass(frozen=True)
class P:
    name: str


@dataclass(frozen=True)
class M:
    id: str


@dataclass(frozen=True)
class D:
    provider: P
    model: M


def dep(provider: str = "a", model: str = "m") -> D:
    return D(P(provider), M(model))


# ---- rolling counter ------------------------------------------------------------------------------

def test_rolling_counter_forgets_what_left_the_window() -> None:
    c = RollingCounter(10.0, buckets=10)
    c.add(0.5, True)
    c.add(0.7, False)
    c.add(5.0, False)
    assert c.counts(5.0) == (1, 2)
    assert c.counts(9.9) == (1, 2)
    assert c.counts(10.4) == (0, 1)  # the 1-s bucket holding t=0.5 and 0.7 left the window
    assert c.counts(16.0) == (0, 0)


def test_rolling_counter_reuses_slots() -> None:
    c = RollingCounter(1.0, buckets=2)
    for i in range(1000):
        c.add(i * 0.1, i % 2 == 0)
    ok, fail = c.counts(99.9)
    assert ok + fail <= 10  # bounded by the window, never by the traffic
    assert len(c._ok) == 2


# ---- breaker --------------------------------------------------------------------------------------

def test_breaker_opens_on_consecutive_failures_and_cooldown_ends() -> None:
    b = CircuitBreaker(BreakerPolicy(failures=3, cooldown_s=5.0))
    now = 0.0
    for _ in range(2):
        b.record(now, False)
    assert b.state(now) is State.CLOSED and b.allow(now)
    b.record(now, True)  # a success resets the run
    for _ in range(2):
        b.record(now, False)
    assert b.state(now) is State.CLOSED
    b.record(now, False)
    assert b.state(now) is State.OPEN
    assert not b.allow(now + 4.9)
    assert b.state(now + 5.0) is State.HALF_OPEN


def test_half_open_lets_exactly_one_probe_through() -> None:
    b = CircuitBreaker(BreakerPolicy(failures=1, cooldown_s=1.0, probe_timeout_s=10.0))
    b.record(0.0, False)
    assert not b.allow(0.5)
    assert b.would_allow(1.0)
    assert b.allow(1.0)  # the probe
    assert not b.would_allow(1.1)
    assert not b.allow(1.1) and not b.allow(5.0)
    b.record(5.5, True)  # the probe succeeded
    assert b.state(5.5) is State.CLOSED
    assert b.allow(5.6) and b.allow(5.6)


def test_failed_probe_reopens_with_a_longer_but_bounded_cooldown() -> None:
    b = CircuitBreaker(BreakerPolicy(failures=1, cooldown_s=1.0, cooldown_max_s=3.0))
    b.record(0.0, False)
    assert b.open_until == 1.0
    assert b.allow(1.0)
    b.record(1.0, False)  # probe failed: 2 s
    assert b.state(1.0) is State.OPEN and b.open_until == 3.0
    assert b.allow(3.0)
    b.record(3.0, False)  # 4 s, capped to 3 s
    assert b.open_until == 6.0
    assert b.allow(6.0)
    b.record(6.0, False)
    assert b.open_until == 9.0  # never more than cooldown_max_s: cooldowns always end
    assert b.allow(9.0)
    b.record(9.0, True)
    assert b.state(9.0) is State.CLOSED and b.trips == 0


def test_probe_that_never_reports_frees_the_slot() -> None:
    b = CircuitBreaker(BreakerPolicy(failures=1, cooldown_s=1.0, probe_timeout_s=2.0))
    b.record(0.0, False)
    assert b.allow(1.0)
    assert not b.allow(2.9)
    assert b.allow(3.0)  # the first probe's client hung up; another may try


def test_breaker_opens_on_error_rate_over_the_window() -> None:
    b = CircuitBreaker(BreakerPolicy(failures=100, error_rate=0.5, min_requests=10, window_s=10.0))
    for i in range(9):
        b.record(i * 0.1, i % 2 == 0)  # 5 ok, 4 failures: too few requests to judge
    assert b.state(1.0) is State.CLOSED
    b.record(1.0, False)  # 10 requests, 5 failures
    assert b.state(1.0) is State.OPEN


def test_error_rate_below_threshold_keeps_it_closed() -> None:
    b = CircuitBreaker(BreakerPolicy(failures=5, error_rate=0.5, min_requests=10))
    rng = random.Random(7)
    now = 0.0
    for _ in range(2000):
        now += 0.01
        b.record(now, rng.random() >= 0.3 or False)
    # 30 % failures never reach a 50 % rate; a run of 5 may occur, so only assert the rate rule held
    ok, fail = b._counts.counts(now)
    assert fail < 0.5 * (ok + fail)


def test_retry_after_is_the_cooldown_capped() -> None:
    b = CircuitBreaker(BreakerPolicy(failures=5, retry_after_max_s=60.0))
    b.record(0.0, False, retry_after_s=7.0)
    assert b.state(6.9) is State.OPEN
    assert b.state(7.0) is State.HALF_OPEN
    b2 = CircuitBreaker(BreakerPolicy(retry_after_max_s=60.0))
    b2.record(0.0, False, retry_after_s=86400.0)
    assert b2.open_until == 60.0


def test_late_success_during_cooldown_does_not_close() -> None:
    b = CircuitBreaker(BreakerPolicy(failures=1, cooldown_s=5.0))
    b.record(0.0, False)
    b.record(1.0, True)  # a request sent before it opened
    assert b.state(1.0) is State.OPEN


def test_breaker_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(failures=0)
    with pytest.raises(ValueError):
        BreakerPolicy(error_rate=1.5)
    with pytest.raises(ValueError):
        BreakerPolicy(cooldown_s=0)


# ---- stats ----------------------------------------------------------------------------------------

def test_samples_quantiles_over_the_window_in_bounded_memory() -> None:
    s = Samples(window_s=10.0, capacity=100)
    for i in range(1, 101):
        s.add(0.0, float(i))
    assert s.quantile(0.0, 0.5) == 50.0
    assert s.quantile(0.0, 0.95) == 95.0
    for _ in range(1000):  # old samples are overwritten, memory stays at capacity
        s.add(1.0, 1.0)
    assert len(s._values) == 100
    assert s.quantile(2.0, 0.99) == 1.0
    assert s.quantile(20.0, 0.5) is None  # all left the window


def test_stats_snapshot_and_failures_do_not_count_as_speed() -> None:
    st = DeploymentStats(window_s=60.0)
    st.add(0.0, True, latency_ms=100.0, ttft_ms=40.0, tokens_per_s=50.0)
    st.add(0.0, True, latency_ms=300.0, ttft_ms=60.0, tokens_per_s=70.0)
    st.add(0.0, False, latency_ms=1.0, ttft_ms=1.0)
    snap = st.snapshot(0.0)
    assert (snap.requests, snap.errors) == (3, 1)
    assert snap.error_rate == pytest.approx(1 / 3)
    assert snap.latency_ms_p50 == 100.0
    assert snap.ttft_ms_p50 == 40.0 and snap.ttft_ms_p95 == 60.0
    assert snap.throughput_tps == 50.0
    empty = DeploymentStats().snapshot(0.0)
    assert empty.requests == 0 and empty.error_rate is None and empty.ttft_ms_p50 is None


# ---- retry ----------------------------------------------------------------------------------------

def test_backoff_is_jittered_exponential_and_capped() -> None:
    p = RetryPolicy(rounds=10, base_s=0.1, max_s=1.0, min_left_s=0.0)
    rng = random.Random(1)
    for retry in range(8):
        cap = min(1.0, 0.1 * 2 ** retry)
        values = [p.delay_s(retry, rng) for _ in range(200)]
        assert all(0.0 <= v <= cap for v in values)
        assert max(values) > cap * 0.8  # jitter spans the range
    assert p.delay_s(0, rng, retry_after_s=3.0) == 3.0


def test_retries_stay_inside_the_deadline() -> None:
    clock = Clock(0.0)
    deadline = Deadline(2.0, clock)
    p = RetryPolicy(rounds=3, base_s=0.1, max_s=0.2, min_left_s=0.5)
    rng = random.Random(3)
    assert p.next_delay_s(0, deadline, rng) is not None
    assert p.next_delay_s(3, deadline, rng) is None  # no rounds left
    assert p.next_delay_s(0, deadline, rng, retry_after_s=5.0) is None  # would end after the deadline
    clock.advance(1.6)
    assert p.next_delay_s(0, deadline, rng) is None  # < min_left_s remains
    assert deadline.remaining_s() == pytest.approx(0.4)
    clock.advance(1.0)
    assert deadline.expired and deadline.remaining_s() == 0.0


# ---- hedging --------------------------------------------------------------------------------------

def test_hedge_delay_is_the_live_ttft_quantile() -> None:
    st = DeploymentStats()
    policy = HedgePolicy(quantile=0.9, min_samples=10, min_ms=5.0)
    assert policy.delay_ms(st, 0.0) is None  # not measured, no default: no hedge
    assert HedgePolicy(default_ms=300.0).delay_ms(st, 0.0) == 300.0
    for i in range(90):
        st.add(0.0, True, ttft_ms=50.0 + i % 10)
    for _ in range(10):
        st.add(0.0, True, ttft_ms=2000.0)  # a 10 % slow tail
    assert policy.delay_ms(st, 0.0) == 59.0  # p90 sits below the tail
    no_cap = HedgePolicy(quantile=0.95, min_samples=10, median_multiple=0)
    assert no_cap.delay_ms(st, 0.0) == 2000.0  # p95 is inside the tail: too late to help
    assert HedgePolicy(quantile=0.95, min_samples=10).delay_ms(st, 0.0) == 165.0  # capped at 3 x the median (55)
    assert HedgePolicy(quantile=0.5, min_samples=10, min_ms=100.0).delay_ms(st, 0.0) == 100.0
    wide = DeploymentStats()
    for i in range(100):
        wide.add(0.0, True, ttft_ms=100.0 + 3 * i)  # wide, no tail: p95 (382) < 3 x median (741)
    assert HedgePolicy(min_samples=10).delay_ms(wide, 0.0) == 382.0


# ---- health ---------------------------------------------------------------------------------------

def test_health_tracks_each_deployment_and_reports_status() -> None:
    clock = Clock()
    h = Health(HealthPolicy(breaker=BreakerPolicy(failures=3, cooldown_s=5.0)), clock)
    dead, good = dep("dead"), dep("good")
    for _ in range(3):
        assert h.allow(dead)
        h.report(dead, False, status=502)
        h.report(good, True, status=200, ttft_ms=30.0, tokens_per_s=80.0, latency_ms=120.0)
    assert h.status("dead", "m") == "down" and not h.available(dead) and not h.allow(dead)
    assert h.status("good", "m") == "ok" and h.available(good)
    snap = h.snapshot("good", "m")
    assert snap.requests == 3 and snap.ttft_ms_p50 == 30.0 and snap.latency_ms_p50 == 120.0
    assert h.model_throughput_tps("m") == 80.0
    assert h.model_throughput_tps("other") is None
    clock.advance(5.0)
    assert h.available(dead) and h.allow(dead)  # the probe
    assert not h.allow(dead)
    h.report(dead, True, status=200)
    assert h.status("dead", "m") in ("ok", "degraded")
    assert h.allow(dead)


def test_health_degraded_on_error_rate() -> None:
    clock = Clock()
    h = Health(HealthPolicy(breaker=BreakerPolicy(failures=50, error_rate=0.9)), clock)
    d = dep()
    for i in range(20):
        h.report(d, i % 4 != 0)  # 25 % failures
    assert h.status("a", "m") == "degraded"


def test_classification_of_upstream_errors() -> None:
    assert falls_through(UpstreamUnavailable("refused"))
    assert falls_through(UpstreamTimeout("slow"))
    assert falls_through(UpstreamRateLimited("busy", retry_after_s=2.0))
    assert not falls_through(UpstreamRejected("bad param"))
    ctx = UpstreamRejected("This model's maximum context length is 8192 tokens.")
    assert is_context_overflow(ctx) and not falls_through(ctx)
    assert is_context_overflow(UpstreamRejected("x", code="context_length_exceeded"))
    assert is_context_overflow(UpstreamRejected("prompt is too long: 300000 tokens > 200000 maximum"))
    assert not is_context_overflow(UpstreamRejected("temperature must be <= 2"))
    assert not is_context_overflow(UpstreamUnavailable("context length"))


def test_reachability_probe_marks_a_closed_port_down() -> None:
    import asyncio
    import socket

    from perilune.gateway.resilience import ReachabilityProbe

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nobody listens there any more
    h = Health(clock=Clock())
    up = f"http://127.0.0.1:{listening.getsockname()[1]}/v1"
    probe = ReachabilityProbe(h, [("up", up), ("down", f"http://127.0.0.1:{closed_port}/v1"), ("up2", up)],
                              interval_s=1.0, timeout_s=1.0)
    try:
        asyncio.run(probe.run_once())
    finally:
        listening.close()
    assert h.reachable("up") and h.reachable("up2") and not h.reachable("down")
    assert h.status("down", "m") == "down" and h.status("up", "m") == "ok"
    assert not h.available(dep("down")) and not h.allow(dep("down")) and h.allow(dep("up"))
    h.set_reachable("down", True)
    assert h.allow(dep("down"))
