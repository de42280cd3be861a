"""Admin API for JWT identities: link (issuer, subject) to an account, list, unlink."""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
import orjson
from aiohttp import web
from msgspec import Meta

from perilune.api.common import Ctx, endpoint
from perilune.errors import InvalidRequest, NotFound
from perilune.schema.openai import parse_body
from perilune.schema.text import check_text
from perilune.store.identities import MAX_ISSUER, MAX_SUBJECT, IdentityStore


class NewIdentity(msgspec.Struct, forbid_unknown_fields=True):
    """Link the JWT principal (``iss``, ``sub``) to an account; re-linking moves it."""

    subject: Annotated[str, Meta(min_length=1, max_length=MAX_SUBJECT)]
    account_id: Annotated[str, Meta(min_length=1, max_length=40)]
    issuer: Annotated[str, Meta(max_length=MAX_ISSUER)] = ""  # the token's iss ("" when it has none)


def _store(ctx: Ctx) -> IdentityStore:
    return IdentityStore(ctx.services.db)


@endpoint("admin", "identities.link", auth="admin")
async def link_identity(ctx: Ctx) -> web.StreamResponse:
    req, _ = parse_body(await ctx.body(), NewIdentity)
    for param in ("issuer", "subject", "account_id"):
        check_text(getattr(req, param), param, printable=True)
    p = ctx.principal
    actor = f"admin:{p.key_id}" if p and p.key_id else "admin:env"
    try:
        rec = await asyncio.to_thread(_store(ctx).link, req.issuer, req.subject, req.account_id, actor)
    except LookupError:
        raise NotFound(f"No account '{req.account_id}'.", param="account_id") from None
    except ValueError as e:
        raise InvalidRequest(str(e), param=str(e).split(" ", 1)[0]) from None
    keys = ctx.services.keys
    if keys.identities is not None:
        await keys.identities.refresh()  # effective here at once; elsewhere within key_refresh_s
    return ctx.json(orjson.dumps(rec.public()), status=201)


@endpoint("admin", "identities.list", auth="admin")
async def list_identities(ctx: Ctx) -> web.StreamResponse:
    q = ctx.request.query
    account_id = q.get("account_id") or None
    if account_id is not None:
        check_text(account_id, "account_id")
    every = q.get("include_unlinked", "false").lower() in ("true", "1", "yes")
    recs = await asyncio.to_thread(_store(ctx).list_links, account_id, include_unlinked=every)
    return ctx.json(orjson.dumps({"object": "list", "data": [r.public() for r in recs]}))


@endpoint("admin", "identities.unlink", auth="admin")
async def unlink_identity(ctx: Ctx) -> web.StreamResponse:
    identity_id = ctx.request.match_info["identity_id"]
    check_text(identity_id, "identity_id")
    rec = await asyncio.to_thread(_store(ctx).unlink, identity_id)
    if rec is None:
        raise NotFound(f"No identity '{identity_id}'.", param="identity_id")
    keys = ctx.services.keys
    if keys.identities is not None:
        await keys.identities.refresh()
    return ctx.json(orjson.dumps(rec.public()))


def routes(app: web.Application) -> None:
    app.router.add_post("/admin/identities", link_identity)
    app.router.add_get("/admin/identities", list_identities)
    app.router.add_delete("/admin/identities/{identity_id}", unlink_identity)
