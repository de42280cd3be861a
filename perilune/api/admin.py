"""Admin API (admin key required): accounts and API keys."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import msgspec
import orjson
from aiohttp import web
from msgspec import Meta

from perilune.api.common import Ctx, endpoint
from perilune.errors import InvalidRequest, NotFound
from perilune.schema.openai import parse_body
from perilune.schema.text import check_fields

MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z


class NewAccount(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]


class NewKey(msgspec.Struct, forbid_unknown_fields=True):
    account_id: str | None = None
    name: Annotated[str, Meta(max_length=200)] = ""
    role: str = "user"
    expires_at: Annotated[float, Meta(gt=0, le=MAX_TIME)] | None = None  # UNIX seconds
    expires_in_s: Annotated[float, Meta(gt=0, le=100 * 365 * 86400)] | None = None


@endpoint("admin", "accounts.create", auth="admin")
async def create_account(ctx: Ctx) -> web.StreamResponse:
    req, _ = parse_body(await ctx.body(), NewAccount)
    check_fields(req)
    store = ctx.services.key_store
    account_id = await asyncio.to_thread(store.create_account, req.name)
    return ctx.json(orjson.dumps(await asyncio.to_thread(store.get_account, account_id)), status=201)


@endpoint("admin", "accounts.list", auth="admin")
async def list_accounts(ctx: Ctx) -> web.StreamResponse:
    rows = await asyncio.to_thread(ctx.services.key_store.list_accounts)
    return ctx.json(orjson.dumps({"object": "list", "data": rows}))


@endpoint("admin", "keys.create", auth="admin")
async def create_key(ctx: Ctx) -> web.StreamResponse:
    req, _ = parse_body(await ctx.body(), NewKey)
    check_fields(req)
    if req.role not in ("user", "admin"):
        raise InvalidRequest("role must be 'user' or 'admin'.", param="role")
    if req.expires_at is not None and req.expires_in_s is not None:
        raise InvalidRequest("Give expires_at or expires_in_s, not both.", param="expires_at")
    expires = req.expires_at if req.expires_in_s is None else time.time() + req.expires_in_s
    if expires is not None and expires <= time.time():
        raise InvalidRequest("expires_at is in the past.", param="expires_at")
    store = ctx.services.key_store
    account_id = req.account_id if req.account_id else await asyncio.to_thread(store.default_account)
    try:
        secret, rec = await asyncio.to_thread(store.create_key, account_id, name=req.name, role=req.role,
                                              expires_at=expires)
    except LookupError:
        raise NotFound(f"No account '{account_id}'.", param="account_id") from None
    return ctx.json(orjson.dumps({**rec.public(), "key": secret}), status=201)


@endpoint("admin", "keys.list", auth="admin")
async def list_keys(ctx: Ctx) -> web.StreamResponse:
    account_id = ctx.request.query.get("account_id")
    recs = await asyncio.to_thread(ctx.services.key_store.list_keys, account_id)
    return ctx.json(orjson.dumps({"object": "list", "data": [r.public() for r in recs]}))


@endpoint("admin", "keys.revoke", auth="admin")
async def revoke_key(ctx: Ctx) -> web.StreamResponse:
    key_id = ctx.request.match_info["key_id"]
    rec = await asyncio.to_thread(ctx.services.key_store.revoke_key, key_id)
    if rec is None:
        raise NotFound(f"No key '{key_id}'.", param="key_id")
    await ctx.services.keys.refresh()  # effective here at once; elsewhere within key_refresh_s
    return ctx.json(orjson.dumps(rec.public()))


def routes(app: web.Application) -> None:
    app.router.add_post("/admin/accounts", create_account)
    app.router.add_get("/admin/accounts", list_accounts)
    app.router.add_post("/admin/keys", create_key)
    app.router.add_get("/admin/keys", list_keys)
    app.router.add_delete("/admin/keys/{key_id}", revoke_key)
    app.router.add_post("/admin/keys/{key_id}/revoke", revoke_key)
