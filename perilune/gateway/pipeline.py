"""The request path after parsing: route, call the upstream (with fallbacks), account.

The pipeline is dialect-free: it takes an OpenAI-shaped request mapping, returns an OpenAI-shaped
result or an async iterator of OpenAI-shaped chunks, and fills in the :class:`Outcome` that the relay
renders and the recorder stores.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp

from perilune._http import UpstreamClient
from perilune._sse import SSEDecoder
from perilune.accounting.ledger import Accountant
from perilune.accounting.pricing import cost_of
from perilune.errors import PeriluneError, UpstreamTimeout, UpstreamUnavailable
from perilune.gateway.resilience import Attempts, Deadline, Health, Try
from perilune.gateway.routing import Deployment, Plan, Router
from perilune.providers.base import Result, StreamDecoder, UpstreamRequest
from perilune.schema.canonical import JSON, Attempt, Outcome, Usage
from perilune.schema.routing import ProviderPrefs, fallback_models

NO_HEADERS: Mapping[str, str] = {}
T = TypeVar("T")


@dataclass(slots=True)
class Stream:
    """An open upstream stream: chunks (OpenAI-shaped, usage removed) and, once drained, its usage."""

    deployment: Deployment
    chunks: AsyncGenerator[JSON, None]
    decoder: StreamDecoder


@dataclass(slots=True)
class Native:
    """The seam for dialect passthrough (e.g. /v1/messages to an Anthropic upstream).

    A request that arrives in a provider's own dialect carries its OpenAI-shaped form (the ``raw`` the
    pipeline is given) *and* its native form here. Per deployment, in fallback order, an adapter that
    supports ``op`` gets ``raw`` and ``headers`` from here untouched (nothing lost in translation); any
    other adapter gets the OpenAI-shaped request. The caller tells which happened from
    ``native.serves(deployment)``. When the request has no OpenAI-shaped form, ``unconvertible`` says
    why: only native deployments are tried, and it is raised when the model has none.
    """

    op: str
    raw: JSON
    headers: dict[str, str] = field(default_factory=dict)
    unconvertible: PeriluneError | None = None

    def serves(self, d: Deployment) -> bool:
        return self.op in d.adapter.supports


class Pipeline:
    def __init__(self, router: Router, upstream: UpstreamClient, accountant: Accountant | None = None, *,
                 health: Health | None = None, total_s: float = 600.0) -> None:
        self.router = router
        self.upstream = upstream
        self.accountant = accountant
        self.health = health or router.health or Health()
        self.attempts = Attempts(self.health)
        self.total_s = total_s

    def _plan(self, op: str, raw: JSON, outcome: Outcome, forced: str | ProviderPrefs | None,
              native: Native | None) -> Plan:
        """The request's deployments (fallback models, provider preferences, health) from its body."""
        body = native.raw if native is not None and native.raw else raw
        listed, one = body.get("fallbacks"), body.get("fallback_model")  # validated by the dialect's schema
        fallbacks = fallback_models([f for f in listed if isinstance(f, str)] if isinstance(listed, list) else None,
                                    one if isinstance(one, str) else None)
        hedge = body.get("hedge")
        plan = self.router.plan(outcome.model_requested, op, forced, fallbacks or None,
                                prompt_tokens=outcome.estimate_in or None,
                                hedge=hedge if isinstance(hedge, bool) else None)
        if native is not None and native.unconvertible is not None:
            kept = [d for d in plan if native.serves(d)]
            if not kept:
                raise native.unconvertible
            plan = Plan(kept, plan.requested, plan.alias, plan.hedge)
        return plan

    def _request(self, d: Deployment, op: str, raw: JSON, *, stream: bool, headers: Mapping[str, str],
                 native: Native | None) -> UpstreamRequest:
        if native is not None and native.serves(d):
            req = d.adapter.build(native.op, d.provider, d.upstream_model, native.raw, stream=stream)
            req.headers.update(native.headers)
        else:
            req = d.adapter.build(op, d.provider, d.upstream_model, raw, stream=stream)
        if d.provider.forward_headers:
            req.headers.update(d.provider.forwarded(headers))
        return req

    async def _send(self, d: Deployment, req: UpstreamRequest) -> aiohttp.ClientResponse:
        resp = await self.upstream.open(d.provider, req)
        if resp.status >= 400:
            body = await self.upstream.read(d.provider, resp)
            raise d.adapter.error(d.provider.name, resp.status, body, resp.headers)
        return resp

    async def _run(self, op: str, raw: JSON, outcome: Outcome, forced: str | ProviderPrefs | None,
                   native: Native | None, open_: Callable[[Deployment], Awaitable[T]],
                   close: Callable[[T], Awaitable[None]], deadline: Deadline) -> tuple[Deployment, T]:
        """Admit, then try the plan (fallbacks, breakers, retries, hedging) within the total deadline."""
        plan = self._plan(op, raw, outcome, forced, native)
        if self.accountant is not None:  # limits, free quota and balance: reserved before any upstream call
            await self.accountant.admit(outcome, plan[0].model)
        tries: list[Try] = []
        try:
            d, value = await self.attempts.run(plan, open_, deadline=deadline, tries=tries, hedge=plan.hedge,
                                               close=close)
        except PeriluneError:
            failed = next((t for t in reversed(tries) if t.status is not None), tries[-1] if tries else None)
            if failed is not None:
                outcome.provider, outcome.model_served = failed.provider, failed.model
            raise
        finally:
            outcome.route.extend(Attempt(t.provider, t.model, t.status or 499, t.error) for t in tries)
        outcome.provider, outcome.model_served = d.provider.name, d.model.id
        return d, value

    async def complete(self, op: str, raw: JSON, outcome: Outcome, forced: str | ProviderPrefs | None = None,
                       headers: Mapping[str, str] = NO_HEADERS, native: Native | None = None
                       ) -> tuple[Deployment, Result]:
        async def open_(d: Deployment) -> Result:
            resp = await self._send(d, self._request(d, op, raw, stream=False, headers=headers, native=native))
            body = await self.upstream.read(d.provider, resp)
            return d.adapter.parse(native.op if native and native.serves(d) else op, body, resp.content_type)

        async def close(_: Result) -> None:
            return None

        started = time.perf_counter()
        d, result = await self._run(op, raw, outcome, forced, native, open_, close,
                                    Deadline(self.total_s, time.monotonic))
        outcome.ttft_ms = (time.perf_counter() - outcome.started) * 1000.0
        if self.health is not None and result.usage is not None and result.usage.output_tokens:
            elapsed = time.perf_counter() - started
            self.health.finish(d, True, latency_ms=elapsed * 1000.0,
                               tokens_per_s=result.usage.output_tokens / max(elapsed, 1e-6))
        return d, result

    async def stream(self, op: str, raw: JSON, outcome: Outcome, forced: str | ProviderPrefs | None = None,
                     headers: Mapping[str, str] = NO_HEADERS, native: Native | None = None) -> Stream:
        """An open stream whose first content has arrived: a failure before it falls over to the next
        deployment (nothing has reached the client yet)."""
        deadline = Deadline(self.total_s, time.monotonic)

        async def open_(d: Deployment) -> Stream:
            resp = await self._send(d, self._request(d, op, raw, stream=True, headers=headers, native=native))
            decoder = d.adapter.stream_decoder(native.op if native and native.serves(d) else op, d.provider.name)
            if "text/event-stream" not in resp.content_type:
                # Some hosts ignore stream=true on errors or for some models: treat a JSON body as one result.
                body = await self.upstream.read(d.provider, resp)
                raise UpstreamUnavailable(f"{d.provider.name} did not stream (content-type {resp.content_type}): "
                                          f"{body[:200]!r}", code="upstream_not_streaming")
            chunks = self._chunks(d, resp, decoder, deadline)
            try:
                head = await _until_content(chunks)
            except BaseException:
                await chunks.aclose()
                raise
            return Stream(d, _replay(head, chunks), decoder)

        async def close(s: Stream) -> None:
            await s.chunks.aclose()

        _, stream = await self._run(op, raw, outcome, forced, native, open_, close, deadline)
        return stream

    async def _chunks(self, d: Deployment, resp: aiohttp.ClientResponse, decoder: StreamDecoder,
                      deadline: Deadline) -> AsyncGenerator[JSON, None]:
        sse = SSEDecoder()
        started = time.perf_counter()
        ok = False
        try:
            async for data in self.upstream.iter_bytes(d.provider, resp):
                if deadline.expired:
                    raise UpstreamTimeout(f"{d.provider.name}: the request's total deadline (timeouts.total_s) "
                                          "passed mid-stream", code="deadline_exceeded")
                for event in sse.feed(data):
                    for chunk in decoder.feed(event):
                        yield chunk
                    if decoder.done:
                        ok = True
                        return
            for event in sse.flush():
                for chunk in decoder.feed(event):
                    yield chunk
            if not decoder.done and decoder.usage is None:
                raise UpstreamUnavailable(f"{d.provider.name} ended the stream before it was complete",
                                          code="upstream_stream_truncated")
            ok = True
        except PeriluneError:
            if self.health is not None:
                self.health.finish(d, False)
            raise
        finally:
            if ok and self.health is not None:
                elapsed = time.perf_counter() - started
                out = decoder.usage.output_tokens if decoder.usage is not None else 0
                self.health.finish(d, True, latency_ms=elapsed * 1000.0,
                                   tokens_per_s=out / elapsed if out and elapsed > 0 else None)


ROUTE_HEADER = "x-perilune-route"


def route_header(route: list[Attempt]) -> str:
    """The attempts of a request as ``provider/model:status`` entries, in order (499 = a hedge's loser)."""
    return ", ".join(f"{a.provider}/{a.model}:{a.status}" for a in route)


def _is_content(item: JSON) -> bool:
    """Does this stream item carry generated content (or end the answer)? Items before the first
    content (a role chunk, Anthropic's message_start and pings) are held back with it."""
    choices = item.get("choices")
    if isinstance(choices, list):
        for c in choices:
            if not isinstance(c, dict):
                continue
            if c.get("finish_reason") or c.get("text"):
                return True
            delta = c.get("delta")
            if isinstance(delta, dict) and any(delta.get(k) for k in CONTENT_KEYS):
                return True
        return False
    return item.get("type") not in ("message_start", "ping")


CONTENT_KEYS = ("content", "tool_calls", "function_call", "refusal", "reasoning_content", "reasoning", "audio")


async def _until_content(chunks: AsyncGenerator[JSON, None]) -> list[JSON]:
    head: list[JSON] = []
    async for item in chunks:
        head.append(item)
        if _is_content(item):
            break
    return head


async def _replay(head: list[JSON], rest: AsyncGenerator[JSON, None]) -> AsyncGenerator[JSON, None]:
    try:
        for item in head:
            yield item
        async for item in rest:
            yield item
    finally:
        await rest.aclose()


def settle(outcome: Outcome, d: Deployment, usage: Usage) -> None:
    """Attach usage, exact cost and latency to the outcome."""
    outcome.usage = usage
    outcome.cost = cost_of(usage, d.price)
    outcome.latency_ms = (time.perf_counter() - outcome.started) * 1000.0
