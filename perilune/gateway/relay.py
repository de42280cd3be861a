"""Rendering for the OpenAI dialect: enrich the upstream's answer with provider, cost and timings, as
one JSON body or as a stream of SSE chunks ending with the usage chunk."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from perilune._sse import DONE, encode_data
from perilune.accounting import estimate
from perilune.accounting.capture import StreamCapture
from perilune.accounting.pricing import usd_number
from perilune.errors import PeriluneError
from perilune.gateway.pipeline import Stream, settle
from perilune.schema.canonical import JSON, Outcome, Usage
from perilune.tokens import count_tokens

Write = Callable[[bytes], Awaitable[None]]


def usage_json(outcome: Outcome, upstream: JSON | None = None) -> JSON:
    """OpenAI usage (the upstream's own fields kept) extended with cost and timings."""
    u = outcome.usage or Usage()
    out: dict[str, Any] = dict(upstream) if upstream else {}
    if not upstream or "prompt_tokens" not in out:
        out["prompt_tokens"] = u.prompt_tokens
        if outcome.endpoint != "embeddings":
            out["completion_tokens"] = u.output_tokens
        out["total_tokens"] = u.total_tokens if outcome.endpoint != "embeddings" else u.prompt_tokens
        if u.cache_read_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": u.cache_read_tokens}
        if u.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    return extend_usage(out, outcome, u)


def extend_usage(out: JSON, outcome: Outcome, u: Usage) -> JSON:
    """perilune's additions to a usage object, in either dialect: cost parts, timings, and whether the
    counts are estimated or covered by the free tier."""
    c = outcome.cost
    if c is not None:
        out["input_cost_usd"] = usd_number(c.input_usd)
        out["output_cost_usd"] = usd_number(c.output_usd)
        out["cache_input_cost_usd"] = usd_number(c.cache_usd)
        if c.unit_usd:
            out["unit_cost_usd"] = usd_number(c.unit_usd)
        out["total_cost_usd"] = usd_number(c.total_usd)
    out["latency_ms"] = round(outcome.latency_ms or 0.0, 3)
    out["ttft_ms"] = round(outcome.ttft_ms, 3) if outcome.ttft_ms is not None else None
    if u.estimated:
        out["estimated"] = True
    if outcome.ticket is not None and outcome.ticket.free:
        out["free_tokens"] = u.total_tokens  # covered by the free tier: nothing charged
    return out


def render_result(body: JSON, outcome: Outcome) -> bytes:
    body["provider"] = outcome.provider
    upstream_usage = body.get("usage")
    body["usage"] = usage_json(outcome, upstream_usage if isinstance(upstream_usage, dict) else None)
    return orjson.dumps(body)


def estimated_usage(prompt_tokens: int, output_tokens: int) -> Usage:
    return Usage(input_tokens=prompt_tokens, output_tokens=output_tokens, estimated=True)


async def relay_stream(write: Write, stream: Stream, outcome: Outcome, *, include_usage: bool,
                       prompt_estimate: int) -> None:
    """Relay an open upstream stream as OpenAI SSE. A failure mid-stream becomes an error event,
    followed by the end of the stream; the usage chunk comes last when the client asked for it."""
    d = stream.deployment
    provider = outcome.provider
    texts: list[str] = []
    last: JSON | None = None
    first = True
    capture = StreamCapture() if outcome.capture else None  # "observability": true
    if capture is not None:
        outcome.payload_response = capture
    try:
        async for chunk in stream.chunks:
            if first:
                outcome.ttft_ms = (time.perf_counter() - outcome.started) * 1000.0
                first = False
            chunk["provider"] = provider
            texts.append(estimate.chunk_output_text(chunk))
            if capture is not None:
                capture.feed(chunk)
            last = chunk
            await write(encode_data(orjson.dumps(chunk)))
    except PeriluneError as e:
        outcome.status, outcome.error_type = e.status_code, e.kind
        settle(outcome, d, stream.decoder.usage or estimated_usage(prompt_estimate, _count(texts)))
        await write(encode_data(orjson.dumps(e.openai_body())))
        await write(DONE)
        return
    except asyncio.CancelledError:  # the client went away: what was generated so far is still paid for
        settle(outcome, d, stream.decoder.usage or estimated_usage(prompt_estimate, _count(texts)))
        raise
    usage = stream.decoder.usage or estimated_usage(prompt_estimate, _count(texts))
    settle(outcome, d, usage)
    if include_usage:
        final: JSON = {"id": last["id"] if last else outcome.request_id,
                       "object": (last or {}).get("object", "chat.completion.chunk"),
                       "created": (last or {}).get("created", int(outcome.started_wall)),
                       "model": (last or {}).get("model", d.upstream_model),
                       "choices": [], "provider": provider,
                       "usage": usage_json(outcome, stream.decoder.upstream_usage)}
        if last and "system_fingerprint" in last:
            final["system_fingerprint"] = last["system_fingerprint"]
        await write(encode_data(orjson.dumps(final)))
    await write(DONE)


def _count(texts: list[str]) -> int:
    return count_tokens("".join(texts))
