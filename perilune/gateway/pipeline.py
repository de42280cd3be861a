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

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import aiohttp

from perilune._http import UpstreamClient
from perilune._sse import SSEDecoder
from perilune.accounting import estimate
from perilune.accounting.billing import Reservation
from perilune.accounting.bounds import check_bounds
from perilune.accounting.catalog import ModelInfo
from perilune.errors import PeriluneError, UpstreamError, UpstreamUnavailable
from perilune.gateway.routing import Deployment, Router
from perilune.providers.base import Result, StreamDecoder
from perilune.schema.canonical import JSON, Attempt, Usage

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
    provider: str | None = None
    max_output: int | None = None  # the client's output limit per choice; None: not given
    output_param: str = "max_tokens"  # its name in the client's dialect (named in a 400)
    n: int = 1
    prompt_tokens: int = 0  # local estimate of the prompt
    unit_usd: Decimal = Decimal(0)  # per-image / per-minute worst case
    native: Native | None = None
    generates: bool = True  # produces output tokens (False: embeddings, token counting)
    billed: bool = True  # False: free operations (token counting) reserve nothing
    usage: Callable[[Result], Usage] | None = None  # usage from a result (media: images, audio seconds)


@dataclass(slots=True)
class Opened:
    """The winning attempt: a complete result, or an open stream with its first items read."""

    deployment: Deployment
    reservation: Reservation | None
    native: bool  # items / body are in the client's own dialect, not canonical
    result: Result | None = None
    head: list[JSON] = field(default_factory=list)
    rest: AsyncIterator[JSON] | None = None
    decoder: StreamDecoder | None = None
    ttft_ms: float | None = None

    async def items(self) -> AsyncIterator[JSON]:
        for item in self.head:
            yield item
        if self.rest is not None:
            async for item in self.rest:
                yield item

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


def _has_content(item: JSON, native: bool) -> bool:
    if native:
        return item.get("type") in ("content_block_delta", "content_block_start", "message_delta",
                                    "response.output_text.delta", "response.output_item.added")
    return bool(estimate.chunk_output_text(item)) or any(
        isinstance(c, dict) and c.get("finish_reason") for c in item.get("choices") or ())


class Pipeline:
    def __init__(self, router: Router, upstream: UpstreamClient) -> None:
        self.router = router
        self.upstream = upstream

    async def open(self, call: Call, reserve: Reserve, attempts: list[Attempt], started: float,
                   headers: Mapping[str, str] = NO_HEADERS) -> Opened:
        """Try each deployment in order until one answers; retryable failures fall through."""
        native = call.native
        deployments = self.router.resolve(call.model, call.op, call.provider)
        if native is not None and native.unconvertible is not None:
            deployments = [d for d in deployments if native.serves(d)]
            if not deployments:
                raise native.unconvertible
        check_bounds(deployments[0].model, call.body)  # e.g. dimensions: 400 before any reservation
        for i, d in enumerate(deployments):
            res = await reserve(d.model)
            t0 = time.perf_counter()
            try:
                opened = await self._try(call, d, res, headers, started)
            except UpstreamError as e:
                attempts.append(Attempt(d.provider.name, d.model.id, e.status_code, e.kind,
                                        (time.perf_counter() - t0) * 1000.0))
                if e.retryable and i + 1 < len(deployments):
                    continue
                raise
            attempts.append(Attempt(d.provider.name, d.model.id, 200, None, (time.perf_counter() - t0) * 1000.0,
                                    opened.ttft_ms))
            return opened
        raise AssertionError("router returned no deployment")  # pragma: no cover - resolve() raises first

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
                   started: float) -> Opened:
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
        rest = self._chunks(d, resp, decoder)
        head: list[JSON] = []
        try:  # read ahead to the first content: a failure before it may still fall over
            async for item in rest:
                head.append(item)
                if _has_content(item, is_native) or len(head) >= PEEK_ITEMS:
                    break
        except BaseException:
            resp.close()
            raise
        ttft = (time.perf_counter() - started) * 1000.0
        return Opened(d, res, is_native, head=head, rest=rest, decoder=decoder, ttft_ms=ttft)

    async def _chunks(self, d: Deployment, resp: aiohttp.ClientResponse, decoder: StreamDecoder
                      ) -> AsyncIterator[JSON]:
        sse = SSEDecoder()
        try:
            async for data in self.upstream.iter_bytes(d.provider, resp):
                for event in sse.feed(data):
                    for chunk in decoder.feed(event):
                        yield chunk
                    if decoder.done:
                        return
            for event in sse.flush():
                for chunk in decoder.feed(event):
                    yield chunk
            if not decoder.done and decoder.usage is None:
                raise UpstreamUnavailable(f"{d.provider.name} ended the stream before it was complete",
                                          code="upstream_stream_truncated")
        finally:
            resp.close()
