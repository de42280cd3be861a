"""Prepaid balance on one instance: /v1/balance, ledger, 402, free tier, low-balance alerts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, Gateway, StartGateway, default_config, free_port

LOCAL_HOOKS = '\n[outbound]\nallow_http = true\nallow_hosts = ["127.0.0.1"]\n'

MSG = [{"role": "user", "content": "hello"}]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def admin(gw: Gateway, method: str, path: str, body: object = None) -> httpx.Response:
    return httpx.request(method, gw.url + path, json=body, headers=auth(ADMIN_KEY))


def balance(gw: Gateway, key: str | None = None) -> dict[str, object]:
    r = httpx.get(gw.v1 + "/balance", headers=auth(key or gw.key))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    return start_gateway(credit_usd="5")


def test_balance_shape_and_exact_spend(gw: Gateway) -> None:
    before = balance(gw)
    assert before["currency"] == "USD" and before["prepaid"] is True
    assert set(before) >= {"balance_usd", "spend_today_usd", "spend_month_usd", "alerts"}
    r = openai.OpenAI(base_url=gw.v1, api_key=gw.key).chat.completions.create(model="sim-gpt", messages=MSG)
    cost = Decimal(str(r.usage.model_dump()["total_cost_usd"]))  # type: ignore[union-attr]
    after = balance(gw)
    assert Decimal(str(before["balance_usd"])) - Decimal(str(after["balance_usd"])) == cost
    deadline = time.monotonic() + 10  # the usage record is written in the background
    while (spent := Decimal(str(balance(gw)["spend_today_usd"])) - Decimal(str(before["spend_today_usd"]))) \
            != cost and time.monotonic() < deadline:
        time.sleep(0.1)
    assert spent == cost


def test_ledger_is_attributable(gw: Gateway) -> None:
    r = admin(gw, "POST", f"/admin/accounts/{gw.account}/adjustment", {"amount_usd": "-0.5", "reason": "refund error"})
    assert r.status_code == 201 and r.json()["amount_usd"] == "-0.5" and r.json()["actor"] == "admin:env"
    deadline = time.monotonic() + 10  # the charges are usage records, written in the background
    while True:
        rows = admin(gw, "GET", f"/admin/accounts/{gw.account}/ledger").json()["data"]
        kinds = [row["kind"] for row in rows]
        if "charge" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "topup" in kinds and "adjustment" in kinds and "charge" in kinds
    topup = next(row for row in rows if row["kind"] == "topup")
    assert topup["actor"] == "cli" and topup["reason"] == "test suite"
    assert all(row["created_at"] > 0 for row in rows)


@pytest.mark.parametrize(("path", "body", "status"), [
    ("topup", {"amount_usd": "-1"}, 400),
    ("topup", {"amount_usd": "0.0000000000001"}, 400),
    ("topup", {"amount_usd": "lots"}, 400),
    ("topup", {"amount_usd": "1e400"}, 400),
    ("topup", {}, 400),
    ("adjustment", {"amount_usd": 0}, 400),
])
def test_bad_money_input(gw: Gateway, path: str, body: dict[str, object], status: int) -> None:
    assert admin(gw, "POST", f"/admin/accounts/{gw.account}/{path}", body).status_code == status


def test_unknown_account_and_non_admin(gw: Gateway) -> None:
    assert admin(gw, "POST", "/admin/accounts/acct_nope/topup", {"amount_usd": "1"}).status_code == 404
    r = httpx.post(gw.url + f"/admin/accounts/{gw.account}/topup", json={"amount_usd": "1"}, headers=auth(gw.key))
    assert r.status_code == 403


def test_insufficient_balance_is_402(start_gateway: StartGateway) -> None:
    poor = start_gateway(credit_usd="")
    with pytest.raises(openai.APIStatusError) as e:
        openai.OpenAI(base_url=poor.v1, api_key=poor.key, max_retries=0).chat.completions.create(
            model="sim-gpt", messages=MSG)  # type: ignore[arg-type]
    assert e.value.status_code == 402
    body = e.value.body
    assert isinstance(body, dict) and body["code"] == "insufficient_balance"
    assert "Insufficient balance" in body["message"]


def test_free_tier_before_balance(start_gateway: StartGateway) -> None:
    poor = start_gateway(credit_usd="")
    client = openai.OpenAI(base_url=poor.v1, api_key=poor.key, max_retries=0)
    r = client.chat.completions.create(model="sim-free", messages=MSG, max_tokens=10)
    u = r.usage.model_dump()  # type: ignore[union-attr]
    assert u["free_tokens"] == u["total_tokens"] > 0
    assert Decimal(str(balance(poor)["balance_usd"])) == 0
    # the Anthropic dialect shows the same
    m = httpx.post(poor.url + "/v1/messages", headers={"x-api-key": poor.key, "anthropic-version": "2023-06-01"},
                   json={"model": "sim-free", "max_tokens": 10, "messages": MSG}).json()
    assert m["usage"]["free_tokens"] == m["usage"]["input_tokens"] + m["usage"]["output_tokens"] > 0
    time.sleep(0.6)
    assert balance(poor)["spend_today_usd"] == "0"


def test_premium_models_are_never_free(start_gateway: StartGateway) -> None:
    gw = start_gateway(credit_usd="", config="""
simulator = "never"
[[providers]]
name = "sim"
base_url = "{sim_url}/v1"
[models."sim-free"]
premium = true
""")
    with pytest.raises(openai.APIStatusError) as e:
        openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0).chat.completions.create(
            model="sim-free", messages=MSG, max_tokens=10)  # type: ignore[arg-type]
    assert e.value.status_code == 402


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_low_balance_alert_fires_once_per_crossing(start_gateway: StartGateway,
                                                   webhook: tuple[str, list[dict[str, object]]]) -> None:
    url, received = webhook
    # the hook listens on 127.0.0.1 over http: allowed only because the operator says so
    gw = start_gateway(config=default_config("{sim_url}") + LOCAL_HOOKS, credit_usd="0.001")
    r = httpx.post(gw.v1 + "/balance/alerts", headers=auth(gw.key),
                   json={"thresholds_usd": ["0.0009", "0.0005"], "webhook_url": url})
    assert r.status_code == 200 and r.json()["alerts"]["thresholds_usd"] == ["0.0009", "0.0005"]
    client = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)
    for _ in range(4):  # about 50 micro-USD each: crosses 0.0009 once, not 0.0005
        client.chat.completions.create(model="sim-gpt", messages=MSG, max_tokens=16)
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert len(received) == 1
    alert = received[0]
    assert alert["type"] == "balance.low" and alert["threshold_usd"] == "0.0009"
    assert alert["account_id"] == gw.account and Decimal(str(alert["balance_usd"])) < Decimal("0.0009")
    # a top-up above the threshold re-arms it
    assert admin(gw, "POST", f"/admin/accounts/{gw.account}/topup", {"amount_usd": "0.0002"}).status_code == 201
    time.sleep(0.6)
    for _ in range(6):
        client.chat.completions.create(model="sim-gpt", messages=MSG, max_tokens=16)
    deadline = time.monotonic() + 5
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(received) == 2 and received[1]["threshold_usd"] == "0.0009"
    bad = httpx.post(gw.v1 + "/balance/alerts", headers=auth(gw.key), json={"webhook_url": "ftp://x"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "webhook_url"
