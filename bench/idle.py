"""What an idle gateway costs: CPU and wake-ups per second of a perilune serving nothing.

    python -m bench.idle [--seconds 20] [--set 'key_refresh_s = 5'] [--code /tmp/before] [--pin]

Starts perilune as ``bench.perf`` does (SQLite, accounting on, one key with a balance), lets it settle
for 3 s, then reads over ``--seconds`` the CPU time of its process tree and the voluntary context
switches (each one a sleep, so the next is a wake-up) of all its threads. Background loops, timers and
polls are what this measures: the part of the cost per request that a low request rate cannot amortise.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.perf import Bench, proc_cpu_s, tree


def wakeups(pid: int) -> int:
    total = 0
    for p in tree(pid):
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except FileNotFoundError:
            continue
        for t in tasks:
            try:
                for line in open(f"/proc/{p}/task/{t}/status"):
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--set", action="append", default=[], help="a top-level setting line (repeatable)")
    ap.add_argument("--code", default="", help="a checkout whose perilune to run (PYTHONPATH)")
    ap.add_argument("--pin", action="store_true")
    ap.add_argument("--port", type=int, default=19760)
    a = ap.parse_args()
    b = Bench.single(a.port, pin=a.pin, settings=a.set, code=a.code)
    try:
        b.start_upstream()
        b.start_gateway()
        assert b.gw is not None
        time.sleep(3.0)
        c0, w0, t0 = proc_cpu_s(b.gw.pid), wakeups(b.gw.pid), time.monotonic()
        time.sleep(a.seconds)
        cpu, woke, wall = proc_cpu_s(b.gw.pid) - c0, wakeups(b.gw.pid) - w0, time.monotonic() - t0
        print(f"idle {a.set or 'defaults'} {a.code or 'this checkout'}: {cpu * 1000 / wall:.2f} ms CPU/s, "
              f"{woke / wall:.1f} wake-ups/s over {wall:.0f} s")
    finally:
        b.stop()


if __name__ == "__main__":
    main()
