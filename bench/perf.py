"""The performance scenarios of the project, side by side with direct calls, in one run.

    python -m bench.perf [--scenarios c1_0,c1_20,c64_0,c64_20,s64_20] [--duration 8] [--warmup 2]
                         [--repeats 2] [--pin] [--workers N --redis-url URL] [--out DIR]
    python -m bench.perf --gateway-cmd "python bench/stacks/aiohttp_proxy.py --port {port} --upstream {upstream}"
    python -m bench.perf --soak 1000000          # 1,000,000 requests at concurrency 64, RSS sampled

A fake provider (``bench/upstream.py``) and the load generator (``bench/load.py``) run on the load
cores, the gateway on its own (``--pin``: ``taskset``, by default load on core 0 and gateway on core 1).
For every scenario and repeat the same load goes straight to the upstream and then through the gateway,
interleaved, so machine noise hits both. Scenarios: ``c<concurrency>_<upstream ms>`` (chat completions)
and ``s<concurrency>_<upstream ms>`` (streams of ``--chunks`` chunks, ``--chunk-delay-ms`` apart).
Reported per scenario (medians over repeats): direct and gateway p50/p99 (TTFT for streams), added
p50/p99, requests/s of both, the largest gap between two chunks of a stream, and the gateway's CPU per
request (CPU seconds of the gateway's process tree during the run, from /proc, divided by the
requests it answered in that run, warm-up included). The perilune gateway is started with accounting
and usage recording on (SQLite unless ``--database-url``; prepaid balance, a real key); with
``--gateway-cmd`` any other proxy is measured instead (``{port}``, ``{upstream}`` are filled in).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.procs import Proc, wait_http

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write one short sentence about load testing."}]


def tree(pid: int) -> list[int]:
    """A process and all its descendants (workers, their usage writer processes)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process tree so far."""
    total = 0
    for p in tree(pid):
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(f[11]) + int(f[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    """Resident set of a process tree."""
    total = 0
    for p in tree(pid):
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def cores_busy_s(cpus: str) -> float:
    """Busy CPU seconds so far of the given cores (``"1"``, ``"0,1"``, ``"0-1"``), from /proc/stat."""
    want: set[int] = set()
    for part in cpus.split(","):
        lo, _, hi = part.partition("-")
        want.update(range(int(lo), int(hi or lo) + 1))
    total = 0
    for line in open("/proc/stat"):
        name = line.split(" ", 1)[0]
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in want:
            v = [int(x) for x in line.split()[1:]]
            total += sum(v) - v[3] - v[4]  # minus idle and iowait
    return total / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.home = Path(tempfile.mkdtemp(prefix="perilune-perf-"))
        self.up_url = f"http://127.0.0.1:{args.upstream_port}"
        self.gw_url = f"http://127.0.0.1:{args.port}"
        self.key = ""
        self.procs: list[Proc] = []
        self.gw: Proc | None = None
        self.py = sys.executable

    @classmethod
    def single(cls, port: int, *, pin: bool, settings: list[str] | None = None, code: str = "",
               module: str | None = None) -> Bench:
        """One gateway worker on SQLite (core 1 when pinned) and the fake upstream on ``port + 1`` (core 0):
        the set-up of the one-scenario tools (bench.idle, bench.tail, bench.rss)."""
        return cls(argparse.Namespace(pin=pin, gateway_cpus="1", load_cpus="0", upstream_port=port + 1, port=port,
                                      workers=1, database_url=None, redis_url=None, gateway_cmd=None,
                                      set=settings or [], code=code, module=module, chunks=20, chunk_delay_ms=0.0))

    def pinned(self, cpus: str, cmd: list[str]) -> list[str]:
        return ["taskset", "-c", cpus, *cmd] if self.args.pin else cmd

    def start(self, cmd: list[str], env: dict[str, str] | None = None) -> Proc:
        p = Proc(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL))
        self.procs.append(p)
        return p

    def start_upstream(self) -> None:
        self.start(self.pinned(self.args.load_cpus, [self.py, str(HERE / "upstream.py"), "--port",
                                                      str(self.args.upstream_port)]))
        wait_http(self.up_url + "/health")

    def configure_upstream(self, latency_ms: float) -> None:
        import urllib.request

        body = json.dumps({"latency_ms": latency_ms, "chunks": self.args.chunks,
                           "chunk_delay_ms": self.args.chunk_delay_ms}).encode()
        urllib.request.urlopen(urllib.request.Request(self.up_url + "/_admin/config", data=body), timeout=5).read()

    def start_gateway(self) -> None:
        a = self.args
        if a.gateway_cmd:
            cmd = shlex.split(a.gateway_cmd.format(port=a.port, upstream=self.up_url))
            self.gw = self.start(self.pinned(a.gateway_cpus, cmd))
            wait_http(self.gw_url + "/health")
            return
        cfg = self.home / "bench.toml"
        lines = ['simulator = "never"', 'log_level = "warning"']
        if a.database_url:
            lines.append(f'database_url = "{a.database_url}"')
        if a.redis_url:
            lines.append(f'redis_url = "{a.redis_url}"')
        lines += a.set or []  # e.g. usage_writer = "thread"
        lines += ["[[providers]]", 'name = "up"', f'base_url = "{self.up_url}/v1"', 'models = ["bench-model"]',
                  "[models.bench-model]", 'providers = ["up"]', 'kind = "chat"',
                  'price = { input = "0.15", output = "0.60" }']
        cfg.write_text("\n".join(lines) + "\n")
        env = {**os.environ, "PERILUNE_ADMIN_KEY": "bench-admin"}
        if getattr(a, "code", None):  # another checkout's perilune (bench.ab --a-code/--b-code)
            env["PYTHONPATH"], env["PYTHONSAFEPATH"] = a.code, "1"  # not this directory first
        where = ["--home", str(self.home), "--config", str(cfg)]
        cli = [self.py, "-m", getattr(a, "module", None) or "perilune"]  # bench.traced: under tracemalloc
        self.key = subprocess.run([*cli, "keys", "create", *where], env=env, capture_output=True, text=True,
                                  check=True).stdout.strip().splitlines()[-1]
        account = subprocess.run([*cli, "accounts", "list", *where], env=env, capture_output=True, text=True,
                                 check=True).stdout.split()[0]
        subprocess.run([*cli, "accounts", "topup", account, "1000000", *where], env=env, capture_output=True,
                       check=True)  # balances stay enforced: reserve and settle run on every request
        self.gw = self.start(self.pinned(a.gateway_cpus, [*cli, "serve", *where, "--port", str(a.port),
                                                          "--workers", str(a.workers)]), env=env)
        wait_http(self.gw_url + "/health")

    def load(self, url: str, *, conc: int, stream: bool, key: str = "", requests: int | None = None) -> Any:
        a = self.args
        body = {"model": "bench-model", "messages": MESSAGES, "max_tokens": 128}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        cmd = [self.py, str(HERE / "load.py"), "--url", url + "/v1/chat/completions", "--body", json.dumps(body),
               "-c", str(conc)]
        cmd += ["-n", str(requests)] if requests else ["-d", str(a.duration), "-w", str(a.warmup)]
        if key:
            cmd += ["--api-key", key]
        out = subprocess.run(self.pinned(a.load_cpus, cmd), capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    def measure(self, target: str, scenario: str) -> dict[str, Any]:
        kind, conc = scenario[0], int(scenario[1:].split("_")[0])
        assert self.gw is not None
        if target == "direct":
            return dict(self.load(self.up_url, conc=conc, stream=kind == "s"))
        self.wait_quiet()
        cpu0, busy0, t0 = proc_cpu_s(self.gw.pid), cores_busy_s(self.args.gateway_cpus), time.monotonic()
        r = dict(self.load(self.gw_url, conc=conc, stream=kind == "s", key=self.key))
        cpu, wall = proc_cpu_s(self.gw.pid) - cpu0, time.monotonic() - t0
        r["gw_cpu_ms_per_req"] = round(cpu * 1000 / max(r["total"], 1), 3)
        r["gw_cpu_pct"] = round(100 * cpu / wall, 1)
        # what else ran on the gateway's cores meanwhile (other users of a shared machine)
        foreign = cores_busy_s(self.args.gateway_cpus) - busy0 - cpu
        r["foreign_on_gw_cores_pct"] = round(100 * max(0.0, foreign) / wall, 1)
        return r

    def wait_quiet(self) -> None:
        """Wait (at most --quiet-wait s) until other processes use < 15 % of the gateway's cores."""
        assert self.gw is not None
        deadline = time.monotonic() + self.args.quiet_wait
        while time.monotonic() < deadline:
            c0, b0 = proc_cpu_s(self.gw.pid), cores_busy_s(self.args.gateway_cpus)
            time.sleep(0.5)
            if (cores_busy_s(self.args.gateway_cpus) - b0) - (proc_cpu_s(self.gw.pid) - c0) < 0.075:
                return

    def soak(self, n: int) -> dict[str, Any]:
        assert self.gw is not None
        gw = self.gw
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        csv = Path(self.args.out, "rss.csv") if self.args.out else None
        if csv is not None:
            csv.parent.mkdir(parents=True, exist_ok=True)
            csv.write_text("seconds,rss_kb,cpu_s\n")

        def sample() -> None:  # every second, also to rss.csv as it goes (a long soak can be watched)
            t0 = time.monotonic()
            while not stop.wait(1.0):
                samples.append((round(time.monotonic() - t0, 1), rss_kb(gw.pid)))
                if csv is not None:
                    with csv.open("a") as f:
                        f.write(f"{samples[-1][0]},{samples[-1][1]},{proc_cpu_s(gw.pid):.2f}\n")

        self.configure_upstream(0)
        self.load(self.gw_url, conc=64, stream=False, key=self.key, requests=20_000)  # warm up first
        th = threading.Thread(target=sample, daemon=True)
        cpu0 = proc_cpu_s(gw.pid)
        th.start()
        r = self.load(self.gw_url, conc=64, stream=False, key=self.key, requests=n)
        stop.set()
        th.join()
        cpu = proc_cpu_s(gw.pid) - cpu0
        rss = [s[1] for s in samples] or [rss_kb(gw.pid)]
        tenth = rss[max(0, len(rss) // 10 - 1)]
        return {"requests": n, "ok": r["ok"], "errors": r["errors"], "rps": r["rps"],
                "gw_cpu_ms_per_req": round(cpu * 1000 / max(r["total"], 1), 3),
                "rss_mb": {"first": round(rss[0] / 1024, 1), "at_10pct": round(tenth / 1024, 1),
                           "max": round(max(rss) / 1024, 1), "end": round(rss[-1] / 1024, 1)},
                "growth_after_10pct_mb": round((rss[-1] - tenth) / 1024, 1), "samples": samples}

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def med(rows: list[dict[str, Any]], *path: str) -> float | None:
    vals = []
    for r in rows:
        v: Any = r
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        if isinstance(v, int | float):
            vals.append(float(v))
    return statistics.median(vals) if vals else None


def spread(rows: list[dict[str, Any]], *path: str) -> float | None:
    """(max - min) / median over repeats, in %: how noisy the scenario was."""
    vals = [v for v in (med([r], *path) for r in rows) if v is not None]
    m = statistics.median(vals) if vals else 0
    return round(100 * (max(vals) - min(vals)) / m, 0) if m and len(vals) > 1 else None


def fmt(x: float | None, nd: int = 2) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def table(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    out = ["| scenario | direct p50 / p99 ms | gateway p50 / p99 ms | **added p50 / p99 ms** | direct req/s | "
           "gateway req/s | gateway CPU ms/req | stream max gap p99 ms (direct / gw) | gw req/s spread | "
           "foreign CPU on gw core |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for scen, by in results.items():
        d, g = by["direct"], by["gateway"]
        lat = "ttft_ms" if scen.startswith("s") else "latency_ms"
        dp50, dp99, gp50, gp99 = med(d, lat, "p50"), med(d, lat, "p99"), med(g, lat, "p50"), med(g, lat, "p99")
        added = (f"**{fmt(gp50 - dp50)} / {fmt(gp99 - dp99)}**" if None not in (dp50, dp99, gp50, gp99)
                 else "-")
        gaps = (f"{fmt(med(d, 'gap_ms', 'p99'), 1)} / {fmt(med(g, 'gap_ms', 'p99'), 1)}" if lat == "ttft_ms"
                else "")
        errs = sum(sum(r["errors"].values()) for r in g)
        name = scen + (" (TTFT)" if lat == "ttft_ms" else "") + (f" ({errs} errors)" if errs else "")
        out.append(f"| {name} | {fmt(dp50)} / {fmt(dp99)} | {fmt(gp50)} / {fmt(gp99)} | {added} | "
                   f"{fmt(med(d, 'rps'), 0)} | {fmt(med(g, 'rps'), 0)} | {fmt(med(g, 'gw_cpu_ms_per_req'), 3)} | "
                   f"{gaps} | {fmt(spread(g, 'rps'), 0)} % | {fmt(med(g, 'foreign_on_gw_cores_pct'), 0)} % |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="c1_0,c1_20,c64_0,c64_20,s64_20")
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0)
    ap.add_argument("--pin", action="store_true", help="taskset: gateway on --gateway-cpus, the rest on --load-cpus")
    ap.add_argument("--gateway-cpus", default="1")
    ap.add_argument("--load-cpus", default="0")
    ap.add_argument("--quiet-wait", type=float, default=10.0,
                    help="before each gateway run, wait up to this long for the gateway's cores to go quiet")
    ap.add_argument("--port", type=int, default=19700)
    ap.add_argument("--upstream-port", type=int, default=19701)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--database-url")
    ap.add_argument("--redis-url")
    ap.add_argument("--set", action="append", metavar="'KEY = VALUE'",
                    help="a top-level perilune setting (TOML) for the gateway, repeatable")
    ap.add_argument("--gateway-cmd", help="measure this proxy instead of perilune ({port}, {upstream})")
    ap.add_argument("--soak", type=int, metavar="N", help="only the soak: N requests at concurrency 64, RSS sampled")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", help="directory for results.json and report.md")
    args = ap.parse_args()
    b = Bench(args)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    try:
        b.start_upstream()
        b.start_gateway()
        if args.soak:
            res: dict[str, Any] = {"soak": b.soak(args.soak)}
            s = res["soak"]
            report = (f"soak: {s['requests']:,} requests at concurrency 64, {s['rps']:,.0f} req/s, "
                      f"{sum(s['errors'].values())} errors, {s['gw_cpu_ms_per_req']} ms CPU/request; RSS MB "
                      f"first {s['rss_mb']['first']}, after 10 % {s['rss_mb']['at_10pct']}, max {s['rss_mb']['max']},"
                      f" end {s['rss_mb']['end']} (growth after the first 10 %: {s['growth_after_10pct_mb']} MB)")
        else:
            results: dict[str, dict[str, list[dict[str, Any]]]] = {}
            for scen in args.scenarios.split(","):
                b.configure_upstream(float(scen.split("_")[1]))
                by = results.setdefault(scen, {"direct": [], "gateway": []})
                b.load(b.gw_url, conc=4, stream=scen[0] == "s", key=b.key, requests=200)  # warm pools
                for _ in range(args.repeats):
                    for target in ("direct", "gateway"):
                        r = b.measure(target, scen)
                        by[target].append(r)
                        lat = r.get("ttft_ms" if scen[0] == "s" else "latency_ms") or {}
                        print(f"{scen:8} {target:8} rps={r['rps']:9.1f} p50={lat.get('p50')} p99={lat.get('p99')} "
                              f"cpu/req={r.get('gw_cpu_ms_per_req', '-')} ms "
                              f"foreign={r.get('foreign_on_gw_cores_pct', '-')}% "
                              f"errors={r['errors']}",
                              file=sys.stderr, flush=True)
            res = {"scenarios": results}
            report = table(results)
        head = (f"{args.label or (args.gateway_cmd or 'perilune')}: {started}, pin={args.pin} (gateway cpus "
                f"{args.gateway_cpus}, load cpus {args.load_cpus}), workers={args.workers}, "
                f"{args.duration:g} s + {args.warmup:g} s warm-up x {args.repeats}, {os.cpu_count()} cpus")
        res["meta"] = {"head": head, "argv": sys.argv[1:]}
        print(head + "\n\n" + report)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            Path(args.out, "results.json").write_text(json.dumps(res, indent=1) + "\n")
            Path(args.out, "report.md").write_text(head + "\n\n" + report + "\n")
    finally:
        b.stop()


if __name__ == "__main__":
    main()
