"""Writing the usage log: records, payloads and hourly rollups in one transaction; retention deletes.

Exactly once: records are inserted with ON CONFLICT DO NOTHING ... RETURNING id, and only the rows the
database reports as new are added to the rollups, in the same transaction. Replaying a spool file, or
a batch whose commit outcome was unknown, therefore never counts a request twice.

All functions here block; async callers run them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from perilune.store import tables
from perilune.store.db import Database

HOUR_S = 3600.0
DAY_S = 86400.0
ROLLUP_GRAINS = ((tables.usage_rollups, HOUR_S), (tables.usage_rollups_daily, DAY_S))
Row = dict[str, Any]

_RECORD_COLUMNS = frozenset(c.name for c in tables.usage_records.columns)
_NULLABLE = tuple(c.name for c in tables.usage_records.columns if c.nullable)


def bucket_of(t: float, size: float = HOUR_S) -> float:
    """Start of the UTC hour (or day) holding ``t`` (the value SQL computes for rollup buckets)."""
    return math.floor(t / size) * size


def sample_of(record_id: str) -> int:
    """A uniform, deterministic sample key in 0..1023 for a record id."""
    return zlib.crc32(record_id.encode()) & 1023


def normalize(row: Row) -> Row:
    """Fill the columns added after a row was spooled by an older version; drop unknown keys."""
    out = {k: v for k, v in row.items() if k in _RECORD_COLUMNS}
    for c in _NULLABLE:
        out.setdefault(c, None)
    if not out.get("model"):
        out["model"] = out.get("model_served") or out.get("model_requested") or ""
    if "sample" not in out:
        out["sample"] = sample_of(out["id"])
    out.setdefault("generation_ms", None)
    out.setdefault("observed", False)
    return out


def _insert(table: sa.Table, is_sqlite: bool) -> Any:
    if is_sqlite:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert(table)


def rollup_deltas(rows: Iterable[Row], size: float = HOUR_S) -> list[Row]:
    """Sums of ``rows`` per rollup key (buckets of ``size`` seconds), sorted by key (a fixed lock order
    for concurrent writers)."""
    acc: dict[tuple[Any, ...], Row] = {}
    for r in rows:
        key = (bucket_of(r["created_at"], size), r["account_id"] or "", r["key_id"] or "", r["app"] or "",
               r["model"] or "", r["provider"] or "", int(r["status"]))
        d = acc.get(key)
        if d is None:
            d = dict(zip(tables.ROLLUP_DIMENSIONS, key, strict=True))
            d.update(dict.fromkeys(tables.ROLLUP_INT_SUMS, 0))
            d.update(dict.fromkeys(tables.ROLLUP_FLOAT_SUMS, 0.0))
            acc[key] = d
        d["requests"] += 1
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                     "reasoning_tokens", "input_cost_pusd", "output_cost_pusd", "cache_cost_pusd",
                     "unit_cost_pusd", "total_cost_pusd"):
            v = r.get(name)
            if v:
                d[name] += v
        if r.get("estimated"):
            d["estimated"] += 1
        lat, ttft, gen = r.get("latency_ms"), r.get("ttft_ms"), r.get("generation_ms")
        if lat is not None:
            d["latency_sum_ms"] += lat
            d["latency_n"] += 1
        if ttft is not None:
            d["ttft_sum_ms"] += ttft
            d["ttft_n"] += 1
        if gen and r.get("output_tokens"):
            d["gen_ms"] += gen
            d["gen_tokens"] += r["output_tokens"]
    return [acc[k] for k in sorted(acc)]


_SUMS = tables.ROLLUP_INT_SUMS + tables.ROLLUP_FLOAT_SUMS


def _placeholders(n: int, is_sqlite: bool) -> str:
    return ", ".join(["?" if is_sqlite else "%s"] * n)


def _upsert_rollups(conn: Connection, is_sqlite: bool, t: sa.Table, deltas: list[Row]) -> None:
    cols = tables.ROLLUP_DIMENSIONS + _SUMS
    sql = (f"INSERT INTO {t.name} ({', '.join(cols)}) VALUES ({_placeholders(len(cols), is_sqlite)}) "
           f"ON CONFLICT ({', '.join(tables.ROLLUP_DIMENSIONS)}) DO UPDATE SET "
           + ", ".join(f"{c} = {t.name}.{c} + excluded.{c}" for c in _SUMS))
    conn.exec_driver_sql(sql, [tuple(d[c] for c in cols) for d in deltas])


def insert_batch(db: Database, rows: list[Row], payloads: list[Row] | None = None) -> int:
    """Insert usage records (and their payloads) and add the new ones to the rollups, atomically.
    Rows whose id is already stored are skipped. Returns how many records were new.

    The fast path is a driver-level executemany (SQLAlchemy's per-batch statement compilation costs
    more than the insert) whose row count says whether every row was new, which is always the case
    except when replaying; then the rollups take the whole batch. Otherwise the transaction is rolled
    back and redone asking the database which ids it inserted (RETURNING)."""
    if not rows:
        return 0
    seen: set[str] = set()
    unique = []
    for r in rows:
        if r["id"] not in seen:
            seen.add(r["id"])
            unique.append(r)
    n = _insert_if_all_new(db, unique, payloads)
    return n if n is not None else _insert_returning(db, unique, payloads)


def _insert_if_all_new(db: Database, rows: list[Row], payloads: list[Row] | None) -> int | None:
    cols = list(dict.fromkeys(k for r in rows for k in r))  # rows spooled by older versions may lack some
    unknown = set(cols) - _RECORD_COLUMNS
    if unknown:
        raise ValueError(f"usage row has unknown columns: {sorted(unknown)}")
    sql = (f"INSERT INTO usage_records ({', '.join(cols)}) VALUES ({_placeholders(len(cols), db.is_sqlite)}) "
           "ON CONFLICT (id) DO NOTHING")
    with db.engine.connect() as conn, conn.begin() as tx:
        res = conn.exec_driver_sql(sql, [tuple(r.get(c) for c in cols) for r in rows])
        if res.rowcount != len(rows):
            tx.rollback()
            return None
        _write_rest(conn, db.is_sqlite, rows, payloads)
    return len(rows)


def _insert_returning(db: Database, rows: list[Row], payloads: list[Row] | None) -> int:
    t = tables.usage_records
    with db.engine.begin() as conn:
        stmt = _insert(t, db.is_sqlite).on_conflict_do_nothing(index_elements=["id"]).returning(t.c.id)
        new_ids = {r[0] for r in conn.execute(stmt, rows)}
        if new_ids:
            fresh = [r for r in rows if r["id"] in new_ids]
            _write_rest(conn, db.is_sqlite, fresh, [p for p in payloads or () if p["id"] in new_ids])
    return len(new_ids)


def _write_rest(conn: Connection, is_sqlite: bool, fresh: list[Row], payloads: list[Row] | None) -> None:
    """Rollups of the newly inserted records, and their payloads."""
    for table, size in ROLLUP_GRAINS:
        _upsert_rollups(conn, is_sqlite, table, rollup_deltas(fresh, size))
    if payloads:
        conn.execute(_insert(tables.usage_payloads, is_sqlite).on_conflict_do_nothing(index_elements=["id"]),
                     payloads)


def ping(db: Database) -> None:
    """Raise unless the database answers."""
    with db.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def optimize(db: Database) -> None:
    """SQLite: refresh the planner's statistics where they are stale (cheap; recommended periodically)."""
    if db.is_sqlite:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA optimize")


# ---- retention -------------------------------------------------------------------------------------

def delete_older(db: Database, table: sa.Table, cutoff: float, batch: int) -> int:
    """Delete at most ``batch`` rows of ``table`` (usage_records or usage_payloads) created before
    ``cutoff``; returns how many went. Callers loop until it returns less than ``batch``."""
    ids = sa.select(table.c.id).where(table.c.created_at < cutoff).limit(batch).scalar_subquery()
    with db.engine.begin() as conn:
        return int(conn.execute(sa.delete(table).where(table.c.id.in_(ids))).rowcount or 0)


def delete_rollups_older(db: Database, t: sa.Table, cutoff: float) -> int:
    """Delete the oldest day of rollups (``usage_rollups`` or ``usage_rollups_daily``) before ``cutoff``;
    a bounded delete. Returns rows deleted; callers loop until it returns 0."""
    with db.engine.begin() as conn:
        oldest = conn.execute(sa.select(sa.func.min(t.c.bucket))).scalar()
        if oldest is None or oldest >= cutoff:
            return 0
        upto = min(float(oldest) + 24 * HOUR_S, cutoff)
        return int(conn.execute(sa.delete(t).where(t.c.bucket < upto)).rowcount or 0)
