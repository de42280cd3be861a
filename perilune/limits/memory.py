"""In-process limiter: exact for one process (one event loop, so every method body is atomic)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from perilune.limits.base import Ask, BalanceLoader, Settled, Ticket, insufficient, rate_limited

APPLIED_MEMORY = 100_000  # ledger entry ids remembered for exactly-once application


class MemoryLimiter:
    remote = False
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, str, int], int] = {}  # (kind, id, minute) -> count
        self._free: dict[tuple[str, str, int], int] = {}  # (account, model, day) -> tokens used
        self._balance: dict[str, int] = {}  # account -> available pico-USD
        self._loading: dict[str, asyncio.Lock] = {}
        self._applied: OrderedDict[str, None] = OrderedDict()
        self._alerted: dict[str, set[int]] = {}
        self._last_gc = 0

    def _now(self) -> tuple[float, int, int]:
        now = self._clock()
        minute = int(now // 60)
        if minute != self._last_gc:
            self._last_gc = minute
            self._counts = {k: v for k, v in self._counts.items() if k[2] >= minute - 1}
        return now, minute, int(now // 86400)

    async def _ensure_balance(self, account_id: str, load: BalanceLoader) -> int:
        bal = self._balance.get(account_id)
        if bal is not None:
            return bal
        lock = self._loading.setdefault(account_id, asyncio.Lock())
        async with lock:
            if account_id not in self._balance:
                value, included = await load(account_id)
                for entry_id in included:
                    self._remember(entry_id)
                self._balance[account_id] = value
        return self._balance[account_id]

    def _remember(self, entry_id: str) -> None:
        self._applied[entry_id] = None
        while len(self._applied) > APPLIED_MEMORY:
            self._applied.popitem(last=False)

    async def admit(self, ask: Ask, load_balance: BalanceLoader) -> Ticket:
        if ask.enforce_balance:
            await self._ensure_balance(ask.account_id, load_balance)
        # no await below this line: the checks and reservations happen as one step
        now, minute, day = self._now()
        retry = 60.0 - (now % 60.0)
        checks = []
        for kind, ident, limits in (("k", ask.key_id, ask.key_limits), ("a", ask.account_id, ask.account_limits)):
            if ident is None:
                continue
            scope = "this key" if kind == "k" else "this account"
            if limits.rpm is not None:
                if self._counts.get((kind + "r", ident, minute), 0) + 1 > limits.rpm:
                    raise rate_limited(scope, "requests", limits.rpm, retry)
                checks.append(((kind + "r", ident, minute), 1))
            if limits.tpm is not None:
                if self._counts.get((kind + "t", ident, minute), 0) + ask.tokens > limits.tpm:
                    raise rate_limited(scope, "tokens", limits.tpm, retry)
                checks.append(((kind + "t", ident, minute), ask.tokens))
        free = False
        if ask.free_model and ask.free_quota:
            fkey = (ask.account_id, ask.free_model, day)
            if self._free.get(fkey, 0) + ask.tokens <= ask.free_quota:
                free = True
        reserved = 0
        if not free and ask.enforce_balance:
            available = self._balance[ask.account_id]
            if available < ask.cost_pusd:
                raise insufficient(available, ask.cost_pusd)
            reserved = ask.cost_pusd
            self._balance[ask.account_id] = available - reserved
        if free:
            fkey = (ask.account_id, ask.free_model or "", day)
            self._free[fkey] = self._free.get(fkey, 0) + ask.tokens
        for key, amount in checks:
            self._counts[key] = self._counts.get(key, 0) + amount
        return Ticket(ask, minute, day, free, reserved)

    def _adjust_tokens(self, t: Ticket, delta: int) -> None:
        for kind, ident, limits in (("kt", t.ask.key_id, t.ask.key_limits), ("at", t.ask.account_id,
                                                                             t.ask.account_limits)):
            if ident is not None and limits.tpm is not None:
                key = (kind, ident, t.window)
                if key in self._counts:
                    self._counts[key] = max(0, self._counts[key] + delta)

    async def settle(self, ticket: Ticket, tokens: int, cost_pusd: int) -> Settled:
        a = ticket.ask
        self._adjust_tokens(ticket, tokens - a.tokens)
        if ticket.free:
            fkey = (a.account_id, a.free_model or "", ticket.day)
            self._free[fkey] = max(0, self._free.get(fkey, 0) + tokens - a.tokens)
            return Settled(0, self._balance.get(a.account_id))
        if not a.enforce_balance or a.account_id not in self._balance:
            return Settled(cost_pusd, None)
        # The charge exceeds the reservation only when the upstream overran max_tokens; the balance
        # still never goes below zero (the uncovered rest is written off, see Settled).
        available = self._balance[a.account_id] + ticket.reserved_pusd
        charged = min(cost_pusd, max(available, 0))
        self._balance[a.account_id] = available - charged
        return Settled(charged, available - charged)

    async def release(self, ticket: Ticket) -> None:
        await self.settle(ticket, 0, 0)

    async def apply_ledger(self, account_id: str, entry_id: str, amount_pusd: int) -> bool:
        if entry_id in self._applied:
            return True
        if account_id not in self._balance:
            return False
        self._remember(entry_id)
        self._balance[account_id] += amount_pusd
        return True

    async def available(self, account_id: str) -> int | None:
        return self._balance.get(account_id)

    async def free_used(self, account_id: str, model: str, day: int) -> int:
        return self._free.get((account_id, model, day), 0)

    async def claim_alert(self, account_id: str, threshold_pusd: int) -> bool:
        done = self._alerted.setdefault(account_id, set())
        if threshold_pusd in done:
            return False
        done.add(threshold_pusd)
        return True

    async def rearm_alerts(self, account_id: str, balance_pusd: int) -> None:
        done = self._alerted.get(account_id)
        if done:
            done.difference_update({t for t in done if balance_pusd >= t})

    async def close(self) -> None:
        return None
