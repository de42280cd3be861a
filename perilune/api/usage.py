"""The usage query API: ``GET /v1/usage/records``, ``/v1/usage/records/{id}``, ``/v1/usage/aggregate``.

An account key sees its own account's records only; an admin key sees every account (and may narrow
to one with ``account_id``). Times are UNIX seconds or ISO 8601 (``2026-11-21T00:00:00Z``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from perilune.api.common import Ctx, endpoint
from perilune.errors import InvalidRequest, NotFound, PermissionDenied
from perilune.store.usage import (
    MAX_LIMIT,
    QueryError,
    UsageFilter,
    get_record,
    list_records,
    payload_json,
    record_json,
    usd,
)
from perilune.store.usage_agg import PERCENTILES, TIME_GROUPS, Aggregate, AggRow, aggregate, parse_group_by


def scope(ctx: Ctx) -> str | None:
    """The account a request may read: its own, or (admin) any / the one asked for."""
    p = ctx.principal
    assert p is not None
    asked = ctx.request.query.get("account_id") or None
    if p.is_admin:
        return asked
    if p.account_id is None or (asked is not None and asked != p.account_id):
        raise PermissionDenied("An account key can only read its own account's usage.")
    return p.account_id


MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z


def parse_time(value: str | None, param: str) -> float | None:
    """UNIX seconds or ISO 8601, between 1970 and 9999 (no nan, inf or 1e309)."""
    if not value:
        return None
    bad = f"'{param}' must be UNIX seconds or an ISO 8601 time between 1970 and 9999, got {value[:64]!r}."
    try:
        t = float(value)
    except ValueError:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            t = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
        except (ValueError, OverflowError):
            raise InvalidRequest(bad, param=param) from None
    if not 0 <= t <= MAX_TIME:  # also false for nan
        raise InvalidRequest(bad, param=param)
    return t


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_filter(q: Mapping[str, str], account_id: str | None) -> UsageFilter:
    try:
        return UsageFilter(account_id=account_id, start=parse_time(q.get("from"), "from"),
                           end=parse_time(q.get("to"), "to"), app=q.get("app") or None,
                           model=q.get("model") or None, provider=q.get("provider") or None,
                           key_id=q.get("key_id") or None, status=q.get("status") or None)
    except QueryError as e:
        raise InvalidRequest(str(e), param=e.param) from None


def _int(value: str | None, param: str, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise InvalidRequest(f"'{param}' must be an integer, got {value!r}.", param=param) from None
    if not lo <= n <= hi:
        raise InvalidRequest(f"'{param}' must be between {lo} and {hi}, got {n}.", param=param)
    return n


@endpoint("openai", "usage.records")
async def list_usage(ctx: Ctx) -> web.StreamResponse:
    q = ctx.request.query
    f = usage_filter(q, scope(ctx))
    limit = _int(q.get("limit"), "limit", 50, 1, MAX_LIMIT)
    try:
        rows, cursor = await asyncio.to_thread(list_records, ctx.services.db, f, limit=limit,
                                               cursor=q.get("cursor") or None)
    except QueryError as e:
        raise InvalidRequest(str(e), param=e.param) from None
    return ctx.json(orjson.dumps({"object": "list", "data": [record_json(r) for r in rows],
                                  "has_more": cursor is not None, "next_cursor": cursor}))


@endpoint("openai", "usage.record")
async def get_usage(ctx: Ctx) -> web.StreamResponse:
    record_id = ctx.request.match_info["record_id"]
    got = await asyncio.to_thread(get_record, ctx.services.db, record_id, scope(ctx))
    if got is None:
        raise NotFound(f"No usage record '{record_id}'.", param="record_id", code="record_not_found")
    rec, payload = got
    out = record_json(rec)
    out["payload"] = payload_json(payload)
    if rec["observed"] and payload is None:
        out["payload_expired"] = True  # removed by payload retention
    return ctx.json(orjson.dumps(out))


@endpoint("openai", "usage.aggregate")
async def aggregate_usage(ctx: Ctx) -> web.StreamResponse:
    q = ctx.request.query
    f = usage_filter(q, scope(ctx))
    try:
        dims = parse_group_by(q.get("group_by"))
    except QueryError as e:
        raise InvalidRequest(str(e), param=e.param) from None
    pct = q.get("percentiles", "true").lower() not in ("false", "0", "no")
    agg = await asyncio.to_thread(aggregate, ctx.services.db, f, dims, percentiles=pct)
    return ctx.json(orjson.dumps(aggregate_json(agg)))


def aggregate_json(agg: Aggregate) -> dict[str, Any]:
    return {"object": "usage.aggregate", "group_by": list(agg.group_by), "from": iso(agg.start),
            "to": iso(agg.end),
            "percentiles": {"method": agg.percentile_method, "values_ranked": agg.percentile_rows},
            "data": [row_json(r) for r in agg.rows]}


def _pcts(values: dict[float, float]) -> dict[str, float | None]:
    return {f"p{round(p * 100)}": (round(values[p], 3) if p in values else None) for p in PERCENTILES}


def row_json(r: AggRow) -> dict[str, Any]:
    group = {d: (iso(v) if d in TIME_GROUPS else v) for d, v in r.group.items()}
    prompt = r.input_tokens + r.cache_read_tokens + r.cache_write_tokens
    lat, ttft, tps = r.latency_avg_ms, r.ttft_avg_ms, r.tokens_per_s
    return {
        "group": group,
        "requests": r.requests,
        "errors": r.errors,
        "error_rate": round(r.error_rate, 6),
        "tokens": {"prompt": prompt, "input": r.input_tokens, "output": r.output_tokens,
                   "cache_read": r.cache_read_tokens, "cache_write": r.cache_write_tokens,
                   "reasoning": r.reasoning_tokens, "total": prompt + r.output_tokens},
        "estimated_requests": r.estimated,
        "cost_usd": {k: usd(v) for k, v in r.cost_pusd.items()},
        "latency_ms": {"avg": None if lat is None else round(lat, 3), **_pcts(r.latency_p)},
        "ttft_ms": {"avg": None if ttft is None else round(ttft, 3), **_pcts(r.ttft_p)},
        "tokens_per_s": None if tps is None else round(tps, 3),
    }


def routes(app: web.Application) -> None:
    app.router.add_get("/v1/usage/records", list_usage)
    app.router.add_get("/v1/usage/records/{record_id}", get_usage)
    app.router.add_get("/v1/usage/aggregate", aggregate_usage)
