"""What grows in the gateway's memory: perilune under tracemalloc (``bench.traced``), a snapshot after a
warm-up and another after ``-n`` more requests at concurrency 64, and the allocation sites that grew most.

    python -m bench.rss [-n 100000] [--top 25] [--frames 4]
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench.perf import Bench, rss_kb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--warmup", type=int, default=20_000)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--port", type=int, default=19770)
    ap.add_argument("--pin", action="store_true")
    a = ap.parse_args()
    trace_dir = Path(tempfile.mkdtemp(prefix="perilune-trace-"))
    os.environ["BENCH_TRACE_DIR"], os.environ["BENCH_TRACE_FRAMES"] = str(trace_dir), str(a.frames)
    b = Bench.single(a.port, pin=a.pin, module="bench.traced")
    try:
        b.start_upstream()
        b.start_gateway()
        assert b.gw is not None
        b.configure_upstream(0)

        def snap(i: int) -> tuple[tracemalloc.Snapshot, int]:
            time.sleep(1.5)  # let the usage writer drain
            os.kill(b.gw.pid, signal.SIGUSR1)  # type: ignore[union-attr]
            path = trace_dir / f"snap{i}.bin"
            for _ in range(600):
                if path.exists() and path.stat().st_size > 0:
                    time.sleep(0.5)
                    break
                time.sleep(0.1)
            return tracemalloc.Snapshot.load(str(path)), rss_kb(b.gw.pid)  # type: ignore[union-attr]

        b.load(b.gw_url, conc=64, stream=False, key=b.key, requests=a.warmup)
        first, rss0 = snap(1)
        r = b.load(b.gw_url, conc=64, stream=False, key=b.key, requests=a.n)
        second, rss1 = snap(2)
        traced = sum(s.size_diff for s in second.compare_to(first, "filename"))
        print(f"{r['ok']} answered; RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MB "
              f"({(rss1 - rss0) * 1024 / a.n:.0f} B/request); traced Python heap {traced / a.n:+.0f} B/request")
        for stat in second.compare_to(first, "traceback")[:a.top]:
            where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback)
            print(f"{stat.size_diff / a.n:+8.1f} B/req {stat.count_diff:+8d} blocks  {where}")
    finally:
        b.stop()


if __name__ == "__main__":
    main()
