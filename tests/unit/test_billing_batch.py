"""Redis-mode settlements are batched: the settlements of a short window share one round trip, none is
lost or applied twice, a batch the limiter refuses waits in the outbox, and stop() sends what is due."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal as D
from pathlib import Path

from perilune.accounting.billing import SETTLE_WINDOW_S, Billing, Charge
from perilune.accounting.catalog import ModelInfo, Price
from perilune.accounting.ledger import Accountant
from perilune.errors import LimitsUnavailable
from perilune.gateway.auth import Principal
from perilune.limits.base import Settled, Ticket
from perilune.limits.memory import MemoryLimiter
from perilune.schema.canonical import Usage
from tests.unit.test_ledger_refresh import FakeLedger

MODEL = ModelInfo(id="m", name="m", vendor="v", providers=("p",), kind="chat", context=None, max_output_tokens=100,
                  price=Price(input=D("1"), output=D("4")), input_modalities=("text",), output_modalities=("text",),
                  supported_parameters=(), reasoning=False, release_date=None, description="")


class RemoteCounting(MemoryLimiter):
    """The in-process limiter posing as a remote one, counting its round trips."""

    remote = True

    def __init__(self) -> None:
        super().__init__()
        self.trips: list[int] = []  # settlements per round trip
        self.down = False

    async def settle(self, ticket: Ticket, tokens: int, charged_pusd: int) -> Settled:
        return (await self.settle_many([(ticket, tokens, charged_pusd)]))[0]

    async def settle_many(self, items: Sequence[tuple[Ticket, int, int]]) -> list[Settled]:
        if self.down:
            raise LimitsUnavailable("down")
        self.trips.append(len(items))
        return [await MemoryLimiter.settle(self, t, tokens, c) for t, tokens, c in items]


async def setup(tmp_path: Path) -> tuple[Billing, RemoteCounting]:
    limiter = RemoteCounting()
    await limiter.set_balance("a1", 10**12)
    billing = Billing(limiter, Accountant(limiter, FakeLedger()), tmp_path)  # type: ignore[arg-type]
    return billing, limiter


async def serve_and_settle(billing: Billing, n: int, first: int = 0) -> None:
    who = Principal(key_id="k1", account_id="a1", role="user")
    for i in range(first, first + n):
        res = await billing.reserve(who, MODEL, reservation_id=f"r{i}", prompt_tokens=10, max_output=50)
        await billing.settle(res, Usage(input_tokens=10, output_tokens=5), Charge(1000, 0))


async def test_a_burst_of_settlements_is_one_round_trip(tmp_path: Path) -> None:
    billing, limiter = await setup(tmp_path)
    await serve_and_settle(billing, 20)
    assert limiter.trips == []  # nothing sent yet: the window is open
    await asyncio.sleep(SETTLE_WINDOW_S * 4)
    assert limiter.trips == [20]
    assert await limiter.available("a1") == 10**12 - 20 * 1000  # every reservation replaced by its charge
    assert await limiter.reserved("a1") == 0


async def test_stop_sends_what_is_due(tmp_path: Path) -> None:
    billing, limiter = await setup(tmp_path)
    await serve_and_settle(billing, 3)
    await billing.stop(timeout_s=1.0)
    assert limiter.trips == [3] and await limiter.reserved("a1") == 0


async def test_a_refused_batch_waits_in_the_outbox_and_lands_once(tmp_path: Path) -> None:
    billing, limiter = await setup(tmp_path)
    limiter.down = True
    await serve_and_settle(billing, 5)
    await asyncio.sleep(SETTLE_WINDOW_S * 4)
    assert limiter.trips == [] and (tmp_path / billing.outbox_path.name).exists()
    limiter.down = False
    await billing.stop(timeout_s=1.0)  # drains the outbox
    assert sum(limiter.trips) == 5
    assert await limiter.available("a1") == 10**12 - 5 * 1000 and await limiter.reserved("a1") == 0
