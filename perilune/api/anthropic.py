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
from perilune.gateway.anthropic_relay import AnthropicNativeEncoder, anthropic_encoder
from perilune.gateway.pipeline import Call, Native
from perilune.gateway.relay import Served
from perilune.providers.anthropic import COUNT_TOKENS, MESSAGES
from perilune.providers.base import CHAT
from perilune.schema.anthropic import CountTokensRequest, MessagesRequest, parse_body
from perilune.schema.canonical import JSON
from perilune.schema.convert import to_openai_request
from perilune.schema.routing import ProviderPrefs, fallback_models

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


ANTHROPIC_MAX_OUTPUT = 128_000  # the largest max_tokens Anthropic's API accepts for any model


def _max_output(ctx: Ctx, model: str, provider: str | ProviderPrefs | None, asked: int) -> int:
    """Claude Code asks for max_tokens 32000 whatever the model. A model that only non-Anthropic
    upstreams serve cannot write more than its own output limit anyway, so an ask Anthropic itself would
    accept (up to ANTHROPIC_MAX_OUTPUT) is lowered to that limit rather than refused: dropping what
    cannot be generated changes no answer. Anything larger, and Anthropic's own models, keep the rule:
    above the model's limit is a 400 naming max_tokens."""
    if asked > ANTHROPIC_MAX_OUTPUT:
        return asked
    deployments = ctx.services.router.resolve(model, CHAT, provider)
    if any(MESSAGES in d.adapter.supports for d in deployments):
        return asked
    caps = [d.model.max_output_tokens for d in deployments if d.model.max_output_tokens]
    return min(asked, *caps) if caps else asked


@endpoint("anthropic", "messages", records=True)
async def messages(ctx: Ctx) -> web.StreamResponse:
    req, raw = parse_body(await ctx.body(), MessagesRequest)
    lc = ctx.lifecycle
    lc.model_requested = req.model
    lc.observe(req.observability, raw)
    native, chat = _native(ctx, MESSAGES, raw)
    call = Call(CHAT, req.model, chat, stream=bool(req.stream), provider=req.provider,
                fallbacks=fallback_models(req.fallbacks, req.fallback_model), hedge=req.hedge,
                max_output=_max_output(ctx, req.model, req.provider, req.max_tokens), output_param="max_tokens",
                prompt_tokens=estimate.chat_prompt_tokens(chat or raw), native=native)
    return await ctx.serve(call, anthropic_encoder(lc.capture), {"request-id": ctx.request_id})


@endpoint("anthropic", "count_tokens", records=True)
async def count_tokens(ctx: Ctx) -> web.StreamResponse:
    """Exact counts from an Anthropic upstream when the model has one; otherwise perilune's local
    count of the OpenAI-shaped request (flagged ``estimated``)."""
    req, raw = parse_body(await ctx.body(), CountTokensRequest)
    deployments = ctx.services.router.resolve(req.model, CHAT, req.provider)
    if any(COUNT_TOKENS in d.adapter.supports for d in deployments):
        native, _ = _native(ctx, COUNT_TOKENS, raw)
        native.unconvertible = Unsupported("No Anthropic provider serves this model.")
        call = Call(CHAT, req.model, {}, provider=req.provider, native=native, generates=False, billed=False)
        return await ctx.serve(call, lambda _native: _CountEncoder(), {"request-id": ctx.request_id})
    chat = to_openai_request({**raw, "max_tokens": 1})
    resp = ctx.json(orjson.dumps({"input_tokens": estimate.chat_prompt_tokens(chat), "estimated": True}))
    resp.headers["request-id"] = ctx.request_id  # where Anthropic SDKs look for it
    return resp


class _CountEncoder(AnthropicNativeEncoder):
    """count_tokens answers are passed on as the upstream sent them."""

    def body(self, result: JSON, served: Served) -> bytes:
        return orjson.dumps(result)
