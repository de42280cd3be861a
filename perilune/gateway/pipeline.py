"""The attempts of one request: route, reserve, call the upstream, fall through to the next deployment.

The pipeline is dialect-free. It takes a :class:`Call` (the canonical OpenAI-shaped request and, for
a request that arrived in a provider's own dialect, its :class:`Native` form), tries deployments in
order and returns the winner as :class:`Opened`: a complete result, or a stream whose first items have
been read already, so that a failure before the first content can still fall over to the next
deployment. Every try is appended to the caller's list of :class:`Attempt`.

Money belongs to attempts: before a deployment of a model is tried, ``reserve(model)`` is awaited (the
request's lifecycle reserves once per model and re-prices when a fallback changes the model); the
granted output limit is written into the request sent upstream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal

from perilune._http import Response, UpstreamClient
from perilune._sse import SSEDecoder
from perilune.accounting import estimate
from perilune.accounting.billing import Reservation
from perilune.accounting.bounds import check_bounds
from perilune.accounting.catalog import ModelInfo, Price
from perilune.errors import PeriluneError, UpstreamTimeout, UpstreamUnavailable
from perilune.gateway.resilience import Attempts, Deadline, Health, Try
from perilune.gateway.routing import Deployment, Plan, Router
from perilune.providers.base import Result, StreamDecoder, StreamItem
from perilune.schema.canonical import JSON, Attempt, Usage
from perilune.schema.routing import ProviderPrefs

NO_HEADERS: Mapping[str, str] = {}
PEEK_ITEMS = 16  # items read ahead, at most, while waiting for the first content of a stream


@dataclass(slots=True)
class Native:
    """The seam for dialect passthrough (e.g. /v1/messages to an Anthropic upstream).

    A request that arrives in a provider's own dialect carries its OpenAI-shaped form (``Call.body``)
    *and* its native form here. Per deployment, an adapter that supports ``op`` gets ``raw`` and
    ``headers`` from here untouched (nothing lost in translation); any other adapter gets the
    OpenAI-shaped request. When the request has no OpenAI-shaped form, ``unconvertible`` says why:
    only native deployments are tried, and it is raised when the model has none.
    """

    op: str
    raw: JSON
    headers: dict[str, str] = field(default_factory=dict)
    unconvertible: PeriluneError | None = None
    output_param: str = "max_tokens"  # where the native form carries its output limit

    def serves(self, d: Deployment) -> bool:
        return self.op in d.adapter.supports


@dataclass(slots=True)
class Call:
    """What a handler asks the gateway to do; the request's lifecycle does the rest."""

    op: str
    model: str
    body: JSON  # the canonical (OpenAI-shaped) request; {} when it has none
    stream: bool = False
    provider: str | ProviderPrefs | None = None  # a pin, or the request's provider preferences
    fallbacks: tuple[str, ...] | None = None  # models tried after this one; None: the model's configured ones
    hedge: bool | None = None  # None: as configured for the model
    max_output: int | None = None  # the client's output limit per choice; None: not given
    output_param: str = "max_tokens"  # its name in the client's dialect (named in a 400)
    n: int = 1
    prompt_tokens: int = 0  # local estimate of the prompt
    unit_usd: Decimal = Decimal(0)  # per-image / per-minute worst case
    native: Native | None = None
    generates: bool = True  # produces output tokens (False: embeddings, token counting)
    billed: bool = True  # False: free operations (token counting) reserve nothing
    usage: Callable[[Result], Usage] | None = None  # usage from a result (media: images, audio seconds)
    # set by the lifecycle: the bytes that end a chunk of this provider relayed as sent, or None (Encoder.passthrough)
    relay_tail: Callable[[str], bytes | None] | None = None


@dataclass(slots=True)
class Opened:
    """The winning attempt: a complete result, or an open stream with its first items read."""

    deployment: Deployment
    reservation: Reservation | None
    native: bool  # items / body are in the client's own dialect, not canonical
    result: Result | None = None
    head: list[StreamItem] = field(default_factory=list)
    rest: AsyncIterator[list[StreamItem]] | None = None  # the stream's further items, one batch per upstream read
    decoder: StreamDecoder | None = None
    ttft_ms: float | None = None
    alias: str | None = None  # the alias the client asked for, when [aliases] resolved it

    async def batches(self) -> AsyncIterator[list[StreamItem]]:
        """The stream's items in batches: what was read ahead, then what each upstream read brought."""
        if self.head:
            yield self.head
        if self.rest is not None:
            async for batch in self.rest:
                yield batch

    async def close(self) -> None:
        """Release the upstream connection now (a client that went away cancels the upstream call)."""
        rest = self.rest
        if rest is not None and hasattr(rest, "aclose"):
            await rest.aclose()


Reserve = Callable[[ModelInfo], Awaitable[Reservation | None]]


def _output_key(model: ModelInfo, body: JSON) -> str:
    if "max_completion_tokens" in body or ("max_tokens" not in body
                                           and "max_completion_tokens" in model.supported_parameters):
        return "max_completion_tokens"
    return "max_tokens"


def _has_content(item: StreamItem, native: bool) -> bool:
    if isinstance(item, tuple):
        return True
    if native:
        return item.get("type") in ("content_block_delta", "content_block_start", "message_delta",
                                    "response.output_text.delta", "response.output_item.added")
    return bool(estimate.chunk_output_text(item)) or any(
        isinstance(c, dict) and c.get("finish_reason") for c in item.get("choices") or ())


class Pipeline:
    def __init__(self, router: Router, upstream: UpstreamClient, *, health: Health | None = None,
                 total_s: float = 600.0) -> None:
        self.router = router
        self.upstream = upstream
        self.health = health or router.health or Health()
        self.attempts = Attempts(self.health)
        self.total_s = total_s  # timeouts.total_s: the whole request, every attempt and the relay

    async def open(self, call: Call, reserve: Reserve, attempts: list[Attempt], started: float,
                   headers: Mapping[str, str] = NO_HEADERS) -> Opened:
        """Try the plan (the model's deployments, then its fallbacks') until one answers: failures of a
        provider fall through, open breakers are skipped, a failed pass is retried after a backoff, a
        late first token can be hedged; all within the request's total deadline."""
        native = call.native
        plan = self.router.plan(call.model, call.op, call.provider, call.fallbacks,
                                prompt_tokens=call.prompt_tokens or None, hedge=call.hedge)
        if native is not None and native.unconvertible is not None:
            kept = [d for d in plan if native.serves(d)]
            if not kept:
                raise native.unconvertible
            plan = Plan(kept, plan.requested, plan.alias, plan.hedge)
        if len(plan):
            check_bounds(plan[0].model, call.body)  # e.g. dimensions: 400 before any reservation
        priced = _reservation_models(plan)
        deadline = Deadline(self.total_s - (time.perf_counter() - started), time.monotonic)

        reserving = asyncio.Lock()  # a hedge's attempts share their model's reservation: reserve one at a time

        async def open_(d: Deployment) -> Opened:
            async with reserving:
                res = await reserve(priced.get(d.model.id, d.model))
            opened = await self._try(call, d, res, headers, started, deadline)
            opened.alias = plan.requested if plan.alias is not None else None
            return opened

        async def close(o: Opened) -> None:
            if isinstance(o.rest, AsyncGenerator):
                await o.rest.aclose()

        tries: list[Try] = []
        try:
            _, opened = await self.attempts.run(plan, open_, deadline=deadline, tries=tries, hedge=plan.hedge,
                                                close=close)
        finally:
            attempts.extend(Attempt(t.provider, t.model, t.status or 499, t.error, t.latency_ms, t.ttft_ms)
                            for t in tries)
        if opened.result is not None and opened.result.usage is not None:
            elapsed_s = (time.perf_counter() - started)
            self.health.finish(opened.deployment, True, latency_ms=elapsed_s * 1000.0,
                               tokens_per_s=_rate(opened.result.usage.output_tokens, elapsed_s))
        return opened

    def _build(self, call: Call, d: Deployment, res: Reservation | None, headers: Mapping[str, str]
               ) -> tuple[bool, object]:
        native = call.native
        granted = res.granted_output if res is not None else None
        if native is not None and native.serves(d):
            raw = native.raw
            if granted and call.generates and raw.get(native.output_param) != granted:
                raw = {**raw, native.output_param: granted}
            req = d.adapter.build(native.op, d.provider, d.upstream_model, raw, stream=call.stream)
            req.headers.update(native.headers)
            is_native = True
        else:
            body = call.body
            if granted and call.generates:
                key = _output_key(d.model, body)
                if body.get(key) != granted:
                    body = {**body, key: granted}
            req = d.adapter.build(call.op, d.provider, d.upstream_model, body, stream=call.stream)
            is_native = False
        if d.provider.forward_headers:
            req.headers.update(d.provider.forwarded(headers))
        return is_native, req

    async def _try(self, call: Call, d: Deployment, res: Reservation | None, headers: Mapping[str, str],
                   started: float, deadline: Deadline) -> Opened:
        is_native, req = self._build(call, d, res, headers)
        op = call.native.op if is_native and call.native is not None else call.op
        resp = await self.upstream.open(d.provider, req)  # type: ignore[arg-type]
        if resp.status >= 400:
            body = await self.upstream.read(d.provider, resp)
            raise d.adapter.error(d.provider.name, resp.status, body, resp.headers)
        if not call.stream:
            raw = await self.upstream.read(d.provider, resp)
            ttft = (time.perf_counter() - started) * 1000.0
            return Opened(d, res, is_native, result=d.adapter.parse(op, raw, resp.content_type), ttft_ms=ttft)
        if "text/event-stream" not in resp.content_type:
            # Some hosts ignore stream=true on errors or for some models: say so, as a retryable failure.
            body = await self.upstream.read(d.provider, resp)
            raise UpstreamUnavailable(f"{d.provider.name} did not stream (content-type {resp.content_type}): "
                                      f"{body[:200]!r}", code="upstream_not_streaming")
        decoder = d.adapter.stream_decoder(op, d.provider.name)
        if call.relay_tail is not None and not is_native and (tail := call.relay_tail(d.provider.name)) is not None:
            decoder.relay_as_sent(tail)  # chunks that need no change go out as the upstream sent them
        rest = self._chunks(d, resp, decoder, deadline)
        head: list[StreamItem] = []
        try:  # read ahead to the first content: a failure before it may still fall over
            async for batch in rest:
                head += batch
                if len(head) >= PEEK_ITEMS or any(_has_content(item, is_native) for item in batch):
                    break
        except BaseException:
            await rest.aclose()
            resp.close()
            raise
        ttft = (time.perf_counter() - started) * 1000.0
        return Opened(d, res, is_native, head=head, rest=rest, decoder=decoder, ttft_ms=ttft)

    async def _chunks(self, d: Deployment, resp: Response, decoder: StreamDecoder,
                      deadline: Deadline) -> AsyncGenerator[list[StreamItem], None]:
        """The stream's items, one batch per upstream read (relayed in one write); a failure decoding
        an item comes after the items before it."""
        sse = SSEDecoder()
        started, ok = time.perf_counter(), False
        upstream, provider = self.upstream, d.provider
        try:
            while data := await upstream.next_piece(provider, resp):
                if deadline.expired:
                    raise UpstreamTimeout(f"{d.provider.name}: the request's total deadline (timeouts.total_s) "
                                          "passed mid-stream", code="deadline_exceeded")
                batch: list[StreamItem] = []
                failed: PeriluneError | None = None
                try:
                    decoder.feed_blocks(sse.blocks(data), batch)
                except PeriluneError as e:
                    failed = e
                if batch:
                    yield batch
                if failed is not None:
                    raise failed
                if decoder.done:
                    ok = True
                    return
            tail: list[StreamItem] = [chunk for event in sse.flush() for chunk in decoder.feed(event)]
            if tail:
                yield tail
            if not decoder.done and decoder.usage is None:
                raise UpstreamUnavailable(f"{d.provider.name} ended the stream before it was complete",
                                          code="upstream_stream_truncated")
            ok = True
        except PeriluneError:
            self.health.finish(d, False)  # failed after its first content: counts against its breaker
            raise
        finally:
            resp.close()
            if ok:  # a complete stream: its speed feeds the live figures (throughput routing, /v1/providers)
                elapsed_s = time.perf_counter() - started
                out = decoder.usage.output_tokens if decoder.usage is not None else 0
                self.health.finish(d, True, latency_ms=elapsed_s * 1000.0, tokens_per_s=_rate(out, elapsed_s))


ROUTE_HEADER = "x-perilune-route"
PRICE_FIELDS = tuple(f.name for f in fields(Price))


def route_header(route: Sequence[Attempt]) -> str:
    """The attempts of a request as ``provider/model:status`` entries, in order (499 = a hedge's loser)."""
    return ", ".join(f"{a.provider}/{a.model}:{a.status}" for a in route)


def _rate(tokens: int, seconds: float) -> float | None:
    return tokens / seconds if tokens > 0 and seconds > 0 else None


def _reservation_models(plan: Sequence[Deployment]) -> dict[str, ModelInfo]:
    """Per model whose providers have their own prices, the model priced at the highest of them (what a
    reservation must cover whichever provider serves it); the charge is the serving provider's price."""
    by_model: dict[str, list[Deployment]] = {}
    for d in plan:
        by_model.setdefault(d.model.id, []).append(d)
    out: dict[str, ModelInfo] = {}
    for model_id, ds in by_model.items():
        if all(d.price_override is None for d in ds):
            continue
        prices = [d.price for d in ds]
        top = Price(**{f: max((v for p in prices if (v := getattr(p, f)) is not None), default=None)
                       for f in PRICE_FIELDS})
        out[model_id] = replace(ds[0].model, price=top, discount_percentage=Decimal(0))
    return out
