"""The request path after parsing: route, call the upstream (with fallbacks), account.

The pipeline is dialect-free: it takes an OpenAI-shaped request mapping, returns an OpenAI-shaped
result or an async iterator of OpenAI-shaped chunks, and fills in the :class:`Outcome` that the relay
renders and the recorder stores.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp

from perilune._http import UpstreamClient
from perilune._sse import SSEDecoder
from perilune.accounting.pricing import cost_of
from perilune.errors import UpstreamError, UpstreamUnavailable
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


class Pipeline:
    def __init__(self, router: Router, upstream: UpstreamClient) -> None:
        self.router = router
        self.upstream = upstream

    async def _open(self, op: str, raw: JSON, outcome: Outcome, forced: str | None, *, stream: bool,
                    headers: Mapping[str, str]) -> tuple[Deployment, aiohttp.ClientResponse]:
        """Try each deployment in order until one answers 2xx; retryable failures fall through."""
        deployments = self.router.resolve(outcome.model_requested, op, forced)
        for i, d in enumerate(deployments):
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
                       headers: Mapping[str, str] = NO_HEADERS) -> tuple[Deployment, Result]:
        d, resp = await self._open(op, raw, outcome, forced, stream=False, headers=headers)
        body = await self.upstream.read(d.provider, resp)
        outcome.ttft_ms = (time.perf_counter() - outcome.started) * 1000.0
        result = d.adapter.parse(op, body, resp.content_type)
        return d, result

    async def stream(self, op: str, raw: JSON, outcome: Outcome, forced: str | None = None,
                     headers: Mapping[str, str] = NO_HEADERS) -> Stream:
        d, resp = await self._open(op, raw, outcome, forced, stream=True, headers=headers)
        decoder = d.adapter.stream_decoder(op, d.provider.name)
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
