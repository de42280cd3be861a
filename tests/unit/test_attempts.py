"""Attempts over a plan with fake openers: fall-through rules, breakers, retries, hedging, deadline."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from perilune.errors import (
    PeriluneError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from perilune.gateway.resilience import (
    Attempts,
    BreakerPolicy,
    Deadline,
    Health,
    HealthPolicy,
    HedgePolicy,
    RetryPolicy,
    Try,
)


@dataclass(frozen=True)
class P:
    name: str


@dataclass(frozen=True)
class M:
    id: str
    context: int | None = None


@dataclass(frozen=True)
class D:
    provider: P
    model: M


def dep(provider: str, model: str = "m", context: int | None = None) -> D:
    return D(P(provider), M(model, context))


Behaviour = Callable[[], Awaitable[str]]


def ok(delay_s: float = 0.0, value: str = "ok") -> Behaviour:
    async def f() -> str:
        await asyncio.sleep(delay_s)
        return value
    return f


def fail(e: PeriluneError, delay_s: float = 0.0) -> Behaviour:
    async def f() -> str:
        await asyncio.sleep(delay_s)
        raise e
    return f


class Upstreams:
    """Per provider name, a list of behaviours (one per call; the last repeats)."""

    def __init__(self, **behaviours: Behaviour | list[Behaviour]) -> None:
        self.behaviours = {k: v if isinstance(v, list) else [v] for k, v in behaviours.items()}
        self.calls: list[str] = []
        self.cancelled: list[str] = []
        self.closed: list[str] = []

    async def open(self, d: D) -> str:
        name = d.provider.name
        self.calls.append(name)
        seq = self.behaviours[name]
        b = seq.pop(0) if len(seq) > 1 else seq[0]
        try:
            return f"{name}:{await b()}"
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise

    async def close(self, value: str) -> None:
        self.closed.append(value)


def health(**kw: object) -> Health:
    retry = kw.pop("retry", RetryPolicy(rounds=0))
    hedge = kw.pop("hedge", HedgePolicy())
    breaker = kw.pop("breaker", BreakerPolicy())
    return Health(HealthPolicy(breaker=breaker, retry=retry, hedge=hedge))  # type: ignore[arg-type]


def run(h: Health, plan: list[D], ups: Upstreams, *, total_s: float = 10.0, hedge: bool = False
        ) -> tuple[tuple[D, str] | PeriluneError, list[Try]]:
    tries: list[Try] = []

    async def go() -> tuple[D, str]:
        return await Attempts(h, random.Random(1)).run(plan, ups.open, deadline=Deadline(total_s, time.monotonic),
                                                      tries=tries, hedge=hedge, close=ups.close)
    try:
        return asyncio.run(go()), tries
    except PeriluneError as e:
        return e, tries


def test_falls_through_on_provider_failures_in_order() -> None:
    ups = Upstreams(a=fail(UpstreamUnavailable("refused")), b=fail(UpstreamRateLimited("busy", retry_after_s=1.0)),
                    c=fail(UpstreamTimeout("slow")), d=ok())
    result, tries = run(health(), [dep("a"), dep("b"), dep("c"), dep("d")], ups)
    assert isinstance(result, tuple) and result[1] == "d:ok"
    assert [(t.provider, t.status, t.error) for t in tries] == [
        ("a", 502, "upstream_unavailable"), ("b", 429, "upstream_rate_limited"), ("c", 504, "upstream_timeout"),
        ("d", 200, None)]
    assert tries[-1].ttft_ms is not None


def test_other_4xx_is_the_answer_and_not_a_health_failure() -> None:
    h = health()
    ups = Upstreams(a=fail(UpstreamRejected("bad temperature")), b=ok())
    result, _tries = run(h, [dep("a"), dep("b")], ups)
    assert isinstance(result, UpstreamRejected) and ups.calls == ["a"]
    assert h.snapshot("a", "m").errors == 0 and h.snapshot("a", "m").requests == 1


def test_context_overflow_moves_to_a_larger_model_only() -> None:
    ups = Upstreams(a=fail(UpstreamRejected("maximum context length is 8192 tokens")), b=ok(), c=ok(), d=ok())
    plan = [dep("a", "small", 8192), dep("b", "small", 8192), dep("c", "same", 8192), dep("d", "large", 200_000)]
    result, _ = run(health(), plan, ups)
    assert isinstance(result, tuple) and result[1] == "d:ok"
    assert ups.calls == ["a", "d"]
    ups2 = Upstreams(a=fail(UpstreamRejected("prompt is too long: 9000 tokens > 8192 maximum")), b=ok())
    result, _ = run(health(), [dep("a", "small", 8192), dep("b", "small", 8192)], ups2)
    assert isinstance(result, UpstreamRejected) and ups2.calls == ["a"]


def test_open_breaker_is_skipped_while_something_else_is_available() -> None:
    h = health(breaker=BreakerPolicy(failures=2, cooldown_s=60.0))
    ups = Upstreams(dead=fail(UpstreamUnavailable("refused")), good=ok())
    plan = [dep("dead"), dep("good")]
    for _ in range(2):
        run(h, plan, ups)
    assert ups.calls == ["dead", "good", "dead", "good"]
    for _ in range(20):
        result, _ = run(h, plan, ups)
        assert isinstance(result, tuple) and result[1] == "good:ok"
    assert ups.calls.count("dead") == 2  # nothing more once open
    # when every deployment is open, they are still tried (the client gets the real error)
    ups_alone = Upstreams(dead=fail(UpstreamUnavailable("refused")))
    result, _ = run(h, [dep("dead")], ups_alone)
    assert isinstance(result, UpstreamUnavailable) and ups_alone.calls == ["dead"]


def test_retry_round_after_backoff_when_everything_failed() -> None:
    h = health(retry=RetryPolicy(rounds=2, base_s=0.01, max_s=0.02, min_left_s=0.0))
    ups = Upstreams(a=[fail(UpstreamUnavailable("x")), fail(UpstreamUnavailable("x")), ok()])
    result, tries = run(h, [dep("a")], ups)
    assert isinstance(result, tuple) and result[1] == "a:ok"
    assert [t.status for t in tries] == [502, 502, 200]
    ups2 = Upstreams(a=fail(UpstreamUnavailable("x")))
    result, tries = run(health(retry=RetryPolicy(rounds=2, base_s=0.01, min_left_s=0.0)), [dep("a")], ups2)
    assert isinstance(result, UpstreamUnavailable) and len(tries) == 3


def test_the_total_deadline_is_enforced() -> None:
    h = health(retry=RetryPolicy(rounds=5, base_s=0.01, min_left_s=0.0))
    ups = Upstreams(a=ok(delay_s=5.0))
    t0 = time.monotonic()
    result, tries = run(h, [dep("a")], ups, total_s=0.2)
    assert time.monotonic() - t0 < 1.0
    assert isinstance(result, UpstreamTimeout) and result.code == "deadline_exceeded"
    assert ups.cancelled == ["a"] and tries[0].error == "cancelled"


def test_hedge_starts_the_next_deployment_when_the_first_token_is_late() -> None:
    h = health(hedge=HedgePolicy(default_ms=50.0, min_samples=1000))
    ups = Upstreams(slow=ok(delay_s=1.0), fast=ok(delay_s=0.01))
    t0 = time.monotonic()
    result, tries = run(h, [dep("slow"), dep("fast")], ups, hedge=True)
    assert time.monotonic() - t0 < 0.5
    assert isinstance(result, tuple) and result[1] == "fast:ok"
    assert ups.cancelled == ["slow"]
    assert [(t.provider, t.status, t.error, t.hedge) for t in tries] == [
        ("slow", None, "cancelled", False), ("fast", 200, None, True)]
    # no hedge when the first one is quick, nor without "hedge"
    ups2 = Upstreams(slow=ok(delay_s=0.0), fast=ok())
    result, tries = run(h, [dep("slow"), dep("fast")], ups2, hedge=True)
    assert ups2.calls == ["slow"] and len(tries) == 1
    ups3 = Upstreams(slow=ok(delay_s=0.3), fast=ok())
    result, _ = run(h, [dep("slow"), dep("fast")], ups3, hedge=False)
    assert isinstance(result, tuple) and result[1] == "slow:ok" and ups3.calls == ["slow"]


def test_hedge_from_live_ttft_and_the_original_may_still_win() -> None:
    h = health(hedge=HedgePolicy(quantile=0.9, min_samples=5, min_ms=1.0))
    a = dep("a")
    for _ in range(10):
        h.report(a, True, 200, ttft_ms=30.0)
    ups = Upstreams(a=ok(delay_s=0.12), b=ok(delay_s=0.5))
    result, tries = run(h, [a, dep("b")], ups, hedge=True)
    assert isinstance(result, tuple) and result[1] == "a:ok"  # the hedge started at ~30 ms but lost
    assert [t.provider for t in tries] == ["a", "b"] and tries[1].error == "cancelled"
    assert ups.cancelled == ["b"]


def test_a_failing_attempt_during_a_hedge_lets_the_other_continue() -> None:
    h = health(hedge=HedgePolicy(default_ms=20.0, min_samples=1000))
    ups = Upstreams(a=fail(UpstreamUnavailable("drop"), delay_s=0.1), b=ok(delay_s=0.2), c=ok())
    result, tries = run(h, [dep("a"), dep("b"), dep("c")], ups, hedge=True)
    assert isinstance(result, tuple)
    assert [t.provider for t in tries][:2] == ["a", "b"]
    assert result[1] in ("b:ok", "c:ok")  # after a failed, c starts at once beside b


def test_a_probe_taken_meanwhile_falls_back_to_the_open_ones_instead_of_failing() -> None:
    h = health(breaker=BreakerPolicy(failures=1, cooldown_s=60.0))
    a, b = dep("a"), dep("b")
    h.report(b, False, 502)  # b is open; a looks available when the candidates are listed ...
    h.allow = lambda d: False  # type: ignore[method-assign]  # ... but its probe is gone when it starts
    ups = Upstreams(a=ok(), b=ok())
    result, tries = run(h, [a, b], ups)
    assert isinstance(result, tuple) and [t.provider for t in tries] == ["b"]  # not a 500: b is tried


def test_without_hedging_each_attempt_runs_in_the_callers_task() -> None:
    """No task per attempt when nothing can run beside it: the opener runs in the request's own task
    (the fall-through rules are the same; a hedged run still gives each attempt a task of its own)."""
    tasks: dict[str, asyncio.Task[object] | None] = {}

    async def open_(d: D) -> str:
        tasks[d.provider.name] = asyncio.current_task()
        if d.provider.name == "a":
            raise UpstreamUnavailable("refused")
        return "ok"

    async def go(hedge: bool) -> asyncio.Task[object] | None:
        await Attempts(health(), random.Random(1)).run([dep("a"), dep("b")], open_, tries=[], hedge=hedge,
                                                       deadline=Deadline(10.0, time.monotonic))
        return asyncio.current_task()

    async def both() -> None:
        caller = await go(False)
        assert tasks == {"a": caller, "b": caller}
        caller = await go(True)
        assert tasks["a"] is not caller and tasks["b"] is not caller

    asyncio.run(both())


def test_a_cancelled_request_marks_its_inline_attempt_cancelled() -> None:
    tries: list[Try] = []

    async def go() -> None:
        ups = Upstreams(a=ok(delay_s=5.0))
        task = asyncio.ensure_future(Attempts(health(), random.Random(1)).run(
            [dep("a")], ups.open, deadline=Deadline(10.0, time.monotonic), tries=tries))
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert ups.cancelled == ["a"]

    asyncio.run(go())
    assert [(t.provider, t.status, t.error) for t in tries] == [("a", None, "cancelled")]
    assert tries[0].latency_ms is not None and tries[0].latency_ms >= 40
