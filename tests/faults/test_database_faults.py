"""PostgreSQL silent (packets held), then only new connections restored (d): the gateways keep serving,
spool the usage records they cannot write, `/ready` recovers as soon as the database answers again,
and a SIGTERM while the database is silent ends within the grace period with every record written or
spooled; the spool is replayed afterwards."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.faults.cluster import Cluster, settings_field, utc
from tests.faults.conftest import GRACE_S, MakeCluster, grace_config
from tests.faults.invariants import Verdict, check_all, check_records, wait_records
from tests.faults.load import Driver, Spec

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.redis]

HOLD_S = 7.0
DB_TIMEOUT_FIELD = settings_field("database_timeout_s")
DB_TIMEOUT = f"{DB_TIMEOUT_FIELD} = 3\n" if DB_TIMEOUT_FIELD else ""  # seconds: spooling starts well inside the hold


def mix(i: int) -> Spec:
    return Spec("openai" if i % 2 == 0 else "anthropic", "sim-claude" if i % 4 == 3 else "sim-gpt",
                stream=i % 3 != 0, sdk=i % 5 == 4, max_tokens=16, timeout_s=12.0,
                sim=(("x-sim-chunk-delay-ms", "20"), ("x-sim-output-tokens", "12")))


async def hold_mid_transaction(c: Cluster, v: Verdict) -> None:
    """Hold PostgreSQL right after a usage writer sent the rollup upsert of a batch not yet committed:
    the worst moment, when the silent session keeps its transaction (and row locks) open on the server.
    Without plain-text traffic to match (TLS), a plain hold after 5 s."""
    await asyncio.to_thread(c.pg.hold_when, b"INSERT INTO usage_rollups")
    deadline = time.monotonic() + 5
    while not c.pg.holding and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    caught = c.pg.holding
    if not caught:
        await asyncio.to_thread(c.pg.hold)
    v.note(f"phase 1: PostgreSQL held at {utc()} ({'in the middle of a usage batch' if caught else 'plain hold'})")


async def ready_status(url: str) -> int | None:
    try:
        async with httpx.AsyncClient(timeout=3.0) as client:
            return (await client.get(url + "/ready")).status_code
    except httpx.HTTPError:
        return None


async def watch_spool(c: Cluster, seconds: float) -> tuple[int, dict[str, list[int | None]]]:
    """For `seconds`: the largest spool seen (sampled every 0.25 s) and each gateway's /ready answers."""
    biggest = 0
    ready: dict[str, list[int | None]] = {n.name: [] for n in c.live}
    deadline = time.monotonic() + seconds

    async def spool() -> None:
        nonlocal biggest
        while time.monotonic() < deadline:
            biggest = max(biggest, await asyncio.to_thread(c.spool_bytes))
            await asyncio.sleep(0.25)

    async def probe(url: str, seen: list[int | None]) -> None:
        while time.monotonic() < deadline:
            seen.append(await ready_status(url))
            await asyncio.sleep(0.5)

    await asyncio.gather(spool(), *(probe(n.url, ready[n.name]) for n in c.live))
    return biggest, ready


async def ready_again(c: Cluster, timeout_s: float, v: Verdict) -> None:
    started = time.monotonic()
    for n in c.live:
        while (status := await ready_status(n.url)) != 200:
            if time.monotonic() - started > timeout_s:
                v.fail(f"{n.name}: /ready still answers {status} {timeout_s:.0f} s after PostgreSQL took new "
                       "connections again")
                break
            await asyncio.sleep(0.25)
    v.note(f"/ready recovered on every gateway {time.monotonic() - started:.1f} s after the heal")


@pytest.mark.timeout(200)
async def test_d_postgres_silent_then_new_connections_only(make_cluster: MakeCluster) -> None:
    c = make_cluster(top=grace_config() + DB_TIMEOUT)
    acct = c.account("50", "pg-silent")
    v = Verdict()
    async with Driver([n.url for n in c.live], acct.key) as driver:
        # phase 1: a silent database while serving, then only new connections get through
        load = asyncio.create_task(driver.run(mix, concurrency=8, duration_s=HOLD_S + 4))
        await asyncio.sleep(2)
        await hold_mid_transaction(c, v)
        spooled, ready = await watch_spool(c, HOLD_S)
        await asyncio.to_thread(c.pg.heal_new_only)
        v.note(f"phase 1: new connections only restored at {utc()}")
        await ready_again(c, 15.0, v)
        first = await load
        counted = await asyncio.to_thread(c.spooled_total)
        v.note(f"during the hold: largest spool seen {spooled} bytes, {counted} records spooled by the "
               f"gateways' count; /ready answers {ready}")
        served_in_hold = sum(r.status == 200 for r in first)
        if served_in_hold and not spooled and not counted:
            v.fail(f"nothing was spooled while PostgreSQL was silent for {HOLD_S:.0f} s "
                   f"({served_in_hold} requests served in phase 1)")
        check_records(c, first, v)
        late = [r.request_id for r in first if r.request_id and r.request_id not in v.records]
        if late:
            spooled_now = set().union(*(c.spooled_ids(n) for n in c.live))
            v.note(f"phase 1: of the {len(late)} answers without a record, {len(spooled_now & set(late))} are in a "
                   "spool file (spooled, not replayed); the others are in no spool file (in memory, or lost)")
            v.note(f"phase 1: database sessions now: {c.sessions()}")

        # phase 2: silent again, and SIGTERM to the first gateway while its records cannot be written
        await asyncio.to_thread(c.pg.hold)
        v.note(f"phase 2: PostgreSQL held at {utc()}")
        gw0 = c.nodes[0]
        second = await driver.run(mix, concurrency=6, duration_s=3, nodes=[0])
    took = await asyncio.to_thread(gw0.sigterm, GRACE_S + 25)
    if took is None:
        v.fail(f"gw0 was still running {GRACE_S + 25:.0f} s after SIGTERM (grace {GRACE_S:.0f} s); killed")
    elif took > GRACE_S + 3:
        v.fail(f"gw0 took {took:.1f} s to stop after SIGTERM; the grace period is {GRACE_S:.0f} s")
    v.note(f"gw0 stopped {took} s after SIGTERM")
    answered = [r for r in second if r.request_id]
    written = await asyncio.to_thread(c.records, [r.request_id for r in answered if r.request_id])
    spooled_ids = c.spooled_ids(gw0)
    lost = [r for r in answered if r.request_id not in written and r.request_id not in spooled_ids]
    if lost:
        v.fail(f"{len(lost)} of {len(answered)} answers of gw0 neither written nor spooled at its exit: "
               + "; ".join(str(r) for r in lost[:8]))
    v.note(f"at gw0's exit: {len(written)} records written, {len(spooled_ids)} in its spool")

    # the database answers again; a gateway started on gw0's home replays its spool
    await asyncio.to_thread(c.pg.heal)
    await asyncio.to_thread(c.start_node, "gw0-again", gw0.home)
    await asyncio.to_thread(wait_records, c, [r.request_id for r in answered if r.request_id])
    final = check_all(c, first + second, [acct])  # by now every record of both phases is in the database
    v.failures += final.failures
    v.notes += final.notes
    v.check()
