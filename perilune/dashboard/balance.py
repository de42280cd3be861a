"""What the Balance page needs from the accounts ledger, as a small interface.

The page reads ``services.ledger`` when it is there and speaks :class:`LedgerSource`; otherwise it
says balances are not enabled. Any ledger with these methods plugs in (all blocking; the page calls
them in a worker thread). Amounts are integer pico-USD. The page shows the balance, the spend of
today and of this month (UTC), and every ledger entry and charge, newest first, a page at a time.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from perilune.dashboard.page import Page, page
from perilune.errors import InvalidRequest
from perilune.store.usage import QueryError, decode_cursor, encode_cursor

PAGE_SIZE = 50


@runtime_checkable
class LedgerSource(Protocol):
    def balance_snapshot(self, account_id: str) -> tuple[int, list[str]]:
        """(balance, ids of recent entries it includes)."""
        ...

    def history(self, account_id: str, limit: int = 100,
                before: tuple[float, str] | None = None) -> list[dict[str, Any]]:
        """Newest first: dicts with id, created_at, kind, amount_pusd, actor, reason."""
        ...

    def spend_since(self, account_id: str, since: float) -> int:
        """Charges since a UNIX time."""
        ...

    def account_settings(self, since: float = 0.0) -> list[Any]:
        """Objects with id, alert_thresholds (pico-USD), alert_webhook_url."""
        ...

    def set_alerts(self, account_id: str, thresholds_pusd: list[int], webhook_url: str | None) -> bool:
        ...


@dataclass(slots=True)
class BalanceView:
    account_id: str
    balance_pusd: int
    entries: list[dict[str, Any]] = field(default_factory=list)
    alert_thresholds_pusd: tuple[int, ...] = ()
    alert_webhook_url: str | None = None
    spend_today_pusd: int = 0
    spend_month_pusd: int = 0
    next_cursor: str | None = None  # the next (older) page of entries, None on the last one
    first_page: bool = True


def day_and_month_start(now: float) -> tuple[float, float]:
    """UNIX times of the start of today and of this month, in UTC."""
    t = time.gmtime(now)
    return (float(calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))),
            float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))))


def ledger_of(services: object) -> LedgerSource | None:
    ledger = getattr(services, "ledger", None)
    return ledger if isinstance(ledger, LedgerSource) else None


def _read(ledger: LedgerSource, account_id: str, limit: int, before: tuple[float, str] | None) -> BalanceView:
    balance, _ = ledger.balance_snapshot(account_id)
    rows = ledger.history(account_id, limit + 1, before)
    day, month = day_and_month_start(time.time())
    view = BalanceView(account_id, balance, rows[:limit], spend_today_pusd=ledger.spend_since(account_id, day),
                       spend_month_pusd=ledger.spend_since(account_id, month), first_page=before is None)
    if len(rows) > limit:
        last = rows[limit - 1]
        view.next_cursor = encode_cursor(float(last["created_at"]), str(last["id"]))
    for s in ledger.account_settings(0.0):
        if getattr(s, "id", None) == account_id:
            view.alert_thresholds_pusd = tuple(getattr(s, "alert_thresholds", ()) or ())
            view.alert_webhook_url = getattr(s, "alert_webhook_url", None)
    return view


async def balance_view(services: object, account_id: str, limit: int = PAGE_SIZE,
                       cursor: str | None = None) -> BalanceView | None:
    ledger = ledger_of(services)
    if ledger is None:
        return None
    before = None
    if cursor:
        try:
            before = decode_cursor(cursor)
        except QueryError:
            raise InvalidRequest("That ledger page link is not one this dashboard made.", param="cursor") from None
    return await asyncio.to_thread(_read, ledger, account_id, limit, before)


@page()
async def balance_page(pg: Page) -> web.StreamResponse:
    """GET /dashboard/balance[?account_id=][&cursor=]: balance, spend, the ledger page, alerts."""
    account_id = pg.account_id
    accounts = await asyncio.to_thread(pg.services.key_store.list_accounts) if pg.is_admin else []
    if account_id is None and accounts:
        account_id = accounts[0]["id"]
    enabled = ledger_of(pg.services) is not None
    view = None
    if enabled and account_id:
        view = await balance_view(pg.services, account_id, cursor=pg.request.query.get("cursor") or None)
    prepaid = bool(getattr(pg.services.settings, "prepaid", False))
    return pg.render("balance.html", active="balance", enabled=enabled, view=view, account_id=account_id,
                     accounts=accounts, prepaid=prepaid, message=None, error=None)


async def save_alerts(services: object, account_id: str, thresholds_pusd: list[int],
                      webhook_url: str | None) -> bool:
    ledger = ledger_of(services)
    if ledger is None:
        return False
    return await asyncio.to_thread(ledger.set_alerts, account_id, thresholds_pusd, webhook_url)
