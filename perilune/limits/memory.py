"""In-process limiter: exact for one process (one event loop, so every method body is atomic)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

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
        self._open: dict[str, tuple[str, int]] = {}  # reservation id -> (account, pico-USD held)

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
        free = False
        if ask.free_model and ask.free_quota:
            fkey = (ask.account_id, ask.free_model, day)
            if self._free.get(fkey, 0) + ask.tokens <= ask.free_quota:
                free = True
        out = ask.out_tokens
        reserved = 0
        if not free and ask.enforce_balance:
            available = self._balance[ask.account_id]
            if ask.cost_at(out) > available:
                out = ask.affordable_out(available) if ask.flexible else -1
                if out < ask.min_out:
                    raise insufficient(available, ask.cost_at(ask.min_out if ask.flexible else ask.out_tokens))
            reserved = ask.cost_at(out)
        tokens = ask.in_tokens + out * ask.n
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
                if self._counts.get((kind + "t", ident, minute), 0) + tokens > limits.tpm:
                    raise rate_limited(scope, "tokens", limits.tpm, retry)
                checks.append(((kind + "t", ident, minute), tokens))
        if reserved:
            self._balance[ask.account_id] -= reserved
        if free:
            fkey = (ask.account_id, ask.free_model or "", day)
            self._free[fkey] = self._free.get(fkey, 0) + tokens
        for key, amount in checks:
            self._counts[key] = self._counts.get(key, 0) + amount
        self._open[ask.request_id] = (ask.account_id, reserved)
        return Ticket(ask, minute, day, free, reserved, out_tokens=out)

    def _adjust_tokens(self, t: Ticket, delta: int) -> None:
        for kind, ident, limits in (("kt", t.ask.key_id, t.ask.key_limits), ("at", t.ask.account_id,
                                                                             t.ask.account_limits)):
            if ident is not None and limits.tpm is not None:
                key = (kind, ident, t.window)
                if key in self._counts:
                    self._counts[key] = max(0, self._counts[key] + delta)

    async def settle(self, ticket: Ticket, tokens: int, charged_pusd: int) -> Settled:
        a = ticket.ask
        if self._open.pop(a.request_id, None) is None:  # settled already
            return Settled(self._balance.get(a.account_id))
        self._adjust_tokens(ticket, tokens - ticket.tokens)
        if ticket.free:
            fkey = (a.account_id, a.free_model or "", ticket.day)
            self._free[fkey] = max(0, self._free.get(fkey, 0) + tokens - ticket.tokens)
            return Settled(self._balance.get(a.account_id))
        if not a.enforce_balance or a.account_id not in self._balance:
            return Settled(None)
        self._balance[a.account_id] += ticket.reserved_pusd - min(charged_pusd, ticket.reserved_pusd)
        return Settled(self._balance[a.account_id])

    async def settle_many(self, items: Sequence[tuple[Ticket, int, int]]) -> list[Settled]:
        return [await self.settle(t, tokens, charged) for t, tokens, charged in items]

    async def release(self, ticket: Ticket) -> None:
        await self.settle(ticket, 0, 0)

    async def contribute(self, account_id: str, charge_id: str, charged_pusd: int) -> None:
        return None  # this process's counters are never lost while it runs

    async def reserved(self, account_id: str, max_age_s: float | None = None) -> int:
        return sum(held for acct, held in self._open.values() if acct == account_id)

    async def set_balance(self, account_id: str, available_pusd: int) -> None:
        self._balance[account_id] = available_pusd

    async def ready_at(self) -> float | None:
        return 0.0

    async def arm(self, grace_s: float) -> None:
        return None

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
