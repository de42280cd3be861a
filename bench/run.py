"""perilune benchmark: the gateway side by side with direct calls to the simulator, in one run.

    python -m bench.run [--quick] [--workers N] [--database-url URL --redis-url URL] [--out FILE]

Non-streamed load comes from ``wrk`` (C, cheap; installed with apt when missing), streamed load from an
aiohttp client in a separate process. Accounting stays on in every scenario: the gateway authenticates a
real key, prices every request and records a usage row per request (SQLite by default).
Reported: added latency p50/p99 at concurrency 1 (zero-delay upstream), requests/s at concurrency 16 and
64 with a 20 ms upstream, gateway CPU per request, streaming added TTFT and inter-chunk gaps (64 chunks
at 20 ms) at 1 and 128 concurrent streams, and the gateway's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import streams
from bench.procs import Proc, free_port, proc_cpu_s, proc_rss_peak_kb, start, wait_http

ROOT = Path(__file__).resolve().parent.parent
BODY = {"model": "sim-gpt", "messages": [{"role": "user", "content": "Say hello to the benchmark"}],
        "max_tokens": 16}
MESSAGES_BODY = {"model": "sim-claude", "max_tokens": 16,
                 "messages": [{"role": "user", "content": "Say hello to the benchmark"}]}
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_BENCH = "redis://127.0.0.1:6379/8"


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "wrk"


def wrk(url: str, *, conns: int, seconds: float, headers: dict[str, str], threads: int = 1,
        body: dict[str, Any] | None = None) -> dict[str, Any]:
    lua = Path(tempfile.mkstemp(suffix=".lua")[1])
    hdr = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    lua.write_text(f'wrk.method = "POST"\nwrk.body = [[{json.dumps(body or BODY)}]]\n'
                   f'wrk.headers["Content-Type"] = "application/json"\n{hdr}'
                   'done = function(summary, latency, requests)\n'
                   '  io.write(string.format("JSON {\\"p50\\": %f, \\"p90\\": %f, \\"p99\\": %f, \\"mean\\": %f, '
                   '\\"requests\\": %d, \\"errors\\": %d, \\"non2xx\\": %d, \\"seconds\\": %f}\\n", '
                   'latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, '
                   'summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + '
                   'summary.errors.timeout, summary.errors.status, summary.duration / 1e6))\n'
                   'end\n')
    cmd = [ensure_wrk(), f"-t{threads}", f"-c{conns}", f"-d{max(1, round(seconds))}s", "-s", str(lua), url]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        lua.unlink()
    m = re.search(r"^JSON (.*)$", out, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    r: dict[str, Any] = json.loads(m.group(1))
    r["rps"] = r["requests"] / r["seconds"]
    for k in ("p50", "p90", "p99", "mean"):
        r[k] = r[k] / 1000.0  # us -> ms
    return r


def measure(gw: Proc, url: str, **kw: Any) -> dict[str, Any]:
    cpu0 = proc_cpu_s(gw.pid)
    r = wrk(url, **kw)
    r["cpu_us_per_req"] = (proc_cpu_s(gw.pid) - cpu0) / max(r["requests"], 1) * 1e6
    return r


def config_text(sim_url: str, args: argparse.Namespace) -> str:
    lines = ['simulator = "never"', 'log_level = "warning"']
    if args.database_url:
        lines.append(f'database_url = "{args.database_url}"')
    if args.redis_url:
        lines.append(f'redis_url = "{args.redis_url}"')
    lines += ["[[providers]]", 'name = "sim"', f'base_url = "{sim_url}/v1"', 'forward_headers = ["x-sim-*"]',
              "[[providers]]", 'name = "sim-anthropic"', 'type = "anthropic"', f'base_url = "{sim_url}"',
              'forward_headers = ["x-sim-*"]']
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs (smoke test of the harness)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--database-url")
    ap.add_argument("--redis-url")
    ap.add_argument("--multi", action="store_true",
                    help="2 workers on a fresh PostgreSQL database (127.0.0.1:5432) and Redis (db 8)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    if args.multi:
        args.workers = max(args.workers, 2)
        args.database_url = args.database_url or _fresh_database()
        args.redis_url = args.redis_url or _fresh_redis()
    secs = 3.0 if args.quick else 10.0
    home = Path(tempfile.mkdtemp(prefix="perilune-bench-"))
    sim_port, gw_port = free_port(), free_port()
    py = sys.executable
    sim = start([py, "-m", "perilune", "sim", "--port", str(sim_port)])
    procs = [sim]
    try:
        sim_url = f"http://127.0.0.1:{sim_port}"
        wait_http(sim_url + "/health")
        cfg = home / "bench.toml"
        cfg.write_text(config_text(sim_url, args))
        env = {**os.environ, "PERILUNE_ADMIN_KEY": "bench-admin"}
        cli = [py, "-m", "perilune"]
        where = ["--home", str(home), "--config", str(cfg)]
        key = subprocess.run([*cli, "keys", "create", *where], env=env, capture_output=True, text=True,
                             check=True).stdout.strip().splitlines()[-1]
        account = subprocess.run([*cli, "accounts", "list", *where], env=env, capture_output=True, text=True,
                                 check=True).stdout.split()[0]
        subprocess.run([*cli, "accounts", "topup", account, "1000000", *where], env=env, capture_output=True,
                       check=True)  # balances stay enforced: reserve and settle run on every request
        gw = start([py, "-m", "perilune", "serve", "--home", str(home), "--config", str(cfg), "--port",
                    str(gw_port), "--workers", str(args.workers)], env=env)
        procs.append(gw)
        gw_url = f"http://127.0.0.1:{gw_port}"
        wait_http(gw_url + "/health")
        results = run_scenarios(sim, gw, sim_url, gw_url, key, secs)
        results["config"] = {"workers": args.workers, "database": "postgresql" if args.database_url else "sqlite",
                             "redis": bool(args.redis_url), "seconds_per_run": secs, "cpus": os.cpu_count()}
        results["gateway_peak_rss_mb"] = round(sum(proc_rss_peak_kb(p) for p in gw.tree()) / 1024, 1)
        print(json.dumps(results, indent=2))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    finally:
        for p in reversed(procs):
            p.stop(signal.SIGTERM)
        shutil.rmtree(home, ignore_errors=True)
        if args.multi and args.database_url.startswith("postgresql://postgres@127.0.0.1:5432/perilune_bench_"):
            _drop_database(args.database_url.rsplit("/", 1)[1])


def _fresh_database() -> str:
    import psycopg

    name = f"perilune_bench_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _fresh_redis() -> str:
    import redis

    r = redis.Redis.from_url(REDIS_BENCH)
    r.flushdb()
    r.close()
    return REDIS_BENCH


def run_scenarios(sim: Proc, gw: Proc, sim_url: str, gw_url: str, key: str, secs: float) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {key}"}
    out: dict[str, Any] = {}
    # warm both up (connection pools, caches, JIT-free but allocator warm)
    wrk(gw_url + "/v1/chat/completions", conns=4, seconds=2, headers=auth)
    # 1. added latency at concurrency 1, zero-delay upstream
    direct = measure(sim, sim_url + "/v1/chat/completions", conns=1, seconds=secs, headers={})
    via = measure(gw, gw_url + "/v1/chat/completions", conns=1, seconds=secs, headers=auth)
    out["latency_c1"] = {
        "direct_ms": {k: round(direct[k], 3) for k in ("p50", "p90", "p99")},
        "via_ms": {k: round(via[k], 3) for k in ("p50", "p90", "p99")},
        "added_ms": {k: round(via[k] - direct[k], 3) for k in ("p50", "p90", "p99")},
        "gateway_cpu_us_per_req": round(via["cpu_us_per_req"], 1),
        "errors": via["errors"] + via["non2xx"],
    }
    # 2. throughput with a 20 ms upstream
    slow = {"x-sim-latency-ms": "20"}
    for conns in (16, 64):
        d = measure(sim, sim_url + "/v1/chat/completions", conns=conns, seconds=secs, headers=slow)
        v = measure(gw, gw_url + "/v1/chat/completions", conns=conns, seconds=secs, headers={**auth, **slow})
        out[f"rps_c{conns}_20ms"] = {
            "direct_rps": round(d["rps"]), "via_rps": round(v["rps"]),
            "via_p50_ms": round(v["p50"], 2), "via_p99_ms": round(v["p99"], 2),
            "direct_p99_ms": round(d["p99"], 2),
            "gateway_cpu_us_per_req": round(v["cpu_us_per_req"], 1),
            "errors": v["errors"] + v["non2xx"],
        }
    # 3. the Anthropic dialect: /v1/messages translated to an OpenAI-dialect upstream (sim-gpt) and passed
    #    through natively to an Anthropic upstream (sim-claude), each against its direct baseline
    anth = {"anthropic-version": "2023-06-01", "x-api-key": "unused"}
    d_native = measure(sim, sim_url + "/v1/messages", conns=1, seconds=secs, headers=anth, body=MESSAGES_BODY)
    v_native = measure(gw, gw_url + "/v1/messages", conns=1, seconds=secs, headers={**anth, **auth},
                       body=MESSAGES_BODY)
    v_trans = measure(gw, gw_url + "/v1/messages", conns=1, seconds=secs, headers={**anth, **auth},
                      body={**MESSAGES_BODY, "model": "sim-gpt"})
    out["messages_c1"] = {
        "passthrough_added_ms": {k: round(v_native[k] - d_native[k], 3) for k in ("p50", "p99")},
        "translated_added_ms": {k: round(v_trans[k] - direct[k], 3) for k in ("p50", "p99")},
        "translation_cost_p50_ms": round((v_trans["p50"] - direct["p50"]) - (v_native["p50"] - d_native["p50"]), 3),
        "gateway_cpu_us_per_req": {"passthrough": round(v_native["cpu_us_per_req"], 1),
                                   "translated": round(v_trans["cpu_us_per_req"], 1)},
        "errors": v_native["errors"] + v_native["non2xx"] + v_trans["errors"] + v_trans["non2xx"],
    }
    # 4. streaming: 64 chunks paced at 20 ms
    for conc in (1, 128):
        n = max(conc * 2, 8) if secs < 5 else max(conc * 4, 20)
        d = streams.run(sim_url, {}, concurrency=conc, total=n)
        v = streams.run(gw_url, auth, concurrency=conc, total=n)
        out[f"stream_c{conc}"] = {
            "direct_ttft_ms": d["ttft_ms"], "via_ttft_ms": v["ttft_ms"],
            "added_ttft_ms": {k: round(v["ttft_ms"][k] - d["ttft_ms"][k], 3) for k in ("p50", "p99")},
            "direct_max_gap_ms": d["max_gap_ms"], "via_max_gap_ms": v["max_gap_ms"],
            "via_chunks_per_stream": v["chunks_per_stream"], "errors": v["errors"],
        }
    for model in ("sim-gpt", "sim-claude"):  # /v1/messages streams: translated and native
        d = streams.run(sim_url, {}, concurrency=1, total=8, dialect="anthropic", model="sim-claude")
        v = streams.run(gw_url, auth, concurrency=1, total=8, dialect="anthropic", model=model)
        out[f"messages_stream_c1_{model}"] = {
            "direct_ttft_ms": d["ttft_ms"], "via_ttft_ms": v["ttft_ms"], "via_max_gap_ms": v["max_gap_ms"],
            "via_chunks_per_stream": v["chunks_per_stream"], "errors": v["errors"]}
    return out


if __name__ == "__main__":
    main()
