"""The usage recorder in "process" mode: a real writer process fed over a pipe, against a real SQLite file."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

from perilune.accounting.recorder import UsageRecorder
from perilune.store.db import Database
from tests.unit.test_recorder import db, ids_in, outcome, rollup_total, wait_for

__all__ = ["db"]  # the fixture


async def test_batches_reach_the_database_and_stop_drains(db: Database, tmp_path: Path) -> None:
    rec = UsageRecorder(db, tmp_path / "spool", batch_size=20, flush_s=0.05, mode="process")
    await rec.start()
    assert rec._writer is not None and rec._writer.alive
    for i in range(100):
        rec.record(outcome(i))
    await wait_for(lambda: len(ids_in(db)) == 100, 30)
    for i in range(100, 130):  # still pending or in the pipe when stop() is called
        rec.record(outcome(i))
    await rec.stop()
    assert sorted(ids_in(db)) == sorted(outcome(i).request_id for i in range(130))
    assert rollup_total(db) == 130 and rec.stats().written == 130 and rec.depth == 0
    assert rec._writer.proc is not None and rec._writer.proc.returncode == 0  # it drained and exited


async def test_a_killed_writer_is_restarted_and_nothing_is_lost(db: Database, tmp_path: Path) -> None:
    rec = UsageRecorder(db, tmp_path / "spool", batch_size=10, flush_s=0.02, mode="process")
    await rec.start()
    w = rec._writer
    assert w is not None and w.proc is not None
    first = w.proc.pid
    for i in range(50):
        rec.record(outcome(i))
        if i == 25:
            os.kill(first, signal.SIGKILL)  # mid-stream: some batches are in its pipe, unacknowledged
        await asyncio.sleep(0.002)
    await wait_for(lambda: w.proc is not None and w.proc.pid != first and w.unacked_rows == 0 and not rec.depth, 30)
    await rec.stop()
    got = ids_in(db)
    assert len(got) == len(set(got)) == 50 and rollup_total(db) == 50  # each exactly once
    assert w.restarts == 1


async def test_database_away_the_writer_spools_then_replays(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/later/usage.db"
    db = Database(url)
    shutil.rmtree(tmp_path / "later")  # connections fail until the database is back
    spool = tmp_path / "spool"
    rec = UsageRecorder(db, spool, batch_size=10, flush_s=0.02, probe_s=0.05, probe_max_s=0.2, mode="process")
    await rec.start()
    for i in range(40):
        rec.record(outcome(i))
    await wait_for(lambda: rec.stats().spooled == 40, 30)
    assert not rec.db_ok and rec.spool_size() > 0
    Database(url).migrate()
    await wait_for(lambda: rec.db_ok and rec.stats().replayed == 40, 30)
    await rec.stop()
    assert sorted(ids_in(db)) == sorted(outcome(i).request_id for i in range(40))
    assert rollup_total(db) == 40 and not list(spool.glob("usage-*"))


async def test_no_writer_process_means_the_gateway_writes_itself(db: Database, tmp_path: Path) -> None:
    rec = UsageRecorder(db, tmp_path / "spool", batch_size=10, flush_s=0.02, mode="process")
    await rec.start()
    w = rec._writer
    assert w is not None and w.proc is not None
    w.max_restarts = 0  # the next exit is final
    for i in range(20):
        rec.record(outcome(i))
    os.kill(w.proc.pid, signal.SIGKILL)
    await wait_for(lambda: w.failed, 30)
    for i in range(20, 30):
        rec.record(outcome(i))
    await rec.stop()
    rec.replay_spool()  # whatever the dead writer had not acknowledged was spooled by the gateway
    got = ids_in(db)
    assert len(got) == len(set(got)) == 30 and rollup_total(db) == 30


async def test_an_in_memory_database_keeps_the_writer_in_process(tmp_path: Path) -> None:
    rec = UsageRecorder(Database("sqlite://"), tmp_path / "spool", mode="process")
    await rec.start()  # another process would write into a database of its own
    assert rec.mode == "thread" and rec._writer is None
    await rec.stop()
