"""perilune under tracemalloc, for finding what grows: ``python -m bench.traced serve ...`` runs the CLI;
the first SIGUSR1 starts tracing (so start-up and warm-up run at full speed), and each one writes a
snapshot to ``$BENCH_TRACE_DIR/snap<N>.bin``: what the second shows is what was allocated since the
first and is still alive. Driven by ``bench.rss``."""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from types import FrameType

_taken = [0]


def _snapshot(_sig: int, _frame: FrameType | None) -> None:
    if not tracemalloc.is_tracing():
        tracemalloc.start(int(os.environ.get("BENCH_TRACE_FRAMES", "4")))
    _taken[0] += 1
    tracemalloc.take_snapshot().dump(os.path.join(os.environ["BENCH_TRACE_DIR"], f"snap{_taken[0]}.bin"))


signal.signal(signal.SIGUSR1, _snapshot)

if __name__ == "__main__":
    from perilune.cli import main

    sys.argv = ["perilune", *sys.argv[1:]]
    main()
