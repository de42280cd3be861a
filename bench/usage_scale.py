"""Usage log at scale: load N synthetic usage records into SQLite (or PostgreSQL) and time the queries
the dashboard and the query API make.

    .venv/bin/python bench/usage_scale.py                      # 1,000,000 records into a temp SQLite file
    .venv/bin/python bench/usage_scale.py --records 200000 --uniform
    .venv/bin/python bench/usage_scale.py --db postgresql://postgres@127.0.0.1:5432/test

Records are loaded with executemany in batches (and their hourly rollups with them, computed by the
same code the writer uses), then the real write path (``insert_batch``, batches of 500 as the usage
writer sends them) is timed on extra records. Each query is run ``--repeat`` times; the table shows
the first (cold-ish) and the median time.

The default data is shaped like real traffic: each key belongs to one account and one app, models
follow a skewed popularity, each model is served by one provider with occasional fallbacks, 3% errors.
``--uniform`` draws every dimension independently instead (the worst case for the rollups: nearly
every combination appears every hour, so they compress little).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from perilune.store import tables
from perilune.store.db import Database
from perilune.store.usage import UsageFilter, list_records
from perilune.store.usage import get_record as get_one
from perilune.store.usage_agg import aggregate
from perilune.store.usage_write import ROLLUP_GRAINS, insert_batch, rollup_deltas, sample_of

DAYS = 30
ACCOUNTS = [f"acct_{i:02d}" for i in range(5)]
APPS = ["chat-web", "support-bot", "search", "summarizer", "coder", "batch-etl", "mobile", "eval"]
MODELS = [f"model-{i}" for i in range(10)]
PROVIDERS = ["openai", "anthropic", "groq", "together"]
KEYS = [(f"key_{i:02d}", ACCOUNTS[i % 5], APPS[i % 8]) for i in range(20)]
MODEL_WEIGHTS = [1 / (i + 1) ** 1.2 for i in range(10)]


def synthetic(n: int, start: float, end: float, *, uniform: bool, seed: int = 1,
              prefix: str = "req_") -> Iterator[dict[str, Any]]:
    rnd = random.Random(seed)
    for i in range(n):
        if uniform:
            key, account, _ = KEYS[rnd.randrange(20)]
            app, model, provider = rnd.choice(APPS), rnd.choice(MODELS), rnd.choice(PROVIDERS)
        else:
            key, account, app = KEYS[rnd.randrange(20)]
            m = rnd.choices(range(10), MODEL_WEIGHTS)[0]
            model = MODELS[m]
            provider = PROVIDERS[m % 4] if rnd.random() > 0.1 else PROVIDERS[(m + 1) % 4]
        failed = rnd.random() < 0.03
        stream = rnd.random() < 0.5
        latency = rnd.lognormvariate(6.5, 0.8)
        ttft = latency * rnd.uniform(0.05, 0.4) if stream else latency
        inp = rnd.randrange(10, 4000)
        out = 0 if failed else rnd.randrange(1, 1000)
        cached = rnd.randrange(0, inp) if rnd.random() < 0.2 else 0
        ic, oc, cc = inp * 1_000_000, out * 4_000_000, cached * 500_000
        rid = f"{prefix}{i:024x}"
        yield {"id": rid, "created_at": start + (end - start) * i / n, "account_id": account, "key_id": key,
               "app": app, "dialect": "openai", "endpoint": "chat", "model_requested": model,
               "model_served": model, "model": model, "provider": provider,
               "status": rnd.choice((429, 500, 502)) if failed else 200,
               "error_type": "upstream_error" if failed else None, "stream": stream, "input_tokens": inp,
               "output_tokens": out, "cache_read_tokens": cached, "cache_write_tokens": 0,
               "reasoning_tokens": 0, "estimated": False, "input_cost_pusd": ic, "output_cost_pusd": oc,
               "cache_cost_pusd": cc, "unit_cost_pusd": 0, "total_cost_pusd": ic + oc + cc,
               "latency_ms": latency, "ttft_ms": ttft if not failed else None,
               "generation_ms": (latency - ttft if stream else latency) if out else None,
               "route": f'[["{provider}","{model}",200,null]]', "observed": False, "sample": sample_of(rid)}


def load(db: Database, n: int, *, uniform: bool, batch: int = 20_000) -> tuple[float, float, float]:
    """Bulk load: executemany per batch, rollups upserted from the same rows. Returns (start, end, s)."""
    end = time.time()
    start = end - DAYS * 86400
    cols = [c.name for c in tables.usage_records.columns]
    t0 = time.perf_counter()
    gen = synthetic(n, start, end, uniform=uniform)
    rollups: dict[Any, dict[tuple[Any, ...], dict[str, Any]]] = {t: {} for t, _ in ROLLUP_GRAINS}
    if db.is_sqlite:
        raw: Any = db.engine.raw_connection()
        sql = f"INSERT INTO usage_records ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"
        while True:
            rows = [r for _, r in zip(range(batch), gen, strict=False)]
            if not rows:
                break
            raw.cursor().executemany(sql, [tuple(r.get(c) for c in cols) for r in rows])
            raw.commit()
            for table, size in ROLLUP_GRAINS:
                _merge(rollups[table], rollup_deltas(rows, size))
        raw.close()
    else:
        while True:
            rows = [r for _, r in zip(range(batch), gen, strict=False)]
            if not rows:
                break
            with db.engine.begin() as conn:
                conn.execute(sa.insert(tables.usage_records), rows)
            for table, size in ROLLUP_GRAINS:
                _merge(rollups[table], rollup_deltas(rows, size))
    with db.engine.begin() as conn:
        for table, acc in rollups.items():
            deltas = list(acc.values())
            for i in range(0, len(deltas), 5000):
                conn.execute(sa.insert(table), deltas[i:i + 5000])
    return start, end, time.perf_counter() - t0


def _merge(acc: dict[tuple[Any, ...], dict[str, Any]], deltas: list[dict[str, Any]]) -> None:
    for d in deltas:
        k = tuple(d[c] for c in tables.ROLLUP_DIMENSIONS)
        have = acc.get(k)
        if have is None:
            acc[k] = d
        else:
            for c in tables.ROLLUP_INT_SUMS + tables.ROLLUP_FLOAT_SUMS:
                have[c] += d[c]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times[0], statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--db", default=None, help="database URL (default: a new SQLite file in a temp dir)")
    ap.add_argument("--uniform", action="store_true", help="independent dimensions (rollup worst case)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="query the records already in --db (no load)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="perilune-bench-")
    url = args.db or f"sqlite:///{tmp}/usage.db"
    db = Database(url)
    db.migrate()
    if args.keep:
        secs, end = 0.0, time.time()
    else:
        with db.engine.begin() as conn:
            for t in (tables.usage_payloads, tables.usage_rollups, tables.usage_rollups_daily,
                      tables.usage_records):
                conn.execute(sa.delete(t))
        _, end, secs = load(db, args.records, uniform=args.uniform)
    if not db.is_sqlite:  # what autovacuum does after a bulk load
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    with db.engine.connect() as conn:
        n_rec, n_roll, n_daily = (conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                                  for t in (tables.usage_records, tables.usage_rollups,
                                            tables.usage_rollups_daily))
    loaded = f"loaded in {secs:.1f} s ({n_rec / secs:,.0f} rows/s incl. generation)" if secs else "kept"
    print(f"database: {db.engine.dialect.name}; {n_rec:,} records {loaded}; rollup rows: {n_roll:,} hourly, "
          f"{n_daily:,} daily ({'uniform' if args.uniform else 'realistic'} dimensions)")
    if db.is_sqlite:
        size = sum(os.path.getsize(p) for p in Path(tmp).glob("usage.db*"))
        print(f"SQLite file: {size / 1e6:,.0f} MB")

    # the real write path, as the usage writer calls it: 20,000 records in batches of 500
    extra = list(synthetic(20_000, end, end + 3600, uniform=args.uniform, seed=2,
                           prefix=f"n{time.time_ns() % 10**9}_"))
    t0 = time.perf_counter()
    for i in range(0, len(extra), 500):
        insert_batch(db, extra[i:i + 500])
    w = time.perf_counter() - t0
    print(f"write path (insert_batch, 500/batch, with rollups): {len(extra) / w:,.0f} records/s")
    t0 = time.perf_counter()
    insert_batch(db, extra[:500])
    print(f"replaying an already-written batch of 500: {(time.perf_counter() - t0) * 1000:.1f} ms "
          "(all skipped)")

    acct, app = ACCOUNTS[1], KEYS[1][2]
    admin, scoped = UsageFilter(), UsageFilter(account_id=acct)
    day_ago = end - 86400

    def walk(pages: int) -> int:
        cursor, n = None, 0
        for _ in range(pages):
            rows, cursor = list_records(db, scoped, limit=50, cursor=cursor)
            n += len(rows)
        return n

    some_id = list_records(db, admin, limit=1)[0][0]["id"]
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("logs: newest 50 (admin, all accounts)", lambda: list_records(db, admin, limit=50)),
        ("logs: newest 50 (one account)", lambda: list_records(db, scoped, limit=50)),
        ("logs: account + app filter", lambda: list_records(db, UsageFilter(account_id=acct, app=app))),
        ("logs: account + errors", lambda: list_records(db, UsageFilter(account_id=acct, status="error"))),
        ("logs: account + model + errors", lambda: list_records(
            db, UsageFilter(account_id=acct, model="model-7", status="error"))),
        ("logs: 20 pages by cursor (1,000 rows)", lambda: walk(20)),
        ("logs: one record by id", lambda: get_one(db, some_id, None)),
        ("aggregate: all time, totals + percentiles (admin)", lambda: aggregate(db, admin)),
        ("aggregate: all time by app (one account)", lambda: aggregate(db, scoped, ("app",))),
        ("aggregate: all time by model (admin)", lambda: aggregate(db, admin, ("model",))),
        ("aggregate: all time by day,app (admin)", lambda: aggregate(db, admin, ("day", "app"))),
        ("aggregate: all time by day,model, no pct (chart)", lambda: aggregate(
            db, admin, ("day", "model"), percentiles=False)),
        ("aggregate: last 24 h by hour (one account)", lambda: aggregate(
            db, UsageFilter(account_id=acct, start=day_ago), ("hour",))),
        ("aggregate: status=502 by model (all time, admin)", lambda: aggregate(
            db, UsageFilter(status="502"), ("model",))),
    ]
    print(f"\n{'query':<52} {'first ms':>9} {'median ms':>10}  notes")
    for name, fn in cases:
        first, med, res = timed(fn, args.repeat)
        note = ""
        if hasattr(res, "rows"):
            pct = any(r.latency_p for r in res.rows)
            note = (f"{len(res.rows)} groups, percentiles {res.percentile_method} over {res.percentile_rows:,}"
                    if pct else f"{len(res.rows)} groups, sums only")
        elif isinstance(res, tuple) and res and isinstance(res[0], list):
            note = f"{len(res[0])} rows"
        print(f"{name:<52} {first:>9.1f} {med:>10.1f}  {note}")
    db.dispose()


if __name__ == "__main__":
    main()
