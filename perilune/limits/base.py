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

from collections.abc import Awaitable, Callable, Sequence
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
    """What one request (one attempt group, i.e. one model) wants to reserve.

    The reservation is an upper bound of what the request can cost: ``in_tokens`` bounds the prompt,
    ``out_tokens`` is the output limit the upstream will be sent. When the client set no output limit
    (``flexible``), the limiter lowers ``out_tokens`` to what the balance covers (never below
    ``min_out``) and the granted value is sent upstream, so no upstream can run past the reservation.
    """

    account_id: str
    key_id: str | None
    key_limits: Limits
    account_limits: Limits
    in_tokens: int  # prompt upper bound
    in_cost_pusd: int  # its worst-case cost
    out_tokens: int  # output tokens per choice: the client's limit, or the model's maximum
    out_price_pusd: int  # pico-USD per output token (rounded up)
    n: int = 1  # choices
    unit_cost_pusd: int = 0  # per image / per audio minute worst case
    flexible: bool = False  # out_tokens may be lowered to what the balance covers
    min_out: int = 1
    request_id: str = ""  # names the reservation (settling it twice is a no-op)
    free_model: str | None = None  # model with a free daily quota, when eligible
    free_quota: int = 0  # that quota, tokens per account per UTC day
    enforce_balance: bool = True

    @property
    def tokens(self) -> int:
        """Worst-case tokens at the full output limit (TPM, free tier)."""
        return self.in_tokens + self.out_tokens * self.n

    def cost_at(self, out_tokens: int) -> int:
        return self.in_cost_pusd + out_tokens * self.n * self.out_price_pusd + self.unit_cost_pusd

    def affordable_out(self, available_pusd: int) -> int:
        """The largest output limit (<= out_tokens) whose worst case fits in ``available_pusd``."""
        if self.cost_at(self.out_tokens) <= available_pusd:
            return self.out_tokens
        per = self.n * self.out_price_pusd
        room = available_pusd - self.in_cost_pusd - self.unit_cost_pusd
        if room < 0 or per <= 0:
            return -1
        return min(self.out_tokens, room // per)


@dataclass(slots=True)
class Ticket:
    ask: Ask
    window: int  # the UTC minute the reservation was made in
    day: int  # the UTC day (for the free quota)
    free: bool  # served from the free quota (no money reserved)
    reserved_pusd: int
    epoch: str = ""  # balance counter generation (Redis): settle only into the counter it reserved from
    out_tokens: int = 0  # the output limit granted (what the upstream is sent)

    @property
    def tokens(self) -> int:
        return self.ask.in_tokens + self.out_tokens * self.ask.n


@dataclass(frozen=True, slots=True)
class Settled:
    balance_pusd: int | None  # available afterwards; None when not tracked or not known
    stale: bool = False  # the counter it was reserved from is gone (Redis lost its data): contribute


class Limiter(Protocol):
    remote: bool  # operations leave the process (and may suspend)

    async def admit(self, ask: Ask, load_balance: BalanceLoader) -> Ticket: ...

    async def settle(self, ticket: Ticket, tokens: int, charged_pusd: int) -> Settled:
        """Replace the reservation by the real use; ``charged_pusd`` <= the reserved amount. Idempotent:
        a second settle of the same ticket changes nothing."""
        ...

    async def settle_many(self, items: Sequence[tuple[Ticket, int, int]]) -> list[Settled]:
        """``settle`` for each (ticket, tokens, charged) in order, in as few round trips as the store
        allows; all or nothing on a transport fault (each settlement being idempotent)."""
        ...

    async def release(self, ticket: Ticket) -> None: ...

    async def contribute(self, account_id: str, charge_id: str, charged_pusd: int) -> None:
        """Debit a charge the balance counter may not include (after Redis lost its data) exactly once."""
        ...

    async def apply_ledger(self, account_id: str, entry_id: str, amount_pusd: int) -> bool:
        """Credit (or debit) a ledger entry to a loaded balance counter exactly once.
        Returns False when the account's counter is not loaded (the next load includes the entry)."""
        ...

    async def available(self, account_id: str) -> int | None:
        """The balance minus reservations in flight, or None when not loaded."""
        ...

    async def reserved(self, account_id: str, max_age_s: float | None = None) -> int:
        """Money held by reservations still open (older than ``max_age_s``: dropped, not counted)."""
        ...

    async def set_balance(self, account_id: str, available_pusd: int) -> None:
        """Overwrite the counter (reconciliation)."""
        ...

    async def free_used(self, account_id: str, model: str, day: int) -> int: ...

    async def claim_alert(self, account_id: str, threshold_pusd: int) -> bool:
        """True exactly once per crossing of ``threshold_pusd`` (re-armed by ``rearm_alerts``)."""
        ...

    async def rearm_alerts(self, account_id: str, balance_pusd: int) -> None: ...

    async def ready_at(self) -> float | None:
        """Seconds until the counters may be used (0 when ready); None when the store has lost its data
        (a restart with no persistence) or was never set up: see ``arm``."""
        ...

    async def arm(self, grace_s: float) -> None:
        """After a data loss, allow admissions again ``grace_s`` from now (the first caller wins)."""
        ...

    async def close(self) -> None: ...


def rate_limited(scope: str, what: str, limit: int, retry_after_s: float) -> RateLimited:
    return RateLimited(f"Rate limit reached for {scope}: {limit} {what} per minute. "
                       f"Try again in {retry_after_s:.0f} s.", retry_after_s=max(1.0, retry_after_s))


def insufficient(available_pusd: int, needed_pusd: int) -> InsufficientBalance:
    from perilune.accounting.pricing import from_pico

    return InsufficientBalance(
        f"Insufficient balance: this request may cost up to ${from_pico(needed_pusd)} and the account has "
        f"${from_pico(max(available_pusd, 0))} available. Top up, or lower max_tokens.")


MIN_FLEXIBLE_OUT = 16  # with no max_tokens given, fewer affordable output tokens than this is a 402
