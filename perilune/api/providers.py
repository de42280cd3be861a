"""GET /v1/providers[?model=ID]: which providers serve what, and how they are doing right now.

Without ``model``: every configured provider with the models it serves. With ``model`` (an alias is
followed): ``{"model": ID, "providers": [...]}``, one entry per provider of the model, in configured
order, with its price, context and the live figures of this gateway instance over the last
``[resilience] stats_window_s`` (null where nothing was measured yet).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from perilune.api.common import Ctx, endpoint
from perilune.errors import NotFound

if TYPE_CHECKING:
    from perilune.accounting.catalog import Price
    from perilune.app import Services


def _usd(v: Decimal | None) -> int | float | None:
    if v is None:
        return None
    return int(v) if v == v.to_integral_value() else float(v)


def _price(p: Price) -> dict[str, Any]:
    out: dict[str, Any] = {"input": _usd(p.input), "output": _usd(p.output)}
    for key, value in (("cacheRead", p.cache_read), ("cacheWrite", p.cache_write), ("perImage", p.per_image),
                       ("perAudioMinute", p.per_audio_minute)):
        if value is not None:
            out[key] = _usd(value)
    return out


def model_providers(services: Services, model_id: str) -> dict[str, Any]:
    router, health = services.router, services.health
    target = router.aliases.get(model_id, model_id)
    prefix, slash, rest = target.partition("/")
    pinned = prefix if slash and prefix in router.providers else None
    model = router.catalog.get(rest if pinned else target)
    if model is None:
        raise NotFound(f"The model '{model_id}' does not exist or you do not have access to it.", param="model",
                       code="model_not_found")
    entries = []
    for p in router.serving(model):
        if pinned is not None and p.name != pinned:
            continue
        snap = health.snapshot(p.name, model.id)
        price = router.price(p.name, model)
        entries.append({
            "provider": p.name,
            "type": p.type,
            "upstream_model": p.upstream_model(model.id),
            "status": health.status(p.name, model.id) if p.ready else "down",
            "ready": p.ready,
            "price": {**_price(price), "unit": "USD per million tokens"},
            "context": model.context,
            "max_output_tokens": model.max_output_tokens,
            "latency_ms_p50": snap.latency_ms_p50,
            "ttft_ms_p50": snap.ttft_ms_p50,
            "ttft_ms_p95": snap.ttft_ms_p95,
            "throughput_tps": snap.throughput_tps,
            "error_rate": None if snap.error_rate is None else round(snap.error_rate, 4),
            "requests": snap.requests,
            "breaker": health.breaker_state(p.name, model.id),
        })
    return {"model": model_id, "served_model": model.id, "providers": entries}


def all_providers(services: Services) -> dict[str, Any]:
    router = services.router
    data = [{"provider": p.name, "type": p.type, "ready": p.ready, "models": router.models_of(p.name)}
            for p in router.providers.values()]
    return {"object": "list", "data": data}


@endpoint("openai", "providers")
async def list_providers(ctx: Ctx) -> web.StreamResponse:
    model = ctx.request.query.get("model")
    if model is not None:
        if not model:
            raise NotFound("The model '' does not exist.", param="model", code="model_not_found")
        return ctx.json(orjson.dumps(model_providers(ctx.services, model)))
    return ctx.json(orjson.dumps(all_providers(ctx.services)))


def live_models(services: Services) -> tuple[list[dict[str, Any]], bytes | None]:
    """``GET /v1/models`` entries with ``avgThroughput`` from the live figures, and their JSON (None
    when it must be encoded: the entries differ from the cached listing)."""
    measured = services.health.measured_throughput()
    if not measured:
        return services.model_entries, services.models_json
    return [{**e, "avgThroughput": measured[e["id"]]} if e["id"] in measured else e
            for e in services.model_entries], None


def routes(app: web.Application) -> None:
    app.router.add_get("/v1/providers", list_providers)
