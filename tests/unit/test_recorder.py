"""The usage recorder: one row per outcome with every field, spool + replay when the database is
unreachable then reachable (none lost, none duplicated), bounded memory, shutdown with a stuck
database, crash leftovers from other processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

import perilune.accounting.recorder as recorder_mod
from perilune.accounting.recorder import UsageRecorder, to_row
from perilune.schema.canonical import Attempt, Cost, Usage, UsageEvent
from perilune.store import tables
from perilune.store.db import Database
from perilune.store.usage_write import sample_of


def outcome(i: int, **kw: Any) -> UsageEvent:
    fields: dict[str, Any] = dict(
        request_id=f"req_test{i:020x}", started_wall=1_790_000_000.0 + i, dialect="openai", endpoint="chat",
        model_requested="sim-gpt", model_served="sim-gpt", provider="sim", status=200, error_type=None,
        usage=Usage(input_tokens=10, output_tokens=20, cache_read_tokens=3, reasoning_tokens=2),
        cost=Cost(10_000_000, 40_000_000, 1_500_000), ttft_ms=20.0, latency_ms=120.0,
        stream=False, route=(Attempt("sim", "sim-gpt", 200),), charged_pusd=None, free_tokens=None,
        key_id="key", account_id="acct", app="app")
    fields.update(kw)
    return UsageEvent(**fields)


def ids_in(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.select(tables.usage_records.c.id))]


def rollup_total(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(tables.usage_rollups.c.requests), 0)))
                   .scalar_one())


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(f"sqlite:///{tmp_path}/db/usage.db")
    d.migrate()
    return d


async def wait_for(cond: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_row_has_every_field() -> None:
    o = outcome(1, stream=True, capture=True, payload_request={"messages": []}, payload_response={"x": 1},
                route=(Attempt("groq", "m", 503, "upstream_unavailable"), Attempt("sim", "sim-gpt", 200)),
                key_id="key_1", account_id="acct_1", app="my-app")
    r = to_row((o, {"id": o.request_id}))
    assert r == {
        "id": o.request_id, "created_at": o.started_wall, "account_id": "acct_1", "key_id": "key_1",
        "app": "my-app", "dialect": "openai", "endpoint": "chat", "model_requested": "sim-gpt",
        "model_served": "sim-gpt", "model": "sim-gpt", "provider": "sim", "status": 200, "error_type": None,
        "stream": True, "input_tokens": 10, "output_tokens": 20, "cache_read_tokens": 3, "cache_write_tokens": 0,
        "reasoning_tokens": 2, "estimated": False, "input_cost_pusd": 10_000_000, "output_cost_pusd": 40_000_000,
        "cache_cost_pusd": 1_500_000, "unit_cost_pusd": 0, "total_cost_pusd": 51_500_000, "latency_ms": 120.0,
        "ttft_ms": 20.0, "generation_ms": 100.0,
        "route": '[["groq","m",503,"upstream_unavailable"],["sim","sim-gpt",200,null]]', "observed": True,
        "charged_pusd": None, "free_tokens": None, "sample": sample_of(o.request_id)}
    failed = to_row((outcome(2, usage=None, cost=None, status=404, error_type="model_not_found",
                             model_served="", provider="", route=(), key_id=None, account_id=None,
                             app="unknown"), None))
    assert failed["model"] == "sim-gpt" and failed["input_tokens"] is None and failed["total_cost_pusd"] is None
    assert failed["observed"] is False


async def test_writes_batches_and_flushes_on_stop(db: Database, tmp_path: Path) -> None:
    rec = UsageRecorder(db, tmp_path / "spool", batch_size=7, flush_s=0.05)
    await rec.start()
    for i in range(30):
        rec.record(outcome(i))
    await wait_for(lambda: len(ids_in(db)) >= 28)
    for i in range(30, 33):
        rec.record(outcome(i))
    await rec.stop()
    assert sorted(ids_in(db)) == sorted(outcome(i).request_id for i in range(33))
    assert rollup_total(db) == 33 and rec.written == 33 and rec.depth == 0


async def test_unreachable_then_reachable_database(tmp_path: Path) -> None:
    """A database whose file cannot be opened (its directory is gone), then can: everything recorded
    meanwhile is spooled, then replayed, each record exactly once."""
    url = f"sqlite:///{tmp_path}/later/usage.db"
    db = Database(url)  # creates the directory ...
    shutil.rmtree(tmp_path / "later")  # ... which is now gone: connections fail
    spool = tmp_path / "spool"
    rec = UsageRecorder(db, spool, batch_size=10, flush_s=0.02, probe_s=0.05, probe_max_s=0.2)
    await rec.start()
    for i in range(45):
        rec.record(outcome(i))
        if i % 10 == 0:
            await asyncio.sleep(0.01)
    await wait_for(lambda: rec.spooled == 45)
    assert not rec.db_ok and rec.spool_size() > 0 and rec.written == 0
    lines = (spool / f"usage-{os.getpid()}.jsonl").read_bytes().splitlines()
    assert len(lines) == 45 and orjson.loads(lines[0])["r"]["id"] == outcome(0).request_id
    Database(url).migrate()  # the database is back
    await wait_for(lambda: rec.db_ok and rec.replayed == 45)
    for i in range(45, 50):
        rec.record(outcome(i))
    await rec.stop()
    assert sorted(ids_in(db)) == sorted(outcome(i).request_id for i in range(50))
    assert rollup_total(db) == 50
    assert not list(spool.glob("usage-*"))


async def test_memory_is_bounded_while_the_database_is_stuck(db: Database, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real = recorder_mod.insert_batch

    def slow_insert(d: Database, rows: list[dict[str, Any]], payloads: Any = None) -> int:
        gate.wait(20)
        return real(d, rows, payloads)

    monkeypatch.setattr(recorder_mod, "insert_batch", slow_insert)
    rec = UsageRecorder(db, tmp_path / "spool", max_pending=100, batch_size=20, flush_s=0.02)
    await rec.start()
    deepest = 0
    for i in range(1000):
        rec.record(outcome(i))
        deepest = max(deepest, rec.depth)
        if i % 50 == 0:
            await asyncio.sleep(0.01)
    await wait_for(lambda: rec.depth <= 100)
    assert deepest <= 201 and rec.spooled >= 800  # the overflow went to disk, not to memory
    gate.set()
    await wait_for(lambda: rec.replayed + rec.written >= 1000, 20)
    await rec.stop()
    got = ids_in(db)
    assert len(got) == len(set(got)) == 1000 and rollup_total(db) == 1000


async def test_stop_with_a_stuck_database_spools_everything(db: Database, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()

    def stuck(d: Database, rows: list[dict[str, Any]], payloads: Any = None) -> int:
        gate.wait(20)
        raise ConnectionError("gave up")

    monkeypatch.setattr(recorder_mod, "insert_batch", stuck)
    spool = tmp_path / "spool"
    rec = UsageRecorder(db, spool, batch_size=10, flush_s=0.02, stop_timeout_s=0.3)
    await rec.start()
    for i in range(35):
        rec.record(outcome(i))
    await asyncio.sleep(0.1)  # the first batch is in flight, stuck
    await rec.stop()
    gate.set()
    monkeypatch.undo()
    assert rec.spooled == 35
    rec2 = UsageRecorder(db, spool)  # the next start replays
    assert rec2.replay_spool() == 35
    assert sorted(ids_in(db)) == sorted(outcome(i).request_id for i in range(35))


def test_replay_claims_dead_processes_files_only(db: Database, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    rows = [to_row((outcome(i), None)) for i in range(6)]
    (spool / f"usage-{dead.pid}.jsonl").write_bytes(
        orjson.dumps({"r": rows[0], "p": None}) + b"\n" + orjson.dumps(rows[1]) + b"\n"  # new and old format
        + b'{"r": {"id": "torn')  # a crash mid-line
    (spool / f"usage-{dead.pid}-old.jsonl.replay-{dead.pid}").write_bytes(
        orjson.dumps({"r": rows[2], "p": None}) + b"\n" + orjson.dumps({"r": rows[0], "p": None}) + b"\n")
    (spool / f"usage-{os.getpid()}.jsonl").write_bytes(orjson.dumps({"r": rows[3], "p": None}) + b"\n")
    (spool / "usage-1.jsonl").write_bytes(orjson.dumps({"r": rows[4], "p": None}) + b"\n")  # pid 1 is alive
    rec = UsageRecorder(db, spool)
    assert rec.replay_spool() == 4  # rows 0-3; row 0 twice but stored once
    assert sorted(ids_in(db)) == sorted(r["id"] for r in rows[:4])
    assert sorted(p.name for p in spool.iterdir()) == ["usage-1.jsonl"]
    assert rec.replay_spool() == 0


async def test_payload_bytes_bound_the_queue(db: Database, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real = recorder_mod.insert_batch

    def slow_insert(d: Database, rows: list[dict[str, Any]], payloads: Any = None) -> int:
        gate.wait(20)
        return real(d, rows, payloads)

    monkeypatch.setattr(recorder_mod, "insert_batch", slow_insert)
    rec = UsageRecorder(db, tmp_path / "spool", batch_size=5, flush_s=0.02, max_pending_bytes=50_000,
                        payload_max_bytes=4096)
    await rec.start()
    big = {"messages": [{"role": "user", "content": "x" * 3000}]}
    for i in range(100):
        rec.record(outcome(i, capture=True, payload_request=big, payload_response={"ok": True}))
        await asyncio.sleep(0)
    await wait_for(lambda: rec._pending_bytes <= 50_000)
    assert rec.spooled > 0
    gate.set()
    await wait_for(lambda: rec.written + rec.replayed >= 100)  # the spool is replayed while running
    await rec.stop()
    assert len(ids_in(db)) == 100
    with db.engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(tables.usage_payloads)).scalar_one()
    assert n == 100


async def test_a_row_the_database_refuses_is_set_aside(db: Database, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    rec = UsageRecorder(db, spool, batch_size=50, flush_s=0.02)
    await rec.start()
    good = [to_row((outcome(i), None)) for i in range(5)]
    bad = {**to_row((outcome(99), None)), "status": None}  # NOT NULL: refused for its data
    assert rec._store([*good[:2], bad, *good[2:]], []) == 5
    assert sorted(ids_in(db)) == sorted(r["id"] for r in good)
    rejected = [orjson.loads(line) for line in rec.rejected_path.read_bytes().splitlines()]
    assert [x["r"]["id"] for x in rejected] == [bad["id"]] and "NOT NULL" in rejected[0]["error"]
    # the writer keeps going: later records are written, nothing is spooled for replay
    rec.record(outcome(100))
    await rec.stop()
    assert outcome(100).request_id in ids_in(db) and rec.db_ok and not list(spool.glob("usage-*"))
