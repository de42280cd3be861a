"""Dashboard pages over the usage log: Logs, Log detail, Analytics."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from perilune.api.usage import usage_filter
from perilune.dashboard.charts import Series, stacked_bars, top_series
from perilune.dashboard.page import Page, compact, page, usd, utc
from perilune.errors import NotFound
from perilune.router.feedback import decision_of
from perilune.store.usage import (
    UsageFilter,
    distinct_values,
    get_record,
    list_records,
    payload_json,
    record_json,
)
from perilune.store.usage_agg import AggRow, aggregate

FILTERS = ("app", "model", "provider", "status", "key_id", "from", "to")
RANGES = {"24h": (86400.0, "hour"), "7d": (7 * 86400.0, "day"), "30d": (30 * 86400.0, "day")}
PAGE_SIZE = 50


def _query(pg: Page, **changes: str | None) -> str:
    """The current page's query string with some parameters changed (None removes)."""
    q = {k: v for k, v in pg.request.query.items() if v}
    for k, v in changes.items():
        if v:
            q[k] = v
        else:
            q.pop(k, None)
    return "?" + urlencode(q) if q else ""


@page()
async def logs(pg: Page) -> web.StreamResponse:
    q = pg.request.query
    db = pg.services.db
    f = usage_filter(_local_times(q), pg.account_id)
    rows, cursor = await asyncio.to_thread(list_records, db, f, limit=PAGE_SIZE,
                                           cursor=q.get("cursor") or None)
    apps, models, providers = await asyncio.gather(*(
        asyncio.to_thread(distinct_values, db, c, pg.account_id) for c in ("app", "model", "provider")))
    accounts = await asyncio.to_thread(pg.services.key_store.list_accounts) if pg.is_admin else []
    return pg.render("logs.html", active="logs", records=[record_json(r) for r in rows],
                     filters={k: q.get(k, "") for k in (*FILTERS, "account_id")}, apps=apps, models=models,
                     providers=providers, accounts=accounts,
                     next_url=_query(pg, cursor=cursor) if cursor else None,
                     first_url=_query(pg, cursor=None) if q.get("cursor") else None)


def _local_times(q: Any) -> dict[str, str]:
    """``<input type=datetime-local>`` sends ``2026-11-21T10:00`` (shown as UTC on the form)."""
    out = {k: v for k, v in q.items()}
    for k in ("from", "to"):
        v = out.get(k, "")
        if v and "T" in v and not v.endswith("Z") and "+" not in v:
            out[k] = v + "Z"
    return out


@page()
async def log_detail(pg: Page) -> web.StreamResponse:
    record_id = pg.request.match_info["record_id"]
    got = await asyncio.to_thread(get_record, pg.services.db, record_id, pg.account_id)
    if got is None:
        raise NotFound(f"No usage record '{record_id}' here.")
    rec, payload = got
    r = record_json(rec)
    body = payload_json(payload)
    routed = (await asyncio.to_thread(decision_of, pg.services.db, record_id)) if rec["endpoint"] == "router" else None
    return pg.render("log_detail.html", active="logs", r=r, rec=rec, payload=body, router=routed,
                     expired=bool(rec["observed"] and payload is None),
                     messages=conversation(body["request"]) if body else [],
                     output=response_output(body["response"]) if body else [])


def _text(content: Any) -> tuple[str, list[str]]:
    """Text of an OpenAI message content (string or parts) and notes for non-text parts."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts, notes = [], []
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image_url":
                url = str((part.get("image_url") or {}).get("url", ""))
                notes.append("image: " + (url[:60] + "…" if len(url) > 60 else url))
            else:
                notes.append(str(kind or "part"))
    return "\n".join(texts), notes


def _calls(calls: Any) -> list[dict[str, str]]:
    out = []
    for c in calls or ():
        fn = c.get("function") or {} if isinstance(c, dict) else {}
        out.append({"id": str(c.get("id") or "") if isinstance(c, dict) else "",
                    "name": str(fn.get("name", "")), "arguments": str(fn.get("arguments", ""))})
    return out


def conversation(req: Any) -> list[dict[str, Any]]:
    """The request as a list of messages (chat), or the prompt / input as one user message."""
    if not isinstance(req, dict):
        return []
    if isinstance(req.get("messages"), list):
        out = []
        for m in req["messages"]:
            if not isinstance(m, dict):
                continue
            text, notes = _text(m.get("content"))
            out.append({"role": str(m.get("role", "?")), "text": text, "notes": notes,
                        "tool_calls": _calls(m.get("tool_calls")), "tool_call_id": m.get("tool_call_id")})
        return out
    for key in ("prompt", "input"):
        if key in req:
            v = req[key]
            return [{"role": key, "text": v if isinstance(v, str) else str(v)[:4000], "notes": [],
                     "tool_calls": [], "tool_call_id": None}]
    return []


def response_output(resp: Any) -> list[dict[str, Any]]:
    """What the model answered: one entry per choice (or the error, or an embeddings summary)."""
    if not isinstance(resp, dict):
        return []
    out: list[dict[str, Any]] = []
    for c in resp.get("choices") or ():
        if not isinstance(c, dict):
            continue
        msg: dict[str, Any] = c["message"] if isinstance(c.get("message"), dict) else {}
        text, notes = _text(msg.get("content")) if msg else (str(c.get("text") or ""), [])
        out.append({"index": c.get("index", 0), "text": text, "notes": notes,
                    "reasoning": msg.get("reasoning_content") or msg.get("reasoning") if msg else None,
                    "refusal": msg.get("refusal") if msg else None,
                    "tool_calls": _calls(msg.get("tool_calls")), "finish_reason": c.get("finish_reason")})
    if isinstance(resp.get("data"), list) and resp.get("object") == "list":
        dims = [len(d["embedding"]) for d in resp["data"] if isinstance(d, dict)
                and isinstance(d.get("embedding"), list)]
        out.append({"index": 0, "text": f"{len(resp['data'])} embedding(s)"
                    + (f" of {dims[0]} dimensions" if dims else ""), "notes": [], "reasoning": None,
                    "refusal": None, "tool_calls": [], "finish_reason": None})
    err = resp.get("error")
    if isinstance(err, dict):
        out.append({"index": "error", "text": str(err.get("message") or err.get("type") or err),
                    "notes": [], "reasoning": None, "refusal": None, "tool_calls": [], "finish_reason": None})
    return out


# ---- analytics ------------------------------------------------------------------------------------

def _buckets(start: float, end: float, size: float) -> list[float]:
    first = math.floor(start / size) * size
    return [first + i * size for i in range(int((end - first) // size) + 1)]


def _metric(r: AggRow, metric: str) -> float:
    if metric == "spend":
        return r.cost_pusd.get("total", 0) / 1e12
    if metric == "requests":
        return float(r.requests)
    return float(r.input_tokens + r.cache_read_tokens + r.cache_write_tokens + r.output_tokens)


@page()
async def analytics(pg: Page) -> web.StreamResponse:
    q = pg.request.query
    rng = q.get("range", "7d")
    rng = rng if rng in RANGES else "7d"
    by = q.get("by", "app")
    by = by if by in ("app", "model") else "app"
    span, grain = RANGES[rng]
    now = time.time()
    f = UsageFilter(account_id=pg.account_id, start=now - span)
    db = pg.services.db
    over_time, summary, table = await asyncio.gather(
        asyncio.to_thread(aggregate, db, f, (grain, by), percentiles=False),
        asyncio.to_thread(aggregate, db, f, ()),
        asyncio.to_thread(aggregate, db, f, (by,)))
    buckets = _buckets(f.start or now, now, 3600.0 if grain == "hour" else 86400.0)
    index = {b: i for i, b in enumerate(buckets)}
    fmt = "%H:%M" if grain == "hour" else "%b %d"
    labels = [utc(b, fmt) for b in buckets]
    charts = []
    for metric, title, axis in (("spend", "Spend (USD)", _usd_axis), ("requests", "Requests", compact),
                                ("tokens", "Tokens", compact)):
        values: dict[str, list[float]] = {}
        for r in over_time.rows:
            i = index.get(r.group[grain])
            if i is None:
                continue
            name = str(r.group[by] or "—")
            values.setdefault(name, [0.0] * len(buckets))[i] += _metric(r, metric)
        series: list[Series] = top_series(values)
        charts.append({"id": metric, "title": f"{title} by {by}", "series": series,
                       "svg": stacked_bars(labels, series, title=f"{title} by {by}, per {grain}", fmt=axis)})
    total = summary.rows[0] if summary.rows else None
    accounts = await asyncio.to_thread(pg.services.key_store.list_accounts) if pg.is_admin else []
    return pg.render("analytics.html", active="analytics", rng=rng, by=by, ranges=list(RANGES), charts=charts,
                     total=total, table=table.rows, grain=grain, percentiles=summary.percentile_method,
                     accounts=accounts)


def _usd_axis(v: float) -> str:
    return usd(round(v * 1e12), 2) if v < 1 else f"${v:,.2f}"
