"""Dashboard pages: sign in / out, Models, Keys, Balance."""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from perilune.accounting.pricing import to_pico
from perilune.accounting.webhooks import check_webhook_url
from perilune.dashboard import session
from perilune.dashboard.balance import balance_view, ledger_of, save_alerts
from perilune.dashboard.page import Page, page, redirect
from perilune.errors import InvalidRequest, PermissionDenied

MODALITIES = ("text", "image", "audio", "file", "video", "embedding")


def _safe_next(value: str | None) -> str:
    """Only paths inside the dashboard (no scheme, no host, no //)."""
    if value and value.startswith("/dashboard") and not value.startswith("//") and "\\" not in value:
        return value
    return "/dashboard/logs"


@page(signed_in=False)
async def login_form(pg: Page) -> web.StreamResponse:
    if pg.principal is not None:
        return redirect(_safe_next(pg.request.query.get("next")))
    return pg.render("login.html", next=_safe_next(pg.request.query.get("next")), error=None)


@page(signed_in=False)
async def login(pg: Page) -> web.StreamResponse:
    form = await pg.form()
    key = form.get("key", "").strip()
    nxt = _safe_next(form.get("next"))
    signed = await session.sign_in(pg.services, key) if key and session.same_origin(pg.request) else None
    if signed is None:  # never echo the key
        return pg.render("login.html", status=401, next=nxt, error="That key is not valid.")
    resp = redirect(nxt)
    settings = pg.services.settings
    session.set_session(resp, pg.request, signed[1], settings.dashboard_session_s, settings.trust_proxy_headers)
    return resp


@page(signed_in=False)
async def logout(pg: Page) -> web.StreamResponse:
    if not session.same_origin(pg.request):  # another site cannot sign you out
        raise PermissionDenied("Sign out from the dashboard itself.")
    await session.sign_out(pg.services, pg.request)  # a copied cookie stops working too
    resp = redirect("/dashboard/login")
    session.clear_session(resp, pg.request)
    return resp


@page()
async def root(pg: Page) -> web.StreamResponse:
    return redirect("/dashboard/logs")


# ---- models -------------------------------------------------------------------------------------

@page()
async def models(pg: Page) -> web.StreamResponse:
    q = pg.request.query
    want_in, want_out = q.get("input", ""), q.get("output", "")
    text = q.get("q", "").strip().lower()
    rows = []
    for e in pg.services.model_entries:
        if want_in and want_in not in e["inputModalities"]:
            continue
        if want_out and want_out not in e["outputModalities"]:
            continue
        if text and text not in f"{e['id']} {e['name']} {e['provider']} {e['permaslug']}".lower():
            continue
        rows.append(e)
    rows.sort(key=lambda e: (not e["isEnabled"], e["id"]))
    return pg.render("models.html", active="models", models=rows, modalities=MODALITIES, want_in=want_in,
                     want_out=want_out, text=q.get("q", ""), total=len(pg.services.model_entries))


# ---- keys -------------------------------------------------------------------------------------------

async def _keys_page(pg: Page, *, created: dict[str, Any] | None = None, error: str | None = None,
                     status: int = 200) -> web.StreamResponse:
    store = pg.services.key_store
    keys = await asyncio.to_thread(store.list_keys, pg.account_id)
    if not pg.is_admin:  # a user key sees (and manages) the user keys of its own account only
        keys = [k for k in keys if k.role == "user"]
    keys.sort(key=lambda k: (k.revoked_at is not None, -k.created_at))
    accounts = await asyncio.to_thread(store.list_accounts) if pg.is_admin else []
    return pg.render("keys.html", status=status, active="keys", keys=keys, created=created, error=error,
                     accounts=accounts, revoked=pg.request.query.get("revoked"),
                     own_key=pg.principal.key_id if pg.principal else None)


@page()
async def keys(pg: Page) -> web.StreamResponse:
    return await _keys_page(pg)


async def _checked_form(pg: Page) -> dict[str, str]:
    form = await pg.form()
    if not session.check_csrf(pg.request, form.get("csrf")):
        raise PermissionDenied("This form has expired; reload the page and try again.")
    return form


@page()
async def create_key(pg: Page) -> web.StreamResponse:
    form = await _checked_form(pg)
    p = pg.principal
    assert p is not None
    name = form.get("name", "").strip()[:200]
    role = "user"
    account_id = p.account_id
    store = pg.services.key_store
    if pg.is_admin:
        role = "admin" if form.get("role") == "admin" else "user"
        account_id = form.get("account_id") or await asyncio.to_thread(store.default_account)
    if not account_id:
        raise PermissionDenied("This key belongs to no account, so it cannot create keys.")
    try:
        secret, rec = await asyncio.to_thread(store.create_key, account_id, name=name, role=role)
    except LookupError:
        return await _keys_page(pg, error=f"No account '{account_id}'.", status=400)
    await pg.services.keys.refresh()
    return await _keys_page(pg, created={"secret": secret, "record": rec})


@page()
async def revoke_key(pg: Page) -> web.StreamResponse:
    await _checked_form(pg)
    key_id = pg.request.match_info["key_id"]
    store = pg.services.key_store
    rec = await asyncio.to_thread(store.get_key, key_id)
    p = pg.principal
    assert p is not None
    if rec is None or (not pg.is_admin and (rec.account_id != p.account_id or rec.role != "user")):
        return await _keys_page(pg, error=f"No key '{key_id}' in this account.", status=404)
    await asyncio.to_thread(store.revoke_key, key_id)
    await pg.services.keys.refresh()
    return redirect("/dashboard/keys?revoked=" + key_id)


# ---- balance ----------------------------------------------------------------------------------------

async def _balance_page(pg: Page, *, message: str | None = None, error: str | None = None,
                        status: int = 200) -> web.StreamResponse:
    account_id = pg.account_id
    accounts = await asyncio.to_thread(pg.services.key_store.list_accounts) if pg.is_admin else []
    if account_id is None and accounts:
        account_id = accounts[0]["id"]
    enabled = ledger_of(pg.services) is not None
    view = await balance_view(pg.services, account_id) if enabled and account_id else None
    prepaid = bool(getattr(pg.services.settings, "prepaid", False))
    return pg.render("balance.html", status=status, active="balance", enabled=enabled, view=view,
                     account_id=account_id, accounts=accounts, prepaid=prepaid, message=message, error=error)


@page()
async def balance(pg: Page) -> web.StreamResponse:
    return await _balance_page(pg)


@page()
async def balance_alerts(pg: Page) -> web.StreamResponse:
    form = await _checked_form(pg)
    account_id = pg.account_id if not pg.is_admin else form.get("account_id") or None
    if account_id is None:
        raise PermissionDenied("Pick an account first.")
    thresholds: list[int] = []
    try:
        for part in form.get("thresholds", "").replace(";", ",").split(","):
            if part.strip():
                v = Decimal(part.strip().lstrip("$"))
                if v < 0:
                    raise InvalidOperation
                thresholds.append(to_pico(v))
    except InvalidOperation:
        return await _balance_page(pg, error="Thresholds are amounts in USD, separated by commas.",
                                   status=400)
    url = form.get("webhook_url", "").strip() or None
    try:
        await check_webhook_url(url, pg.services.accountant.outbound)
    except InvalidRequest as e:
        return await _balance_page(pg, error=e.message, status=400)
    if not await save_alerts(pg.services, account_id, thresholds, url):
        return await _balance_page(pg, error="Alerts could not be saved.", status=400)
    return await _balance_page(pg, message="Alert settings saved.")
