"""Attempts over a plan: fall through, skip open breakers, retry with backoff, hedge, keep the deadline.

``Attempts.run`` is given the ordered deployments and an *opener* (``async (d) -> T``) that sends the
request to one deployment and returns once it has content (a stream's first item peeked, or a whole
JSON answer), raising a :class:`PeriluneError` otherwise. It returns the first deployment that
opened. Rules:

* A failure that :func:`falls_through` (connection, timeout, 429, 5xx, overloaded) moves on to the
  next deployment; any other error is the answer (the request itself is wrong), except a
  context-length refusal, which moves on to a model with a larger context (or ends there).
* Deployments whose breaker is open are skipped; they are tried only when nothing else in the plan
  is available (then the error the client gets is the real one).
* When a whole pass failed, it is retried after a jittered exponential backoff, as long as the total
  deadline leaves room (``RetryPolicy``).
* With ``hedge``, when an attempt has not opened within its deployment's live TTFT quantile the next
  deployment starts too; the first to open wins and the other is cancelled (or closed, if it opened
  in the same instant).
* Everything happens before ``deadline``; then the run ends with a 504 ``deadline_exceeded``.

Every attempt is appended to ``tries`` (the request's route) and reported to ``health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from perilune.errors import PeriluneError, UpstreamTimeout, UpstreamUnavailable
from perilune.gateway.resilience.classify import falls_through, is_context_overflow
from perilune.gateway.resilience.health import DeploymentLike, Health
from perilune.gateway.resilience.retry import Deadline

D = TypeVar("D", bound=DeploymentLike)
T = TypeVar("T")


@dataclass(slots=True)
class Try:
    """One attempt, as the usage record's route shows it."""

    provider: str
    model: str
    status: int | None = None  # HTTP status (200 when it opened); None while running or when cancelled
    error: str | None = None  # error kind (e.g. upstream_unavailable), "cancelled" for a hedge's loser
    ttft_ms: float | None = None
    latency_ms: float | None = None
    hedge: bool = False  # started as a hedge of a slow attempt


@dataclass(slots=True)
class _Running(Generic[D]):
    deployment: D
    started: float
    record: Try
    hedged: bool = False  # a hedge was already started for it


def _context_of(d: DeploymentLike) -> int | None:
    ctx = getattr(d.model, "context", None)
    return ctx if isinstance(ctx, int) else None


def _wont_fit(d: DeploymentLike, refused: tuple[str, int | None] | None) -> bool:
    """After a context-length refusal by ``refused`` (its model, its context): whether ``d`` would refuse
    too (the same model, or a context no larger)."""
    if refused is None:
        return False
    model_id, ctx = refused
    own = _context_of(d)
    return d.model.id == model_id or (ctx is not None and (own is None or own <= ctx))


class Attempts:
    def __init__(self, health: Health, rng: random.Random | None = None) -> None:
        self.health = health
        self.rng = rng or random.Random()

    async def run(self, plan: Sequence[D], open_: Callable[[D], Awaitable[T]], *, deadline: Deadline,
                  tries: list[Try], hedge: bool = False,
                  close: Callable[[T], Awaitable[None]] | None = None) -> tuple[D, T]:
        retry = 0
        while True:
            error = await self._pass(plan, open_, deadline, tries, hedge, close)
            if isinstance(error, tuple):
                return error
            if not falls_through(error) or deadline.expired:
                raise error
            delay = self.health.policy.retry.next_delay_s(retry, deadline, self.rng, _retry_after(error))
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            retry += 1

    def _candidates(self, plan: Sequence[D]) -> list[tuple[D, bool]]:
        """(deployment, last resort): the available ones, then the others, which are tried only when
        nothing could be started before them (every deployment open, or the probes taken meanwhile)."""
        health = self.health
        available = [d for d in plan if health.available(d)]
        return [(d, False) for d in available] + [(d, True) for d in plan if d not in available]

    def _failed(self, d: D, record: Try, exc: PeriluneError) -> tuple[str, int | None] | None:
        """Book a failed attempt; raise the error when it is the answer (the request itself is wrong).
        Returns the (model, context) a context-length refusal rules out, else None."""
        record.status, record.error = exc.status_code, exc.kind
        if is_context_overflow(exc):
            self.health.report(d, True, exc.status_code)  # the deployment is fine
            return d.model.id, _context_of(d)
        if falls_through(exc):
            self.health.report(d, False, exc.status_code, retry_after_s=_retry_after(exc))
            return None
        self.health.report(d, True, exc.status_code)
        raise exc

    async def _pass_inline(self, plan: Sequence[D], open_: Callable[[D], Awaitable[T]], deadline: Deadline,
                           tries: list[Try]) -> tuple[D, T] | PeriluneError:
        """A pass without hedging: the same rules as :meth:`_pass`, one attempt at a time, awaited in the
        caller's own task (no task per attempt, no wait set: the common case costs no extra loop turn)."""
        health = self.health
        last_error: PeriluneError | None = None
        min_context: tuple[str, int | None] | None = None
        tried_available = False
        for d, last_resort in self._candidates(plan):
            if last_resort and tried_available:
                continue  # an available one was tried: open deployments stay skipped
            if _wont_fit(d, min_context):
                continue  # it would not fit either
            if not last_resort:
                if not health.allow(d):
                    continue  # opened (or its probe was taken) since the plan was made
                tried_available = True
            record = Try(d.provider.name, d.model.id)
            tries.append(record)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(deadline.remaining_s()) as within:
                    result = await open_(d)
            except PeriluneError as exc:
                record.latency_ms = round((time.perf_counter() - started) * 1000.0, 1)
                min_context = self._failed(d, record, exc) or min_context
                last_error = exc
                continue
            except (TimeoutError, asyncio.CancelledError):  # the deadline, or the request itself ended
                record.error = "cancelled"
                record.latency_ms = round((time.perf_counter() - started) * 1000.0, 1)
                if within.expired():
                    return _deadline_error()
                raise
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            record.status, record.latency_ms, record.ttft_ms = 200, round(elapsed_ms, 1), round(elapsed_ms, 1)
            health.report(d, True, 200, ttft_ms=elapsed_ms)
            return d, result
        return last_error or UpstreamUnavailable("No provider of the model could be tried.", code="no_deployment")

    async def _pass(self, plan: Sequence[D], open_: Callable[[D], Awaitable[T]], deadline: Deadline,
                    tries: list[Try], hedge: bool, close: Callable[[T], Awaitable[None]] | None
                    ) -> tuple[D, T] | PeriluneError:
        if not hedge:
            return await self._pass_inline(plan, open_, deadline, tries)
        health = self.health
        queue = self._candidates(plan)
        running: dict[asyncio.Task[T], _Running[D]] = {}
        last_error: PeriluneError | None = None
        min_context: tuple[str, int | None] | None = None  # set by a context-length refusal
        tried_available: list[D] = []  # available deployments started in this pass

        def start(as_hedge: bool) -> bool:
            """Start the next candidate. While another attempt runs, only one of the same model (a
            model's reservation covers its own deployments; a new model waits until it is alone)."""
            busy = {r.deployment.model.id for r in running.values()}
            while queue:
                d, last_resort = queue[0]
                if last_resort and tried_available:
                    queue.pop(0)
                    continue  # an available one was tried: open deployments stay skipped
                if _wont_fit(d, min_context):
                    queue.pop(0)
                    continue  # it would not fit either
                if busy and d.model.id not in busy:
                    return False
                queue.pop(0)
                if not last_resort and not health.allow(d):
                    continue  # opened (or its probe was taken) since the plan was made
                if not last_resort:
                    tried_available.append(d)
                record = Try(d.provider.name, d.model.id, hedge=as_hedge)
                tries.append(record)
                task = asyncio.ensure_future(open_(d))
                running[task] = _Running(d, time.perf_counter(), record)
                return True
            return False

        try:
            if not start(False):  # pragma: no cover - the last-resort entries always start
                return UpstreamUnavailable("No provider of the model could be tried.", code="no_deployment")
            while running:
                timeout = deadline.remaining_s()
                hedging: _Running[D] | None = None
                if hedge and len(running) == 1:
                    only = next(iter(running.values()))
                    delay_ms = None if only.hedged else health.hedge_delay_ms(only.deployment)
                    if delay_ms is not None:
                        wait_s = max(only.started + delay_ms / 1000.0 - time.perf_counter(), 0.0)
                        if wait_s < timeout:
                            timeout, hedging = wait_s, only
                done, _ = await asyncio.wait(running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    if hedging is not None:
                        hedging.hedged = True
                        start(True)
                        continue
                    return _deadline_error()
                for task in sorted(done, key=lambda t: t.exception() is not None):
                    r = running.pop(task)
                    elapsed_ms = (time.perf_counter() - r.started) * 1000.0
                    r.record.latency_ms = round(elapsed_ms, 1)
                    exc = task.exception()
                    if exc is None:
                        r.record.status, r.record.ttft_ms = 200, round(elapsed_ms, 1)
                        health.report(r.deployment, True, 200, ttft_ms=elapsed_ms)
                        await self._cancel(running, close, done - {task})
                        return r.deployment, task.result()
                    if not isinstance(exc, PeriluneError):
                        raise exc
                    min_context = self._failed(r.deployment, r.record, exc) or min_context
                    last_error = exc
                    start(False)  # the next one (beside a hedge still running, only of the same model)
            assert last_error is not None
            return last_error
        finally:
            await self._cancel(running, close)

    @staticmethod
    async def _cancel(running: dict[asyncio.Task[T], _Running[D]], close: Callable[[T], Awaitable[None]] | None,
                      finished: set[asyncio.Task[T]] | None = None) -> None:
        """Cancel the attempts still running (a hedge's losers); close any that opened meanwhile."""
        for task, r in running.items():
            task.cancel()
            r.record.error = r.record.error or "cancelled"
            r.record.latency_ms = round((time.perf_counter() - r.started) * 1000.0, 1)
        tasks = list(running) + list(finished or ())
        running.clear()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
            if close is not None and not task.cancelled() and task.exception() is None:
                await close(task.result())


def _retry_after(e: PeriluneError) -> float | None:
    return e.retry_after_s if e.status_code == 429 else None


def _deadline_error() -> UpstreamTimeout:
    return UpstreamTimeout("The request's total deadline passed before any provider answered "
                           "(timeouts.total_s).", code="deadline_exceeded")
