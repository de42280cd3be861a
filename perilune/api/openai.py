"""The OpenAI dialect: /v1/chat/completions, /v1/completions, /v1/embeddings (/v1/models: api/models.py)."""

from __future__ import annotations

import base64
import struct

from aiohttp import web

from perilune.accounting import estimate
from perilune.api.common import Ctx, endpoint
from perilune.errors import InvalidRequest
from perilune.gateway.pipeline import settle
from perilune.gateway.relay import estimated_usage, relay_stream, render_result
from perilune.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from perilune.schema.canonical import JSON
from perilune.schema.openai import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    check_input_shape,
    parse_body,
)


async def _generate(ctx: Ctx, op: str, raw: JSON, *, stream: bool, include_usage: bool, forced: str | None,
                    prompt_estimate: int) -> web.StreamResponse:
    pipeline, o = ctx.services.pipeline, ctx.outcome
    o.stream = stream
    o.estimate_in = prompt_estimate
    max_out = raw.get("max_completion_tokens") or raw.get("max_tokens")
    o.estimate_out = max_out if isinstance(max_out, int) else None
    n = raw.get("n")
    o.estimate_n = n if isinstance(n, int) and n > 0 else 1
    if stream:
        upstream = await pipeline.stream(op, raw, o, forced, ctx.request.headers)
        resp = await ctx.start_sse()
        await relay_stream(resp.write, upstream, o, include_usage=include_usage, prompt_estimate=prompt_estimate)
        await resp.write_eof()
        return resp
    d, result = await pipeline.complete(op, raw, o, forced, ctx.request.headers)
    usage = result.usage or estimated_usage(prompt_estimate, estimate.chat_output_tokens(result.body))
    settle(o, d, usage)
    body = render_result(result.body, o)
    if o.capture:
        o.payload_response = result.body
    return ctx.json(body)


def _observe(ctx: Ctx, asked: bool | None, raw: JSON) -> None:
    """``"observability": true``: keep the request (and, later, the response) for the usage log."""
    if asked:
        ctx.outcome.capture, ctx.outcome.payload_request = True, raw


@endpoint("openai", "chat")
async def chat_completions(ctx: Ctx) -> web.StreamResponse:
    req, raw = parse_body(await ctx.body(), ChatCompletionRequest)
    ctx.outcome.model_requested = req.model
    _observe(ctx, req.observability, raw)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    if req.stream_options is not None and not req.stream:
        raise InvalidRequest("stream_options is only allowed when stream is true.", param="stream_options")
    return await _generate(ctx, CHAT, raw, stream=bool(req.stream), include_usage=include_usage,
                           forced=req.provider, prompt_estimate=estimate.chat_prompt_tokens(raw))


@endpoint("openai", "completions")
async def completions(ctx: Ctx) -> web.StreamResponse:
    req, raw = parse_body(await ctx.body(), CompletionRequest)
    check_input_shape(req.prompt, "prompt")
    ctx.outcome.model_requested = req.model
    _observe(ctx, req.observability, raw)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return await _generate(ctx, COMPLETIONS, raw, stream=bool(req.stream), include_usage=include_usage,
                           forced=req.provider, prompt_estimate=estimate.text_prompt_tokens(req.prompt))


@endpoint("openai", "embeddings")
async def embeddings(ctx: Ctx) -> web.StreamResponse:
    req, raw = parse_body(await ctx.body(), EmbeddingRequest)
    check_input_shape(req.input, "input")
    ctx.outcome.model_requested = req.model
    _observe(ctx, req.observability, raw)
    ctx.outcome.estimate_in, ctx.outcome.estimate_out = estimate.text_prompt_tokens(req.input), 0
    d, result = await ctx.services.pipeline.complete(EMBEDDINGS, raw, ctx.outcome, req.provider,
                                                     ctx.request.headers)
    usage = result.usage or estimated_usage(estimate.text_prompt_tokens(req.input), 0)
    settle(ctx.outcome, d, usage)
    if not result.body.get("model"):
        result.body["model"] = d.upstream_model
    _encode_embeddings(result.body, req.encoding_format or "float")
    body = render_result(result.body, ctx.outcome)
    if ctx.outcome.capture:
        ctx.outcome.payload_response = result.body
    return ctx.json(body)


def _encode_embeddings(body: JSON, encoding: str) -> None:
    """Honour ``encoding_format`` whatever the upstream sent: base64 is little-endian float32 (what
    openai-node asks for by default and decodes); float is a list of numbers."""
    for item in body.get("data") or ():
        vec = item.get("embedding") if isinstance(item, dict) else None
        if encoding == "base64" and isinstance(vec, list):
            item["embedding"] = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        elif encoding == "float" and isinstance(vec, str):
            raw = base64.b64decode(vec)
            item["embedding"] = list(struct.unpack(f"<{len(raw) // 4}f", raw))
