"""A NUL in a client-chosen value (model id, app) never makes a usage record unwritable: the row
conversion replaces it, on the real PostgreSQL (which refuses NUL in text) and on SQLite."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from perilune.accounting.recorder import UsageRecorder, without_nul
from perilune.store import tables
from perilune.store.db import Database
from tests.services import fresh_postgres
from tests.unit.test_recorder import outcome


def test_without_nul_replaces_in_every_text_value() -> None:
    row = {"a": "x\x00y", "b": 3, "c": None, "d": "clean"}
    assert without_nul(row) == {"a": "x\ufffdy", "b": 3, "c": None, "d": "clean"}


async def _write_and_read(db: Database, spool: Path) -> list[tuple[str, str, str]]:
    rec = UsageRecorder(db, spool, batch_size=10, flush_s=0.02)
    await rec.start()
    rec.record(outcome(1, model_requested="gpt\x00evil", model_served="", error_type="bad\x00type",
                       key_id="key\x00", app="app\x00name"))
    deadline = time.monotonic() + 10
    while rec.written < 1:
        assert time.monotonic() < deadline, "the record was not written"
        await asyncio.sleep(0.02)
    await rec.stop()
    t = tables.usage_records
    with db.engine.connect() as conn:
        return [(r.model, r.app, r.error_type) for r in conn.execute(sa.select(t.c.model, t.c.app, t.c.error_type))]


async def test_nul_record_is_written_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'u.db'}")
    db.migrate()
    assert await _write_and_read(db, tmp_path / "spool") == [("gpt\ufffdevil", "app\ufffdname", "bad\ufffdtype")]
    db.dispose()


@pytest.mark.postgres
async def test_nul_record_is_written_postgres(tmp_path: Path) -> None:
    with fresh_postgres() as url:
        db = Database(url)
        db.migrate()
        try:
            rows = await _write_and_read(db, tmp_path / "spool")
        finally:
            db.dispose()
    assert rows == [("gpt\ufffdevil", "app\ufffdname", "bad\ufffdtype")]
    assert not list((tmp_path / "spool").glob("rejected-*"))
