"""`/metrics` under `--workers 2` reports the whole server, whichever worker answers a scrape."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_KEY, first_key, free_port, wait_http
from tests.services import fresh_redis

REQUESTS = 12


def scrape(url: str) -> tuple[float, int, set[str]]:
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).text
    served = sum(float(v) for v in re.findall(r'^perilune_requests_total\{model="sim-gpt",[^}]*\} (\S+)$', text, re.M))
    workers = int(float(re.search(r"^perilune_workers (\S+)$", text, re.M).group(1)))  # type: ignore[union-attr]
    pids = set(re.findall(r'^perilune_process_info\{pid="(\d+)"\} 1\.0$', text, re.M))
    return served, workers, pids


def test_every_scrape_sums_both_workers(sim_url: str, tmp_path: Path) -> None:
    redis_url = fresh_redis()
    cfg = tmp_path / "perilune.toml"
    cfg.write_text(f"""
simulator = "never"
log_level = "warning"
redis_url = "{redis_url}"
usage_flush_s = 0.05
[[providers]]
name = "sim"
base_url = "{sim_url}/v1"
""")
    env = {**os.environ, "PERILUNE_ADMIN_KEY": ADMIN_KEY}
    key, _ = first_key(tmp_path, cfg, env, "100")
    stale = tmp_path / "run" / f"metrics-{(port := free_port())}"
    stale.mkdir(parents=True)
    (stale / "999999.json").write_text('{"pid": 999999, "state": {"requests": [["sim-gpt", "sim", "200", 1000]]}}')
    proc = subprocess.Popen([sys.executable, "-m", "perilune", "serve", "--home", str(tmp_path), "--config",
                             str(cfg), "--port", str(port), "--workers", "2"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", proc, timeout_s=60)
        body = {"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        for _ in range(REQUESTS):  # a new connection each time, so both workers take some
            r = httpx.post(url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, r.text
        deadline = time.monotonic() + 20
        while scrape(url)[0] < REQUESTS:
            assert time.monotonic() < deadline, scrape(url)
            time.sleep(0.2)
        seen_pids: set[str] = set()
        for _ in range(8):
            served, workers, pids = scrape(url)
            assert (served, workers, len(pids)) == (REQUESTS, 2, 2)  # the stale file from before was removed
            seen_pids |= pids
        assert len(seen_pids) == 2
    finally:
        proc.terminate()
        proc.wait(30)
