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
from perilune.errors import InvalidRequest, NotFound, PeriluneError, Unsupported
from perilune.gateway.pipeline import Native, settle
from perilune.gateway.relay import estimated_usage, extend_usage
from perilune.providers.base import CHAT, RESPONSES
from perilune.schema.canonical import JSON, Outcome, Usage
from perilune.schema.openai import parse_body
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
    native = Native(RESPONSES, native_request(raw, items, history))
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


@dataclass(slots=True)
class _Served:
    """What the encoder reads of the served attempt (the lifecycle's ``Served`` replaces this)."""

    outcome: Outcome
    native: bool = False

    @property
    def model(self) -> str:
        return self.outcome.model_served or self.outcome.model_requested

    @property
    def provider(self) -> str:
        return self.outcome.provider

    @property
    def usage(self) -> Usage | None:
        return self.outcome.usage


def _extension(served: Any) -> JSON:
    o: Outcome = served.outcome
    return extend_usage({}, o, o.usage or Usage())


def _on_final(ctx: Ctx, p: Prepared, enc: ResponsesEncoder) -> None:
    if p.store and enc.final is not None and enc.final.get("status") != "failed":
        ctx.services.responses.save_later(_account(ctx), enc.final, p.inputs)


@endpoint("openai", "responses")
async def create_response(ctx: Ctx) -> web.StreamResponse:
    req, raw = parse_body(await ctx.body(), ResponsesRequest)
    o = ctx.outcome
    o.model_requested, o.stream = req.model, bool(req.stream)
    if req.observability:
        o.capture, o.payload_request = True, raw
    p = await prepare(ctx, req, raw)
    prompt_estimate = estimate.chat_prompt_tokens(p.chat) if p.chat else estimate.text_prompt_tokens(
        orjson.dumps(p.native.raw.get("input")).decode())
    o.estimate_in, o.estimate_out = prompt_estimate, req.max_output_tokens
    enc = ResponsesEncoder(raw, p.rid, stream=bool(req.stream), extension=_extension,
                           created_at=int(o.started_wall))
    served = _Served(o)
    pipeline, headers = ctx.services.pipeline, ctx.request.headers
    if not req.stream:
        d, result = await pipeline.complete(CHAT, p.chat, o, req.provider, headers, native=p.native)
        served.native = p.native.serves(d)
        output = count_tokens(output_text(result.body)) if served.native else estimate.chat_output_tokens(result.body)
        settle(o, d, result.usage or estimated_usage(prompt_estimate, output))
        body = enc.body(result.body, served)
        if o.capture:
            o.payload_response = enc.final
        _on_final(ctx, p, enc)
        return ctx.json(body)
    upstream = await pipeline.stream(CHAT, p.chat, o, req.provider, headers, native=p.native)
    d = upstream.deployment
    served.native = p.native.serves(d)
    resp = await ctx.start_sse()
    await resp.write(enc.start(served))
    texts: list[str] = []
    try:
        async for chunk in upstream.chunks:
            if o.ttft_ms is None:
                o.ttft_ms = (time.perf_counter() - o.started) * 1000.0
            texts.append(enc.text(chunk))
            await resp.write(enc.item(chunk, served))
    except PeriluneError as e:
        o.status, o.error_type = e.status_code, e.kind
        settle(o, d, upstream.decoder.usage or estimated_usage(prompt_estimate, count_tokens("".join(texts))))
        await resp.write(enc.error(e, served))
        if o.capture:
            o.payload_response = enc.final
        await resp.write_eof()
        return resp
    settle(o, d, upstream.decoder.usage or estimated_usage(prompt_estimate, count_tokens("".join(texts))))
    await resp.write(enc.finish(served))
    if o.capture:
        o.payload_response = enc.final
    _on_final(ctx, p, enc)
    await resp.write_eof()
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
