"""Redis faults under load: the connection cut for ~6 s then healed (b); Redis flushed (a restart with no
data) while an account is being driven to zero (c). New requests get a 503 `limits_unavailable`, never a
500; no settlement is lost; the ledger never goes below zero; the repair makes the counters exact."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.conftest import MakeCluster
from tests.faults.invariants import Verdict, check_all, check_lowest, watch_ledger
from tests.faults.load import Driver, Result, Spec

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.redis]

PACED = (("x-sim-chunk-delay-ms", "25"), ("x-sim-output-tokens", "16"))  # ~0.4 s per answer


def mix(i: int) -> Spec:
    dialect = "openai" if i % 2 == 0 else "anthropic"
    model = "sim-claude" if i % 6 == 3 else "sim-gpt"
    stream = i % 3 != 0
    return Spec(dialect, model, stream=stream, sdk=i % 5 == 4, max_tokens=16, sim=PACED,
                hangup_after=2 if stream and i % 11 == 10 else None)


def check_refusals(results: list[Result], v: Verdict) -> None:
    """Refused for a Redis fault: a 503 with code limits_unavailable (the Anthropic envelope has no code:
    any 5xx there must at least not be a 500, which check_records covers)."""
    odd = [r for r in results if r.status is not None and r.status >= 500 and r.spec.dialect == "openai"
           and r.code != "limits_unavailable"]
    if odd:
        v.fail(f"{len(odd)} OpenAI-dialect 5xx answers without code limits_unavailable: "
               + "; ".join(f"{r} code={r.code} {r.body[:150]!r}" for r in odd[:6]))


async def recovered(driver: Driver, nodes: int, timeout_s: float = 15.0) -> list[Result]:
    """After the fault: each gateway serves again within timeout_s (the probes are checked too)."""
    probes: list[Result] = []
    for node in range(nodes):
        deadline = time.monotonic() + timeout_s
        while True:
            r = await driver.send(Spec("openai", "sim-gpt", max_tokens=8), node)
            probes.append(r)
            if r.status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
    return probes


@pytest.mark.timeout(150)
async def test_b_redis_cut_for_six_seconds_under_load(make_cluster: MakeCluster) -> None:
    c = make_cluster()
    acct = c.account("50", "redis-cut")
    async with Driver([n.url for n in c.live], acct.key) as driver, watch_ledger(c, [acct]) as lowest:
        load = asyncio.create_task(driver.run(mix, concurrency=20, duration_s=12))
        await asyncio.sleep(2)
        await asyncio.to_thread(c.redis.cut)
        before = len(driver.results)
        await asyncio.sleep(6)
        during = driver.results[before:]
        await asyncio.to_thread(c.redis.heal)
        results = await load
        probes = await recovered(driver, len(c.live))
    v = check_all(c, results + probes, [acct])
    check_lowest(lowest, v)
    check_refusals(results, v)
    if not any(r.status == 503 for r in during):
        v.fail(f"the cut was not noticed: no 503 among the {len(during)} answers during it")
    stuck = [p for p in probes if p.status != 200]
    if stuck and stuck[-1].status != 200:
        v.fail(f"a gateway did not serve again within 15 s of Redis healing: {stuck[-1]}")
    v.check()


@pytest.mark.timeout(150)
async def test_c_redis_flushed_mid_load_with_an_account_near_zero(make_cluster: MakeCluster) -> None:
    # $10 / $20 per million: an answer costs ~$0.0004, so $0.02 lasts a few dozen requests
    c = make_cluster(tables='[models."sim-gpt"]\nprice = { input = "10", output = "20" }\n')
    acct = c.account("0.02", "redis-flush")
    async with Driver([n.url for n in c.live], acct.key) as driver, watch_ledger(c, [acct], every_s=0.1) as lowest:
        def near_zero(i: int) -> Spec:
            return Spec("openai" if i % 2 == 0 else "anthropic", "sim-gpt", stream=i % 3 != 0, sdk=i % 5 == 4,
                        max_tokens=16, sim=(("x-sim-chunk-delay-ms", "50"), ("x-sim-output-tokens", "16")))

        load = asyncio.create_task(driver.run(near_zero, concurrency=8, duration_s=8))
        deadline = time.monotonic() + 8
        while sum(r.status == 200 for r in driver.results) < 12 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        served_before = sum(r.status == 200 for r in driver.results)
        await asyncio.to_thread(c.flush_redis)  # charges still in flight or queued, and a balance rebuilt
        results = await load
    v = check_all(c, results, [acct])
    check_lowest(lowest, v)
    v.note(f"Redis flushed after {served_before} served requests")
    if not any(r.status == 402 for r in results):
        v.fail("the scenario did not reach zero: no request was refused for the balance (402)")
    v.check()
