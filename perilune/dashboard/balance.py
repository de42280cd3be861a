"""What the Balance page needs from the accounts ledger, as a small interface.

The page reads ``services.ledger`` when it is there and speaks :class:`LedgerSource`; otherwise it
says balances are not enabled. Any ledger with these four methods plugs in (all blocking; the page
calls them in a worker thread). Amounts are integer pico-USD.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class LedgerSource(Protocol):
    def balance_snapshot(self, account_id: str) -> tuple[int, list[str]]:
        """(balance, ids of recent entries it includes)."""
        ...

    def history(self, account_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first: dicts with id, created_at, kind, amount_pusd, actor, reason."""
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


def ledger_of(services: object) -> LedgerSource | None:
    ledger = getattr(services, "ledger", None)
    return ledger if isinstance(ledger, LedgerSource) else None


def _read(ledger: LedgerSource, account_id: str, limit: int) -> BalanceView:
    balance, _ = ledger.balance_snapshot(account_id)
    view = BalanceView(account_id, balance, ledger.history(account_id, limit))
    for s in ledger.account_settings(0.0):
        if getattr(s, "id", None) == account_id:
            view.alert_thresholds_pusd = tuple(getattr(s, "alert_thresholds", ()) or ())
            view.alert_webhook_url = getattr(s, "alert_webhook_url", None)
    return view


async def balance_view(services: object, account_id: str, limit: int = 50) -> BalanceView | None:
    ledger = ledger_of(services)
    if ledger is None:
        return None
    return await asyncio.to_thread(_read, ledger, account_id, limit)


async def save_alerts(services: object, account_id: str, thresholds_pusd: list[int],
                      webhook_url: str | None) -> bool:
    ledger = ledger_of(services)
    if ledger is None:
        return False
    return await asyncio.to_thread(ledger.set_alerts, account_id, thresholds_pusd, webhook_url)
