"""Reading the usage log: filters, newest-first listing with cursor pagination, one record with its
payload. Aggregates are in :mod:`perilune.store.usage_agg`.

Scoping is the caller's ``UsageFilter.account_id``: an account key's queries always carry its account,
an admin's may leave it empty (every account). Listing walks an index in (created_at, id) order
(``ix_usage_time_id``, ``ix_usage_account_time_id`` or a per-filter index), so the first page and every
later page cost the same, however large the log.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from perilune.accounting.pricing import usd_str
from perilune.store.db import Database
from perilune.store.tables import usage_payloads, usage_records

Row = dict[str, Any]
MAX_LIMIT = 500
# a literal, not a bound parameter, so that SQLite can use the partial index on errors
ERRORS_FROM: ColumnElement[Any] = sa.literal_column("400")


class QueryError(ValueError):
    """A bad filter or cursor; the message names the parameter."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class UsageFilter:
    account_id: str | None = None  # None: every account (admin only)
    start: float | None = None  # created_at >= start (epoch seconds)
    end: float | None = None  # created_at < end
    app: str | None = None
    model: str | None = None  # the model served (or requested, when none was served)
    provider: str | None = None
    key_id: str | None = None
    status: str | None = None  # "ok" (< 400), "error" (>= 400) or an exact HTTP status

    def __post_init__(self) -> None:
        for param, value in (("account_id", self.account_id), ("app", self.app), ("model", self.model),
                             ("provider", self.provider), ("key_id", self.key_id), ("status", self.status)):
            if value is not None and "\x00" in value:
                raise QueryError(f"{param} must not contain NUL characters", param)
        s = self.status
        if s is not None and s not in ("ok", "error") and not (s.isdigit() and 100 <= int(s) <= 599):
            raise QueryError(f"status must be 'ok', 'error' or an HTTP status code, got {s!r}", "status")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise QueryError("'to' must be after 'from'", "to")


def conditions(f: UsageFilter) -> list[ColumnElement[bool]]:
    t = usage_records
    out: list[ColumnElement[bool]] = []
    if f.account_id is not None:
        out.append(t.c.account_id == f.account_id)
    if f.start is not None:
        out.append(t.c.created_at >= f.start)
    if f.end is not None:
        out.append(t.c.created_at < f.end)
    for col, value in ((t.c.app, f.app), (t.c.model, f.model), (t.c.provider, f.provider),
                       (t.c.key_id, f.key_id)):
        if value is not None:
            out.append(col == value)
    if f.status == "ok":
        out.append(t.c.status < ERRORS_FROM)
    elif f.status == "error":
        out.append(t.c.status >= ERRORS_FROM)
    elif f.status is not None:
        out.append(t.c.status == int(f.status))
        if int(f.status) >= 400:  # implied, but SQLite only uses the partial index on errors when told
            out.append(t.c.status >= ERRORS_FROM)
    return out


def encode_cursor(created_at: float, record_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, record_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, record_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at, rid = float(created_at), str(record_id)
    except (ValueError, TypeError) as e:
        raise QueryError("cursor is not a cursor this API returned", "cursor") from e
    if not math.isfinite(at) or "\x00" in rid or len(rid) > 40:
        raise QueryError("cursor is not a cursor this API returned", "cursor")
    return at, rid


_LIST_COLUMNS = [c for c in usage_records.columns if c.name != "sample"]


def list_records(db: Database, f: UsageFilter, *, limit: int = 50, cursor: str | None = None
                 ) -> tuple[list[Row], str | None]:
    """Newest first. Returns the page and the cursor of the next page (None on the last page)."""
    t = usage_records
    limit = max(1, min(limit, MAX_LIMIT))
    q = sa.select(*_LIST_COLUMNS).where(*conditions(f))
    if cursor:
        at, rid = decode_cursor(cursor)
        q = q.where(sa.tuple_(t.c.created_at, t.c.id) < sa.tuple_(sa.literal(at), sa.literal(rid)))
    q = q.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit + 1)
    with db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more and rows else None


def get_record(db: Database, record_id: str, account_id: str | None) -> tuple[Row, Row | None] | None:
    """The record (scoped to ``account_id`` unless None) and its payload row, if one is stored."""
    t, p = usage_records, usage_payloads
    q = sa.select(*_LIST_COLUMNS).where(t.c.id == record_id)
    if account_id is not None:
        q = q.where(t.c.account_id == account_id)
    with db.engine.connect() as conn:
        row = conn.execute(q).first()
        if row is None:
            return None
        rec = dict(row._mapping)
        payload = None
        if rec["observed"]:
            prow = conn.execute(sa.select(p.c.request, p.c.response).where(p.c.id == record_id)).first()
            payload = dict(prow._mapping) if prow else None
    return rec, payload


# ---- public shapes --------------------------------------------------------------------------------

def usd(pico: int | None) -> str | None:
    """Money as every API response shows it: a decimal string (``"0.000006"``), null when unknown."""
    return None if pico is None else usd_str(int(pico))


def tokens_per_s(output_tokens: int | None, generation_ms: float | None) -> float | None:
    if not output_tokens or not generation_ms or generation_ms <= 0:
        return None
    return round(output_tokens * 1000.0 / generation_ms, 3)


def record_json(r: Row) -> Row:
    """A usage record as the API shows it. Unknown token counts stay null (never invented)."""
    known = r["input_tokens"] is not None
    cr, cw = r["cache_read_tokens"] or 0, r["cache_write_tokens"] or 0
    prompt = (r["input_tokens"] + cr + cw) if known else None
    route = orjson.loads(r["route"]) if r.get("route") else []
    return {
        "id": r["id"],
        "object": "usage.record",
        "created_at": r["created_at"],
        "account_id": r["account_id"],
        "key_id": r["key_id"],
        "app": r["app"],
        "dialect": r["dialect"],
        "endpoint": r["endpoint"],
        "model_requested": r["model_requested"],
        "model_served": r["model_served"] or None,
        "provider": r["provider"] or None,
        "status": r["status"],
        "error_type": r["error_type"],
        "stream": bool(r["stream"]),
        "usage": {
            "prompt_tokens": prompt,
            "input_tokens": r["input_tokens"],
            "completion_tokens": r["output_tokens"],
            "cache_read_tokens": r["cache_read_tokens"],
            "cache_write_tokens": r["cache_write_tokens"],
            "reasoning_tokens": r["reasoning_tokens"],
            "total_tokens": (prompt + (r["output_tokens"] or 0)) if prompt is not None else None,
            "estimated": bool(r["estimated"]),
        },
        "cost": {
            "input_usd": usd(r["input_cost_pusd"]),
            "output_usd": usd(r["output_cost_pusd"]),
            "cache_usd": usd(r["cache_cost_pusd"]),
            "unit_usd": usd(r["unit_cost_pusd"]),
            "total_usd": usd(r["total_cost_pusd"]),
            # what the account's balance paid: 0 on the free tier, less than the total if written off
            "charged_usd": usd(r.get("charged_pusd")),
        },
        "latency_ms": _ms(r["latency_ms"]),
        "ttft_ms": _ms(r["ttft_ms"]),
        "generation_ms": _ms(r["generation_ms"]),
        "tokens_per_s": tokens_per_s(r["output_tokens"], r["generation_ms"]),
        "route": [{"provider": a[0], "model": a[1], "status": a[2], "error": a[3]} for a in route],
        "observability": bool(r["observed"]),
    }


def payload_json(payload: Row | None) -> Row | None:
    if payload is None:
        return None
    return {"request": _loads(payload["request"]), "response": _loads(payload["response"])}


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def distinct_values(db: Database, column: str, account_id: str | None, limit: int = 200) -> list[str]:
    """Values seen for ``column`` (app, model, provider, key_id), from the daily rollups (small)."""
    from perilune.store.tables import usage_rollups_daily as r

    col = r.c[column]
    q = sa.select(col).distinct().where(col != "")
    if account_id is not None:
        q = q.where(r.c.account_id == account_id)
    with db.engine.connect() as conn:
        return [v for (v,) in conn.execute(q.order_by(col).limit(limit))]
