"""One contract suite for every limiter backend: in-memory and Redis (the real server)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from perilune.errors import InsufficientBalance, LimitsUnavailable, RateLimited
from perilune.limits.base import NO_LIMITS, Ask, Limiter, Limits, Ticket
from perilune.limits.memory import MemoryLimiter
from perilune.limits.redis import RedisLimiter
from tests.services import fresh_redis

BALANCES: dict[str, int] = {}
INCLUDED: dict[str, list[str]] = {}
_ids = itertools.count()


async def loader(account_id: str) -> tuple[int, list[str]]:
    return BALANCES.get(account_id, 0), INCLUDED.get(account_id, [])


async def redis_limiter() -> RedisLimiter:
    # a prefix of its own: gateways of other tests still running on this Redis database cannot interfere
    lim = RedisLimiter(fresh_redis(), prefix=f"t{next(_ids)}:")
    await lim.arm(0)  # a fresh Redis: no instance has charges to contribute
    return lim


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    BALANCES.clear()
    INCLUDED.clear()
    lim: Limiter = MemoryLimiter() if request.param == "memory" else await redis_limiter()
    yield lim
    await lim.close()


def ask(account: str = "a1", key: str | None = "k1", *, tokens: int = 10, cost: int = 100,
        key_limits: Limits = NO_LIMITS, account_limits: Limits = NO_LIMITS, free_quota: int = 0,
        enforce: bool = True, out_tokens: int = 0, out_price: int = 0, flexible: bool = False,
        min_out: int = 1) -> Ask:
    return Ask(account_id=account, key_id=key, key_limits=key_limits, account_limits=account_limits,
               in_tokens=tokens, in_cost_pusd=cost, out_tokens=out_tokens, out_price_pusd=out_price,
               flexible=flexible, min_out=min_out, request_id=f"req_{next(_ids)}",
               free_model="m" if free_quota else None, free_quota=free_quota, enforce_balance=enforce)


async def test_requests_per_minute_per_key_and_account(limiter: Limiter) -> None:
    BALANCES["a1"] = 10**9
    acct = Limits(rpm=5)
    for _ in range(3):
        await limiter.admit(ask(key_limits=Limits(rpm=3), account_limits=acct), loader)
    with pytest.raises(RateLimited, match="this key") as e:
        await limiter.admit(ask(key_limits=Limits(rpm=3), account_limits=acct), loader)
    assert 0 < (e.value.retry_after_s or 0) <= 60
    await limiter.admit(ask(key="k2", key_limits=Limits(rpm=3), account_limits=acct), loader)
    await limiter.admit(ask(key="k3", account_limits=acct), loader)
    with pytest.raises(RateLimited, match="this account"):  # 3 + 1 + 1 requests of the account so far
        await limiter.admit(ask(key="k4", account_limits=acct), loader)


async def test_tokens_per_minute_reserve_then_settle(limiter: Limiter) -> None:
    BALANCES["a1"] = 10**9
    lim = Limits(tpm=100)
    t1 = await limiter.admit(ask(tokens=60, key_limits=lim), loader)
    with pytest.raises(RateLimited, match="tokens"):
        await limiter.admit(ask(tokens=60, key_limits=lim), loader)
    await limiter.settle(t1, 20, 50)  # really used 20: 80 tokens free again
    t2 = await limiter.admit(ask(tokens=60, key_limits=lim), loader)
    await limiter.release(t2)
    await limiter.admit(ask(tokens=80, key_limits=lim), loader)


async def test_balance_reserve_settle_and_402(limiter: Limiter) -> None:
    BALANCES["a1"] = 1000
    t1 = await limiter.admit(ask(cost=600), loader)
    assert await limiter.available("a1") == 400
    with pytest.raises(InsufficientBalance):
        await limiter.admit(ask(cost=600), loader)
    settled = await limiter.settle(t1, 10, 250)
    assert settled.balance_pusd == 750
    t2 = await limiter.admit(ask(cost=600), loader)
    await limiter.release(t2)
    assert await limiter.available("a1") == 750


async def test_settling_twice_changes_nothing(limiter: Limiter) -> None:
    BALANCES["a1"] = 1000
    t = await limiter.admit(ask(cost=600), loader)
    await limiter.settle(t, 10, 250)
    await limiter.settle(t, 10, 250)  # a retry after a lost reply
    await limiter.release(t)
    assert await limiter.available("a1") == 750


async def test_settle_many_in_order_and_idempotent(limiter: Limiter) -> None:
    BALANCES["a1"] = 10_000
    tickets = [await limiter.admit(ask(cost=1000), loader) for _ in range(5)]
    assert await limiter.available("a1") == 5000
    never_admitted = Ticket(ask(cost=1000), 0, 0, False, 0)  # a release by id for an admission that never ran
    batch = [(t, 10, 400) for t in tickets[:3]] + [(never_admitted, 0, 0)]
    settled = await limiter.settle_many(batch)
    assert len(settled) == 4 and settled[2].balance_pusd == 10_000 - 2 * 1000 - 3 * 400
    again = await limiter.settle_many([*batch, (tickets[3], 0, 0)])  # sent again after a lost reply
    assert len(again) == 5 and again[0].balance_pusd == 10_000 - 2 * 1000 - 3 * 400  # nothing settled twice
    assert again[4].balance_pusd == 10_000 - 1000 - 3 * 400  # tickets[3] released, in order
    assert await limiter.available("a1") == 10_000 - 1000 - 3 * 400  # only tickets[4] still held


async def test_charge_never_above_the_reservation(limiter: Limiter) -> None:
    BALANCES["a1"] = 100
    t = await limiter.admit(ask(cost=80), loader)
    await limiter.settle(t, 10, 150)  # more than reserved: only the reservation is taken
    assert await limiter.available("a1") == 20


async def test_output_limit_lowered_to_what_the_balance_covers(limiter: Limiter) -> None:
    BALANCES["a1"] = 1000
    flexible = ask(cost=100, out_tokens=500, out_price=10, flexible=True, min_out=16)
    t = await limiter.admit(flexible, loader)
    assert (t.out_tokens, t.reserved_pusd) == (90, 1000)  # 100 + 90 * 10
    await limiter.release(t)
    with pytest.raises(InsufficientBalance):  # an explicit max_tokens is never lowered
        await limiter.admit(ask(cost=100, out_tokens=500, out_price=10), loader)
    BALANCES["a2"] = 200
    with pytest.raises(InsufficientBalance):  # fewer than min_out tokens affordable
        await limiter.admit(ask(account="a2", cost=100, out_tokens=500, out_price=10, flexible=True,
                                min_out=16), loader)
    t = await limiter.admit(ask(cost=100, out_tokens=50, out_price=10, flexible=True), loader)
    assert t.out_tokens == 50  # the whole limit fits: nothing lowered


async def test_concurrent_admits_never_overdraw(limiter: Limiter) -> None:
    BALANCES["a1"] = 10_000

    async def one() -> int:
        try:
            t = await limiter.admit(ask(cost=300), loader)
        except InsufficientBalance:
            return 0
        await asyncio.sleep(0)
        await limiter.settle(t, 5, 170)
        return 170

    charged = await asyncio.gather(*(one() for _ in range(200)))
    left = await limiter.available("a1")
    assert left is not None and left >= 0
    assert left == 10_000 - sum(charged)
    assert sum(1 for c in charged if c) >= 10_000 // 300


async def test_free_quota_before_balance(limiter: Limiter) -> None:
    BALANCES["a1"] = 0
    t = await limiter.admit(ask(tokens=60, free_quota=100), loader)
    assert t.free and t.reserved_pusd == 0
    await limiter.settle(t, 40, 0)
    assert await limiter.free_used("a1", "m", t.day) == 40
    t2 = await limiter.admit(ask(tokens=60, free_quota=100), loader)  # 40 + 60 <= 100
    assert t2.free
    with pytest.raises(InsufficientBalance):  # quota exhausted, balance empty
        await limiter.admit(ask(tokens=60, free_quota=100), loader)


async def test_ledger_entries_apply_exactly_once(limiter: Limiter) -> None:
    assert await limiter.apply_ledger("a1", "le_1", 500) is False  # not loaded: the load will include it
    BALANCES["a1"] = 0
    t = await limiter.admit(ask(cost=0), loader)  # loads the balance
    await limiter.settle(t, 0, 0)
    assert await limiter.apply_ledger("a1", "le_2", 500)
    assert await limiter.apply_ledger("a1", "le_2", 500)
    assert await limiter.available("a1") == 500


async def test_alert_claimed_once_until_rearmed(limiter: Limiter) -> None:
    assert await limiter.claim_alert("a1", 5000)
    assert not await limiter.claim_alert("a1", 5000)
    await limiter.rearm_alerts("a1", 4000)
    assert not await limiter.claim_alert("a1", 5000)
    await limiter.rearm_alerts("a1", 6000)
    assert await limiter.claim_alert("a1", 5000)


async def test_unenforced_balance_only_counts(limiter: Limiter) -> None:
    t = await limiter.admit(ask(cost=10**12, enforce=False), loader)
    assert (await limiter.settle(t, 1, 7)).balance_pusd is None


async def test_redis_rebuild_takes_in_charges_the_database_lacks() -> None:
    BALANCES["r1"], INCLUDED["r1"] = 1000, []
    lim = await redis_limiter()
    t = await lim.admit(ask(account="r1", cost=300), loader)
    await lim.redis.flushdb()  # Redis restarted empty while the request was in flight
    with pytest.raises(LimitsUnavailable):  # admissions wait until the instances have contributed
        await lim.admit(ask(account="r1", cost=300), loader)
    assert (await lim.settle(t, 1, 100)).stale  # the old counter is gone: the charge must be contributed
    await lim.contribute("r1", t.ask.request_id, 100)
    await lim.arm(0)
    t2 = await lim.admit(ask(account="r1", cost=300), loader)  # rebuilt: 1000 in the database - 100 queued
    assert await lim.available("r1") == 600
    await lim.release(t2)
    assert await lim.available("r1") == 900
    await lim.contribute("r1", t.ask.request_id, 100)  # contributing twice changes nothing
    assert await lim.available("r1") == 900
    await lim.close()


async def test_redis_rebuild_skips_charges_the_database_has() -> None:
    lim = await redis_limiter()
    await lim.contribute("r2", "req_x", 100)  # contributed before the counter existed ...
    BALANCES["r2"], INCLUDED["r2"] = 900, ["c:req_x"]  # ... and its record reached the database meanwhile
    t = await lim.admit(ask(account="r2", cost=0), loader)
    await lim.release(t)
    assert await lim.available("r2") == 900
    await lim.close()
