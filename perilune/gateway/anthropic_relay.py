"""Rendering for the Anthropic dialect (/v1/messages): a message, or the Anthropic event stream, with
perilune's enrichment. ``usage`` carries the same cost and timing fields as the OpenAI dialect
(input_cost_usd, output_cost_usd, cache_input_cost_usd, total_cost_usd, latency_ms, ttft_ms) and the
message a top-level ``provider``; in a stream, the message_delta's usage carries them.

Two stream shapes: *native* (an Anthropic upstream's own events, relayed as they come, only
message_start and message_delta touched) and *converted* (OpenAI-shaped chunks from any other upstream,
turned into the Anthropic event sequence by :class:`perilune.schema.convert.EventEncoder`). A failure
mid-stream becomes ``event: error`` with ``{"type": "error", "error": {...}}``, then the stream ends.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import orjson

from perilune._sse import encode_event
from perilune.accounting import estimate
from perilune.accounting.capture import MessageCapture, StreamCapture
from perilune.errors import PeriluneError
from perilune.gateway.pipeline import Stream, settle
from perilune.gateway.relay import extend_usage
from perilune.providers.anthropic import AnthropicNativeDecoder
from perilune.schema.canonical import JSON, Outcome, Usage
from perilune.schema.convert import EventEncoder
from perilune.tokens import count_tokens

Write = Callable[[bytes], Awaitable[None]]


def usage_json(outcome: Outcome, upstream: JSON | None = None) -> JSON:
    """Anthropic usage (the upstream's own fields kept) with canonical counts, cost and timings."""
    u = outcome.usage or Usage()
    out: JSON = dict(upstream) if upstream else {}
    out["input_tokens"] = u.input_tokens
    out["cache_creation_input_tokens"] = u.cache_write_tokens
    out["cache_read_input_tokens"] = u.cache_read_tokens
    out["output_tokens"] = u.output_tokens
    return extend_usage(out, outcome, u)


def render_message(msg: JSON, outcome: Outcome) -> bytes:
    """A settled message (native or converted) as the response body."""
    upstream = msg.get("usage")
    msg["usage"] = usage_json(outcome, upstream if isinstance(upstream, dict) else None)
    msg["provider"] = outcome.provider
    return orjson.dumps(msg)


def message_id(outcome: Outcome) -> str:
    """Anthropic-style id for a message perilune composes (the request id's random part)."""
    return "msg_" + outcome.request_id.removeprefix("req_")


def _event(name: str, payload: JSON) -> bytes:
    return encode_event(name, orjson.dumps(payload))


async def _fail(write: Write, e: PeriluneError, outcome: Outcome) -> None:
    outcome.status, outcome.error_type = e.status_code, e.kind
    await write(_event("error", e.anthropic_body()))


async def relay_converted(write: Write, stream: Stream, outcome: Outcome, *, prompt_estimate: int) -> None:
    """OpenAI-shaped chunks from a non-Anthropic upstream -> the Anthropic event sequence."""
    d = stream.deployment
    enc = EventEncoder()
    texts: list[str] = []
    capture = StreamCapture() if outcome.capture else None  # "observability": the assembled output
    if capture is not None:
        outcome.payload_response = capture
    known = stream.decoder.usage  # some upstreams (Gemini) report the prompt's count before any content
    await write(_event(*enc.start(message_id(outcome), d.upstream_model, {"provider": outcome.provider},
                                  input_tokens=known.prompt_tokens if known else prompt_estimate,
                                  estimated=known is None)))
    try:
        async for chunk in stream.chunks:
            if outcome.ttft_ms is None:
                outcome.ttft_ms = (time.perf_counter() - outcome.started) * 1000.0
            texts.append(estimate.chunk_output_text(chunk))
            if capture is not None:
                capture.feed(chunk)
            for name, payload in enc.feed(chunk):
                await write(_event(name, payload))
    except PeriluneError as e:
        settle(outcome, d, stream.decoder.usage or _estimated(prompt_estimate, texts))
        await _fail(write, e, outcome)
        return
    settle(outcome, d, stream.decoder.usage or _estimated(prompt_estimate, texts))
    for name, payload in enc.finish(usage_json(outcome)):
        await write(_event(name, payload))


async def relay_native(write: Write, stream: Stream, outcome: Outcome, *, prompt_estimate: int) -> None:
    """An Anthropic upstream's own events, relayed as they come; message_start gains ``provider``,
    message_delta's usage gains the canonical counts, cost and timings."""
    d = stream.deployment
    decoder = stream.decoder
    texts: list[str] = []
    settled = stopped = False
    capture = MessageCapture() if outcome.capture else None  # "observability": true
    if capture is not None:
        outcome.payload_response = capture

    def fallback_usage() -> Usage:
        if isinstance(decoder, AnthropicNativeDecoder):
            return decoder.interim_usage(count_tokens("".join(texts)))
        return _estimated(prompt_estimate, texts)

    try:
        async for ev in stream.chunks:
            typ = str(ev.get("type"))
            if typ == "content_block_delta":
                delta = ev.get("delta") or {}
                texts.append(str(delta.get("text") or delta.get("partial_json") or delta.get("thinking")
                                 or ""))
                if outcome.ttft_ms is None:
                    outcome.ttft_ms = (time.perf_counter() - outcome.started) * 1000.0
            elif typ == "message_start" and isinstance(ev.get("message"), dict):
                ev["message"]["provider"] = outcome.provider
            elif typ == "message_delta":
                settle(outcome, d, decoder.usage or fallback_usage())
                upstream = ev.get("usage")
                ev["usage"] = usage_json(outcome, upstream if isinstance(upstream, dict) else None)
                settled = True
            elif typ == "message_stop":
                stopped = True
            if capture is not None:
                capture.feed(ev)
            await write(_event(typ, ev))
    except PeriluneError as e:
        if not settled:
            settle(outcome, d, fallback_usage())
        await _fail(write, e, outcome)
        return
    if not settled:
        settle(outcome, d, decoder.usage or fallback_usage())
    if not stopped:
        await write(_event("message_stop", {"type": "message_stop"}))


def _estimated(prompt_tokens: int, texts: list[str]) -> Usage:
    return Usage(input_tokens=prompt_tokens, output_tokens=count_tokens("".join(texts)), estimated=True)
