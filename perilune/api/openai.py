"""The OpenAI dialect: /v1/chat/completions, /v1/completions, /v1/embeddings (/v1/models: api/models.py)."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable

from aiohttp import web

from perilune.accounting import estimate
from perilune.api.common import Ctx, endpoint
from perilune.dialects.completions import over_chat
from perilune.errors import InvalidRequest, Unsupported
from perilune.gateway.pipeline import Call
from perilune.gateway.relay import OpenAIEncoder, PickEncoder, Served
from perilune.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from perilune.schema.canonical import JSON
from perilune.schema.openai import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    check_input_shape,
    parse_body,
)
from perilune.schema.routing import ProviderPrefs, fallback_models

Prepare = Callable[[JSON, Served], None]


def chat_call(op: str, model: str, raw: JSON, *, stream: bool, req: ChatCompletionRequest | CompletionRequest,
               prompt_tokens: int) -> Call:
    max_out = raw.get("max_completion_tokens")
    param = "max_completion_tokens"
    if max_out is None:
        max_out, param = raw.get("max_tokens"), "max_tokens"
    n = raw.get("n")
    return Call(op, model, raw, stream=stream, provider=req.provider,
                fallbacks=fallback_models(req.fallbacks, req.fallback_model), hedge=req.hedge,
                max_output=max_out if isinstance(max_out, int) else None, output_param=param,
                n=n if isinstance(n, int) else 1, prompt_tokens=prompt_tokens)


def _encoder(ctx: Ctx, include_usage: bool, prepare: Prepare | None = None) -> PickEncoder:
    capture = ctx.lifecycle.capture
    return lambda native: OpenAIEncoder(include_usage=include_usage, capture=capture, prepare=prepare)


@endpoint("openai", "chat", records=True)
async def chat_completions(ctx: Ctx) -> web.StreamResponse:
    req, raw = parse_body(await ctx.body(), ChatCompletionRequest)
    ctx.lifecycle.model_requested = req.model
    ctx.lifecycle.observe(req.observability, raw)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    if req.stream_options is not None and not req.stream:
        raise InvalidRequest("stream_options is only allowed when stream is true.", param="stream_options")
    call = chat_call(CHAT, req.model, raw, stream=bool(req.stream), req=req,
                      prompt_tokens=estimate.chat_prompt_tokens(raw))
    return await ctx.serve(call, _encoder(ctx, include_usage))


@endpoint("openai", "completions", records=True)
async def completions(ctx: Ctx) -> web.StreamResponse:
    req, raw = parse_body(await ctx.body(), CompletionRequest)
    check_input_shape(req.prompt, "prompt")
    ctx.lifecycle.model_requested = req.model
    ctx.lifecycle.observe(req.observability, raw)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    if _chat_only(ctx, req.model, req.provider):  # Anthropic, Gemini ...: the prompt as one user message
        chat = over_chat.to_chat(raw)
        call = chat_call(CHAT, req.model, chat, stream=bool(req.stream), req=req,
                          prompt_tokens=estimate.chat_prompt_tokens(chat))
        inner = _encoder(ctx, include_usage)
        return await ctx.serve(call, lambda native: over_chat.OverChatEncoder(inner(native)))
    call = chat_call(COMPLETIONS, req.model, raw, stream=bool(req.stream), req=req,
                      prompt_tokens=estimate.text_prompt_tokens(req.prompt))
    return await ctx.serve(call, _encoder(ctx, include_usage))


def _chat_only(ctx: Ctx, model: str, provider: str | ProviderPrefs | None) -> bool:
    """True when no provider of the model speaks legacy completions, but some chat."""
    try:
        ctx.services.router.resolve(model, COMPLETIONS, provider)
    except Unsupported:
        return bool(ctx.services.router.resolve(model, CHAT, provider))
    return False


@endpoint("openai", "embeddings", records=True)
async def embeddings(ctx: Ctx) -> web.StreamResponse:
    req, raw = parse_body(await ctx.body(), EmbeddingRequest)
    check_input_shape(req.input, "input")
    ctx.lifecycle.model_requested = req.model
    ctx.lifecycle.observe(req.observability, raw)
    encoding = req.encoding_format or "float"

    def prepare(body: JSON, served: Served) -> None:
        if not body.get("model"):
            body["model"] = served.upstream_model
        _encode_embeddings(body, encoding)

    call = Call(EMBEDDINGS, req.model, raw, provider=req.provider,
                fallbacks=fallback_models(req.fallbacks, req.fallback_model),
                prompt_tokens=estimate.text_prompt_tokens(req.input), generates=False)
    return await ctx.serve(call, _encoder(ctx, False, prepare))


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
