"""The request lifecycle from outside: reservations bound what is generated, any hang-up is recorded
and paid, shutdown ends open streams properly, every request leaves exactly one record."""

from __future__ import annotations

import signal
import time
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from tests.conftest import Gateway, StartGateway, default_config

MSG = [{"role": "user", "content": "hello"}]
ANTHROPIC = """
[[providers]]
name = "sim-anthropic"
type = "anthropic"
base_url = "{sim_url}"
forward_headers = ["x-sim-*"]
"""


@pytest.fixture(scope="module")
def gateway(start_gateway: StartGateway) -> Gateway:
    """The suite's default providers plus a native Anthropic one (serving sim-claude)."""
    return start_gateway(config=default_config("{sim_url}") + ANTHROPIC)


def auth(gw: Gateway, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {gw.key}", **extra}


def record(gw: Gateway, rid: str, timeout_s: float = 10.0) -> dict[str, Any]:
    engine = sa.create_engine(f"sqlite:///{gw.home / 'perilune.db'}")
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            with engine.connect() as c:
                rows = c.execute(sa.text("SELECT * FROM usage_records WHERE id = :id"), {"id": rid}).all()
            if rows:
                assert len(rows) == 1
                return dict(rows[0]._mapping)
            time.sleep(0.1)
    finally:
        engine.dispose()
    raise AssertionError(f"no usage record for {rid}")


def test_no_max_tokens_reserves_what_the_balance_covers_and_charges_all_of_it(start_gateway: StartGateway) -> None:
    # sim-gpt: $2 per million output tokens, up to 16,384 of them ($0.033): $0.01 covers ~5,000
    gw = start_gateway(credit_usd="0.01")
    r = httpx.post(gw.v1 + "/chat/completions", headers=auth(gw),
                   json={"model": "sim-gpt", "messages": MSG}, timeout=30)
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert usage["charged_usd"] == usage["total_cost_usd"]  # nothing written off
    assert Decimal(usage["total_cost_usd"]) > 0
    row = record(gw, r.headers["x-request-id"])
    assert row["charged_pusd"] == row["total_cost_pusd"]


def test_output_limit_above_the_model_maximum_is_a_400_naming_it(gateway: Gateway) -> None:
    for param, value in (("max_tokens", 2**63), ("max_completion_tokens", 16_385), ("max_tokens", 0)):
        r = httpx.post(gateway.v1 + "/chat/completions", headers=auth(gateway),
                       json={"model": "sim-gpt", "messages": MSG, param: value}, timeout=30)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param
    r = httpx.post(gateway.v1 + "/messages", headers={"x-api-key": gateway.key, "anthropic-version": "2023-06-01"},
                   json={"model": "sim-claude", "messages": MSG, "max_tokens": 2**63}, timeout=30)
    assert r.status_code == 400 and "max_tokens" in r.text


def test_anthropic_client_hanging_up_before_message_delta_is_charged(gateway: Gateway) -> None:
    for model in ("sim-claude", "sim-gpt"):  # native passthrough, and translated
        with httpx.stream("POST", gateway.v1 + "/messages",
                          headers={"x-api-key": gateway.key, "anthropic-version": "2023-06-01",
                                   "x-sim-chunk-delay-ms": "100"},
                          json={"model": model, "messages": MSG, "max_tokens": 60, "stream": True}) as r:
            rid = r.headers["x-request-id"]
            deltas = 0
            for line in r.iter_lines():
                deltas += line.startswith("event: content_block_delta")
                if deltas == 3:
                    break
        row = record(gateway, rid)
        assert (row["status"], row["error_type"]) == (499, "client_closed_request"), model
        assert row["charged_pusd"] and row["charged_pusd"] == row["total_cost_pusd"], model
        assert 0 < row["output_tokens"] < 60, model


def test_validation_failures_leave_a_record(gateway: Gateway) -> None:
    r = httpx.post(gateway.v1 + "/chat/completions", headers=auth(gateway), content=b"{not json", timeout=30)
    assert r.status_code == 400
    row = record(gateway, r.headers["x-request-id"])
    assert row["status"] == 400 and row["charged_pusd"] is None


def test_shutdown_ends_open_streams_in_their_dialect(start_gateway: StartGateway) -> None:
    gw = start_gateway(config=default_config("{sim_url}").replace(
        'log_level = "warning"', 'log_level = "warning"\nshutdown_grace_s = 1.0'))
    events: list[str] = []
    with httpx.stream("POST", gw.v1 + "/chat/completions", headers=auth(gw, **{"x-sim-chunk-delay-ms": "200"}),
                      json={"model": "sim-gpt", "messages": MSG, "stream": True, "max_tokens": 200},
                      timeout=60) as r:
        rid = r.headers["x-request-id"]
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
                if len(events) == 2:
                    gw.proc.send_signal(signal.SIGTERM)
    assert events[-1] == "[DONE]"
    err = orjson.loads(events[-2])
    assert err["error"]["code"] == "server_shutdown"
    gw.proc.wait(20)
    row = record(gw, rid)
    assert (row["status"], row["error_type"]) == (503, "server_shutdown")
    assert row["charged_pusd"] and row["charged_pusd"] == row["total_cost_pusd"]
    assert Decimal(row["charged_pusd"]) > 0


def test_shutdown_answers_requests_still_waiting_for_their_upstream(start_gateway: StartGateway) -> None:
    gw = start_gateway(config=default_config("{sim_url}").replace(
        'log_level = "warning"', 'log_level = "warning"\nshutdown_grace_s = 0.5'))
    with httpx.Client(timeout=60) as client:
        import threading

        timer = threading.Timer(1.0, gw.proc.send_signal, (signal.SIGTERM,))
        timer.start()
        r = client.post(gw.v1 + "/chat/completions", headers=auth(gw, **{"x-sim-latency-ms": "8000"}),
                        json={"model": "sim-gpt", "messages": MSG, "max_tokens": 5})
    assert r.status_code == 503 and r.json()["error"]["code"] == "server_shutdown"
    gw.proc.wait(20)
    row = record(gw, r.headers["x-request-id"])
    assert (row["status"], row["error_type"], row["charged_pusd"]) == (503, "server_shutdown", 0)
