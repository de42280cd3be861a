"""Stored Responses: the Response object and its items, scoped to the account that created them.

Written after the answer (a background task); a read of an id whose write is still in flight in this
process waits for it, so ``previous_response_id`` right after a streamed answer finds it. Calls are
blocking and short; the async methods run them in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from perilune.store.db import Database
from perilune.store.tables import response_items, responses

MAX_CHAIN = 200  # previous_response_id hops followed before a conversation is refused as too long


class ChainTooLong(Exception):
    pass


class ResponseStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: dict[str, asyncio.Task[None]] = {}

    # ---- writes ----------------------------------------------------------------------------------

    def save_sync(self, account_id: str, body: dict[str, Any], inputs: Sequence[dict[str, Any]]) -> None:
        rid = str(body["id"])
        rows = [{"response_id": rid, "kind": "input", "position": i, "id": str(item.get("id") or ""),
                 "account_id": account_id, "item": orjson.dumps(item).decode()} for i, item in enumerate(inputs)]
        rows += [{"response_id": rid, "kind": "output", "position": i, "id": str(item.get("id") or ""),
                  "account_id": account_id, "item": orjson.dumps(item).decode()}
                 for i, item in enumerate(body.get("output") or ())]
        with self.db.engine.begin() as conn:
            conn.execute(responses.insert().values(
                id=rid, account_id=account_id, created_at=float(body.get("created_at") or 0),
                model=str(body.get("model") or ""), previous_response_id=body.get("previous_response_id"),
                body=orjson.dumps(body).decode()))
            if rows:
                conn.execute(response_items.insert(), rows)

    def save_later(self, account_id: str, body: dict[str, Any], inputs: Sequence[dict[str, Any]]) -> asyncio.Task[None]:
        """Start the write now; reads of this id wait for it."""
        rid = str(body["id"])
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.save_sync, account_id, body, inputs))
        self._pending[rid] = task
        task.add_done_callback(lambda _t: self._pending.pop(rid, None))
        return task

    async def _settled(self, rid: str) -> None:
        task = self._pending.get(rid)
        if task is not None:
            await asyncio.wait([task])

    def delete_sync(self, account_id: str, rid: str) -> bool:
        with self.db.engine.begin() as conn:
            n = conn.execute(responses.delete().where(responses.c.id == rid,
                                                      responses.c.account_id == account_id)).rowcount
            if n:
                conn.execute(response_items.delete().where(response_items.c.response_id == rid))
        return bool(n)

    async def delete(self, account_id: str, rid: str) -> bool:
        await self._settled(rid)
        return await asyncio.to_thread(self.delete_sync, account_id, rid)

    # ---- reads -----------------------------------------------------------------------------------

    def get_sync(self, account_id: str, rid: str) -> dict[str, Any] | None:
        with self.db.engine.connect() as conn:
            body = conn.execute(sa.select(responses.c.body).where(
                responses.c.id == rid, responses.c.account_id == account_id)).scalar()
        return orjson.loads(body) if body is not None else None

    async def get(self, account_id: str, rid: str) -> dict[str, Any] | None:
        await self._settled(rid)
        return await asyncio.to_thread(self.get_sync, account_id, rid)

    def input_items_sync(self, account_id: str, rid: str, *, limit: int, order: str, after: str | None
                         ) -> tuple[list[dict[str, Any]], bool] | None:
        """A page of a response's input items (``None``: no such response for this account)."""
        with self.db.engine.connect() as conn:
            if conn.execute(sa.select(responses.c.id).where(responses.c.id == rid,
                                                            responses.c.account_id == account_id)).first() is None:
                return None
            rows = conn.execute(sa.select(response_items.c.id, response_items.c.item).where(
                response_items.c.response_id == rid, response_items.c.kind == "input"
            ).order_by(response_items.c.position.desc() if order == "desc" else response_items.c.position)).all()
        ids = [r.id for r in rows]
        start = ids.index(after) + 1 if after in ids else 0
        page = rows[start:start + limit]
        return [orjson.loads(r.item) for r in page], start + limit < len(rows)

    async def input_items(self, account_id: str, rid: str, *, limit: int, order: str, after: str | None
                          ) -> tuple[list[dict[str, Any]], bool] | None:
        await self._settled(rid)
        return await asyncio.to_thread(self.input_items_sync, account_id, rid, limit=limit, order=order, after=after)

    def context_sync(self, account_id: str, rid: str | None, refs: Sequence[str]
                     ) -> tuple[list[dict[str, Any]] | None, dict[str, dict[str, Any]]]:
        """The conversation before a request (every input and output item of the ``previous_response_id``
        chain, oldest first; ``None`` when the id is unknown to this account) and the stored items the
        request's ``item_reference`` ids name."""
        history: list[dict[str, Any]] | None = None
        found: dict[str, dict[str, Any]] = {}
        with self.db.engine.connect() as conn:
            if rid is not None:
                chain: list[str] = []
                cur: str | None = rid
                while cur is not None:
                    if len(chain) >= MAX_CHAIN:
                        raise ChainTooLong(rid)
                    prev = conn.execute(sa.select(responses.c.previous_response_id).where(
                        responses.c.id == cur, responses.c.account_id == account_id)).first()
                    if prev is None:
                        break
                    chain.append(cur)
                    cur = prev[0]
                if chain and chain[0] == rid:
                    order = {r: i for i, r in enumerate(reversed(chain))}
                    rows = conn.execute(sa.select(response_items.c.response_id, response_items.c.kind,
                                                  response_items.c.position, response_items.c.item).where(
                        response_items.c.response_id.in_(chain))).all()
                    ordered = sorted(rows, key=lambda r: (order[r.response_id], r.kind != "input", r.position))
                    history = [orjson.loads(r.item) for r in ordered]
            if refs:
                for row in conn.execute(sa.select(response_items.c.id, response_items.c.item).where(
                        response_items.c.account_id == account_id, response_items.c.id.in_(list(refs)))):
                    found[row.id] = orjson.loads(row.item)
        return history, found

    async def context(self, account_id: str, rid: str | None, refs: Sequence[str]
                      ) -> tuple[list[dict[str, Any]] | None, dict[str, dict[str, Any]]]:
        if rid is not None:
            await self._settled(rid)
        return await asyncio.to_thread(self.context_sync, account_id, rid, refs)
