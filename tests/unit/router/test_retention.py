"""Retention of the router's tables: decisions and feedback scores go by age, and with their usage record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from perilune.accounting.retention import Retention, RetentionPolicy
from perilune.router import feedback
from perilune.settings import Settings
from perilune.store import tables
from perilune.store.db import Database
from perilune.store.usage_write import insert_batch
from tests.services import migrated_database
from tests.unit.test_usage_store import DAY, T0, row


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with migrated_database(request.param, tmp_path) as d:
        yield d


def ids(db: Database, table: sa.Table) -> set[str]:
    with db.engine.connect() as conn:
        return {r[0] for r in conn.execute(sa.select(table.c.request_id))}


async def test_decisions_and_feedback_by_age_and_with_their_record(db: Database) -> None:
    now = T0 + 100 * DAY
    ages = {"old": 50, "mid": 20, "new": 1}  # days
    records = [row(i, now - ages[name] * DAY, id=f"req_{name}") for i, name in enumerate(ages)]
    insert_batch(db, records, [])
    with db.engine.begin() as conn:
        for name, age in ages.items():
            t = now - age * DAY
            conn.execute(tables.router_decisions.insert().values(request_id=f"req_{name}", created_at=t,
                                                                 decision="{}"))
            conn.execute(tables.request_feedback.insert().values(request_id=f"req_{name}", account_id="acct_a",
                                                                 score=0.5, created_at=t + 60, updated_at=t + 60))
    # by age only: decisions after 30 days, feedback kept (0 = forever); records kept
    done = await Retention(db, RetentionPolicy(payloads_days=0, decisions_days=30, batch_size=1)).run_once(now)
    assert done["router_decisions"] == 1 and done["request_feedback"] == 0
    assert ids(db, tables.router_decisions) == {"req_mid", "req_new"}
    assert ids(db, tables.request_feedback) == {"req_old", "req_mid", "req_new"}
    # usage records after 10 days: the scores and decisions of the deleted requests go with them
    done = await Retention(db, RetentionPolicy(records_days=10, payloads_days=0, batch_size=1)).run_once(now)
    assert done["usage_records"] == 2 and done["request_feedback"] == 2 and done["router_decisions"] == 1
    assert ids(db, tables.router_decisions) == ids(db, tables.request_feedback) == {"req_new"}
    assert feedback.prune(db, tables.request_feedback, now, False, 10) == 1  # older than now


def test_policy_reads_the_router_settings() -> None:
    s = Settings()
    p = RetentionPolicy.from_settings(s)
    assert (p.decisions_days, p.feedback_days) == (30.0, 0.0) and p.active
