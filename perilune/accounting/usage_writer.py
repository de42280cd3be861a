"""The usage writer as a separate process, so that none of its Python work competes with the event loop.

The gateway (:class:`WriterClient`, used by :class:`~perilune.accounting.recorder.UsageRecorder` in
``"process"`` mode) sends each batch of usage rows as one JSON line on the writer's stdin and never
waits for it; the writer (``python -m perilune.accounting.usage_writer``) inserts the batch, or spools
it when the database is away, replays its spool once the database is back, and answers every batch
with one JSON line on stdout: the batch's sequence number and its counters. A batch stays in the
gateway's memory until it is acknowledged, which happens only once it is committed or fsynced to the
spool, so nothing is lost:

- the writer dies: the gateway starts a new one and sends it every unacknowledged batch again (rows
  already committed are skipped, ON CONFLICT DO NOTHING; rollups only count new rows);
- it cannot be started again: the gateway spools the batches itself (and writes from threads from then
  on, as in ``"thread"`` mode);
- shutdown: the gateway closes the writer's stdin after the last batch and waits for the acknowledgements
  (the writer drains and exits); past the timeout the unacknowledged batches are spooled by the gateway.

The writer inherits the gateway's CPU affinity (``taskset``) and is a child of the gateway process, so its
CPU is part of the gateway's when the process tree is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("perilune.usage")

Row = dict[str, Any]
Batch = tuple[list[Row], list[Row]]  # records, payloads


class WriterClient:
    """The gateway's end: a child process, the unacknowledged batches, restarts."""

    def __init__(self, db_url: str, db_timeout_s: float, spool_dir: Path, *, batch_size: int,
                 probe_s: float, probe_max_s: float, on_lost: Callable[[list[Batch]], None],
                 max_restarts: int = 5) -> None:
        self.cmd = [sys.executable, "-m", "perilune.accounting.usage_writer", "--db-url", db_url,
                    "--db-timeout-s", str(db_timeout_s), "--spool-dir", str(spool_dir), "--batch-size",
                    str(batch_size), "--probe-s", str(probe_s), "--probe-max-s", str(probe_max_s)]
        self.on_lost = on_lost  # called with batches the writer can no longer take (the gateway spools them)
        self.max_restarts = max_restarts
        self.proc: asyncio.subprocess.Process | None = None
        self.unacked: dict[int, Batch] = {}
        self.unacked_rows = 0
        self.seq = 0
        self.restarts = 0
        self.failed = False  # no writer process any more: the recorder writes in-process
        self.closing = False
        self.db_ok = True
        self.counts = {"w": 0, "s": 0, "r": 0}  # written, spooled, replayed by every writer so far
        self._base = {"w": 0, "s": 0, "r": 0}
        self._reader: asyncio.Task[None] | None = None
        self._acked = asyncio.Event()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not self.failed

    async def start(self, ready_timeout_s: float = 30.0) -> None:
        """Start a writer and wait (bounded) until it has opened the database, so that the first records
        after start-up are not held up by the writer's imports."""
        self.proc = await asyncio.create_subprocess_exec(*self.cmd, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        try:
            await asyncio.wait_for(self.proc.stdout.readline(), ready_timeout_s)  # its first line: ready
        except TimeoutError:
            log.warning("the usage writer process is slow to start; not waiting for it")
        self._reader = asyncio.get_running_loop().create_task(self._read_acks(self.proc),
                                                              name="perilune-usage-writer-acks")

    def send(self, rows: list[Row], payloads: list[Row]) -> None:
        """Hand a batch over (never waits). Kept until acknowledged."""
        self.seq += 1
        self.unacked[self.seq] = (rows, payloads)
        self.unacked_rows += len(rows)
        self._write(self.seq, rows, payloads)

    def _write(self, seq: int, rows: list[Row], payloads: list[Row]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps({"seq": seq, "rows": rows, "payloads": payloads}) + b"\n")

    async def _read_acks(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                break
            try:
                ack = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            batch = self.unacked.pop(ack["seq"], None)
            if batch is not None:
                self.unacked_rows -= len(batch[0])
            self.db_ok = bool(ack["ok"])
            for k in self.counts:
                self.counts[k] = self._base[k] + ack[k]
            self._acked.set()
        await proc.wait()
        self._acked.set()
        if not self.closing:
            await self._restart(proc.returncode)

    async def _restart(self, code: int | None) -> None:
        log.error("the usage writer process exited (code %s) with %d batches unacknowledged", code,
                  len(self.unacked))
        self._base = dict(self.counts)
        while self.restarts < self.max_restarts and not self.closing:
            self.restarts += 1
            try:
                await self.start()
            except OSError as e:
                log.error("cannot restart the usage writer: %s", e)
                await asyncio.sleep(0.2 * self.restarts)
                continue
            for seq, (rows, payloads) in sorted(self.unacked.items()):
                self._write(seq, rows, payloads)
            return
        self.failed = True
        lost = list(self.unacked.values())
        self.unacked.clear()
        self.unacked_rows = 0
        if lost:
            self.on_lost(lost)

    async def close(self, timeout_s: float) -> list[Batch]:
        """Close the writer's input, wait for it to drain and exit; returns what it did not acknowledge."""
        self.closing = True
        proc = self.proc
        if proc is not None and proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError, OSError):
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                log.error("usage writer still busy after %.0f s; the gateway spools what is left", timeout_s)
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 1.0)
        left = list(self.unacked.values())
        self.unacked.clear()
        self.unacked_rows = 0
        return left


# ---- the writer process ----------------------------------------------------------------------------

def serve(db_url: str, db_timeout_s: float, spool_dir: Path, batch_size: int, probe_s: float,
          probe_max_s: float) -> None:
    from perilune.accounting.recorder import UsageRecorder
    from perilune.store.db import Database
    from perilune.store.usage_write import ping

    db = Database(db_url, db_timeout_s)
    rec = UsageRecorder(db, spool_dir, batch_size=batch_size, probe_s=probe_s, probe_max_s=probe_max_s)
    spool_dir.mkdir(parents=True, exist_ok=True)
    stdin, out = sys.stdin.buffer, sys.stdout.buffer
    last_replay = 0.0

    def ack(seq: int) -> None:
        out.write(orjson.dumps({"seq": seq, "ok": rec.db_ok, "w": rec.written, "s": rec.spooled,
                                "r": rec.replayed}) + b"\n")
        out.flush()

    def housekeeping() -> None:
        nonlocal last_replay
        now = time.monotonic()
        if not rec.db_ok and now >= rec._next_probe:
            try:
                ping(db)
            except Exception:
                rec._probe_wait = min(rec._probe_wait * 2, rec.probe_max_s)
                rec._next_probe = now + rec._probe_wait
            else:
                log.info("usage database is back; replaying the spool")
                rec._db_ok = True
        if rec.db_ok and now - last_replay > 1.0:
            last_replay = now
            try:
                if any(spool_dir.glob("usage-*.jsonl*")) and (n := rec.replay_spool()):
                    log.info("replayed %d spooled usage records", n)
                    ack(0)
            except Exception as e:
                rec._mark_down(e)

    ack(0)  # ready
    fd, buf, eof = stdin.fileno(), bytearray(), False
    while not eof or buf:
        nl = buf.find(b"\n")
        if nl < 0 and not eof:  # no whole batch buffered: wait for more input (or for a timer)
            ready, _, _ = select.select([fd], [], [], 0.5 if rec.db_ok else max(0.05, rec._probe_wait))
            if ready:
                data = os.read(fd, 1 << 20)
                eof = not data  # the gateway closed our input: everything it sent is buffered
                buf += data
            housekeeping()
            continue
        if nl < 0:  # a torn last line at the end of the input: nothing to acknowledge
            break
        line = bytes(buf[:nl])
        del buf[:nl + 1]
        msg = orjson.loads(line)
        rows, payloads = msg["rows"], msg["payloads"]
        if rec.db_ok:
            try:
                rec._insert(rows, payloads)
            except Exception as e:
                rec._mark_down(e)
                rec._spool(rows, payloads)
        else:
            rec._spool(rows, payloads)
        ack(msg["seq"])
        housekeeping()
    db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description="perilune's usage writer process (started by the gateway)")
    ap.add_argument("--db-url", required=True)
    ap.add_argument("--db-timeout-s", type=float, default=30.0)
    ap.add_argument("--spool-dir", required=True)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--probe-s", type=float, default=0.5)
    ap.add_argument("--probe-max-s", type=float, default=5.0)
    args = ap.parse_args()
    # A Ctrl-C or a service manager's SIGTERM reaches the whole process group: the writer outlives it and
    # exits when the gateway closes its input (after the last batch), so that nothing in flight is lost.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s usage-writer[{os.getpid()}] %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    serve(args.db_url, args.db_timeout_s, Path(args.spool_dir), args.batch_size, args.probe_s, args.probe_max_s)


if __name__ == "__main__":
    main()
