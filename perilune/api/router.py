"""The semantic router: POST /v1/router, GET /v1/router/profiles, POST /v1/feedback.

``POST /v1/router`` takes a chat request without ``model`` plus ``cost_weight`` (>= 0, default 0),
``models`` (optional, >= 2 distinct profiled ids) and ``execute`` (default true). With
``execute: false`` it answers the decision; with ``execute: true`` it runs the chat on the chosen
model through the normal chat path and adds the decision: a ``router`` object in the JSON body and
the ``x-perilune-routed-model`` header; a stream carries the header and, first, an SSE comment line
``: router {...}`` (clients skip comments). ``POST /v1/router/chat/completions`` is the same route,
so an OpenAI SDK with ``base_url=<gateway>/v1/router`` can call it as ``chat.completions.create``
(router fields in ``extra_body``; its required ``model`` argument is ignored).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from typing import Annotated, Any

import msgspec
import orjson
from aiohttp import web

from perilune.accounting import estimate
from perilune.accounting.pricing import from_pico, usd_number
from perilune.api import openai as openai_api
from perilune.api.common import Ctx, endpoint
from perilune.errors import InvalidRequest, MalformedJSON, NotFound, ServiceUnavailable
from perilune.gateway.relay import OpenAIEncoder, Served
from perilune.providers.base import CHAT
from perilune.router import feedback
from perilune.router.gateway_embed import GatewayEmbedder
from perilune.router.service import Decision, RouterService
from perilune.schema.openai import ChatCompletionRequest, parse_body, validate

log = logging.getLogger("perilune.router")
ROUTER_FIELDS = ("execute", "models", "cost_weight")
ROUTED_HEADER = "x-perilune-routed-model"


class RouterFields(msgspec.Struct, kw_only=True):
    execute: bool = True
    models: list[Annotated[str, msgspec.Meta(min_length=1)]] | None = None
    cost_weight: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class FeedbackRequest(msgspec.Struct, kw_only=True):
    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    score: Annotated[float, msgspec.Meta(ge=0, le=1)]


async def _service(ctx: Ctx) -> RouterService:
    loading = ctx.services.router_loading
    if ctx.services.semantic_router is None and loading is not None:
        try:
            await asyncio.shield(loading)  # the embedder is still loading (once, at start)
        except (OSError, RuntimeError, ValueError, ImportError) as e:
            raise ServiceUnavailable(f"The semantic router could not load its embedder: {e}",
                                     code="router_unavailable") from None
    s = ctx.services.semantic_router
    if s is None:
        raise ServiceUnavailable("The semantic router is not enabled on this gateway (router.enabled).",
                                 code="router_disabled")
    return s


def _prompt_text(raw: dict[str, Any]) -> str:
    """What the router reads: the text of the system, developer and user messages, in order."""
    parts: list[str] = []
    for m in raw["messages"]:
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user"):
            continue
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return "\n".join(parts)


def _candidates(svc: RouterService, models: list[str] | None, execute: bool) -> list[str]:
    if models is not None:
        if len(models) < 2:
            raise InvalidRequest("'models' must list at least 2 models to choose from.", param="models")
        dupes = sorted({m for m in models if models.count(m) > 1})
        if dupes:
            raise InvalidRequest(f"'models' lists {dupes[0]!r} more than once.", param="models")
        for m in models:
            if m not in svc.models:
                raise InvalidRequest(f"The model {m!r} in 'models' has no router profile (see GET "
                                     "/v1/router/profiles; add one with `perilune router build`).", param="models",
                                     code="model_not_profiled")
            if execute and not svc.servable(m):
                raise InvalidRequest(f"The model {m!r} in 'models' is not served by this gateway, so it cannot "
                                     "be executed; use \"execute\": false to evaluate it, or map it to a served "
                                     "model with router.aliases.", param="models", code="model_not_servable")
        return models
    pool = [m for m in svc.models if svc.servable(m)] if execute else list(svc.models)
    if not pool:
        raise InvalidRequest("No profiled model is served by this gateway, so nothing can be executed; use "
                             "\"execute\": false, or map profile ids to served models with router.aliases.",
                             param="models", code="no_servable_candidates")
    return pool


def decision_json(svc: RouterService, d: Decision) -> dict[str, Any]:
    return {
        "object": "router.decision",
        "model": d.model,
        "served_model": d.served_model,
        "cost_weight": d.cost_weight,
        "candidates": [{"model": c.model, "predicted_quality": round(c.predicted_quality, 6),
                        "expected_cost_usd": usd_number(from_pico(c.expected_cost_pusd)),
                        "expected_cost_pusd": c.expected_cost_pusd, "score": round(c.score, 6),
                        "servable": svc.servable(c.model)} for c in d.candidates],
        "cluster": {"index": d.cluster, "weight": round(d.cluster_weight, 6), "k": svc.profiles.k,
                    "assignment": svc.profiles.assignment},
        "embedder": d.embedder,
        "profiles": svc.source,
        "routing_ms": round(d.routing_ms, 3),
        "cached": d.cached,
    }


async def _route(ctx: Ctx) -> web.StreamResponse:
    svc = await _service(ctx)
    try:
        raw = orjson.loads(await ctx.body())
    except orjson.JSONDecodeError as e:
        raise MalformedJSON(f"We could not parse the JSON body of your request: {e}") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    opts = validate({k: raw[k] for k in ROUTER_FIELDS if k in raw}, RouterFields)
    if not math.isfinite(opts.cost_weight):
        raise InvalidRequest("'cost_weight' must be a finite number >= 0.", param="cost_weight")
    chat = {k: v for k, v in raw.items() if k not in ROUTER_FIELDS}
    chat["model"] = "router"  # placeholder: the router chooses
    validate(chat, ChatCompletionRequest)  # the chat parameters, checked whether executed or not
    candidates = _candidates(svc, opts.models, opts.execute)
    emb = svc.embedder
    embed = functools.partial(emb.embed_for, ctx) if isinstance(emb, GatewayEmbedder) else None
    d = await svc.decide(_prompt_text(chat), candidates, opts.cost_weight, estimate.chat_prompt_tokens(chat), embed)
    decision = decision_json(svc, d)
    if not opts.execute:
        return ctx.json(orjson.dumps(decision))
    if d.served_model is None:  # it was servable a moment ago: its provider just went away
        raise ServiceUnavailable(f"The routed model {d.model!r} cannot be served right now.",
                                 code="routed_model_unavailable")
    chat["model"] = d.served_model
    ctx.services.spawn(feedback.save_decision(ctx.services.db, ctx.request_id, decision))
    return await run_chat(ctx, chat, decision)


route = endpoint("openai", "router", records=True)(_route)


class RoutedEncoder(OpenAIEncoder):
    """The chat encoder, with the routing decision: ``router`` in a JSON body, and a stream's first line
    the SSE comment ``: router {decision}`` (SSE clients skip comments)."""

    def __init__(self, decision: dict[str, Any], **kw: Any) -> None:
        super().__init__(**kw)
        self.decision = decision

    def body(self, result: dict[str, Any], served: Served) -> bytes:
        result["router"] = self.decision
        return super().body(result, served)

    def start(self, served: Served) -> bytes:
        return b": router " + orjson.dumps(self.decision) + b"\n\n"


async def run_chat(ctx: Ctx, chat: dict[str, Any], decision: dict[str, Any]) -> web.StreamResponse:
    """Run ``chat`` (an OpenAI chat body naming the chosen model) through the normal chat path: the same
    Call as POST /v1/chat/completions, with an encoder that carries the decision."""
    req, raw = parse_body(orjson.dumps(chat), ChatCompletionRequest)
    lc = ctx.lifecycle
    lc.model_requested = req.model
    lc.observe(req.observability, raw)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    if req.stream_options is not None and not req.stream:
        raise InvalidRequest("stream_options is only allowed when stream is true.", param="stream_options")
    call = openai_api.chat_call(CHAT, req.model, raw, stream=bool(req.stream), req=req,
                                prompt_tokens=estimate.chat_prompt_tokens(raw))
    capture = lc.capture
    return await ctx.serve(call, lambda _native: RoutedEncoder(decision, include_usage=include_usage,
                                                               capture=capture),
                           {ROUTED_HEADER: str(decision["model"])})


@endpoint("openai", "router_profiles")
async def profiles(ctx: Ctx) -> web.StreamResponse:
    svc = await _service(ctx)
    p = svc.profiles
    data = [{"id": m.id, "validation_size": m.validation_size, "clusters": p.k, "quality": m.quality,
             "cluster_sizes": m.counts, "accuracy": m.accuracy,
             "mean_cost_usd": usd_number(from_pico(m.mean_cost_pusd)), "mean_cost_pusd": m.mean_cost_pusd,
             "mean_prompt_tokens": m.mean_prompt_tokens,
             "mean_output_tokens": m.mean_output_tokens, "served_model": svc.served_id(m.id),
             "servable": svc.servable(m.id), "source": m.source} for m in p.models]
    body = {"object": "list", "data": data, "embedder": p.embedder, "assignment": p.assignment, "clusters": p.k,
            "profiles": svc.source, "provenance": msgspec.to_builtins(p.provenance)}
    return ctx.json(orjson.dumps(body))


@endpoint("openai", "feedback")
async def post_feedback(ctx: Ctx) -> web.StreamResponse:
    req, _ = parse_body(await ctx.body(), FeedbackRequest)
    p = ctx.principal
    account = None if p is None or p.is_admin else p.account_id
    found = await asyncio.to_thread(feedback.record, ctx.services.db, req.request_id, account, req.score,
                                    time.time())
    if not found:
        raise NotFound(f"No logged request {req.request_id!r} for this key's account (usage records are written "
                       "within a second of the response).", param="request_id", code="request_not_found")
    return ctx.json(orjson.dumps({"object": "feedback", "request_id": req.request_id, "score": req.score}))


def routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/router", route)
    r.add_post("/v1/router/chat/completions", route)
    r.add_get("/v1/router/profiles", profiles)
    r.add_post("/v1/feedback", post_feedback)

