"""The accountant's refresh: new ledger entries reach the counters once; entries still inside the
overlapping look-back window are not handed to the limiter again at every look."""

from __future__ import annotations

from perilune.accounting.ledger import Accountant
from perilune.limits.memory import MemoryLimiter
from perilune.store.ledger import AccountSettings


class FakeLedger:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, int]] = []
        self.settings: list[AccountSettings] = []

    def account_settings(self, since: float = 0.0) -> list[AccountSettings]:
        return [s for s in self.settings if s.updated_at >= since]

    def entries_since(self, since: float) -> list[tuple[str, str, int]]:
        return list(self.entries)  # everything is inside the window here


class CountingLimiter(MemoryLimiter):
    def __init__(self) -> None:
        super().__init__()
        self.applied: list[str] = []

    async def apply_ledger(self, account_id: str, entry_id: str, amount_pusd: int) -> bool:
        self.applied.append(entry_id)
        return await super().apply_ledger(account_id, entry_id, amount_pusd)


async def test_entries_are_applied_once_across_overlapping_looks() -> None:
    store, limiter = FakeLedger(), CountingLimiter()
    acc = Accountant(limiter, store)  # type: ignore[arg-type]
    await limiter.set_balance("a1", 100)
    store.entries = [("e1", "a1", 50), ("e2", "unloaded", 7)]
    await acc.refresh()
    await acc.refresh()
    assert await limiter.available("a1") == 150
    # e1 was applied at the first look and not offered again; e2's account has no counter yet, so it is
    # offered at every look until one exists (then applied once)
    assert limiter.applied == ["e1", "e2", "e2"]
    await limiter.set_balance("unloaded", 0)
    store.entries.append(("e3", "a1", -20))
    await acc.refresh()
    await acc.refresh()
    assert limiter.applied == ["e1", "e2", "e2", "e2", "e3"]
    assert (await limiter.available("a1"), await limiter.available("unloaded")) == (130, 7)


async def test_settings_are_picked_up() -> None:
    store, limiter = FakeLedger(), CountingLimiter()
    acc = Accountant(limiter, store)  # type: ignore[arg-type]
    store.settings = [AccountSettings("a1", 60, None, (), None, 1.0)]
    await acc.refresh()
    got = acc.account("a1")
    assert got is not None and got.rpm_limit == 60
