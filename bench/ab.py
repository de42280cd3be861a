"""Two gateway configurations side by side: A and B run at the same time and are measured in turns.

    python -m bench.ab --pin --a 'usage_writer = "thread"' --b 'usage_writer = "process"' \
        [--scenarios c1_20,c64_0] [--rounds 6] [--duration 3]
    python -m bench.ab --pin --a-code /tmp/before --scenarios c64_20     # another checkout's code as A

Both gateways (perilune with accounting and recording on, each with its own home and SQLite file) share
one fake upstream and the same cores; every round measures A then B (then B then A in the next round),
so that a noisy neighbour hits both alike. Reported per scenario: the median over rounds of each
variant's CPU per request (gateway process tree), p50/p99 latency and requests/s, and the median of the
per-round differences B - A (a paired comparison, more robust on a shared machine than two separate
runs).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from typing import Any

from bench.perf import Bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", action="append", default=[], help="a setting line for gateway A (repeatable)")
    ap.add_argument("--b", action="append", default=[], help="a setting line for gateway B (repeatable)")
    ap.add_argument("--a-code", default="", help="a checkout whose perilune gateway A runs (PYTHONPATH)")
    ap.add_argument("--b-code", default="", help="the same for gateway B (e.g. before and after a change)")
    ap.add_argument("--scenarios", default="c1_20,c64_0")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--pin", action="store_true")
    ap.add_argument("--gateway-cpus", default="1")
    ap.add_argument("--load-cpus", default="0")
    ap.add_argument("--port", type=int, default=19730)
    args = ap.parse_args()
    base = argparse.Namespace(duration=args.duration, warmup=args.warmup, repeats=1, chunks=20, chunk_delay_ms=0.0,
                              pin=args.pin, gateway_cpus=args.gateway_cpus, load_cpus=args.load_cpus,
                              quiet_wait=0.0, upstream_port=args.port + 2, workers=1, database_url=None,
                              redis_url=None, gateway_cmd=None, soak=None, label="", out=None, port=args.port)
    a_args, b_args = copy.copy(base), copy.copy(base)
    a_args.set, b_args.set, b_args.port = args.a, args.b, args.port + 1
    a_args.code, b_args.code = args.a_code, args.b_code
    a, b = Bench(a_args), Bench(b_args)
    b.up_url = a.up_url
    try:
        a.start_upstream()
        a.start_gateway()
        b.start_gateway()
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for scen in args.scenarios.split(","):
            a.configure_upstream(float(scen.split("_")[1]))
            for g in (a, b):
                g.load(g.gw_url, conc=4, stream=scen[0] == "s", key=g.key, requests=300)
            runs = out.setdefault(scen, {"A": [], "B": []})
            for i in range(args.rounds):
                order = [("A", a), ("B", b)] if i % 2 == 0 else [("B", b), ("A", a)]
                for name, g in order:
                    r = g.measure("gateway", scen)
                    runs[name].append(r)
                    print(f"{scen} round {i + 1} {name}: cpu/req={r['gw_cpu_ms_per_req']} ms rps={r['rps']} "
                          f"p50={r['latency_ms']['p50']} foreign={r['foreign_on_gw_cores_pct']}%",
                          file=sys.stderr, flush=True)
        print(f"A: {args.a} {args.a_code or 'this checkout'}\nB: {args.b} {args.b_code or 'this checkout'}\n")
        print("| scenario | A CPU ms/req | B CPU ms/req | median of paired B - A | A p50 / p99 ms | B p50 / p99 ms | "
              "A req/s | B req/s | foreign CPU on gw core |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for scen, runs in out.items():
            ra, rb = runs["A"], runs["B"]

            def m(rs: list[dict[str, Any]], *path: str) -> float:
                vals = []
                for r in rs:
                    v: Any = r
                    for k in path:
                        v = v[k]
                    vals.append(float(v))
                return statistics.median(vals)

            diff = statistics.median(y["gw_cpu_ms_per_req"] - x["gw_cpu_ms_per_req"]
                                     for x, y in zip(ra, rb, strict=True))
            print(f"| {scen} | {m(ra, 'gw_cpu_ms_per_req'):.3f} | {m(rb, 'gw_cpu_ms_per_req'):.3f} | {diff:+.3f} | "
                  f"{m(ra, 'latency_ms', 'p50'):.2f} / {m(ra, 'latency_ms', 'p99'):.2f} | "
                  f"{m(rb, 'latency_ms', 'p50'):.2f} / {m(rb, 'latency_ms', 'p99'):.2f} | {m(ra, 'rps'):,.0f} | "
                  f"{m(rb, 'rps'):,.0f} | {m(ra + rb, 'foreign_on_gw_cores_pct'):.0f} % |")
    finally:
        b.stop()
        a.stop()


if __name__ == "__main__":
    main()
