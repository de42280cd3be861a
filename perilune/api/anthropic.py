"""The Anthropic dialect: POST /v1/messages and POST /v1/messages/count_tokens, for any model.

Per deployment (in fallback order) the pipeline picks the request's form: an Anthropic-typed provider
gets the client's request natively (:class:`perilune.gateway.pipeline.Native`), any other gets it
converted to the OpenAI shape (:mod:`perilune.schema.convert`). Auth accepts ``x-api-key`` and
``Authorization: Bearer``; any ``anthropic-version`` is accepted; ``anthropic-beta`` is forwarded to
Anthropic upstreams only. Errors render in Anthropic's shape (``endpoint("anthropic", ...)``).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from perilune.accounting import estimate
from perilune.api.common import Ctx, endpoint
from perilune.errors import Unsupported
from perilune.gateway.anthropic_relay import message_id, relay_converted, relay_native, render_message
from perilune.gateway.pipeline import Native, settle
from perilune.gateway.relay import estimated_usage
from perilune.providers.anthropic import COUNT_TOKENS, MESSAGES
from perilune.providers.base import CHAT
from perilune.schema.anthropic import CountTokensRequest, MessagesRequest, parse_body
from perilune.schema.canonical import JSON
from perilune.schema.convert import to_anthropic_message, to_openai_request
from perilune.tokens import count_tokens as count_text

FORWARDED = ("anthropic-beta",)


def _native(ctx: Ctx, op: str, raw: JSON) -> tuple[Native, JSON]:
    """The request's native form and its OpenAI-shaped form ({} when it has none)."""
    headers = {h: v for h in FORWARDED if (v := ctx.request.headers.get(h))}
    native = Native(op, raw, headers)
    if op == COUNT_TOKENS:
        return native, {}
    try:
        return native, to_openai_request(raw)
    except Unsupported as e:
        native.unconvertible = e
        return native, {}


def _json(ctx: Ctx, body: bytes) -> web.Response:
    resp = ctx.json(body)
    resp.headers["request-id"] = ctx.request_id  # where Anthropic SDKs look for it
    return resp


@endpoint("anthropic", "messages")
async def messages(ctx: Ctx) -> web.StreamResponse:
    req, raw = parse_body(await ctx.body(), MessagesRequest)
    o = ctx.outcome
    o.model_requested, o.stream = req.model, bool(req.stream)
    if req.observability:  # store the request and the assembled response with the usage record
        o.capture, o.payload_request = True, raw
    native, chat = _native(ctx, MESSAGES, raw)
    prompt_estimate = estimate.chat_prompt_tokens(chat or raw)
    o.estimate_in, o.estimate_out = prompt_estimate, req.max_tokens  # what the accountant reserves
    pipeline, headers = ctx.services.pipeline, ctx.request.headers
    if req.stream:
        upstream = await pipeline.stream(CHAT, chat, o, req.provider, headers, native=native)
        resp = await ctx.start_sse()
        relay = relay_native if native.serves(upstream.deployment) else relay_converted
        await relay(resp.write, upstream, o, prompt_estimate=prompt_estimate)
        await resp.write_eof()
        return resp
    d, result = await pipeline.complete(CHAT, chat, o, req.provider, headers, native=native)
    if native.serves(d):
        msg = result.body
        output = sum(count_text(str(b.get("text") or b.get("thinking") or ""))
                     for b in msg.get("content") or () if isinstance(b, dict))
    else:
        msg = to_anthropic_message(result.body, message_id(o))
        output = estimate.chat_output_tokens(result.body)
    settle(o, d, result.usage or estimated_usage(prompt_estimate, output))
    if o.capture:
        o.payload_response = msg
    return _json(ctx, render_message(msg, o))


@endpoint("anthropic", "count_tokens")
async def count_tokens(ctx: Ctx) -> web.StreamResponse:
    """Exact counts from an Anthropic upstream when the model has one; otherwise perilune's local
    count of the OpenAI-shaped request (flagged ``estimated``)."""
    req, raw = parse_body(await ctx.body(), CountTokensRequest)
    o = ctx.outcome
    o.model_requested, o.estimate_in, o.estimate_out = req.model, 0, 0  # counting is free
    deployments = ctx.services.router.resolve(req.model, CHAT, req.provider)
    if any(COUNT_TOKENS in d.adapter.supports for d in deployments):
        native, _ = _native(ctx, COUNT_TOKENS, raw)
        native.unconvertible = Unsupported("No Anthropic provider serves this model.")
        _, result = await ctx.services.pipeline.complete(CHAT, {}, o, req.provider, ctx.request.headers,
                                                         native=native)
        return _json(ctx, orjson.dumps(result.body))
    chat = to_openai_request({**raw, "max_tokens": 1})
    return _json(ctx, orjson.dumps({"input_tokens": estimate.chat_prompt_tokens(chat), "estimated": True}))
