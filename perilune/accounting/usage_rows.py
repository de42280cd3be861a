"""A usage event as a usage_records row (the columns of perilune.store.tables.usage_records)."""

from __future__ import annotations

from typing import Any

import orjson

from perilune.schema.canonical import UsageEvent
from perilune.store.usage_write import sample_of

Row = dict[str, Any]
# the request's usage event, and its payload row (observability) or None
Item = tuple[UsageEvent, Row | None]


def generation_ms(o: UsageEvent) -> float | None:
    """The time the output took: after the first chunk for streams, the whole call otherwise."""
    if o.latency_ms is None:
        return None
    if o.stream and o.ttft_ms is not None and o.latency_ms > o.ttft_ms:
        return o.latency_ms - o.ttft_ms
    return o.latency_ms


def to_row(item: Item) -> Row:
    o, payload = item
    u, c = o.usage, o.cost
    return {
        "id": o.request_id,
        "created_at": o.started_wall,
        "account_id": o.account_id,
        "key_id": o.key_id,
        "app": o.app[:200],  # client-controlled values are cut to their column's size
        "dialect": o.dialect,
        "endpoint": o.endpoint,
        "model_requested": o.model_requested[:200],
        "model_served": o.model_served,
        "model": (o.model_served or o.model_requested)[:200],
        "provider": o.provider,
        "status": o.status,
        "error_type": o.error_type[:100] if o.error_type else None,
        "stream": o.stream,
        "input_tokens": u.input_tokens if u else None,
        "output_tokens": u.output_tokens if u else None,
        "cache_read_tokens": u.cache_read_tokens if u else None,
        "cache_write_tokens": u.cache_write_tokens if u else None,
        "reasoning_tokens": u.reasoning_tokens if u else None,
        "estimated": bool(u and u.estimated),
        "input_cost_pusd": c.input_pusd if c else None,
        "output_cost_pusd": c.output_pusd if c else None,
        "cache_cost_pusd": c.cache_pusd if c else None,
        "unit_cost_pusd": c.unit_pusd if c else None,
        "total_cost_pusd": c.total_pusd if c else None,
        "latency_ms": o.latency_ms,
        "ttft_ms": o.ttft_ms,
        "generation_ms": generation_ms(o),
        "route": orjson.dumps([[a.provider, a.model, a.status, a.error] for a in o.route]).decode(),
        "observed": payload is not None,
        "charged_pusd": o.charged_pusd,
        "free_tokens": o.free_tokens,
        "sample": sample_of(o.request_id),
    }
