"""The accountant: keeps account settings cached, applies ledger entries to the hot counters exactly
once, shows balances and sends low-balance alerts. Requests reserve and settle through
:mod:`perilune.accounting.billing`.

Nothing here touches the database on the request path: account settings are cached and refreshed by
a background task (like keys), and a balance is loaded from the database once per account.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import orjson

from perilune._outbound import OutboundPolicy
from perilune.accounting.pricing import usd_str
from perilune.accounting.webhooks import deliver  # SSRF-guarded: perilune._outbound
from perilune.limits.base import Limiter
from perilune.store.ledger import AccountSettings, LedgerStore

log = logging.getLogger("perilune.ledger")

LOOKBACK_S = 120.0
WEBHOOK_ATTEMPTS = 4


class Accountant:
    outbound: OutboundPolicy = OutboundPolicy()  # where webhooks may go; set from [outbound] by the app

    def __init__(self, limiter: Limiter, store: LedgerStore, *, enforce_balance: bool = True,
                 refresh_s: float = 0.5) -> None:
        self.limiter = limiter
        self.store = store
        self.enforce_balance = enforce_balance
        self.refresh_s = refresh_s
        self._accounts: dict[str, AccountSettings] = {}
        self._since = 0.0
        self._applied: set[str] = set()  # ledger entries of the look-back window already applied
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # ---- lifecycle ----
    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="perilune-ledger-refresh")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._background:
            await asyncio.wait(self._background, timeout=5)
        if self._http:
            await self._http.close()
        await self.limiter.close()

    async def _loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception as e:  # the database (or Redis) is away: say so once, keep retrying
                if not failing:
                    log.warning("ledger refresh failed (%s: %s); retrying quietly until it works",
                                e.__class__.__name__, str(e).splitlines()[0][:200] if str(e) else "")
                failing = True
            else:
                if failing:
                    log.info("ledger refresh works again")
                failing = False

    async def refresh(self) -> None:
        """Pick up changed account settings and apply new ledger entries to the hot counters."""
        started = time.time()
        since = self._since - LOOKBACK_S if self._since else 0.0

        def read() -> tuple[list[AccountSettings], list[tuple[str, str, int]]]:  # one hand-off, not two
            return self.store.account_settings(since), self.store.entries_since(started - LOOKBACK_S)

        changed, entries = await asyncio.to_thread(read)
        for s in changed:
            self._accounts[s.id] = s
        touched, applied = set(), set()
        for entry_id, account_id, amount in entries:
            if entry_id in self._applied:  # applied at an earlier look (the window overlaps on purpose)
                applied.add(entry_id)
            elif await self.limiter.apply_ledger(account_id, entry_id, amount):
                applied.add(entry_id)
                touched.add(account_id)
        self._applied = applied  # only the window's entries: the set stays as small as the window
        for account_id in touched:
            bal = await self.limiter.available(account_id)
            if bal is not None:
                await self.limiter.rearm_alerts(account_id, bal)
        self._since = started

    # ---- what billing reads ----
    def account(self, account_id: str) -> AccountSettings | None:
        return self._accounts.get(account_id)

    async def load_balance(self, account_id: str) -> tuple[int, list[str]]:
        return await asyncio.to_thread(self.store.balance_snapshot, account_id)

    # ---- alerts ----
    async def check_alerts(self, account_id: str, balance: int) -> None:
        acct = self._accounts.get(account_id)
        if acct is None or not acct.alert_thresholds:
            return
        crossed = [t for t in acct.alert_thresholds if balance < t]
        if not crossed:
            return
        lowest = crossed[-1]
        if await self.limiter.claim_alert(account_id, lowest):
            for t in crossed[:-1]:  # thresholds passed on the way down count as alerted too
                await self.limiter.claim_alert(account_id, t)
            payload = {"type": "balance.low", "account_id": account_id, "threshold_usd": usd_str(lowest),
                       "balance_usd": usd_str(balance), "time": time.time()}
            log.warning(orjson.dumps({"event": "balance.low", **payload}).decode())
            if acct.alert_webhook_url:
                task = asyncio.create_task(self._post(acct.alert_webhook_url, payload))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _post(self, url: str, payload: dict[str, Any]) -> None:
        await deliver(url, payload, self.outbound, attempts=WEBHOOK_ATTEMPTS)

    # ---- balance view ----
    async def balance(self, account_id: str) -> dict[str, Any]:
        available = await self.limiter.available(account_id)
        if available is None:
            available, _ = await self.load_balance(account_id)
        now = time.time()
        day_start = now - now % 86400
        t = time.gmtime(now)
        month_start = time.mktime((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, 0)) - time.timezone
        today, month = await asyncio.gather(asyncio.to_thread(self.store.spend_since, account_id, day_start),
                                            asyncio.to_thread(self.store.spend_since, account_id, month_start))
        acct = self._accounts.get(account_id)
        return {
            "object": "balance",
            "account_id": account_id,
            "balance_usd": usd_str(available),
            "currency": "USD",
            "prepaid": self.enforce_balance,
            "spend_today_usd": usd_str(today),
            "spend_month_usd": usd_str(month),
            "alerts": {
                "thresholds_usd": [usd_str(x) for x in (acct.alert_thresholds if acct else ())],
                "webhook_url": acct.alert_webhook_url if acct else None,
            },
        }
