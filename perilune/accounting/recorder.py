"""Usage recording off the request path.

``record()`` only appends to an in-memory buffer. A background task writes the buffer to the
database in batches. When the database cannot be reached the batch goes to an append-only spool file
(JSON lines) and is replayed once the database answers again; rows carry their request id as primary
key and are inserted with ON CONFLICT DO NOTHING, so a replay after a crash never duplicates. When
the buffer is full (database slow, not down), the overflow is spooled too: memory stays bounded and
nothing is dropped. Shutdown flushes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from perilune.accounting.pricing import to_pico
from perilune.schema.canonical import Outcome
from perilune.store.db import Database

log = logging.getLogger("perilune.usage")

Item = tuple[Outcome, str | None, str | None, str]  # outcome, key id, account id, app


def to_row(item: Item) -> dict[str, Any]:
    o, key_id, account_id, app = item
    u, c = o.usage, o.cost
    return {
        "id": o.request_id,
        "created_at": o.started_wall,
        "account_id": account_id,
        "key_id": key_id,
        "app": app,
        "dialect": o.dialect,
        "endpoint": o.endpoint,
        "model_requested": o.model_requested,
        "model_served": o.model_served,
        "provider": o.provider,
        "status": o.status,
        "error_type": o.error_type,
        "stream": o.stream,
        "input_tokens": u.input_tokens if u else None,
        "output_tokens": u.output_tokens if u else None,
        "cache_read_tokens": u.cache_read_tokens if u else None,
        "cache_write_tokens": u.cache_write_tokens if u else None,
        "reasoning_tokens": u.reasoning_tokens if u else None,
        "estimated": bool(u and u.estimated),
        "input_cost_pusd": to_pico(c.input_usd) if c else None,
        "output_cost_pusd": to_pico(c.output_usd) if c else None,
        "cache_cost_pusd": to_pico(c.cache_usd) if c else None,
        "unit_cost_pusd": to_pico(c.unit_usd) if c else None,
        "total_cost_pusd": to_pico(c.total_usd) if c else None,
        "latency_ms": o.latency_ms,
        "ttft_ms": o.ttft_ms,
        "route": orjson.dumps([[a.provider, a.model, a.status, a.error] for a in o.route]).decode(),
    }


class UsageRecorder:
    def __init__(self, db: Database, spool_dir: Path, *, max_pending: int = 100_000, batch_size: int = 500,
                 flush_s: float = 0.25) -> None:
        self.db = db
        self.spool_dir = spool_dir
        self.spool_path = spool_dir / f"usage-{os.getpid()}.jsonl"
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.flush_s = flush_s
        self._pending: deque[Item] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._db_ok = True
        self.written = 0
        self.spooled = 0

    # ---- hot path ----
    def record(self, outcome: Outcome, key_id: str | None, account_id: str | None, app: str) -> None:
        self._pending.append((outcome, key_id, account_id, app))
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    @property
    def depth(self) -> int:
        return len(self._pending)

    def spool_size(self) -> int:
        return sum(p.stat().st_size for p in self.spool_dir.glob("usage-*.jsonl*")) if self.spool_dir.exists() else 0

    # ---- lifecycle ----
    async def start(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for orphan in self.spool_dir.glob("usage-*.jsonl.replay-*"):  # claimed by a process that died
            pid = orphan.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    orphan.rename(self.spool_dir / f"usage-recovered-{pid}-{time.time_ns()}.jsonl")
        self._task = asyncio.create_task(self._run(), name="perilune-usage-writer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        """Write (or spool) everything pending now."""
        while self._pending:
            await self._write_batch()

    async def _run(self) -> None:
        last_replay = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while self._pending:
                    await self._write_batch()
                if self._db_ok and time.monotonic() - last_replay > 1.0:
                    last_replay = time.monotonic()
                    await asyncio.to_thread(self.replay_spool)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("usage writer loop error")

    async def _write_batch(self) -> None:
        n = min(len(self._pending), self.batch_size)
        items = [self._pending.popleft() for _ in range(n)]
        rows = [to_row(i) for i in items]
        if len(self._pending) > self.max_pending:  # overflow: spool the excess, keep memory bounded
            extra = [to_row(self._pending.popleft()) for _ in range(len(self._pending) - self.max_pending)]
            await asyncio.to_thread(self._spool, extra)
        try:
            await asyncio.to_thread(self.db.insert_usage, rows)
        except Exception as e:
            if self._db_ok:
                log.warning("usage database unavailable (%s); spooling to %s", e.__class__.__name__,
                            self.spool_path)
            self._db_ok = False
            await asyncio.to_thread(self._spool, rows)
        else:
            if not self._db_ok:
                log.info("usage database is back; replaying spool")
            self._db_ok = True
            self.written += len(rows)

    def _spool(self, rows: list[dict[str, Any]]) -> None:
        with open(self.spool_path, "ab") as f:
            f.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
        self.spooled += len(rows)

    def replay_spool(self) -> int:
        """Insert every spooled row (from this or any dead process) and remove the files. Blocking."""
        replayed = 0
        for path in sorted(self.spool_dir.glob("usage-*.jsonl")):
            claimed = path.with_name(path.name + f".replay-{os.getpid()}")
            try:
                path.rename(claimed)  # atomic claim: only one process replays a file
            except FileNotFoundError:
                continue
            replayed += self._replay_file(claimed)
        for claimed in sorted(self.spool_dir.glob(f"usage-*.jsonl.replay-{os.getpid()}")):
            replayed += self._replay_file(claimed)
        return replayed

    def _replay_file(self, claimed: Path) -> int:
        rows = []
        count = 0
        with open(claimed, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    rows.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    log.error("skipping a torn line in %s", claimed)
                    continue
                if len(rows) >= self.batch_size:
                    self.db.insert_usage(rows)
                    count += len(rows)
                    rows = []
        self.db.insert_usage(rows)
        count += len(rows)
        claimed.unlink()
        return count


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
