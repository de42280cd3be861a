"""Balances, ledger, limits and alert settings: /v1/balance for account keys, /admin/... for admins."""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import Annotated

import msgspec
import orjson
from aiohttp import web
from msgspec import Meta

from perilune.accounting.pricing import PICO, to_pico, usd_str
from perilune.accounting.webhooks import check_webhook_url
from perilune.api.common import Ctx, endpoint
from perilune.errors import InvalidRequest, NotFound
from perilune.schema.openai import parse_body
from perilune.schema.text import check_fields

Money = str | int | float
MAX_USD = Decimal(1_000_000)


class Amount(msgspec.Struct, forbid_unknown_fields=True):
    amount_usd: Money
    reason: Annotated[str, Meta(max_length=500)] = ""


class LimitsBody(msgspec.Struct, forbid_unknown_fields=True):
    rpm: Annotated[int, Meta(ge=1, le=2**31 - 1)] | None = None  # the columns are 32-bit integers
    tpm: Annotated[int, Meta(ge=1, le=2**31 - 1)] | None = None


class AlertsBody(msgspec.Struct, forbid_unknown_fields=True):
    thresholds_usd: Annotated[list[Money], Meta(max_length=10)] = []
    webhook_url: str | None = None


def _usd(value: Money, param: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequest(f"'{param}' must be a decimal amount in USD, e.g. \"10.50\".", param=param) from None
    if not d.is_finite() or abs(d) > MAX_USD:
        raise InvalidRequest(f"'{param}' must be a finite amount of at most {MAX_USD} USD.", param=param)
    if d != d.quantize(PICO):
        raise InvalidRequest(f"'{param}' has more than 12 decimal places.", param=param)
    return d


def _account_of(ctx: Ctx) -> str:
    p = ctx.principal
    if p is not None and p.account_id:
        return p.account_id
    account_id = ctx.request.query.get("account_id")
    if not account_id:
        raise InvalidRequest("This key belongs to no account; pass ?account_id=.", param="account_id")
    return account_id


@endpoint("openai", "balance")
async def get_balance(ctx: Ctx) -> web.StreamResponse:
    account_id = _account_of(ctx) if ctx.principal and ctx.principal.is_admin else ctx.principal.account_id  # type: ignore[union-attr]
    if account_id is None or await asyncio.to_thread(ctx.services.key_store.get_account, account_id) is None:
        raise NotFound(f"No account '{account_id}'.", param="account_id")
    return ctx.json(orjson.dumps(await ctx.services.accountant.balance(account_id)))


async def _set_alerts(ctx: Ctx, account_id: str) -> web.StreamResponse:
    req, _ = parse_body(await ctx.body(), AlertsBody)
    thresholds = [to_pico(_usd(t, "thresholds_usd")) for t in req.thresholds_usd]
    if any(t <= 0 for t in thresholds):
        raise InvalidRequest("Alert thresholds must be positive amounts.", param="thresholds_usd")
    url = req.webhook_url
    await check_webhook_url(url, ctx.services.accountant.outbound)
    if not await asyncio.to_thread(ctx.services.ledger.set_alerts, account_id, thresholds, url):
        raise NotFound(f"No account '{account_id}'.", param="account_id")
    await ctx.services.accountant.refresh()
    return ctx.json(orjson.dumps(await ctx.services.accountant.balance(account_id)))


@endpoint("openai", "balance.alerts")
async def set_own_alerts(ctx: Ctx) -> web.StreamResponse:
    return await _set_alerts(ctx, _account_of(ctx))


@endpoint("admin", "accounts.alerts", auth="admin")
async def set_alerts(ctx: Ctx) -> web.StreamResponse:
    return await _set_alerts(ctx, ctx.request.match_info["account_id"])


def _ledger_entry(kind: str) -> object:
    @endpoint("admin", f"accounts.{kind}", auth="admin")
    async def handler(ctx: Ctx) -> web.StreamResponse:
        account_id = ctx.request.match_info["account_id"]
        req, _ = parse_body(await ctx.body(), Amount)
        check_fields(req)
        amount = _usd(req.amount_usd, "amount_usd")
        if kind in ("topup", "refund") and amount <= 0:
            raise InvalidRequest(f"A {kind} must be a positive amount.", param="amount_usd")
        if amount == 0:
            raise InvalidRequest("An adjustment of zero changes nothing.", param="amount_usd")
        p = ctx.principal
        actor = f"admin:{p.key_id}" if p and p.key_id else "admin:env"
        try:
            entry = await asyncio.to_thread(ctx.services.ledger.add_entry, account_id, kind, to_pico(amount),
                                            actor, req.reason)
        except LookupError:
            raise NotFound(f"No account '{account_id}'.", param="account_id") from None
        await ctx.services.accountant.refresh()
        body = {**entry, "amount_usd": usd_str(entry["amount_pusd"]),
                "balance": await ctx.services.accountant.balance(account_id)}
        return ctx.json(orjson.dumps(body), status=201)

    handler.__name__ = f"account_{kind}"
    return handler


@endpoint("admin", "accounts.ledger", auth="admin")
async def ledger(ctx: Ctx) -> web.StreamResponse:
    account_id = ctx.request.match_info["account_id"]
    rows = await asyncio.to_thread(ctx.services.ledger.history, account_id, 500)
    for r in rows:
        r["amount_usd"] = usd_str(int(r["amount_pusd"]))
    return ctx.json(orjson.dumps({"object": "list", "account_id": account_id, "data": rows}))


@endpoint("admin", "accounts.limits", auth="admin")
async def account_limits(ctx: Ctx) -> web.StreamResponse:
    req, _ = parse_body(await ctx.body(), LimitsBody)
    account_id = ctx.request.match_info["account_id"]
    if not await asyncio.to_thread(ctx.services.ledger.set_account_limits, account_id, req.rpm, req.tpm):
        raise NotFound(f"No account '{account_id}'.", param="account_id")
    await ctx.services.accountant.refresh()
    return ctx.json(orjson.dumps({"account_id": account_id, "rpm": req.rpm, "tpm": req.tpm}))


@endpoint("admin", "keys.limits", auth="admin")
async def key_limits(ctx: Ctx) -> web.StreamResponse:
    req, _ = parse_body(await ctx.body(), LimitsBody)
    key_id = ctx.request.match_info["key_id"]
    if not await asyncio.to_thread(ctx.services.ledger.set_key_limits, key_id, req.rpm, req.tpm):
        raise NotFound(f"No key '{key_id}'.", param="key_id")
    await ctx.services.keys.refresh()
    return ctx.json(orjson.dumps({"key_id": key_id, "rpm": req.rpm, "tpm": req.tpm}))


def routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v1/balance", get_balance)
    r.add_post("/v1/balance/alerts", set_own_alerts)
    for kind in ("topup", "refund", "adjustment"):
        r.add_post(f"/admin/accounts/{{account_id}}/{kind}", _ledger_entry(kind))  # type: ignore[arg-type]
    r.add_get("/admin/accounts/{account_id}/ledger", ledger)
    r.add_put("/admin/accounts/{account_id}/limits", account_limits)
    r.add_put("/admin/accounts/{account_id}/alerts", set_alerts)
    r.add_put("/admin/keys/{key_id}/limits", key_limits)
