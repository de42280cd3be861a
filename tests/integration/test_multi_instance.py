"""Two gateway processes sharing the real PostgreSQL (keys, ledger, usage) and Redis (limits, balances)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import ADMIN_KEY, free_port, perilune, wait_http
from tests.services import fresh_postgres, fresh_redis


@dataclass
class Cluster:
    urls: list[str]
    key: str
    account: str
    db_url: str
    home: Path
    cfg: Path
    env: dict[str, str]

    def cli(self, *args: str) -> str:
        return perilune(*args, "--home", str(self.home), "--config", str(self.cfg), env=self.env).stdout


@pytest.fixture(scope="module")
def cluster(sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with fresh_postgres() as db_url:
        redis_url = fresh_redis()
        home = tmp_path_factory.mktemp("cluster")
        cfg = home / "perilune.toml"
        cfg.write_text(f"""
simulator = "never"
log_level = "warning"
database_url = "{db_url}"
redis_url = "{redis_url}"
[[providers]]
name = "sim"
base_url = "{sim_url}/v1"
forward_headers = ["x-sim-*"]
""")
        env = {**os.environ, "PERILUNE_ADMIN_KEY": ADMIN_KEY}
        key = perilune("keys", "create", "--home", str(home), "--config", str(cfg), env=env).stdout.split()[-1]
        account = perilune("accounts", "list", "--home", str(home), "--config", str(cfg), env=env).stdout.split()[0]
        procs, urls = [], []
        for _ in range(2):
            port = free_port()
            procs.append(subprocess.Popen([sys.executable, "-m", "perilune", "serve", "--home", str(home),
                                           "--config", str(cfg), "--port", str(port)], env=env))
            urls.append(f"http://127.0.0.1:{port}")
        try:
            for url, proc in zip(urls, procs, strict=True):
                wait_http(url + "/health", proc)
            yield Cluster(urls, key, account, db_url, home, cfg, env)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(20)


def chat(max_tokens: int = 16, stream: bool = False) -> dict[str, object]:
    return {"model": "sim-gpt", "messages": [{"role": "user", "content": "Count the sheep please"}],
            "max_tokens": max_tokens, "stream": stream}


def wait_for_records(db_url: str, n: int, timeout_s: float = 20.0) -> None:
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            with engine.connect() as c:
                if c.execute(sa.text("SELECT count(*) FROM usage_records")).scalar_one() >= n:
                    return
            time.sleep(0.2)
        raise AssertionError(f"fewer than {n} usage records after {timeout_s} s")
    finally:
        engine.dispose()


def admin(url: str, method: str, path: str, body: object = None) -> httpx.Response:
    return httpx.request(method, url + path, json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"})


def test_balance_never_negative_and_adds_up_exactly(cluster: Cluster) -> None:
    # one request costs about 44 micro-USD (sim-gpt: $1 / $2 per million): fund roughly 100 of them
    r = admin(cluster.urls[0], "POST", f"/admin/accounts/{cluster.account}/topup",
              {"amount_usd": "0.0044", "reason": "burst test"})
    assert r.status_code == 201

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as client:
            async def one(i: int) -> int:
                url = cluster.urls[i % 2] + "/v1/chat/completions"
                resp = await client.post(url, json=chat(), headers={"Authorization": f"Bearer {cluster.key}"})
                return resp.status_code
            return await asyncio.gather(*(one(i) for i in range(500)))

    statuses = asyncio.run(burst())
    ok, broke = statuses.count(200), statuses.count(402)
    assert ok + broke == 500, sorted(set(statuses))
    assert 60 <= ok <= 110, ok
    wait_for_records(cluster.db_url, 500)
    balances = [Decimal(httpx.get(u + "/v1/balance", headers={"Authorization": f"Bearer {cluster.key}"})
                        .json()["balance_usd"]) for u in cluster.urls]
    assert balances[0] == balances[1] >= 0
    engine = sa.create_engine(cluster.db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as c:
        topups = c.execute(sa.text("SELECT sum(amount_pusd) FROM ledger_entries")).scalar_one()
        charged, costs, n200 = c.execute(sa.text(
            "SELECT sum(charged_pusd), sum(total_cost_pusd), count(*) FROM usage_records WHERE status = 200"
        )).one()
        unpaid = c.execute(sa.text(
            "SELECT count(*) FROM usage_records WHERE status = 402 AND coalesce(charged_pusd, 0) = 0")).scalar_one()
    engine.dispose()
    assert n200 == ok and unpaid == broke
    assert charged == costs  # every request was charged exactly its recorded cost
    assert Decimal(topups - charged) / Decimal(10**12) == balances[0]
    assert Decimal(cluster.cli("accounts", "balance", cluster.account).strip()) == balances[0]


def _not_near_minute_end() -> None:
    if time.time() % 60 > 50:  # keep the burst inside one fixed window
        time.sleep(61 - time.time() % 60)


def test_rpm_limit_is_shared_not_per_process(cluster: Cluster) -> None:
    admin(cluster.urls[0], "POST", f"/admin/accounts/{cluster.account}/topup", {"amount_usd": "10"})
    key_body = admin(cluster.urls[0], "POST", "/admin/keys", {"account_id": cluster.account, "name": "rpm"}).json()
    assert admin(cluster.urls[1], "PUT", f"/admin/keys/{key_body['id']}/limits", {"rpm": 20}).status_code == 200
    time.sleep(1.2)  # both instances pick the limit up within a second
    _not_near_minute_end()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.post(cluster.urls[i % 2] + "/v1/chat/completions", json=chat(),
                                                      headers={"Authorization": f"Bearer {key_body['key']}"})
                                          for i in range(60)))

    responses = asyncio.run(burst())
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 20 and codes.count(429) == 40
    limited = next(r for r in responses if r.status_code == 429)
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["error"]["retry_after"] > 0


def test_tpm_limit_holds_with_streams(cluster: Cluster) -> None:
    admin(cluster.urls[0], "POST", f"/admin/accounts/{cluster.account}/topup", {"amount_usd": "10"})
    key_body = admin(cluster.urls[0], "POST", "/admin/keys", {"account_id": cluster.account, "name": "tpm"}).json()
    admin(cluster.urls[0], "PUT", f"/admin/keys/{key_body['id']}/limits", {"tpm": 400})
    time.sleep(1.2)
    _not_near_minute_end()
    used = 0
    for i in range(40):
        with httpx.stream("POST", cluster.urls[i % 2] + "/v1/chat/completions", json={
                **chat(stream=True), "stream_options": {"include_usage": True}},
                headers={"Authorization": f"Bearer {key_body['key']}"}) as r:
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
                break
            lines = [line for line in r.iter_lines() if line.startswith("data: {")]
            used += json.loads(lines[-1][6:])["usage"]["total_tokens"]
    else:
        raise AssertionError("the token limit never applied")
    assert 0 < used <= 400
