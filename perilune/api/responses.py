"""The Responses API: POST /v1/responses, GET/DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items.

Per deployment the request takes one of two forms: an upstream that speaks Responses (provider type
``openai``) gets it natively, resolved (the stored conversation and referenced items inlined,
``store: false`` upstream, since perilune keeps the conversation); any other gets the canonical chat
form (:mod:`perilune.dialects.responses.to_hub`). The Responses encoder renders either (a Response
object, or the Responses event stream). Stored responses (``store`` not false) live in the database, scoped to
the account; ``previous_response_id`` prepends the stored conversation, ``item_reference`` items are
replaced by the stored items they name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from perilune.accounting import estimate
from perilune.api.common import Ctx, endpoint
from perilune.dialects.responses import items as resp_items
from perilune.dialects.responses.encoder import ResponsesEncoder
from perilune.dialects.responses.from_hub import output_text, response_id
from perilune.dialects.responses.schema import ResponsesRequest
from perilune.dialects.responses.to_hub import input_items, to_chat
from perilune.errors import InvalidRequest, NotFound, Unsupported
from perilune.gateway.pipeline import Call, Native
from perilune.gateway.relay import usage_extension
from perilune.providers.base import CHAT, RESPONSES, Result
from perilune.schema.canonical import JSON, Usage
from perilune.schema.openai import parse_body
from perilune.schema.routing import fallback_models
from perilune.store.responses import ChainTooLong
from perilune.tokens import count_tokens


@dataclass(slots=True)
class Prepared:
    """A Responses request made ready to serve: its canonical chat form and what is stored with it."""

    raw: JSON
    chat: JSON  # {} when the request has no chat form (native.unconvertible says why)
    native: Native
    inputs: list[JSON]  # this request's input items, in stored form (ids given)
    rid: str
    store: bool


def _account(ctx: Ctx) -> str:
    return (ctx.principal.account_id if ctx.principal else None) or ""


async def prepare(ctx: Ctx, req: ResponsesRequest, raw: JSON) -> Prepared:
    items = input_items(raw)
    refs = resp_items.references(items)
    history: list[Any] | None = None
    if req.previous_response_id or refs:
        try:
            history, found = await ctx.services.responses.context(_account(ctx), req.previous_response_id, refs)
        except ChainTooLong:
            raise InvalidRequest("The conversation of previous_response_id is too long to follow.",
                                 param="previous_response_id") from None
        if req.previous_response_id and history is None:
            raise NotFound(f"Previous response with id '{req.previous_response_id}' not found.",
                           param="previous_response_id", code="previous_response_not_found")
        items = resp_items.resolve(items, found)
    native = Native(RESPONSES, native_request(raw, items, history), output_param="max_output_tokens")
    try:
        chat = to_chat({**raw, "input": items}, history)
    except Unsupported as e:  # built-in tools, file ids ...: only a Responses upstream can serve it
        native.unconvertible, chat = e, {}
    stored = [resp_items.stored_item(i) for i in items if isinstance(i, dict)]
    return Prepared(raw, chat, native, stored, response_id(ctx.request_id), req.store is not False)


def _upstream_item(item: Any) -> Any:
    """An item as a stateless upstream takes it: no ids or statuses of items it never stored."""
    if not isinstance(item, dict):
        return item
    return {k: v for k, v in item.items() if k not in ("id", "status")}


def native_request(raw: JSON, items: list[Any], history: list[Any] | None) -> JSON:
    """The request for an upstream that speaks Responses: the conversation inlined, nothing stored there.
    Reasoning items without their encrypted content mean nothing to a stateless upstream: left out."""
    body = {k: v for k, v in raw.items() if k != "previous_response_id"}
    if history or resp_items.references(input_items(raw)):
        body["input"] = [_upstream_item(i) for i in [*(history or []), *items]
                         if not (isinstance(i, dict) and i.get("type") == "reasoning"
                                 and not i.get("encrypted_content"))]
    body["store"] = False
    return body


def _extension(served: Any) -> JSON:
    return usage_extension({}, served)


def _result_usage(prompt_tokens: int) -> Callable[[Result], Usage]:
    """Usage of a non-streamed answer: the upstream's, else counted locally (flagged estimated)."""
    def usage(result: Result) -> Usage:
        if result.usage is not None:
            return result.usage
        body = result.body
        out = estimate.chat_output_tokens(body) if "choices" in body else count_tokens(output_text(body))
        return Usage(input_tokens=prompt_tokens, output_tokens=out, estimated=True)
    return usage


@endpoint("openai", "responses", records=True)
async def create_response(ctx: Ctx) -> web.StreamResponse:
    req, raw = parse_body(await ctx.body(), ResponsesRequest)
    lc = ctx.lifecycle
    lc.model_requested = req.model
    lc.observe(req.observability, raw)
    p = await prepare(ctx, req, raw)
    prompt_tokens = estimate.chat_prompt_tokens(p.chat) if p.chat else estimate.text_prompt_tokens(
        orjson.dumps(p.native.raw.get("input")).decode())
    store = ctx.services.responses
    account = _account(ctx)

    def on_final(response: JSON) -> None:  # before the client has the bytes: a follow-up finds it
        if p.store and response.get("status") != "failed":
            store.save_later(account, response, p.inputs)

    enc = ResponsesEncoder(raw, p.rid, extension=_extension, created_at=int(time.time()), on_final=on_final)
    call = Call(CHAT, req.model, p.chat, stream=bool(req.stream), provider=req.provider,
                fallbacks=fallback_models(req.fallbacks, req.fallback_model), hedge=req.hedge,
                max_output=req.max_output_tokens, output_param="max_output_tokens", prompt_tokens=prompt_tokens,
                native=p.native, usage=_result_usage(prompt_tokens))
    resp = await ctx.serve(call, lambda native: enc)
    if lc.capture and enc.final is not None and req.stream:  # streamed: the Response the client got
        lc.payload_response = enc.final
    return resp


def _not_found(rid: str) -> NotFound:
    return NotFound(f"Response with id '{rid}' not found.", param="response_id")


@endpoint("openai", "responses_get")
async def get_response(ctx: Ctx) -> web.StreamResponse:
    rid = ctx.request.match_info["response_id"]
    body = await ctx.services.responses.get(_account(ctx), rid)
    if body is None:
        raise _not_found(rid)
    return ctx.json(orjson.dumps(body))


@endpoint("openai", "responses_delete")
async def delete_response(ctx: Ctx) -> web.StreamResponse:
    rid = ctx.request.match_info["response_id"]
    if not await ctx.services.responses.delete(_account(ctx), rid):
        raise _not_found(rid)
    return ctx.json(orjson.dumps({"id": rid, "object": "response", "deleted": True}))


def _limit(value: str | None) -> int:
    if value is None:
        return 20
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= 100:
        raise InvalidRequest("limit must be an integer from 1 to 100.", param="limit", code="invalid_value")
    return n


@endpoint("openai", "responses_input_items")
async def list_input_items(ctx: Ctx) -> web.StreamResponse:
    rid = ctx.request.match_info["response_id"]
    q = ctx.request.query
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be 'asc' or 'desc'.", param="order", code="invalid_value")
    page = await ctx.services.responses.input_items(_account(ctx), rid, limit=_limit(q.get("limit")), order=order,
                                                    after=q.get("after"))
    if page is None:
        raise _not_found(rid)
    data, has_more = page
    body = {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}
    return ctx.json(orjson.dumps(body))


def routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/responses", create_response)
    r.add_get("/v1/responses/{response_id}", get_response)
    r.add_delete("/v1/responses/{response_id}", delete_response)
    r.add_get("/v1/responses/{response_id}/input_items", list_input_items)
