"""Failures around the request: Redis going away (fail closed, then rebuild), a client hanging up."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import ADMIN_KEY, Gateway, StartGateway, free_port
from tests.services import fresh_postgres

MSG = [{"role": "user", "content": "hello"}]


class OwnRedis:
    """A redis-server of this test's own, so it can be stopped and started again (empty)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed") if os.environ.get("CI") else pytest.skip("no redis-server")
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.tmp)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    r = OwnRedis(tmp_path)
    r.start()
    yield r
    r.stop()


def chat(gw: Gateway) -> httpx.Response:
    return httpx.post(gw.v1 + "/chat/completions", headers={"Authorization": f"Bearer {gw.key}"},
                      json={"model": "sim-gpt", "messages": MSG, "max_tokens": 8}, timeout=30)


def test_redis_outage_fails_closed_then_rebuilds_from_the_database(start_gateway: StartGateway,
                                                                    own_redis: OwnRedis) -> None:
    with fresh_postgres() as db_url:
        gw = start_gateway(credit_usd="1", config=f"""
simulator = "never"
database_url = "{db_url}"
redis_url = "redis://127.0.0.1:{own_redis.port}/0"
[[providers]]
name = "sim"
base_url = "{{sim_url}}/v1"
""")
        costs = []
        for _ in range(3):
            r = chat(gw)
            assert r.status_code == 200
            costs.append(Decimal(str(r.json()["usage"]["total_cost_usd"])))
        own_redis.stop()
        down = chat(gw)
        assert down.status_code == 503
        err = down.json()["error"]
        assert err["code"] == "limits_unavailable" and "Redis" in err["message"]
        time.sleep(1.0)  # the three charges reach PostgreSQL (usage records are written in batches)
        own_redis.start()  # back, and empty: the balance is rebuilt from the ledger minus the charges
        deadline = time.monotonic() + 10
        while (r := chat(gw)).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.status_code == 200
        costs.append(Decimal(str(r.json()["usage"]["total_cost_usd"])))
        bal = httpx.get(gw.v1 + "/balance", headers={"Authorization": f"Bearer {gw.key}"}).json()
        assert Decimal(bal["balance_usd"]) == Decimal(1) - sum(costs)


def test_client_hanging_up_mid_stream_is_recorded_and_paid(start_gateway: StartGateway) -> None:
    gw = start_gateway()
    with httpx.stream("POST", gw.v1 + "/chat/completions", headers={"Authorization": f"Bearer {gw.key}",
                                                                    "x-sim-chunk-delay-ms": "100"},
                      json={"model": "sim-gpt", "messages": MSG, "stream": True, "max_tokens": 40}) as r:
        rid = r.headers["x-request-id"]
        seen = 0
        for line in r.iter_lines():
            seen += line.startswith("data: {")
            if seen == 3:
                break  # hang up after three chunks
    engine = sa.create_engine(f"sqlite:///{gw.home / 'perilune.db'}")
    deadline = time.monotonic() + 10
    row = None
    while row is None and time.monotonic() < deadline:
        time.sleep(0.2)
        with engine.connect() as c:
            row = c.execute(sa.text("SELECT status, error_type, output_tokens, charged_pusd, estimated "
                                    "FROM usage_records WHERE id = :id"), {"id": rid}).first()
    engine.dispose()
    assert row is not None, "no usage record for the abandoned stream"
    status, error_type, output_tokens, charged, estimated = row
    assert (status, error_type) == (499, "client_closed_request")
    # what was generated before the hang-up is counted (locally, flagged) and charged
    assert 0 < output_tokens < 40 and estimated and charged > 0
    assert httpx.get(gw.url + "/health").status_code == 200
    r = httpx.get(gw.url + "/admin/keys", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200
