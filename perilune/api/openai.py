"""The OpenAI dialect: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any

from aiohttp import web

from perilune.accounting import estimate
from perilune.api.common import Ctx, endpoint
from perilune.errors import InvalidRequest, NotFound
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

Prepare = Callable[[JSON, Served], None]


def _chat_call(op: str, model: str, raw: JSON, *, stream: bool, provider: str | None,
               prompt_tokens: int) -> Call:
    max_out = raw.get("max_completion_tokens")
    param = "max_completion_tokens"
    if max_out is None:
        max_out, param = raw.get("max_tokens"), "max_tokens"
    n = raw.get("n")
    return Call(op, model, raw, stream=stream, provider=provider,
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
    call = _chat_call(CHAT, req.model, raw, stream=bool(req.stream), provider=req.provider,
                      prompt_tokens=estimate.chat_prompt_tokens(raw))
    return await ctx.serve(call, _encoder(ctx, include_usage))


@endpoint("openai", "completions", records=True)
async def completions(ctx: Ctx) -> web.StreamResponse:
    req, raw = parse_body(await ctx.body(), CompletionRequest)
    check_input_shape(req.prompt, "prompt")
    ctx.lifecycle.model_requested = req.model
    ctx.lifecycle.observe(req.observability, raw)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    call = _chat_call(COMPLETIONS, req.model, raw, stream=bool(req.stream), provider=req.provider,
                      prompt_tokens=estimate.text_prompt_tokens(req.prompt))
    return await ctx.serve(call, _encoder(ctx, include_usage))


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


def _modalities(value: str | None, param: str) -> set[str]:
    if not value:
        return set()
    wanted = {v.strip().lower() for v in value.split(",") if v.strip()}
    unknown = wanted - {"text", "image", "audio", "file", "video", "embedding"}
    if unknown:
        raise InvalidRequest(f"Unknown modality {sorted(unknown)[0]!r} in '{param}'; use text, image, audio, "
                             "file, video or embedding.", param=param)
    return wanted


def _wants_openai_list(ctx: Ctx) -> bool:
    """The official OpenAI SDKs (which identify themselves with X-Stainless-* headers) parse only the
    ``{"object": "list", "data": [...]}`` envelope; everyone else gets the catalog's top-level array."""
    fmt = ctx.request.query.get("format")
    if fmt is not None:
        if fmt not in ("openai", "array"):
            raise InvalidRequest("format must be 'openai' or 'array'.", param="format")
        return fmt == "openai"
    return "X-Stainless-Lang" in ctx.request.headers


async def _list_models(ctx: Ctx) -> web.StreamResponse:
    q = ctx.request.query
    want_in, want_out = _modalities(q.get("input"), "input"), _modalities(q.get("output"), "output")
    openai_list = _wants_openai_list(ctx)
    if not want_in and not want_out and not openai_list:
        return ctx.json(ctx.services.models_json)
    entries = [e for e in ctx.services.model_entries
               if want_in <= set(e["inputModalities"]) and want_out <= set(e["outputModalities"])]
    return ctx.json(_dumps({"object": "list", "data": entries} if openai_list else entries))


async def _get_model(ctx: Ctx) -> web.StreamResponse:
    model_id = ctx.request.match_info["model"]
    for e in ctx.services.model_entries:
        if e["id"] == model_id:
            return ctx.json(_dumps(e))
    raise NotFound(f"The model '{model_id}' does not exist.", param="model", code="model_not_found")


def _dumps(obj: Any) -> bytes:
    import orjson

    return orjson.dumps(obj)


list_models_open = endpoint("openai", "models", auth="none")(_list_models)
list_models_keyed = endpoint("openai", "models", auth="key")(_list_models)
get_model_open = endpoint("openai", "models", auth="none")(_get_model)
get_model_keyed = endpoint("openai", "models", auth="key")(_get_model)
