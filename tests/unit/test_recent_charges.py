"""Billing's memory of recent charges (contributed again when Redis loses its data): oldest first,
forgotten by age, compacted without losing or reordering what is kept."""

from __future__ import annotations

from perilune.accounting.billing import RecentCharges


def test_keeps_the_charges_after_the_cutoff_in_order() -> None:
    r = RecentCharges()
    for i in range(10):
        r.add(float(i), f"acct{i % 2}", f"req{i}", 1000 + i)
    r.forget_before(3.0)  # drops 3 of 10: not compacted yet
    assert len(r) == 7 and [c for _, c, _ in r] == [f"req{i}" for i in range(3, 10)]
    r.forget_before(6.5)  # more than half forgotten: compacted
    assert list(r) == [("acct1", "req7", 1007), ("acct0", "req8", 1008), ("acct1", "req9", 1009)]
    r.add(11.0, "acct0", "req11", 5)
    r.forget_before(0.0)
    assert len(r) == 4 and list(r)[-1] == ("acct0", "req11", 5)
    r.forget_before(100.0)
    assert len(r) == 0 and list(r) == []
