"""GET /v1/models and GET /v1/models/{id}, in the caller's dialect.

- A request with an ``anthropic-version`` header (every Anthropic SDK sends one) gets Anthropic's shape:
  ``{"data": [{"type": "model", "id", "display_name", "created_at"}], "has_more", "first_id", "last_id"}``,
  newest first, paged with ``limit`` (1-1000, default 20), ``after_id`` and ``before_id``; errors in
  Anthropic's envelope.
- The official OpenAI SDKs (X-Stainless-* headers, or ``?format=openai``) get ``{"object": "list",
  "data": [...]}``; everyone else perilune's catalog array (``?format=array``). In both, ``created`` is
  always an integer (the release date, or 0 when the catalog has none).
- By default only models this gateway can serve are listed; ``?all=true`` lists the whole catalog, each
  entry saying ``isEnabled``. ``input``/``output`` filter by modality.
- The route may be public (``models_require_key = false``), but a key that is presented is checked: an
  invalid one is a 401.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from perilune.api.common import Ctx, endpoint, error_response
from perilune.api.providers import live_models
from perilune.errors import InvalidRequest, NotFound, PeriluneError
from perilune.gateway.auth import credential

EPOCH = "1970-01-01T00:00:00Z"


def _modalities(value: str | None, param: str) -> set[str]:
    if not value:
        return set()
    wanted = {v.strip().lower() for v in value.split(",") if v.strip()}
    unknown = wanted - {"text", "image", "audio", "file", "video", "embedding"}
    if unknown:
        raise InvalidRequest(f"Unknown modality {sorted(unknown)[0]!r} in '{param}'; use text, image, audio, "
                             "file, video or embedding.", param=param)
    return wanted


def _flag(value: str | None, param: str) -> bool:
    if value is None or value.lower() in ("false", "0", ""):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise InvalidRequest(f"{param} must be true or false.", param=param, code="invalid_value")


def _wants_openai_list(ctx: Ctx) -> bool:
    """The official OpenAI SDKs (which identify themselves with X-Stainless-* headers) parse only the
    ``{"object": "list", "data": [...]}`` envelope; everyone else gets the catalog's top-level array."""
    fmt = ctx.request.query.get("format")
    if fmt is not None:
        if fmt not in ("openai", "array"):
            raise InvalidRequest("format must be 'openai' or 'array'.", param="format")
        return fmt == "openai"
    return "X-Stainless-Lang" in ctx.request.headers


def _anthropic(ctx: Ctx) -> bool:
    return "anthropic-version" in ctx.request.headers


def openai_entry(e: dict[str, Any]) -> dict[str, Any]:
    """A catalog entry with the integer ``created`` OpenAI's Model schema requires."""
    return e if isinstance(e.get("created"), int) else {**e, "created": 0}


def created_at(e: dict[str, Any]) -> str:
    """RFC 3339 creation time of a catalog entry (its release date), as Anthropic's model objects carry."""
    day = e.get("releaseDate")
    if isinstance(day, str) and day:
        try:
            return datetime.fromisoformat(day).replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            pass
    return EPOCH


def anthropic_entry(e: dict[str, Any]) -> dict[str, Any]:
    return {"type": "model", "id": e["id"], "display_name": e.get("name") or e["id"], "created_at": created_at(e)}


def _limit(value: str | None) -> int:
    if value is None:
        return 20
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= 1000:
        raise InvalidRequest("limit: Input should be an integer from 1 to 1000.", param="limit", code="invalid_value")
    return n


def anthropic_page(entries: list[dict[str, Any]], limit: int, after_id: str | None, before_id: str | None
                   ) -> dict[str, Any]:
    """Anthropic's paged list: newest first; ``after_id`` pages forward, ``before_id`` backward."""
    if after_id and before_id:
        raise InvalidRequest("Only one of after_id and before_id may be given.", param="before_id")
    models = sorted((anthropic_entry(e) for e in entries), key=lambda m: (m["created_at"], m["id"]), reverse=True)
    ids = [m["id"] for m in models]
    for name, value in (("after_id", after_id), ("before_id", before_id)):
        if value and value not in ids:
            raise InvalidRequest(f"{name}: no model with id '{value}' in this list.", param=name,
                                 code="invalid_value")
    if before_id:
        end = ids.index(before_id)
        start = max(end - limit, 0)
        more = start > 0
    else:
        start = ids.index(after_id) + 1 if after_id else 0
        end = start + limit
        more = end < len(models)
    page = models[start:end]
    return {"data": page, "has_more": more, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None}


async def _check_presented_key(ctx: Ctx) -> None:
    """On a public route, a key that is presented must still be valid."""
    if ctx.principal is None and credential(ctx.request.headers):
        ctx.principal = await ctx.services.keys.authenticate(ctx.request.headers)


def _in_dialect(ctx: Ctx, e: PeriluneError) -> web.Response:
    if not _anthropic(ctx):
        raise e
    return error_response(e, "anthropic", ctx.request_id)


async def _list_models(ctx: Ctx) -> web.StreamResponse:
    try:
        await _check_presented_key(ctx)
        q = ctx.request.query
        want_in, want_out = _modalities(q.get("input"), "input"), _modalities(q.get("output"), "output")
        everything = _flag(q.get("all"), "all")
        entries = [e for e in live_models(ctx.services)[0]
                   if (everything or e["isEnabled"])
                   and want_in <= set(e["inputModalities"]) and want_out <= set(e["outputModalities"])]
        if _anthropic(ctx):
            page = anthropic_page(entries, _limit(q.get("limit")), q.get("after_id"), q.get("before_id"))
            return ctx.json(orjson.dumps(page))
    except PeriluneError as e:
        return _in_dialect(ctx, e)
    shown = [openai_entry(e) for e in entries]
    return ctx.json(orjson.dumps({"object": "list", "data": shown} if _wants_openai_list(ctx) else shown))


async def _get_model(ctx: Ctx) -> web.StreamResponse:
    model_id = ctx.request.match_info["model"]
    try:
        await _check_presented_key(ctx)
        for e in live_models(ctx.services)[0]:  # avgThroughput from the live figures
            if e["id"] == model_id:
                return ctx.json(orjson.dumps(anthropic_entry(e) if _anthropic(ctx) else openai_entry(e)))
        raise NotFound(f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
    except PeriluneError as e:
        return _in_dialect(ctx, e)


list_models_open = endpoint("openai", "models", auth="none")(_list_models)
list_models_keyed = endpoint("openai", "models", auth="key")(_list_models)
get_model_open = endpoint("openai", "models", auth="none")(_get_model)
get_model_keyed = endpoint("openai", "models", auth="key")(_get_model)


@endpoint("openai", "root", auth="none")
async def root(ctx: Ctx) -> web.StreamResponse:
    """``GET /`` and ``HEAD /``: a liveness answer for clients that probe the base URL (Claude Code does)."""
    from perilune import __version__

    return ctx.json(orjson.dumps({"name": "perilune", "version": __version__, "docs": "/openapi.json"}))


def routes(app: web.Application, *, require_key: bool) -> None:
    r = app.router
    r.add_get("/v1/models", list_models_keyed if require_key else list_models_open)
    r.add_get("/v1/models/{model:.+}", get_model_keyed if require_key else get_model_open)
    r.add_get("/", root)
