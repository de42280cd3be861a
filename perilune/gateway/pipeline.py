"""The request path after parsing: route, call the upstream (with fallbacks), account.

The pipeline is dialect-free: it takes an OpenAI-shaped request mapping, returns an OpenAI-shaped
result or an async iterator of OpenAI-shaped chunks, and fills in the :class:`Outcome` that the relay
renders and the recorder stores.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import aiohttp

from perilune._http import UpstreamClient
from perilune._sse import SSEDecoder
from perilune.accounting.bounds import check_bounds
from perilune.accounting.ledger import Accountant
from perilune.accounting.pricing import cost_of
from perilune.errors import PeriluneError, UpstreamError, UpstreamUnavailable
from perilune.gateway.routing import Deployment, Router
from perilune.providers.base import Result, StreamDecoder
from perilune.schema.canonical import JSON, Attempt, Outcome, Usage

NO_HEADERS: Mapping[str, str] = {}


@dataclass(slots=True)
class Stream:
    """An open upstream stream: chunks (OpenAI-shaped, usage removed) and, once drained, its usage."""

    deployment: Deployment
    chunks: AsyncIterator[JSON]
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
    def __init__(self, router: Router, upstream: UpstreamClient, accountant: Accountant | None = None) -> None:
        self.router = router
        self.upstream = upstream
        self.accountant = accountant

    async def _open(self, op: str, raw: JSON, outcome: Outcome, forced: str | None, *, stream: bool,
                    headers: Mapping[str, str], native: Native | None = None
                    ) -> tuple[Deployment, aiohttp.ClientResponse]:
        """Try each deployment in order until one answers 2xx; retryable failures fall through."""
        deployments = self.router.resolve(outcome.model_requested, op, forced)
        if native is not None and native.unconvertible is not None:
            deployments = [d for d in deployments if native.serves(d)]
            if not deployments:
                raise native.unconvertible
        check_bounds(deployments[0].model, raw)  # max_tokens, dimensions: 400 before admission
        if self.accountant is not None:  # limits, free quota and balance: reserved before any upstream call
            await self.accountant.admit(outcome, deployments[0].model)
        for i, d in enumerate(deployments):
            if native is not None and native.serves(d):
                req = d.adapter.build(native.op, d.provider, d.upstream_model, native.raw, stream=stream)
                req.headers.update(native.headers)
            else:
                req = d.adapter.build(op, d.provider, d.upstream_model, raw, stream=stream)
            if d.provider.forward_headers:
                req.headers.update(d.provider.forwarded(headers))
            try:
                resp = await self.upstream.open(d.provider, req)
                if resp.status >= 400:
                    body = await self.upstream.read(d.provider, resp)
                    raise d.adapter.error(d.provider.name, resp.status, body, resp.headers)
            except UpstreamError as e:
                outcome.route.append(Attempt(d.provider.name, d.model.id, e.status_code, e.kind))
                if e.retryable and i + 1 < len(deployments):
                    continue
                outcome.provider, outcome.model_served = d.provider.name, d.model.id
                raise
            outcome.route.append(Attempt(d.provider.name, d.model.id, resp.status))
            outcome.provider, outcome.model_served = d.provider.name, d.model.id
            return d, resp
        raise AssertionError("router returned no deployment")  # pragma: no cover - resolve() raises first

    async def complete(self, op: str, raw: JSON, outcome: Outcome, forced: str | None = None,
                       headers: Mapping[str, str] = NO_HEADERS, native: Native | None = None
                       ) -> tuple[Deployment, Result]:
        d, resp = await self._open(op, raw, outcome, forced, stream=False, headers=headers, native=native)
        body = await self.upstream.read(d.provider, resp)
        outcome.ttft_ms = (time.perf_counter() - outcome.started) * 1000.0
        result = d.adapter.parse(native.op if native and native.serves(d) else op, body, resp.content_type)
        return d, result

    async def stream(self, op: str, raw: JSON, outcome: Outcome, forced: str | None = None,
                     headers: Mapping[str, str] = NO_HEADERS, native: Native | None = None) -> Stream:
        d, resp = await self._open(op, raw, outcome, forced, stream=True, headers=headers, native=native)
        decoder = d.adapter.stream_decoder(native.op if native and native.serves(d) else op, d.provider.name)
        if "text/event-stream" not in resp.content_type:
            # Some hosts ignore stream=true on errors or for some models: treat a JSON body as one result.
            body = await self.upstream.read(d.provider, resp)
            raise UpstreamUnavailable(f"{d.provider.name} did not stream (content-type {resp.content_type}): "
                                      f"{body[:200]!r}", code="upstream_not_streaming")
        return Stream(d, self._chunks(d, resp, decoder), decoder)

    async def _chunks(self, d: Deployment, resp: aiohttp.ClientResponse, decoder: StreamDecoder
                      ) -> AsyncIterator[JSON]:
        sse = SSEDecoder()
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


def settle(outcome: Outcome, d: Deployment, usage: Usage) -> None:
    """Attach usage, exact cost and latency to the outcome."""
    outcome.usage = usage
    outcome.cost = cost_of(usage, d.model.effective_price)
    outcome.latency_ms = (time.perf_counter() - outcome.started) * 1000.0
