"""The usage log store, one contract on SQLite and on PostgreSQL: exactly-once writes with rollups,
newest-first listing with cursors, scoping and filters, payloads, aggregates against hand-computed
values, the hour alignment and day/hour rollup split, sampled percentiles, retention, and the 0002
migration's backfill."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from perilune.accounting.retention import Retention, RetentionPolicy
from perilune.store import tables
from perilune.store import usage_agg as agg
from perilune.store.db import Database
from perilune.store.usage import (
    QueryError,
    UsageFilter,
    decode_cursor,
    get_record,
    list_records,
    payload_json,
    record_json,
)
from perilune.store.usage_write import insert_batch, sample_of
from tests.services import migrated_database

DAY = 86400.0
T0 = 1_795_000_000.0 - (1_795_000_000.0 % DAY)  # a UTC midnight in 2026


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with migrated_database(request.param, tmp_path) as d:
        yield d


def row(i: int, t: float, **kw: Any) -> dict[str, Any]:
    rid = kw.pop("id", f"req_{i:024x}")
    r: dict[str, Any] = {
        "id": rid, "created_at": t, "account_id": "acct_a", "key_id": "key_a", "app": "chat",
        "dialect": "openai", "endpoint": "chat", "model_requested": "m1", "model_served": "m1", "model": "m1",
        "provider": "p1", "status": 200, "error_type": None, "stream": False, "input_tokens": 10,
        "output_tokens": 20, "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
        "estimated": False, "input_cost_pusd": 1000, "output_cost_pusd": 4000, "cache_cost_pusd": 0,
        "unit_cost_pusd": 0, "total_cost_pusd": 5000, "latency_ms": 100.0, "ttft_ms": 50.0,
        "generation_ms": 100.0, "route": '[["p1","m1",200,null]]', "observed": False, "sample": sample_of(rid),
    }
    r.update(kw)
    return r


def count(db: Database, table: sa.Table) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def rollup_requests(db: Database, table: sa.Table = tables.usage_rollups) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(table.c.requests), 0))).scalar_one())


def test_insert_is_exactly_once_and_rollups_follow(db: Database) -> None:
    rows = [row(i, T0 + i) for i in range(5)]
    assert insert_batch(db, rows) == 5
    assert insert_batch(db, rows) == 0  # a replay of the same batch
    mixed = rows[3:] + [row(i, T0 + i) for i in range(5, 8)] + [row(6, T0 + 6)]  # old, new, dup in batch
    assert insert_batch(db, mixed) == 3
    assert count(db, tables.usage_records) == 8
    assert rollup_requests(db) == 8
    assert rollup_requests(db, tables.usage_rollups_daily) == 8
    total = agg.aggregate(db, UsageFilter()).rows[0]
    assert (total.requests, total.input_tokens, total.output_tokens, total.cost_pusd["total"]) == (8, 80, 160,
                                                                                                   40000)


def test_list_newest_first_with_cursor_and_ties(db: Database) -> None:
    rows = [row(i, T0 + (i // 3)) for i in range(130)]  # three records per timestamp: ties on created_at
    insert_batch(db, rows)
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = list_records(db, UsageFilter(account_id="acct_a"), limit=50, cursor=cursor)
        seen += [r["id"] for r in page]
        if cursor is None:
            break
    expected = [r["id"] for r in sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)]
    assert seen == expected
    assert decode_cursor(list_records(db, UsageFilter(), limit=1)[1] or "")[1] == expected[0]
    with pytest.raises(QueryError):
        list_records(db, UsageFilter(), cursor="not-a-cursor")


def test_scope_and_filters(db: Database) -> None:
    insert_batch(db, [
        row(1, T0 + 1),
        row(2, T0 + 2, account_id="acct_b", key_id="key_b", app="batch"),
        row(3, T0 + 3, model="m2", model_served="m2", provider="p2"),
        row(4, T0 + 4, status=502, error_type="upstream_unavailable", output_tokens=0),
        row(5, T0 + 5, status=429, error_type="rate_limited", key_id="key_c"),
    ])

    def ids(**kw: Any) -> list[int]:
        page, _ = list_records(db, UsageFilter(**kw))
        return [int(r["id"][4:], 16) for r in page]

    assert ids() == [5, 4, 3, 2, 1]
    assert ids(account_id="acct_a") == [5, 4, 3, 1]
    assert ids(account_id="acct_b") == [2]
    assert ids(account_id="nobody") == []
    assert ids(app="batch") == [2]
    assert ids(model="m2") == [3]
    assert ids(provider="p2") == [3]
    assert ids(key_id="key_c") == [5]
    assert ids(status="error") == [5, 4]
    assert ids(status="ok") == [3, 2, 1]
    assert ids(status="502") == [4]
    assert ids(start=T0 + 2, end=T0 + 4) == [3, 2]
    with pytest.raises(QueryError):
        UsageFilter(status="bad")
    with pytest.raises(QueryError):
        UsageFilter(start=T0 + 5, end=T0)


def test_get_record_with_payload_and_scope(db: Database) -> None:
    payload = {"id": "req_p", "created_at": T0, "request": '{"messages": [{"role": "user", "content": "hi"}]}',
               "response": '{"choices": []}'}
    insert_batch(db, [row(0, T0, id="req_p", observed=True, charged_pusd=0), row(1, T0 + 1)], [payload])
    got = get_record(db, "req_p", "acct_a")
    assert got is not None
    rec, p = got
    assert payload_json(p) == {"request": {"messages": [{"role": "user", "content": "hi"}]},
                               "response": {"choices": []}}
    assert get_record(db, "req_p", "acct_b") is None  # another account's record does not exist for it
    assert get_record(db, "req_p", None) is not None  # admin
    rec1, p1 = get_record(db, f"req_{1:024x}", None) or ({}, None)
    assert p1 is None and rec1["observed"] is False
    j = record_json(rec)
    assert j["usage"] == {"prompt_tokens": 10, "input_tokens": 10, "completion_tokens": 20,
                          "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
                          "total_tokens": 30, "estimated": False}
    assert j["cost"] == {"input_usd": "0.000000001", "output_usd": "0.000000004", "cache_usd": "0",
                         "unit_usd": "0", "total_usd": "0.000000005", "charged_usd": "0"}  # e.g. the free tier
    assert j["tokens_per_s"] == 200.0 and j["observability"] is True
    assert j["route"] == [{"provider": "p1", "model": "m1", "status": 200, "error": None}]


def test_aggregate_against_hand_computed_values(db: Database) -> None:
    insert_batch(db, [
        row(1, T0 + 10, app="a", latency_ms=100.0, ttft_ms=10.0, generation_ms=100.0, output_tokens=20),
        row(2, T0 + 20, app="a", latency_ms=200.0, ttft_ms=20.0, generation_ms=400.0, output_tokens=40),
        row(3, T0 + 30, app="a", latency_ms=400.0, ttft_ms=None, generation_ms=None, output_tokens=0,
            status=500, error_type="internal_error", input_cost_pusd=0, output_cost_pusd=0, total_cost_pusd=0),
        row(4, T0 + 3600 + 5, app="b", model="m2", latency_ms=1000.0, ttft_ms=300.0, cache_read_tokens=30,
            cache_cost_pusd=700, total_cost_pusd=5700, estimated=True),
    ])
    res = agg.aggregate(db, UsageFilter(account_id="acct_a"), ("app",))
    assert [r.group for r in res.rows] == [{"app": "a"}, {"app": "b"}]
    a, b = res.rows
    assert (a.requests, a.errors, a.input_tokens, a.output_tokens) == (3, 1, 30, 60)
    assert a.cost_pusd == {"input": 2000, "output": 8000, "cache": 0, "unit": 0, "total": 10000}
    assert a.latency_avg_ms == pytest.approx(700 / 3) and a.ttft_avg_ms == pytest.approx(15.0)
    # percentile_cont over [100, 200, 400]: p50 = 200, p95 = 200 + 0.9 * 200, p99 = 200 + 0.98 * 200
    assert a.latency_p == pytest.approx({0.5: 200.0, 0.95: 380.0, 0.99: 396.0})
    assert a.ttft_p == pytest.approx({0.5: 15.0, 0.95: 19.5, 0.99: 19.9})
    assert a.tokens_per_s == pytest.approx(60 * 1000 / 500)  # sum(output) / sum(generation time)
    assert a.error_rate == pytest.approx(1 / 3)
    assert (b.requests, b.cache_read_tokens, b.estimated, b.cost_pusd["cache"]) == (1, 30, 1, 700)
    assert b.latency_p == {0.5: 1000.0, 0.95: 1000.0, 0.99: 1000.0}
    by_hour = agg.aggregate(db, UsageFilter(), ("hour", "model"))
    assert [(r.group["hour"], r.group["model"], r.requests) for r in by_hour.rows] == [
        (T0, "m1", 3), (T0 + 3600, "m2", 1)]
    by_key = agg.aggregate(db, UsageFilter(), ("key", "account"))
    assert [(r.group, r.requests) for r in by_key.rows] == [({"key": "key_a", "account": "acct_a"}, 4)]
    errors = agg.aggregate(db, UsageFilter(status="error"))
    assert errors.rows[0].requests == 1 and errors.rows[0].errors == 1
    exact = agg.aggregate(db, UsageFilter(status="500"), ("provider",))
    assert exact.rows[0].requests == 1 and exact.rows[0].group == {"provider": "p1"}
    assert exact.rows[0].latency_p == {0.5: 400.0, 0.95: 400.0, 0.99: 400.0}
    assert agg.aggregate(db, UsageFilter(account_id="acct_b")).rows == []


def test_aggregate_range_alignment_and_day_split(db: Database) -> None:
    rows = [row(i, T0 + i * 1800.0 + 7, app="a" if i % 3 else "b", output_tokens=i) for i in range(150)]
    insert_batch(db, rows)  # three days and a bit, every half hour
    start, end = T0 + 5 * 3600 + 1234, T0 + 2 * DAY + 10 * 3600 + 1  # not aligned
    res = agg.aggregate(db, UsageFilter(start=start, end=end), ("day", "app"))
    assert (res.start, res.end) == (T0 + 5 * 3600, T0 + 2 * DAY + 11 * 3600)
    inside = [r for r in rows if res.start <= r["created_at"] < res.end]  # type: ignore[operator]
    want: dict[tuple[float, str], list[int]] = {}
    for r in inside:
        k = (T0 + ((r["created_at"] - T0) // DAY) * DAY, r["app"])
        want.setdefault(k, [0, 0])
        want[k][0] += 1
        want[k][1] += r["output_tokens"]
    got = {(r.group["day"], r.group["app"]): [r.requests, r.output_tokens] for r in res.rows}
    assert got == want
    total = agg.aggregate(db, UsageFilter(start=start, end=end)).rows[0]
    assert total.requests == len(inside)
    assert total.latency_p[0.5] == 100.0


def test_percentiles_are_sampled_for_large_ranges(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agg, "SAMPLE_ROWS", 400)
    monkeypatch.setattr(agg, "MAX_SCAN", 1600)
    lat = [float(v) for v in range(1, 4001)]
    insert_batch(db, [row(i, T0 + i * 10, latency_ms=lat[i], ttft_ms=lat[i] / 10) for i in range(4000)])
    res = agg.aggregate(db, UsageFilter())
    assert res.percentile_method == "sample" and 300 < res.percentile_rows < 600
    p = res.rows[0].latency_p
    exact = statistics.quantiles(lat, n=100, method="inclusive")
    assert p[0.5] == pytest.approx(exact[49], rel=0.12)
    assert p[0.95] == pytest.approx(exact[94], rel=0.05)
    small = agg.aggregate(db, UsageFilter(start=T0, end=T0 + 3600))  # 360 records: exact again
    assert small.percentile_method == "exact" and small.percentile_rows == 360
    vals = lat[:360]
    assert small.rows[0].latency_p[0.5] == pytest.approx(statistics.median(vals))


def test_group_by_parsing() -> None:
    assert agg.parse_group_by("day,app") == ("day", "app")
    assert agg.parse_group_by(None) == ()
    for bad in ("color", "app,app", "hour,day", "app,model,provider"):
        with pytest.raises(QueryError):
            agg.parse_group_by(bad)


async def test_retention_deletes_in_bounded_batches(db: Database) -> None:
    now = T0 + 100 * DAY
    old = [row(i, now - 40 * DAY + i, observed=True) for i in range(25)]
    mid = [row(100 + i, now - 10 * DAY + i, observed=True) for i in range(5)]
    new = [row(200 + i, now - 1 + i / 10, observed=True) for i in range(5)]
    payloads = [{"id": r["id"], "created_at": r["created_at"], "request": "{}", "response": "{}"}
                for r in old + mid + new]
    insert_batch(db, old + mid + new, payloads)
    r = Retention(db, RetentionPolicy(records_days=30, payloads_days=7, rollups_days=35, batch_size=10))
    done = await r.run_once(now)
    assert done["usage_records"] == 25 and done["usage_payloads"] == 30
    assert count(db, tables.usage_records) == 10 and count(db, tables.usage_payloads) == 5
    assert rollup_requests(db) == 10  # hourly rollups older than 35 days went
    assert await r.run_once(now) == {"usage_payloads": 0, "usage_records": 0, "usage_rollups": 0,
                                     "usage_rollups_daily": 0, "router_decisions": 0, "request_feedback": 0}


def test_migration_backfills_existing_records(tmp_path: Path) -> None:
    from importlib import resources

    from alembic import command
    from alembic.config import Config

    d = Database(f"sqlite:///{tmp_path}/old.db")
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("perilune.store") / "migrations"))
    with d.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(sa.text(
            "INSERT INTO usage_records (id, created_at, account_id, key_id, app, dialect, endpoint, "
            "model_requested, model_served, provider, status, stream, input_tokens, output_tokens, estimated, "
            "total_cost_pusd, latency_ms) VALUES "
            f"('req_old1', {T0 + 5}, 'acct', 'k', 'x', 'openai', 'chat', 'asked', 'served', 'p', 200, 0, 3, 4, 1, "
            f"70, 12.5), ('req_old2', {T0 + 7}, NULL, NULL, 'x', 'openai', 'chat', 'asked', '', '', 404, 0, NULL, "
            "NULL, 0, NULL, 1.0)"))
    d.migrate()
    with d.engine.connect() as conn:
        models = dict(conn.execute(sa.text("SELECT id, model FROM usage_records")).all())
    assert models == {"req_old1": "served", "req_old2": "asked"}
    res = agg.aggregate(d, UsageFilter(), ("model",))
    got = {r.group["model"]: (r.requests, r.output_tokens, r.cost_pusd["total"], r.estimated, r.errors)
           for r in res.rows}
    assert got == {"served": (1, 4, 70, 1, 0), "asked": (1, 0, 0, 0, 1)}
    assert rollup_requests(d, tables.usage_rollups_daily) == 2
    d.dispose()


def test_unknown_columns_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="unknown columns"):
        insert_batch(db, [row(1, time.time(), bogus=1)])


def test_the_sample_index_holds_an_eighth_and_a_medium_range_is_sampled_from_it(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    q = ("SELECT sql FROM sqlite_master WHERE name = 'ix_usage_sample'" if db.is_sqlite
         else "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_usage_sample'")
    with db.engine.connect() as conn:
        sql = conn.execute(sa.text(q)).scalar_one()
    assert "sample < 128" in sql  # a random-keyed index of every record cost the writer half its time
    monkeypatch.setattr(agg, "SAMPLE_ROWS", 400)
    monkeypatch.setattr(agg, "MAX_SCAN", 1600)
    lat = [float(v) for v in range(1, 2001)]
    insert_batch(db, [row(i, T0 + i * 10, latency_ms=lat[i]) for i in range(2000)])
    res = agg.aggregate(db, UsageFilter())  # 2,000 records want keys below 205: the index has those below 128
    assert res.percentile_method == "sample" and res.percentile_rows == round(2000 * 128 / 1024)
    assert res.rows[0].requests == 2000  # the sums stay exact (rollups)
    assert res.rows[0].latency_p[0.5] == pytest.approx(statistics.median(lat), rel=0.15)
