"""The limiter contract: rate limits, free-tier quota and prepaid balance, reserved then settled.

One ``admit`` call checks and reserves everything a request may use, atomically: a request slot in
the key's and the account's requests-per-minute windows, its estimated tokens in their tokens-per-
minute windows, and either free-tier tokens (when the whole worst case fits in today's quota) or the
worst-case cost from the balance. ``settle`` replaces the reservations with what the request really
used; ``release`` gives back everything but the request slot (the request did happen).

Windows are fixed UTC minutes; money is integer pico-USD. Backends: :mod:`perilune.limits.memory`
(one process) and :mod:`perilune.limits.redis` (any number of processes, atomic Lua).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from perilune.errors import InsufficientBalance, RateLimited

# Loads an account's balance (pico-USD) from the database, with the ids of the recent ledger entries
# that the figure already includes (so they are not applied a second time).
BalanceLoader = Callable[[str], Awaitable[tuple[int, list[str]]]]


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None


NO_LIMITS = Limits()


@dataclass(slots=True)
class Ask:
    """What one request wants to reserve."""

    account_id: str
    key_id: str | None
    key_limits: Limits
    account_limits: Limits
    tokens: int  # worst-case tokens (prompt estimate + max output), for TPM and the free tier
    cost_pusd: int  # worst-case cost if paid
    free_model: str | None = None  # model with a free daily quota, when eligible
    free_quota: int = 0  # that quota, tokens per account per UTC day
    enforce_balance: bool = True


@dataclass(slots=True)
class Ticket:
    ask: Ask
    window: int  # the UTC minute the reservation was made in
    day: int  # the UTC day (for the free quota)
    free: bool  # served from the free quota (no money reserved)
    reserved_pusd: int
    epoch: str = ""  # balance counter generation (Redis): settle only into the counter it reserved from


@dataclass(frozen=True, slots=True)
class Settled:
    charged_pusd: int  # debited from the balance (0 when free; < cost only if the balance ran out)
    balance_pusd: int | None  # available afterwards; None when not tracked


class Limiter(Protocol):
    remote: bool  # operations leave the process (and may suspend)

    async def admit(self, ask: Ask, load_balance: BalanceLoader) -> Ticket: ...

    async def settle(self, ticket: Ticket, tokens: int, cost_pusd: int) -> Settled: ...

    async def release(self, ticket: Ticket) -> None: ...

    async def apply_ledger(self, account_id: str, entry_id: str, amount_pusd: int) -> bool:
        """Credit (or debit) a ledger entry to a loaded balance counter exactly once.
        Returns False when the account's counter is not loaded (the next load includes the entry)."""
        ...

    async def available(self, account_id: str) -> int | None:
        """The balance minus reservations in flight, or None when not loaded."""
        ...

    async def free_used(self, account_id: str, model: str, day: int) -> int: ...

    async def claim_alert(self, account_id: str, threshold_pusd: int) -> bool:
        """True exactly once per crossing of ``threshold_pusd`` (re-armed by ``rearm_alerts``)."""
        ...

    async def rearm_alerts(self, account_id: str, balance_pusd: int) -> None: ...

    async def close(self) -> None: ...


def rate_limited(scope: str, what: str, limit: int, retry_after_s: float) -> RateLimited:
    return RateLimited(f"Rate limit reached for {scope}: {limit} {what} per minute. "
                       f"Try again in {retry_after_s:.0f} s.", retry_after_s=max(1.0, retry_after_s))


def insufficient(available_pusd: int, needed_pusd: int) -> InsufficientBalance:
    from perilune.accounting.pricing import from_pico

    return InsufficientBalance(
        f"Insufficient balance: this request may cost up to ${from_pico(needed_pusd)} and the account has "
        f"${from_pico(max(available_pusd, 0))} available. Top up, or lower max_tokens.")
