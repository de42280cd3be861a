"""Usage recording off the request path.

``record()`` only appends to an in-memory deque (and, for the rare request sent with
``"observability": true``, serialises its payload). A background task takes batches from the deque,
turns them into rows in a worker thread (also feeding the Prometheus metrics and the optional access
log there), and writes records, payloads and hourly rollups in one transaction
(:func:`perilune.store.usage_write.insert_batch`).

Where the rows are written (``mode``): ``"process"`` hands each batch to a separate writer process over
a pipe (:mod:`perilune.accounting.usage_writer`: it inserts, spools and replays on its own; the gateway
keeps a batch until it is acknowledged and never waits for it); ``"thread"`` inserts from worker threads
of the gateway process, whose GIL hand-offs are what the process mode takes off the event loop's back.

Nothing is lost and nothing is counted twice:

- Database unreachable: the batch goes to an append-only spool file ``spool/usage-<pid>.jsonl``
  (fsynced) and the writer switches to spooling directly, probing the database with backoff instead of
  waiting on a timeout per batch. Once it answers, spool files are replayed in batches. Records are
  keyed by request id and inserted with ON CONFLICT DO NOTHING; rollups only count rows that were
  actually new, in the same transaction, so replaying a file twice (a crash mid-replay) is harmless.
- Memory is bounded by ``max_pending`` events and ``max_pending_bytes`` of captured payloads: above
  either, an overflow task spools the oldest events, independently of a writer stuck on a slow database.
- A spool file is claimed for replay by an atomic rename, only when it belongs to this process (under
  the spool lock, so no append is lost) or to a process that is no longer alive.
- Shutdown drains everything (to the database or the spool); a writer stuck past ``stop_timeout_s``
  has its in-flight rows spooled as well (a duplicate, if the stuck insert did commit, is skipped on
  replay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import orjson
from sqlalchemy import exc as sa_exc

from perilune.accounting.capture import payload_row
from perilune.accounting.usage_rows import Item, Row, generation_ms, to_row
from perilune.accounting.usage_writer import Batch, WriterClient
from perilune.metrics import Metrics, RecorderStats
from perilune.schema.canonical import UsageEvent
from perilune.store.db import Database
from perilune.store.usage_write import insert_batch, normalize, ping

log = logging.getLogger("perilune.usage")
access_log = logging.getLogger("perilune.access")

__all__ = ["Item", "Row", "UsageRecorder", "generation_ms", "to_row"]
_OWNED = re.compile(r"^usage-(\d+)\.jsonl$")
_CLAIMED = re.compile(r"^usage-.+\.jsonl\.replay-(\d+)$")
IDLE_S = 5.0  # with nothing pending the writer loop wakes this rarely (a record arms the flush timer)
Mode = Literal["thread", "process"]


def without_nul(row: Row) -> Row:
    """PostgreSQL text cannot hold NUL: replace it (U+FFFD) so that no record is ever unwritable."""
    for k, v in row.items():
        if isinstance(v, str) and "\x00" in v:
            row[k] = v.replace("\x00", "\ufffd")
    return row


def _payload_bytes(p: Row | None) -> int:
    return 0 if p is None else len(p["request"] or "") + len(p["response"] or "") + 64


class UsageRecorder:
    def __init__(self, db: Database, spool_dir: Path, *, max_pending: int = 100_000, batch_size: int = 500,
                 flush_s: float = 0.25, max_pending_bytes: int = 64 * 1024 * 1024,
                 payload_max_bytes: int = 1024 * 1024, metrics: Metrics | None = None,
                 access_log: bool = False, probe_s: float = 0.5, probe_max_s: float = 5.0,
                 stop_timeout_s: float = 10.0, sinks: Sequence[Callable[[list[Row]], None]] = (),
                 mode: Mode = "thread") -> None:
        self.db = db
        self.mode = mode
        self._writer: WriterClient | None = None
        self._armed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # set by start()
        self._own_spool = False  # this process spooled rows itself (process mode: it replays them too)
        self.spool_dir = spool_dir
        self.spool_path = spool_dir / f"usage-{os.getpid()}.jsonl"
        self.rejected_path = spool_dir / f"rejected-usage-{os.getpid()}.jsonl"
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.payload_max_bytes = payload_max_bytes
        self.batch_size = batch_size
        self.flush_s = flush_s
        self.metrics = metrics
        self.access_log = access_log
        self.sinks = list(sinks)  # also fed each batch of rows, e.g. OpenTelemetry spans
        self.probe_s, self.probe_max_s = probe_s, probe_max_s
        self.stop_timeout_s = stop_timeout_s
        self._pending: deque[Item] = deque()
        self._pending_bytes = 0
        self._inflight: list[Row] = []
        self._inflight_payloads: list[Row] = []
        self._wake = asyncio.Event()
        self._overflow = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._overflow_task: asyncio.Task[None] | None = None
        self._spool_lock = threading.Lock()
        self._stopping = False
        self._db_ok = True
        self._probe_wait = probe_s
        self._next_probe = 0.0
        self.written = 0
        self.spooled = 0
        self.replayed = 0
        if metrics is not None:
            metrics.watch_recorder(self.stats)

    # ---- hot path ----
    def record(self, outcome: UsageEvent) -> None:
        payload = None
        if outcome.capture:
            try:
                payload = payload_row(outcome, self.payload_max_bytes)
            except Exception:  # a payload we cannot serialise must not fail the request or lose its record
                log.exception("could not serialise the observability payload of %s", outcome.request_id)
            self._pending_bytes += _payload_bytes(payload)
        self._pending.append((outcome, payload))
        n = len(self._pending)
        if n >= self.batch_size:
            self._wake.set()
        elif not self._armed and self._loop is not None:  # the first event of a batch: flush within flush_s
            self._armed = True
            self._loop.call_later(self.flush_s, self._wake.set)
        if n > self.max_pending or self._pending_bytes > self.max_pending_bytes:
            if n > 2 * self.max_pending or self._pending_bytes > 2 * self.max_pending_bytes:
                # The overflow task cannot keep up (the loop is flooded): spool here, a hard bound.
                rows, payloads = self._convert(self._take(self._excess()))
                self._spool(rows, payloads)
            self._overflow.set()

    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def db_ok(self) -> bool:
        if self._writer is not None and self._writer.alive:
            return self._writer.db_ok
        return self._db_ok

    def spool_size(self) -> int:
        if not self.spool_dir.exists():
            return 0
        total = 0
        for p in self.spool_dir.glob("usage-*.jsonl*"):
            with contextlib.suppress(FileNotFoundError):
                total += p.stat().st_size
        return total

    def stats(self) -> RecorderStats:
        c = self._writer.counts if self._writer is not None else {"w": 0, "s": 0, "r": 0}
        depth = len(self._pending) + (self._writer.unacked_rows if self._writer is not None else 0)
        return RecorderStats(queue_depth=depth, spool_bytes=self.spool_size(), written=self.written + c["w"],
                             spooled=self.spooled + c["s"], replayed=self.replayed + c["r"], db_up=self.db_ok)

    # ---- lifecycle ----
    async def start(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        if self.mode == "process" and _in_memory(self.db.url):
            log.warning("an in-memory database cannot be shared with a writer process; writing from threads")
            self.mode = "thread"
        if self.mode == "process":
            self._writer = WriterClient(self.db.url, self.db.timeout_s, self.spool_dir, batch_size=self.batch_size,
                                        probe_s=self.probe_s, probe_max_s=self.probe_max_s, on_lost=self._lost)
            try:
                await self._writer.start()
            except OSError as e:
                log.error("cannot start the usage writer process (%s); writing from threads", e)
                self._writer.failed = True
        self._task = asyncio.create_task(self._run(), name="perilune-usage-writer")
        self._overflow_task = asyncio.create_task(self._overflow_loop(), name="perilune-usage-overflow")

    async def stop(self, budget_s: float | None = None) -> None:
        """Drain and stop; a writer is waited for ``stop_timeout_s`` at most, or ``budget_s`` when less
        (what is left of a shutdown's grace period)."""
        timeout_s = self.stop_timeout_s if budget_s is None else min(self.stop_timeout_s, budget_s)
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                log.error("usage writer still busy after %.0f s; spooling what is left", timeout_s)
                stuck, stuck_payloads = self._inflight, self._inflight_payloads
                self._db_ok = False  # whatever is left goes to the spool
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                if stuck:
                    self._spool(stuck, stuck_payloads)
            except Exception:
                log.exception("usage writer failed")
        if self._overflow_task is not None:
            self._overflow_task.cancel()
            await asyncio.gather(self._overflow_task, return_exceptions=True)
        await self.flush()  # events recorded after the writer exited
        if self._writer is not None:
            for rows, payloads in await self._writer.close(timeout_s):
                self._spool(rows, payloads)

    def _lost(self, batches: list[Batch]) -> None:
        """The writer process is gone for good: spool what it had not acknowledged."""
        for rows, payloads in batches:
            self._spool(rows, payloads)

    async def flush(self) -> None:
        """Write (or spool) everything pending now."""
        while self._pending:
            await self._write(self._take(self.batch_size))

    # ---- writer ----
    async def _run(self) -> None:
        last_replay = 0.0
        while True:
            if not self._stopping:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.flush_s if self._pending or not self._db_ok else IDLE_S):
                        await self._wake.wait()
            self._wake.clear()
            self._armed = False
            try:
                await self.flush()
                if self._stopping:
                    return
                now = time.monotonic()
                if self._writer is not None and self._writer.alive:
                    # the writer process probes and replays; this process only its own spool, if any
                    if self._own_spool and self.db_ok and now - last_replay > 1.0:
                        last_replay = now
                        self._own_spool = False
                        await self._replay()
                    continue
                if not self._db_ok and now >= self._next_probe:
                    await self._probe()
                if self._db_ok and now - last_replay > 1.0:
                    last_replay = now
                    await self._replay()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("usage writer loop error")
                if self._stopping:
                    return

    def _take(self, n: int) -> list[Item]:
        items = []
        for _ in range(min(n, len(self._pending))):
            item = self._pending.popleft()
            if item[1] is not None:
                self._pending_bytes -= _payload_bytes(item[1])
            items.append(item)
        return items

    def _convert(self, items: list[Item]) -> tuple[list[Row], list[Row]]:
        """Rows and payload rows of a batch; also feeds metrics and the access log. Runs in a thread."""
        rows = []
        for item in items:
            try:
                rows.append(without_nul(to_row(item)))
            except Exception:  # a bug, not data: say which request, keep the rest of the batch
                log.exception("cannot convert the usage event of %s", item[0].request_id)
        payloads = [without_nul(item[1]) for item in items if item[1] is not None]
        if self.metrics is not None:
            self.metrics.observe_rows(rows)
        for sink in self.sinks:
            try:
                sink(rows)
            except Exception:  # an observer's failure never costs a record
                log.exception("usage sink %r failed", sink)
        if self.access_log:
            for r in rows:
                access_log.info("%s %s %s", r["endpoint"], r["status"], r["model"], extra={
                    "request_id": r["id"], "fields": {k: r[k] for k in _ACCESS_FIELDS}})
        return rows, payloads

    async def _write(self, items: list[Item]) -> None:
        if not items:
            return
        w = self._writer
        if w is not None and w.alive:
            rows, payloads = self._convert(items)  # a few microseconds per row: cheaper than a thread hop
            if w.unacked_rows + len(rows) <= self.max_pending:
                w.send(rows, payloads)
            else:  # the writer is behind (a stuck database): memory stays bounded, the disk takes it
                await asyncio.to_thread(self._spool, rows, payloads)
            return
        rows, payloads = await asyncio.to_thread(self._convert, items)
        self._inflight, self._inflight_payloads = rows, payloads
        try:
            if self._db_ok:
                try:
                    await asyncio.to_thread(self._insert, rows, payloads)
                    return
                except Exception as e:
                    self._mark_down(e)
            await asyncio.to_thread(self._spool, rows, payloads)
        finally:
            self._inflight, self._inflight_payloads = [], []

    def _insert(self, rows: list[Row], payloads: list[Row]) -> None:
        self.written += self._store(rows, payloads)

    def _store(self, rows: list[Row], payloads: list[Row]) -> int:
        """insert_batch, except that a batch the database refuses for its data (not for being away)
        is inserted row by row, and the rows it still refuses are set aside in
        ``spool/rejected-usage-<pid>.jsonl`` (never replayed automatically) with an error in the log,
        instead of blocking every later batch."""
        try:
            return insert_batch(self.db, rows, payloads)
        except (sa_exc.DataError, sa_exc.IntegrityError) as e:
            log.error("the database refused a usage batch (%s); inserting it row by row",
                      e.__class__.__name__)
        by_id = {p["id"]: p for p in payloads}
        new = 0
        for r in rows:
            p = by_id.get(r["id"])
            try:
                new += insert_batch(self.db, [r], [p] if p else [])
            except (sa_exc.DataError, sa_exc.IntegrityError) as e:
                log.error("usage record %s refused by the database (%s); set aside in %s", r["id"],
                          str(e.orig or e).splitlines()[0][:200], self.rejected_path.name)
                with self._spool_lock, open(self.rejected_path, "ab") as f:
                    f.write(orjson.dumps({"r": r, "p": p, "error": str(e.orig or e)[:500]}) + b"\n")
        return new

    def _mark_down(self, e: BaseException) -> None:
        if self._db_ok:
            log.warning("usage database unavailable (%s: %s); spooling to %s", e.__class__.__name__,
                        str(e).splitlines()[0][:200] if str(e) else "", self.spool_dir)
        self._db_ok = False
        self._probe_wait = self.probe_s
        self._next_probe = time.monotonic() + self._probe_wait

    async def _probe(self) -> None:
        try:
            await asyncio.to_thread(ping, self.db)
        except Exception:
            self._probe_wait = min(self._probe_wait * 2, self.probe_max_s)
            self._next_probe = time.monotonic() + self._probe_wait
            return
        log.info("usage database is back; replaying the spool")
        self._db_ok = True

    async def _replay(self) -> None:
        if not any(self.spool_dir.glob("usage-*.jsonl*")):
            return
        try:
            n = await asyncio.to_thread(self.replay_spool)
        except Exception as e:
            self._mark_down(e)
            return
        if n:
            log.info("replayed %d spooled usage records", n)

    def _excess(self) -> int:
        """How many of the oldest events to spool to get back under 90% of both bounds."""
        n, size = len(self._pending), self._pending_bytes
        take = 0
        for item in self._pending:
            if n - take <= self.max_pending * 9 // 10 and size <= self.max_pending_bytes * 9 // 10:
                break
            size -= _payload_bytes(item[1])
            take += 1
        return take

    async def _overflow_loop(self) -> None:
        last_warning = 0.0
        while True:
            await self._overflow.wait()
            self._overflow.clear()
            spooled = 0
            while len(self._pending) > self.max_pending or self._pending_bytes > self.max_pending_bytes:
                items = self._take(self._excess())
                rows, payloads = await asyncio.to_thread(self._convert, items)
                await asyncio.to_thread(self._spool, rows, payloads)
                spooled += len(rows)
            if spooled and time.monotonic() - last_warning > 10.0:
                last_warning = time.monotonic()
                log.warning("usage queue over its bound (%d events or %d payload bytes); spooled %d events",
                            self.max_pending, self.max_pending_bytes, spooled)

    # ---- spool ----
    def _spool(self, rows: list[Row], payloads: list[Row]) -> None:
        by_id = {p["id"]: p for p in payloads}
        data = b"".join(orjson.dumps({"r": r, "p": by_id.get(r["id"])}) + b"\n" for r in rows)
        with self._spool_lock:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            with open(self.spool_path, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        self.spooled += len(rows)
        self._own_spool = True

    def recover_orphans(self) -> None:
        """Files a dead process had claimed for replay become claimable again."""
        for p in self.spool_dir.glob("usage-*.jsonl.replay-*"):
            m = _CLAIMED.match(p.name)
            if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
                with contextlib.suppress(FileNotFoundError):
                    p.rename(self.spool_dir / f"usage-recovered-{m.group(1)}-{time.time_ns()}.jsonl")

    def _claimable(self, path: Path) -> bool:
        m = _OWNED.match(path.name)
        if m is None:
            return path.name.startswith("usage-recovered-")
        pid = int(m.group(1))
        return pid == os.getpid() or not pid_alive(pid)

    def replay_spool(self) -> int:
        """Insert every claimable spooled row and remove the files; returns rows newly inserted.
        Blocking. A failure leaves the claimed file in place; the next pass retries it."""
        self.recover_orphans()
        replayed = 0
        suffix = f".replay-{os.getpid()}"
        for path in sorted(self.spool_dir.glob("usage-*.jsonl")):
            if not self._claimable(path):
                continue
            claimed = path.with_name(path.name + suffix)
            try:
                if path == self.spool_path:
                    with self._spool_lock:
                        path.rename(claimed)
                else:
                    path.rename(claimed)  # atomic: only one process wins
            except FileNotFoundError:
                continue
        for claimed in sorted(self.spool_dir.glob(f"usage-*.jsonl{suffix}")):
            replayed += self._replay_file(claimed)
        self.replayed += replayed
        return replayed

    def _replay_file(self, claimed: Path) -> int:
        rows: list[Row] = []
        payloads: list[Row] = []
        count = 0
        with open(claimed, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    log.error("skipping a torn line in %s", claimed.name)
                    continue
                row, payload = (obj["r"], obj.get("p")) if "r" in obj else (obj, None)  # older format
                rows.append(normalize(row))
                if payload:
                    payloads.append(payload)
                if len(rows) >= self.batch_size:
                    count += self._store(rows, payloads)
                    rows, payloads = [], []
        count += self._store(rows, payloads)
        claimed.unlink()
        return count


_ACCESS_FIELDS = ("app", "dialect", "endpoint", "model", "provider", "status", "error_type", "stream",
                  "input_tokens", "output_tokens", "latency_ms", "ttft_ms", "key_id", "account_id")


def _in_memory(url: str) -> bool:
    return url.startswith("sqlite") and (url.rstrip("/") in ("sqlite:", "sqlite:/") or ":memory:" in url
                                         or "mode=memory" in url)


def pid_alive(pid: int) -> bool:
    """Whether a process (the owner of a spool or outbox file) still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
