"""`perilune ledger check [--repair]` against a gateway on PostgreSQL + Redis: drift found and repaired."""

from __future__ import annotations

import time

import httpx
import pytest
import redis

from tests.conftest import Gateway, StartGateway, perilune
from tests.services import fresh_postgres, fresh_redis

MSG = [{"role": "user", "content": "hello"}]
pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def check(gw: Gateway, *args: str) -> tuple[int, str]:
    out = perilune("ledger", "check", "--home", str(gw.home), "--config", str(gw.config), *args, env=gw.env,
                   check=False)
    return out.returncode, out.stdout + out.stderr


def test_drift_is_reported_then_repaired(start_gateway: StartGateway) -> None:
    redis_url = fresh_redis()
    with fresh_postgres() as db_url:
        gw = start_gateway(credit_usd="1", config=f"""
simulator = "never"
log_level = "warning"
database_url = "{db_url}"
redis_url = "{redis_url}"
[[providers]]
name = "sim"
base_url = "{{sim_url}}/v1"
""")
        for _ in range(3):
            r = httpx.post(gw.v1 + "/chat/completions", headers={"Authorization": f"Bearer {gw.key}"},
                           json={"model": "sim-gpt", "messages": MSG, "max_tokens": 8}, timeout=30)
            assert r.status_code == 200
        time.sleep(1.0)  # usage records are written in batches
        code, out = check(gw)
        assert code == 0 and "0 with drift" in out, out
        r = redis.Redis.from_url(redis_url)
        key = f"pl:bal:{gw.account}"
        live = int(r.get(key) or 0)
        r.set(key, str(live + 123_000_000))  # a counter that drifted (e.g. a lost settlement)
        code, out = check(gw, "--json")
        assert code == 1 and '"drift_usd":"0.000123"' in out, out
        code, out = check(gw, "--repair")
        assert code == 0 and "repaired" in out, out
        assert int(r.get(key) or 0) == live
        code, out = check(gw)
        assert code == 0 and "0 with drift" in out, out
        r.close()
