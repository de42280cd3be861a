"""Aggregates over the usage log: requests, errors, tokens, cost, latency and TTFT (mean and
p50/p95/p99), tokens per second; grouped by app, model, provider, key, account, hour or day.

How it stays fast on millions of records:

- Sums come from the rollups (daily and hourly sums per account, key, app, model, provider and
  HTTP status, written with the records in one transaction): whole days from the daily table, the
  hours around them from the hourly one. They cost the number of rollup rows in range, not the
  number of requests. The time range is therefore aligned to whole UTC hours (``from`` rounded down,
  ``to`` up); the response says which range was used. Rollups are kept after the records they sum
  are deleted by retention (``retention_rollups_days``), so long-range totals outlive the log.
- Percentiles need the individual values, and ranking millions of them per query is what must not
  happen. Both databases rank every matching value when the range holds at most ``SAMPLE_ROWS``
  records, otherwise a uniform sample of about ``SAMPLE_ROWS`` of them: the records whose ``sample``
  key (crc32(id) % 1024) is below a threshold, read through a covering index. PostgreSQL ranks them
  with ``percentile_cont`` (exact over 1M records took 1.8-2.4 s; bench/usage_scale.py); SQLite has no
  percentile aggregate, so at most about that many values (two floats and the group key per record)
  reach Python, where they are ranked per group the same way (linear interpolation).
  The covering index holds the eighth of the records with a sample key below ``SAMPLE_INDEXED`` (128;
  indexing every record cost the writer as much as the rest of the insert), so a range of 240,000
  records or more gets its full sample, a smaller one what its eighth holds (3,750 records at 30,000,
  fewer than that is ranked exactly).
  With 30,000 sampled records the standard error of the rank of p99 is about 0.06 percentile points
  overall, 0.16 with 3,750; small groups in a large range get fewer samples (the response reports
  ``percentiles.method`` and how many values were ranked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from perilune.store.db import Database
from perilune.store.tables import SAMPLE_INDEX_WHERE, SAMPLE_INDEXED, usage_records, usage_rollups, usage_rollups_daily
from perilune.store.usage import QueryError, UsageFilter, conditions

HOUR_S, DAY_S = 3600.0, 86400.0
IN_SAMPLE_INDEX = sa.text(f"usage_records.{SAMPLE_INDEX_WHERE}")  # the partial index's condition, word for word
GROUPS = ("app", "model", "provider", "key", "account", "hour", "day")
TIME_GROUPS = ("hour", "day")
PERCENTILES = (0.5, 0.95, 0.99)
SAMPLE_ROWS = 30_000
SAMPLE_SPACE = 1024
MAX_SCAN = 4 * SAMPLE_ROWS  # index entries a sampled percentile query may read
Percentiles = dict[tuple[Any, ...], dict[float, float]]


@dataclass(slots=True)
class AggRow:
    group: dict[str, Any]  # dimension -> value ("hour"/"day": epoch seconds of the bucket start)
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: int = 0
    cost_pusd: dict[str, int] = field(default_factory=dict)  # input, output, cache, unit, total
    latency_sum_ms: float = 0.0
    latency_n: int = 0
    ttft_sum_ms: float = 0.0
    ttft_n: int = 0
    gen_tokens: int = 0
    gen_ms: float = 0.0
    latency_p: dict[float, float] = field(default_factory=dict)
    ttft_p: dict[float, float] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def latency_avg_ms(self) -> float | None:
        return self.latency_sum_ms / self.latency_n if self.latency_n else None

    @property
    def ttft_avg_ms(self) -> float | None:
        return self.ttft_sum_ms / self.ttft_n if self.ttft_n else None

    @property
    def tokens_per_s(self) -> float | None:
        return self.gen_tokens * 1000.0 / self.gen_ms if self.gen_ms > 0 else None


@dataclass(slots=True)
class Aggregate:
    rows: list[AggRow]
    group_by: tuple[str, ...]
    start: float | None
    end: float | None
    percentile_method: str  # "exact" | "sample"
    percentile_rows: int  # values ranked per metric (all matching, or the sample)


def parse_group_by(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    dims = tuple(v.strip() for v in value.split(",") if v.strip())
    for d in dims:
        if d not in GROUPS:
            raise QueryError(f"group_by: unknown dimension {d!r}; use {', '.join(GROUPS)}", "group_by")
    if len(set(dims)) != len(dims) or len(dims) > 2 or sum(d in TIME_GROUPS for d in dims) > 1:
        raise QueryError("group_by takes at most two different dimensions, at most one of hour/day",
                         "group_by")
    return dims


def _time_bucket(col: Any, size: float, sqlite: bool) -> ColumnElement[Any]:
    if sqlite:
        return sa.cast(col / size, sa.Integer) * size  # truncation = floor for positive epochs
    return sa.func.floor(col / size) * size


def _dims(dims: tuple[str, ...], sqlite: bool, src: sa.Table = usage_records) -> list[ColumnElement[Any]]:
    """Group expressions over the records or a rollup table, labelled g0, g1."""
    rollup = src is not usage_records
    t: Any = src
    out: list[ColumnElement[Any]] = []
    for d in dims:
        if d == "hour":
            out.append(t.c.bucket if rollup else _time_bucket(t.c.created_at, HOUR_S, sqlite))
        elif d == "day":
            out.append(_time_bucket(t.c.bucket if rollup else t.c.created_at, DAY_S, sqlite))
        elif d in ("key", "account"):
            col = t.c.key_id if d == "key" else t.c.account_id
            out.append(col if rollup else sa.func.coalesce(col, ""))
        else:
            out.append(t.c[d])
    return [c.label(f"g{i}") for i, c in enumerate(out)]


def _rollup_conditions(r: sa.Table, f: UsageFilter, start: float | None, end: float | None
                       ) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if f.account_id is not None:
        out.append(r.c.account_id == f.account_id)
    if start is not None:
        out.append(r.c.bucket >= start)
    if end is not None:
        out.append(r.c.bucket < end)
    for col, value in ((r.c.app, f.app), (r.c.model, f.model), (r.c.provider, f.provider),
                       (r.c.key_id, f.key_id)):
        if value is not None:
            out.append(col == value)
    if f.status == "ok":
        out.append(r.c.status < 400)
    elif f.status == "error":
        out.append(r.c.status >= 400)
    elif f.status is not None:
        out.append(r.c.status == int(f.status))
    return out


_COST = ("input", "output", "cache", "unit", "total")


def _day_span(f: UsageFilter) -> tuple[float | None, float | None] | None:
    """The whole UTC days inside the (hour-aligned) range, None when there are none; None ends are open."""
    lo = None if f.start is None else math.ceil(f.start / DAY_S) * DAY_S
    hi = None if f.end is None else math.floor(f.end / DAY_S) * DAY_S
    if lo is not None and hi is not None and hi <= lo:
        return None
    return lo, hi


def _sums_rollups(conn: sa.Connection, f: UsageFilter, dims: tuple[str, ...], sqlite: bool) -> list[AggRow]:
    """Whole days from the daily rollups, the hours around them from the hourly ones (all hourly when
    grouping by hour); the parts are added up per group."""
    span = None if "hour" in dims else _day_span(f)
    if span is None:
        parts = [(usage_rollups, f.start, f.end)]
    else:
        lo, hi = span
        parts = [(usage_rollups_daily, lo, hi)]
        if lo is not None and f.start is not None and f.start < lo:
            parts.append((usage_rollups, f.start, lo))
        if hi is not None and (f.end is None or f.end > hi):
            parts.append((usage_rollups, hi, f.end))
    merged: dict[tuple[Any, ...], AggRow] = {}
    for table, start, end in parts:
        for row in _sums_rollup_table(conn, table, f, start, end, dims, sqlite):
            k = tuple(row.group.values())
            have = merged.get(k)
            merged[k] = row if have is None else _add(have, row)
    return list(merged.values())


def _sums_rollup_table(conn: sa.Connection, r: sa.Table, f: UsageFilter, start: float | None,
                       end: float | None, dims: tuple[str, ...], sqlite: bool) -> list[AggRow]:
    g = _dims(dims, sqlite, r)
    s = sa.func.sum
    q = sa.select(*g, s(r.c.requests), s(sa.case((r.c.status >= 400, r.c.requests), else_=0)),
                  *(s(r.c[c]) for c in ("input_tokens", "output_tokens", "cache_read_tokens",
                                        "cache_write_tokens", "reasoning_tokens", "estimated")),
                  *(s(r.c[f"{c}_cost_pusd"]) for c in _COST),
                  s(r.c.latency_sum_ms), s(r.c.latency_n), s(r.c.ttft_sum_ms), s(r.c.ttft_n),
                  s(r.c.gen_tokens), s(r.c.gen_ms)).where(*_rollup_conditions(r, f, start, end))
    if g:
        q = q.group_by(*g)
    return [_agg_row(dims, tuple(row)) for row in conn.execute(q) if row[len(g)]]


def _add(a: AggRow, b: AggRow) -> AggRow:
    for name in ("requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens",
                 "cache_write_tokens", "reasoning_tokens", "estimated", "latency_sum_ms", "latency_n",
                 "ttft_sum_ms", "ttft_n", "gen_tokens", "gen_ms"):
        setattr(a, name, getattr(a, name) + getattr(b, name))
    a.cost_pusd = {c: a.cost_pusd.get(c, 0) + b.cost_pusd.get(c, 0) for c in _COST}
    return a


def _errors_index(f: UsageFilter) -> str | None:
    """Without statistics SQLite prefers an index that saves the GROUP BY sort over the small partial
    index on errors; a filter on error statuses should read that index."""
    if f.status == "error" or (f.status is not None and f.status.isdigit() and int(f.status) >= 400):
        return "ix_usage_errors_time"
    return None


def _fetch(conn: sa.Connection, q: Any, index: str | None) -> list[tuple[Any, ...]]:
    """Run a select over usage_records on SQLite, through ``index`` when given (INDEXED BY, which
    SQLAlchemy does not render for SQLite), returning plain tuples."""
    compiled = q.compile(dialect=conn.dialect)
    sql = compiled.string
    if index:
        sql = sql.replace("FROM usage_records", f"FROM usage_records INDEXED BY {index}", 1)
    params = tuple(compiled.params[name] for name in (compiled.positiontup or ()))
    cur = conn.connection.cursor()  # plain tuples: the values can be many, the per-row cost matters
    try:
        cur.execute(sql, params)
        return list(cur.fetchall())
    finally:
        cur.close()


def _agg_row(dims: tuple[str, ...], row: tuple[Any, ...]) -> AggRow:
    n = len(dims)
    group = {d: _group_value(d, row[i]) for i, d in enumerate(dims)}
    v = [x or 0 for x in row[n:]]
    return AggRow(group=group, requests=int(v[0]), errors=int(v[1]), input_tokens=int(v[2]),
                  output_tokens=int(v[3]), cache_read_tokens=int(v[4]), cache_write_tokens=int(v[5]),
                  reasoning_tokens=int(v[6]), estimated=int(v[7]),
                  cost_pusd={c: int(v[8 + i]) for i, c in enumerate(_COST)},
                  latency_sum_ms=float(v[13]), latency_n=int(v[14]), ttft_sum_ms=float(v[15]),
                  ttft_n=int(v[16]), gen_tokens=int(v[17]), gen_ms=float(v[18]))


def _group_value(dim: str, value: Any) -> Any:
    if dim in TIME_GROUPS:
        return float(value)
    if dim in ("key", "account"):
        return value or None
    return value


def _key(dims: tuple[str, ...], values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_group_value(d, v) for d, v in zip(dims, values, strict=True))


# ---- percentiles ----------------------------------------------------------------------------------

def _percentiles_pg(conn: sa.Connection, f: UsageFilter, dims: tuple[str, ...], plan: SamplePlan
                    ) -> tuple[Percentiles, Percentiles]:
    """percentile_cont of latency and TTFT per group, computed by PostgreSQL over every matching record
    or, for a large range, over the same uniform sample as on SQLite (nulls are ignored)."""
    t = usage_records
    g = _dims(dims, False)
    ps: ColumnElement[Any] = sa.literal_column(f"ARRAY[{','.join(map(str, PERCENTILES))}]::float8[]")
    q = sa.select(*g, sa.func.percentile_cont(ps).within_group(t.c.latency_ms),
                  sa.func.percentile_cont(ps).within_group(t.c.ttft_ms)).where(*conditions(f))
    if plan.sampled:  # literal bounds: the planner proves that the partial sample index holds them
        q = q.where(t.c.sample < sa.literal_column(str(plan.threshold)), IN_SAMPLE_INDEX)
    if g:
        q = q.group_by(*g)
    lat, ttft = {}, {}
    n = len(g)
    for row in conn.execute(q):
        k = _key(dims, tuple(row[:n]))
        if row[n]:
            lat[k] = dict(zip(PERCENTILES, map(float, row[n]), strict=True))
        if row[n + 1]:
            ttft[k] = dict(zip(PERCENTILES, map(float, row[n + 1]), strict=True))
    return lat, ttft


def _percentiles_sqlite(conn: sa.Connection, f: UsageFilter, dims: tuple[str, ...], plan: SamplePlan
                        ) -> tuple[Percentiles, Percentiles]:
    """percentile_cont of latency and TTFT per group, from at most about ``SAMPLE_ROWS`` values:
    every matching record, or those whose ``sample`` key is below the plan's threshold."""
    t = usage_records
    g = _dims(dims, True)
    q = sa.select(*g, t.c.latency_ms, t.c.ttft_ms).where(*conditions(f))
    if plan.use_index:  # "sample IN (0..k)" lets SQLite seek each key, then the account, then the time;
        # the partial index's own condition, word for word, lets SQLite use it
        q = q.where(sa.text(f"usage_records.sample IN ({','.join(map(str, range(plan.threshold)))})"),
                    IN_SAMPLE_INDEX)
    values: dict[tuple[Any, ...], tuple[list[float], list[float]]] = {}
    n = len(g)
    for row in _fetch(conn, q, "ix_usage_sample" if plan.use_index else _errors_index(f)):
        k = _key(dims, tuple(row[:n])) if n else ()
        got = values.get(k)
        if got is None:
            got = values[k] = ([], [])
        if row[n] is not None:
            got[0].append(row[n])
        if row[n + 1] is not None:
            got[1].append(row[n + 1])
    lat, ttft = {}, {}
    for k, (lv, tv) in values.items():
        if lv:
            lat[k] = percentile_cont(lv)
        if tv:
            ttft[k] = percentile_cont(tv)
    return lat, ttft


def percentile_cont(values: list[float]) -> dict[float, float]:
    """PostgreSQL's percentile_cont (linear interpolation between closest ranks) for PERCENTILES."""
    values.sort()
    n = len(values)
    out = {}
    for p in PERCENTILES:
        pos = (n - 1) * p
        lo = math.floor(pos)
        a = values[lo]
        b = values[lo + 1] if lo + 1 < n else a
        out[p] = a + (b - a) * (pos - lo)
    return out


@dataclass(frozen=True, slots=True)
class SamplePlan:
    threshold: int  # sample keys below this are ranked (SAMPLE_SPACE: every record)
    use_index: bool  # read through the covering sample index (else: the planner's choice, all rows)

    @property
    def sampled(self) -> bool:
        return self.threshold < SAMPLE_SPACE


def sample_plan(conn: sa.Connection, f: UsageFilter, matched: int, sqlite: bool) -> SamplePlan:
    """How the values to rank are read. The covering index ``ix_usage_sample`` holds the records whose
    sample key is below SAMPLE_INDEXED and seeks by sample key, account and time: it reads
    ``threshold/1024`` of the records in the scope (account and time range) without touching the table.
    Sample keys below the threshold give about SAMPLE_ROWS matching records, as many as the index holds
    for a smaller range; when other filters (app, model...) keep only part of the scope, the threshold
    is capped so that at most MAX_SCAN index entries are read (fewer samples, bounded cost). A range of
    at most SAMPLE_ROWS records, or of few errors, is ranked exactly through the filter's own index."""
    threshold = min(SAMPLE_SPACE, math.ceil(SAMPLE_SPACE * SAMPLE_ROWS / max(matched, 1)))
    if threshold >= SAMPLE_SPACE or (_errors_index(f) and matched <= MAX_SCAN):
        return SamplePlan(SAMPLE_SPACE, False)  # every match, through the filter's own index
    threshold = min(threshold, SAMPLE_INDEXED)
    scope = UsageFilter(account_id=f.account_id, start=f.start, end=f.end)  # what the index seeks
    in_scope = matched
    if scope != f:
        in_scope = sum(r.requests for r in _sums_rollups(conn, scope, (), sqlite))
    if in_scope * threshold / SAMPLE_SPACE <= MAX_SCAN:
        return SamplePlan(threshold, True)
    return SamplePlan(max(1, math.floor(SAMPLE_SPACE * MAX_SCAN / in_scope)), True)


def aligned(f: UsageFilter) -> UsageFilter:
    """The filter with its time range widened to whole UTC hours (the rollup grain)."""
    start = math.floor(f.start / HOUR_S) * HOUR_S if f.start is not None else None
    end = math.ceil(f.end / HOUR_S) * HOUR_S if f.end is not None else None
    return UsageFilter(f.account_id, start, end, f.app, f.model, f.provider, f.key_id, f.status)


def aggregate(db: Database, f: UsageFilter, group_by: tuple[str, ...] = (), *, percentiles: bool = True
              ) -> Aggregate:
    f = aligned(f)
    sqlite = db.is_sqlite
    with db.engine.connect() as conn:
        rows = _sums_rollups(conn, f, group_by, sqlite)
        total = sum(r.requests for r in rows)
        method, ranked = "exact", total
        if percentiles and rows:
            plan = sample_plan(conn, f, total, sqlite)
            if plan.sampled:
                method, ranked = "sample", round(total * plan.threshold / SAMPLE_SPACE)
            lat, ttft = (_percentiles_sqlite if sqlite else _percentiles_pg)(conn, f, group_by, plan)
            for r in rows:
                k = tuple(r.group[d] for d in group_by)
                r.latency_p = lat.get(k, {})
                r.ttft_p = ttft.get(k, {})
    if any(d in TIME_GROUPS for d in group_by):
        rows.sort(key=lambda r: tuple((0, v) if d in TIME_GROUPS else (1, str(v))
                                      for d, v in r.group.items()))
    else:
        rows.sort(key=lambda r: (-r.requests, tuple(str(v) for v in r.group.values())))
    return Aggregate(rows, group_by, f.start, f.end, method, ranked)
