"""Resilience benchmark: availability, dead-provider share, hedged TTFT, fallback overhead.

    python -m bench.resilience [--quick] [--out FILE]

Independent simulator processes play the providers: one failing 30 % of requests (503), one healthy,
one hard down (a port nobody listens on), two with a slow TTFT tail (10 % of requests +1000 ms,
independent draws) and one steady (TTFT 20-40 ms, no tail). The gateway runs with accounting on
(key, balance, usage records in SQLite).
Requests come from an aiohttp client in this process; the route each request took is read from the
``x-perilune-route`` header.

Scenarios:
1. availability: model served by [flaky 30 %, healthy] (flaky first), non-streamed, concurrency 16;
   also both providers failing 30 % (independently), which only retries can save.
2. dead share: model served by [dead, healthy] (dead first); the share of requests whose route touched
   the dead provider, overall and after its breaker opened.
3. hedged TTFT: streamed requests, concurrency 8, with ``"hedge": false`` and ``"hedge": true``;
   client-side TTFT (first content chunk) p50/p90/p99. ``b-tail``: a slow-tail provider first and a
   steady one (same TTFT without the tail) second; ``b-tail2``: two slow-tail providers.
4. fallback overhead: concurrency 1, non-streamed, a model with a configured fallback model vs the
   same upstream without one, interleaved; gateway latency p50/p99 (nothing fails).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import Proc, free_port, start, wait_http

MSG = [{"role": "user", "content": "Say hello to the benchmark"}]
SIMS = {
    "flaky": ["--fault", "503", "--fault-rate", "0.3", "--seed", "11"],
    "flaky2": ["--fault", "503", "--fault-rate", "0.3", "--seed", "12"],
    "healthy": [],
    "tailA": ["--ttft-ms", "20", "--ttft-jitter-ms", "20", "--slow-tail-rate", "0.1", "--slow-tail-ms", "1000",
              "--chunk-delay-ms", "2", "--seed", "21"],
    "tailB": ["--ttft-ms", "20", "--ttft-jitter-ms", "20", "--slow-tail-rate", "0.1", "--slow-tail-ms", "1000",
              "--chunk-delay-ms", "2", "--seed", "22"],
    "steady": ["--ttft-ms", "20", "--ttft-jitter-ms", "20", "--chunk-delay-ms", "2"],
}
MODELS = {
    "b-avail": ["flaky", "healthy"],
    "b-avail2": ["flaky", "flaky2"],
    "b-dead": ["dead", "healthy"],
    "b-tail": ["tailA", "steady"],
    "b-tail2": ["tailA", "tailB"],
    "b-plain": ["healthy"],
    "b-fb": ["healthy"],
    "b-with-fallback": ["healthy"],
}


def config(urls: dict[str, str]) -> str:
    # the reachability probe is off so that the dead provider is shut out by its breaker alone (with the
    # probe on, a refused port is shown down and skipped within reachability_interval_s, before any request)
    out = ['simulator = "never"', 'log_level = "warning"', "", "[resilience]", "reachability_interval_s = 0", ""]
    for name, providers in MODELS.items():
        out += [f'[models."{name}"]', f"providers = {json.dumps(providers)}", "price = { input = 1, output = 2 }"]
        if name == "b-with-fallback":
            out.append('fallbacks = ["b-fb"]')
        out.append("")
    for name, url in urls.items():
        out += ["[[providers]]", f'name = "{name}"', f'base_url = "{url}/v1"', ""]
    return "\n".join(out)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    rank = max(1, math.ceil(q * len(v)))  # nearest rank
    return round(v[min(len(v), rank) - 1], 1)


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.url = url + "/v1/chat/completions"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def close(self) -> None:
        await self.session.close()

    async def chat(self, body: dict[str, Any]) -> tuple[int, str, float]:
        t0 = time.perf_counter()
        async with self.session.post(self.url, json=body, headers=self.headers) as r:
            await r.read()
            return r.status, r.headers.get("x-perilune-route", ""), (time.perf_counter() - t0) * 1000.0

    async def ttft(self, body: dict[str, Any]) -> tuple[int, str, float | None]:
        t0 = time.perf_counter()
        first: float | None = None
        async with self.session.post(self.url, json={**body, "stream": True}, headers=self.headers) as r:
            async for line in r.content:
                if first is None and line.startswith(b"data: {") and b'"content":"' in line:
                    first = (time.perf_counter() - t0) * 1000.0
            return r.status, r.headers.get("x-perilune-route", ""), first


async def load(n: int, conc: int, make: Any) -> list[Any]:
    out: list[Any] = []
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            out.append((i, await make(i)))

    await asyncio.gather(*(worker() for _ in range(conc)))
    return [r for _, r in sorted(out, key=lambda x: x[0])]


async def scenarios(c: Client, quick: bool) -> dict[str, Any]:
    n = 400 if quick else 3000
    res: dict[str, Any] = {}
    for model in ("b-avail", "b-avail2"):
        rs = await load(n, 16, lambda i, m=model: c.chat({"model": m, "messages": MSG, "max_tokens": 8}))
        ok = sum(1 for s, _, _ in rs if s == 200)
        hops = [len(r.split(", ")) for _, r, _ in rs]
        res[model] = {"requests": n, "succeeded": ok, "success_rate": round(ok / n, 5),
                      "attempts_per_request": round(sum(hops) / n, 3)}
    rs = await load(n, 16, lambda i: c.chat({"model": "b-dead", "messages": MSG, "max_tokens": 8}))
    dead = [("dead/" in r) for _, r, _ in rs]
    opened = next((i for i, hit in enumerate(dead) if not hit), len(dead))
    after = dead[opened:]
    res["b-dead"] = {"requests": n, "succeeded": sum(1 for s, _, _ in rs if s == 200),
                     "dead_hits": sum(dead), "breaker_open_after_request": opened,
                     "dead_share_after_open": round(sum(after) / max(len(after), 1), 5)}
    nt = 300 if quick else 1500
    for model in ("b-tail", "b-tail2"):
        for hedge in (False, True):
            body = {"model": model, "messages": MSG, "max_tokens": 8, "hedge": hedge}
            await load(100, 8, lambda i, b=body: c.ttft(b))  # warm-up: live TTFT figures
            rs = await load(nt, 8, lambda i, b=body: c.ttft(b))
            t = [v for s, _, v in rs if s == 200 and v is not None]
            res[f"{model}_hedge_{'on' if hedge else 'off'}"] = {
                "requests": nt, "ok": len(t), "ttft_ms_p50": pct(t, 0.5), "ttft_ms_p90": pct(t, 0.9),
                "ttft_ms_p99": pct(t, 0.99), "hedged_share": round(sum(", " in r for _, r, _ in rs) / nt, 4)}
        off, on = res[f"{model}_hedge_off"]["ttft_ms_p99"], res[f"{model}_hedge_on"]["ttft_ms_p99"]
        res[f"{model}_hedge_p99_ratio"] = round(off / on, 2) if off and on else None
    nf = 300 if quick else 2000
    plain: list[float] = []
    fb: list[float] = []
    for _ in range(100):  # warm-up
        await c.chat({"model": "b-plain", "messages": MSG, "max_tokens": 8})
    for i in range(nf):
        for model, bucket in (("b-plain", plain), ("b-with-fallback", fb))[:: 1 if i % 2 else -1]:
            s, _, ms = await c.chat({"model": model, "messages": MSG, "max_tokens": 8})
            assert s == 200
            bucket.append(ms)
    res["fallback_overhead"] = {"requests_each": nf, "without_ms_p50": pct(plain, 0.5),
                                "without_ms_p99": pct(plain, 0.99), "with_fallback_ms_p50": pct(fb, 0.5),
                                "with_fallback_ms_p99": pct(fb, 0.99)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    py = sys.executable
    home = Path(tempfile.mkdtemp(prefix="perilune-bench-res-"))
    procs: list[Proc] = []
    try:
        urls = {"dead": f"http://127.0.0.1:{free_port()}"}
        for name, extra in SIMS.items():
            port = free_port()
            procs.append(start([py, "-m", "perilune", "sim", "--port", str(port), *extra]))
            urls[name] = f"http://127.0.0.1:{port}"
        for name, url in urls.items():
            if name != "dead":
                wait_http(url + "/health")
        cfg = home / "bench.toml"
        cfg.write_text(config(urls))
        env = {**os.environ, "PERILUNE_ADMIN_KEY": "bench-admin"}
        where = ["--home", str(home), "--config", str(cfg)]
        key = subprocess.run([py, "-m", "perilune", "keys", "create", *where], env=env, capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[-1]
        account = subprocess.run([py, "-m", "perilune", "accounts", "list", *where], env=env, capture_output=True,
                                 text=True, check=True).stdout.split()[0]
        subprocess.run([py, "-m", "perilune", "accounts", "topup", account, "1000000", *where], env=env,
                       capture_output=True, check=True)
        port = free_port()
        gw = start([py, "-m", "perilune", "serve", *where, "--port", str(port)], env=env)
        procs.append(gw)
        gw_url = f"http://127.0.0.1:{port}"
        wait_http(gw_url + "/health")

        async def go() -> dict[str, Any]:
            c = Client(gw_url, key)
            try:
                return await scenarios(c, args.quick)
            finally:
                await c.close()

        results = asyncio.run(go())
        results["config"] = {"quick": args.quick, "cpus": os.cpu_count()}
        print(json.dumps(results, indent=2))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    finally:
        for p in reversed(procs):
            p.stop(signal.SIGTERM)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
