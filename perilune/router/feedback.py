"""Feedback and decisions in the database: scores on logged requests, decisions of routed requests.

Blocking calls (callers use ``asyncio.to_thread``), except :func:`save_decision`, which is a
coroutine spawned after the response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from perilune.store import tables as t
from perilune.store.db import Database

log = logging.getLogger("perilune.router")


def record(db: Database, request_id: str, account_id: str | None, score: float, now: float) -> bool:
    """Attach ``score`` to a logged request (of ``account_id``; None: any account). False: no such request."""
    q = sa.select(t.usage_records.c.account_id).where(t.usage_records.c.id == request_id)
    with db.engine.begin() as conn:
        row = conn.execute(q).first()
        if row is None or (account_id is not None and row[0] != account_id):
            return False
        updated = conn.execute(t.request_feedback.update().where(t.request_feedback.c.request_id == request_id)
                               .values(score=score, updated_at=now)).rowcount
        if not updated:
            conn.execute(t.request_feedback.insert().values(request_id=request_id, account_id=row[0], score=score,
                                                            created_at=now, updated_at=now))
    return True


def _insert_decision(db: Database, request_id: str, created_at: float, decision: dict[str, Any]) -> None:
    with db.engine.begin() as conn:
        conn.execute(t.router_decisions.insert().values(request_id=request_id, created_at=created_at,
                                                        decision=orjson.dumps(decision).decode()))


async def save_decision(db: Database, request_id: str, decision: dict[str, Any]) -> None:
    import time

    try:
        await asyncio.to_thread(_insert_decision, db, request_id, time.time(), decision)
    except SQLAlchemyError as e:  # the decision is a log detail: the request itself is not affected
        log.warning("could not store the router decision of %s: %s", request_id, e)


def decision_of(db: Database, request_id: str) -> dict[str, Any] | None:
    q = sa.select(t.router_decisions.c.decision).where(t.router_decisions.c.request_id == request_id)
    with db.engine.connect() as conn:
        row = conn.execute(q).first()
    return None if row is None else dict(orjson.loads(row[0]))


def _delete(db: Database, table: sa.Table, where: Any, batch: int) -> int:
    ids = sa.select(table.c.request_id).where(where).limit(batch).scalar_subquery()
    with db.engine.begin() as conn:
        return int(conn.execute(sa.delete(table).where(table.c.request_id.in_(ids))).rowcount or 0)


def prune(db: Database, table: sa.Table, cutoff: float | None, orphans: bool, batch: int) -> int:
    """Retention for ``request_feedback`` or ``router_decisions``: delete at most ``batch`` rows written
    before ``cutoff`` (None: none by age) or, with ``orphans``, whose usage record is gone (a score or a
    decision never outlives its request). Callers loop until it returns less than ``batch``."""
    n = 0
    if cutoff is not None:
        n = _delete(db, table, table.c.created_at < cutoff, batch)
    if orphans and n < batch:
        r = t.usage_records
        n += _delete(db, table, ~sa.exists().where(r.c.id == table.c.request_id), batch - n)
    return n


@dataclass(frozen=True, slots=True)
class Scored:
    """One logged request with a quality score and its stored prompt."""

    request_id: str
    model: str  # the model that served it
    messages: list[Any]
    score: float
    cost_pusd: int | None
    input_tokens: int | None
    output_tokens: int | None


def scored_requests(db: Database) -> Iterator[Scored]:
    r, f, p = t.usage_records, t.request_feedback, t.usage_payloads
    q = (sa.select(r.c.id, r.c.model_served, p.c.request, f.c.score, r.c.total_cost_pusd, r.c.input_tokens,
                   r.c.output_tokens)
         .select_from(f.join(r, r.c.id == f.c.request_id).join(p, p.c.id == f.c.request_id))
         .where(p.c.request.is_not(None), r.c.model_served != "")
         .order_by(f.c.request_id))
    with db.engine.connect() as conn:
        for row in conn.execute(q):
            try:
                body = orjson.loads(row[2])
            except orjson.JSONDecodeError:
                continue
            messages = body.get("messages") if isinstance(body, dict) else None
            if not isinstance(messages, list) or not messages:
                continue
            yield Scored(row[0], row[1], messages, float(row[3]), row[4], row[5], row[6])
