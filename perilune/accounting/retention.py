"""Retention: a background task that deletes old payloads, usage records, rollups and the semantic
router's decisions and feedback scores.

Deletes go in bounded batches (``retention_batch_size`` rows per statement, by primary key, oldest
first), with a pause between batches, so the log is never loaded into memory and writers are never
locked out for long. ``0`` days keeps that kind of data forever. Payloads never outlive their record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from perilune.router.feedback import prune
from perilune.settings import Settings
from perilune.store import tables
from perilune.store.db import Database
from perilune.store.usage_write import delete_older, delete_rollups_older, optimize

log = logging.getLogger("perilune.retention")
DAY_S = 86400.0
PAUSE_S = 0.02  # between batches


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    records_days: float = 0.0
    payloads_days: float = 30.0
    rollups_days: float = 0.0
    batch_size: int = 5000
    interval_s: float = 3600.0
    decisions_days: float = 0.0  # the semantic router's tables (router.decisions_days / feedback_days)
    feedback_days: float = 0.0

    @classmethod
    def from_settings(cls, s: Settings) -> RetentionPolicy:
        return cls(s.retention_records_days, s.retention_payloads_days, s.retention_rollups_days,
                   s.retention_batch_size, s.retention_interval_s, s.router.decisions_days, s.router.feedback_days)

    @property
    def active(self) -> bool:
        return bool(self.records_days or self.payloads_days or self.rollups_days or self.decisions_days
                    or self.feedback_days)


class Retention:
    def __init__(self, db: Database, policy: RetentionPolicy) -> None:
        self.db = db
        self.policy = policy
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.policy.active:
            self._task = asyncio.create_task(self._loop(), name="perilune-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        await asyncio.sleep(5.0)  # let startup finish first
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away: try again next round
                log.warning("retention pass failed", exc_info=True)
            await asyncio.sleep(self.policy.interval_s)

    async def run_once(self, now: float | None = None) -> dict[str, int]:
        """One pass; returns rows deleted per table."""
        p, now = self.policy, time.time() if now is None else now
        done = {"usage_payloads": 0, "usage_records": 0, "usage_rollups": 0, "usage_rollups_daily": 0,
                "router_decisions": 0, "request_feedback": 0}
        record_cut = now - p.records_days * DAY_S if p.records_days else None
        payload_cut = now - p.payloads_days * DAY_S if p.payloads_days else None
        if record_cut is not None:  # payloads go with their records
            payload_cut = record_cut if payload_cut is None else max(payload_cut, record_cut)
        if payload_cut is not None:
            done["usage_payloads"] = await self._drain(tables.usage_payloads, payload_cut)
        if record_cut is not None:
            done["usage_records"] = await self._drain(tables.usage_records, record_cut)
        if p.rollups_days:
            cut = now - p.rollups_days * DAY_S
            for t in (tables.usage_rollups, tables.usage_rollups_daily):
                while n := await asyncio.to_thread(delete_rollups_older, self.db, t, cut):
                    done[t.name] += n
                    await asyncio.sleep(PAUSE_S)
        for table, days in ((tables.router_decisions, p.decisions_days), (tables.request_feedback, p.feedback_days)):
            done[table.name] = await self._prune_router(table, now - days * DAY_S if days else None,
                                                        record_cut is not None)
        await asyncio.to_thread(optimize, self.db)
        if any(done.values()):
            log.info("retention deleted %s", ", ".join(f"{v} {k}" for k, v in done.items() if v),
                     extra={"fields": done})
        return done

    async def _prune_router(self, table: sa.Table, cutoff: float | None, orphans: bool) -> int:
        if cutoff is None and not orphans:
            return 0
        return await self._in_batches(prune, table, cutoff, orphans)

    async def _drain(self, table: sa.Table, cutoff: float) -> int:
        return await self._in_batches(delete_older, table, cutoff)

    async def _in_batches(self, delete: Callable[..., int], *args: object) -> int:
        """``delete(db, *args, batch_size)`` in a thread until a batch comes back short, with a pause
        between batches; returns the rows deleted."""
        total = 0
        while True:
            n = await asyncio.to_thread(delete, self.db, *args, self.policy.batch_size)
            total += n
            if n < self.policy.batch_size:
                return total
            await asyncio.sleep(PAUSE_S)
