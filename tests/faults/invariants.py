"""The promises checked after every fault, from outside (the database, Redis, the HTTP API, the CLI):

1. every request that got a response (any status) has exactly one usage record with its x-request-id;
2. no response and no record has status 500;
3. a request that cost something was charged exactly that (charged_pusd == total_cost_pusd, never NULL)
   unless the free tier paid; a served request (HTTP 200) has a non-NULL charge;
4. the ledger balance (ledger entries - charges) of every account is never negative;
5. once the load is over the live balance in Redis comes to equal the ledger by itself (no settlement
   lost, no reservation left behind); after ``perilune ledger check --repair`` the live balance (Redis,
   and /v1/balance on every live gateway) equals the ledger balance, and stays equal.

Failures are collected, not raised one by one, so that one run shows every broken promise.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from tests.faults.cluster import Account, Cluster, log, usd
from tests.faults.load import Result, summary

RECORDS_TIMEOUT_S = 25.0
SHOWN = 8  # ids listed per failure


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def fail(self, msg: str) -> None:
        self.failures.append(msg)

    def note(self, msg: str) -> None:
        self.notes.append(msg)

    def check(self) -> None:
        if self.failures:
            raise AssertionError("broken invariants:\n- " + "\n- ".join(self.failures) + "\n" + "\n".join(self.notes))


def _ids(rs: list[Any]) -> str:
    shown = ", ".join(str(r) for r in rs[:SHOWN])
    return f"[{shown}{', ...' if len(rs) > SHOWN else ''}]"


def wait_records(cluster: Cluster, ids: list[str], timeout_s: float = RECORDS_TIMEOUT_S) -> dict[str, dict[str, Any]]:
    """Poll until every id has a record or the deadline passes; returns what is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = cluster.records(ids)
        if len(found) == len(set(ids)) or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def check_records(cluster: Cluster, results: list[Result], v: Verdict, *, max_no_response: int = 0) -> None:
    """Invariants 1-3 for these requests."""
    v.note(f"requests: {summary(results)}")
    answered = [r for r in results if r.request_id]
    silent = [r for r in results if not r.request_id]
    if len(silent) > max_no_response:
        v.fail(f"{len(silent)} requests got no response at all (allowed: {max_no_response}): {_ids(silent)}")
    http500 = [r for r in answered if r.status == 500]
    if http500:
        v.fail(f"{len(http500)} responses with HTTP status 500: {_ids(http500)}")
    log.info("waiting for the records of %d answers", len(answered))
    records = wait_records(cluster, [r.request_id for r in answered if r.request_id])
    log.info("%d of %d records found", len(records), len(answered))
    v.records.update(records)
    missing = [r for r in answered if r.request_id not in records]
    served_missing = [r for r in missing if r.status == 200]
    if served_missing:
        v.fail(f"{len(served_missing)} served requests (HTTP 200) without a usage record: {_ids(served_missing)}")
    if missing:
        v.note(f"usage writers when the records were missing: {cluster.writers()}")
    if len(missing) > len(served_missing):
        others = [r for r in missing if r.status != 200]
        v.fail(f"{len(others)} answered requests (non-200) without a usage record: {_ids(others)}")
    by_id = {r.request_id: r for r in answered}
    v.note("record statuses: " + ", ".join(f"{s} x {n}" for s, n in
                                             sorted(Counter(rec["status"] for rec in records.values()).items())))
    rec500 = [f"{i} ({rec['error_type']}, charged {rec['charged_pusd']})" for i, rec in records.items()
              if rec["status"] == 500]
    if rec500:
        v.fail(f"{len(rec500)} usage records with status 500: {_ids(rec500)}")
    never_charged = [f"{i} (status {rec['status']}, cost {rec['total_cost_pusd']})" for i, rec in records.items()
                     if rec["charged_pusd"] is None and (rec["total_cost_pusd"] is not None or
                                                         (by_id[i].status == 200 and not by_id[i].hung_up))]
    if never_charged:
        v.fail(f"{len(never_charged)} requests that cost something or were served and never charged "
               f"(charged_pusd NULL): {_ids(never_charged)}")
    off = [(i, rec) for i, rec in records.items()
           if rec["charged_pusd"] is not None and rec["total_cost_pusd"] is not None and not rec["free_tokens"]
           and rec["charged_pusd"] != rec["total_cost_pusd"]]
    if off:
        written_off = sum(rec["total_cost_pusd"] - rec["charged_pusd"] for _, rec in off)
        v.fail(f"{len(off)} requests charged other than their cost (written off in total: {usd(written_off)}): "
               + _ids([f"{i} (status {rec['status']}, cost {rec['total_cost_pusd']}, charged {rec['charged_pusd']})"
                       for i, rec in off]))
    phantom = [f"{i} (status {rec['status']}, charged {rec['charged_pusd']})" for i, rec in records.items()
               if rec["total_cost_pusd"] is None and (rec["charged_pusd"] or 0) > 0]
    if phantom:
        v.fail(f"{len(phantom)} requests charged without a cost: {_ids(phantom)}")


def check_ledger(cluster: Cluster, accounts: list[Account], v: Verdict, *, repair: bool = True) -> None:
    """Invariants 4-5 for these accounts."""
    for a in accounts:
        bal = cluster.ledger_balance(a.id)
        v.note(f"account {a.id}: credit {usd(a.credit_pusd)}, ledger balance {usd(bal)}, "
               f"Redis before repair {usd(cluster.redis_balance(a.id))}")
        if bal < 0:
            v.fail(f"account {a.id}: ledger balance is negative: {usd(bal)} (credit {usd(a.credit_pusd)})")
    if not repair:
        return
    out = cluster.ledger_check(repair=True)
    said = [ln.strip(" │╭╮╰╯─") for ln in (out.stdout + out.stderr).splitlines()]
    said = [ln for ln in said if ln]
    v.note(f"`perilune ledger check --repair` exited {out.returncode}: " + " / ".join(said[-12:]))
    if out.returncode != 0:
        v.fail(f"`perilune ledger check --repair` failed (exit {out.returncode}): " + " / ".join(said[-3:]))
        if "No such command" in out.stderr:
            return
    for attempt in range(2):  # right after the repair, and again a little later: repaired for good
        if attempt:
            time.sleep(1.5)
        for a in accounts:
            ledger = cluster.ledger_balance(a.id)
            live = cluster.redis_balance(a.id)
            if live is not None and live != ledger:
                v.fail(f"account {a.id}: after repair (+{1.5 * attempt:.1f} s) Redis balance {usd(live)} != "
                       f"ledger {usd(ledger)}")
            for node in cluster.live:
                api = cluster.api_balance(node, a)
                if api != ledger:
                    v.fail(f"account {a.id}: after repair (+{1.5 * attempt:.1f} s) {node.name} /v1/balance says "
                           f"{usd(api)}, ledger {usd(ledger)}")


def check_converged(cluster: Cluster, accounts: list[Account], v: Verdict, timeout_s: float) -> None:
    """Before any repair: the live balance in Redis comes to equal the ledger by itself once the load is
    over (settlements kept through a fault are applied, reservations released: issue 8, item 3)."""
    deadline = time.monotonic() + timeout_s
    for a in accounts:
        while True:
            ledger, live = cluster.ledger_balance(a.id), cluster.redis_balance(a.id)
            if live is None or live == ledger:
                break
            if time.monotonic() > deadline:
                v.fail(f"account {a.id}: without a repair the live balance stays {usd(live)} against a ledger "
                       f"balance of {usd(ledger)} (drift {usd(live - ledger)}) {timeout_s:.0f} s after the load: "
                       "settlements lost or reservations never released")
                v.note(cluster.open_reservations(a.id))
                break
            time.sleep(0.25)


def check_all(cluster: Cluster, results: list[Result], accounts: list[Account], *, max_no_response: int = 0,
              repair: bool = True, converge_s: float = 10.0) -> Verdict:
    v = Verdict()
    check_records(cluster, results, v, max_no_response=max_no_response)
    check_converged(cluster, accounts, v, converge_s)
    check_ledger(cluster, accounts, v, repair=repair)
    return v


@contextlib.asynccontextmanager
async def watch_ledger(cluster: Cluster, accounts: list[Account],
                       every_s: float = 0.3) -> AsyncIterator[dict[str, int]]:
    """While the block runs, sample each account's ledger balance; yields {account: lowest seen}."""
    lowest: dict[str, int] = {}
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            for a in accounts:
                with contextlib.suppress(psycopg.Error, OSError):  # a sample lost, never the scenario
                    bal = await asyncio.to_thread(cluster.ledger_balance, a.id)
                    lowest[a.id] = min(bal, lowest.get(a.id, bal))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    task = asyncio.create_task(sample())
    try:
        yield lowest
    finally:
        stop.set()
        await task


def check_lowest(lowest: dict[str, int], v: Verdict) -> None:
    for account, bal in lowest.items():
        if bal < 0:
            v.fail(f"account {account}: the ledger balance went negative during the load: {usd(bal)}")
