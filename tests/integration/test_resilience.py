"""Fallbacks, breakers, hedging and GET /v1/providers against several independent simulators: one hard
down (a closed port), one failing 30 %, one with a slow tail, one healthy, behind one model and
behind a fallback model."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Gateway, StartGateway, free_port, wait_http

MSG = [{"role": "user", "content": "Tell me about the tides"}]
LONG = [{"role": "user", "content": "tides " * 400}]


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, str]]:
    """name -> base URL; "dead" is a port nobody listens on."""
    specs = {
        "flaky": ["--fault", "503", "--fault-rate", "0.3", "--seed", "7"],
        "slow": ["--ttft-ms", "5", "--slow-tail-rate", "0.1", "--slow-tail-ms", "600", "--seed", "3"],
        "healthy": [],
        "fb": [],
        "broken": ["--fault", "503"],
        "laggard": ["--ttft-ms", "1500"],
        "tiny": ["--context-tokens", "100"],
    }
    procs: list[subprocess.Popen[bytes]] = []
    urls = {"dead": f"http://127.0.0.1:{free_port()}"}
    try:
        for name, args in specs.items():
            port = free_port()
            procs.append(subprocess.Popen([sys.executable, "-m", "perilune", "sim", "--port", str(port), *args]))
            urls[name] = f"http://127.0.0.1:{port}"
        for name, url in urls.items():
            if name != "dead":
                wait_http(url + "/health")
        yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)


def provider(name: str) -> str:
    return f'[[providers]]\nname = "{name}"\nbase_url = "{{{name}}}/v1"\nforward_headers = ["x-sim-*"]\n'


CONFIG = """
simulator = "never"
log_level = "warning"
usage_flush_s = 0.05

[resilience]
breaker_failures = 3
breaker_cooldown_s = 5
hedge_default_ms = 150
retry_base_ms = 10

[aliases]
"claude-opus-4-8" = "res-main"
"pinned-healthy" = "healthy/res-main"

[models."res-main"]
providers = ["dead", "flaky", "slow", "healthy"]
price = { input = 1, output = 2 }
context = 100000
fallbacks = ["res-fb"]

[models."res-fb"]
providers = ["fb"]
price = { input = 10, output = 20 }
context = 100000

[models."res-stream"]
providers = ["broken", "healthy"]
price = { input = 1, output = 2 }

[models."res-hedge"]
providers = ["laggard", "healthy"]
price = { input = 1, output = 2 }
hedge = true

[models."res-quiet"]
providers = ["healthy", "dead"]
price = { input = 1, output = 2 }

[models."res-tiny"]
providers = ["tiny"]
price = { input = 1, output = 2 }
context = 1000
""" + "".join(provider(n) for n in ("dead", "flaky", "slow", "healthy", "fb", "broken", "laggard", "tiny"))


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway, sims: dict[str, str]) -> Gateway:
    config = CONFIG
    for name, url in sims.items():
        config = config.replace("{" + name + "}", url)
    return start_gateway(config=config)


def chat(gw: Gateway, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(gw.v1 + "/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {gw.key}", **headers})


def route(r: httpx.Response) -> list[tuple[str, str]]:
    """[(provider/model, status), ...] from x-perilune-route."""
    return [tuple(e.rsplit(":", 1)) for e in r.headers["x-perilune-route"].split(", ")]  # type: ignore[misc]


def providers_of(gw: Gateway, model: str) -> dict[str, dict[str, Any]]:
    r = httpx.get(gw.v1 + "/providers", params={"model": model}, headers={"Authorization": f"Bearer {gw.key}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == model
    return {p["provider"]: p for p in body["providers"]}


def test_one_model_four_upstreams_all_answer_and_the_dead_one_is_shut_out(gw: Gateway) -> None:
    t0 = time.monotonic()
    statuses, dead_hits, served = [], [], []
    down_after_s: float | None = None
    for i in range(150):
        r = chat(gw, {"model": "res-main", "messages": MSG, "fallbacks": []})
        statuses.append(r.status_code)
        hops = route(r)
        dead_hits.append(any(h.startswith("dead/") for h, _ in hops))
        if r.status_code == 200:
            served.append(r.json()["provider"])
            assert r.json()["provider"] == hops[-1][0].split("/")[0]
        if down_after_s is None and i % 10 == 9 and providers_of(gw, "res-main")["dead"]["status"] == "down":
            down_after_s = time.monotonic() - t0
    assert statuses.count(200) == 150
    assert down_after_s is not None and down_after_s < 10.0
    # its breaker opens after 3 failures (or the reachability probe found the port closed before any
    # request went there); after that only half-open probes (one per cooldown) may reach it
    assert sum(dead_hits[3:]) / 147 <= 0.05, sum(dead_hits[3:])
    assert set(served) <= {"flaky", "slow", "healthy"} and "flaky" in served
    listing = providers_of(gw, "res-main")
    dead, flaky = listing["dead"], listing["flaky"]
    assert dead["status"] == "down" and dead["error_rate"] in (None, 1.0) and dead["ttft_ms_p50"] is None
    assert flaky["requests"] > 0 and 0 < flaky["error_rate"] < 0.6 and flaky["ttft_ms_p50"] is not None
    assert set(flaky) >= {"provider", "upstream_model", "status", "price", "context", "latency_ms_p50",
                          "ttft_ms_p50", "throughput_tps", "error_rate", "requests"}
    assert flaky["price"]["input"] == 1 and flaky["context"] == 100000 and flaky["upstream_model"] == "res-main"


def test_a_dead_provider_no_request_reached_is_shown_down_by_the_probe(gw: Gateway) -> None:
    deadline = time.monotonic() + 10.0
    while providers_of(gw, "res-quiet")["dead"]["status"] != "down":
        assert time.monotonic() < deadline, "the dead provider is not shown down after 10 s"
        time.sleep(0.2)
    quiet = providers_of(gw, "res-quiet")
    assert quiet["dead"]["requests"] == 0 and quiet["healthy"]["status"] == "ok"
    r = chat(gw, {"model": "res-quiet", "messages": MSG, "provider": {"order": ["dead", "healthy"]}})
    assert route(r) == [("healthy/res-quiet", "200")]  # known unreachable: not even tried


def test_fallback_model_serves_and_is_charged_at_its_price(gw: Gateway) -> None:
    # pinned to the dead provider (a pin holds for the requested model only): the configured fallback answers
    r = chat(gw, {"model": "res-main", "messages": MSG, "provider": "dead", "max_tokens": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "res-fb" and body["provider"] == "fb"
    assert route(r)[-1] == ("fb/res-fb", "200")
    u = body["usage"]
    # res-fb costs 10 / 20 USD per million tokens, res-main 1 / 2
    assert Decimal(str(u["input_cost_usd"])) == Decimal(u["prompt_tokens"]) * 10 / 10**6
    assert Decimal(str(u["output_cost_usd"])) == Decimal(u["completion_tokens"]) * 20 / 10**6
    # a request's own fallbacks replace the configured ones; fallback_model also works; both dialects
    r = chat(gw, {"model": "res-stream", "messages": MSG, "provider": "broken", "fallback_model": "res-fb"})
    assert r.status_code == 200 and r.json()["model"] == "res-fb"
    a = anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0)
    msg = a.messages.create(model="res-stream", max_tokens=20, messages=[{"role": "user", "content": "hi"}],
                            extra_body={"provider": "broken", "fallbacks": ["res-fb"]})
    assert msg.model == "res-fb"


def test_never_falls_through_on_a_request_the_provider_refuses(gw: Gateway) -> None:
    r = chat(gw, {"model": "res-main", "messages": MSG, "provider": {"order": ["healthy"]}},
             **{"x-sim-fault": "400"})
    assert r.status_code == 400
    assert route(r) == [("healthy/res-main", "400")]


def test_context_length_falls_through_to_a_model_that_fits(gw: Gateway) -> None:
    r = chat(gw, {"model": "res-tiny", "messages": LONG, "fallbacks": ["res-fb"]})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "res-fb"
    assert route(r) == [("tiny/res-tiny", "400"), ("fb/res-fb", "200")]
    r = chat(gw, {"model": "res-tiny", "messages": LONG})
    assert r.status_code == 400 and "context length" in r.json()["error"]["message"]


def test_streams_fail_over_before_the_first_byte(gw: Gateway) -> None:
    c = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)
    with c.chat.completions.with_streaming_response.create(model="res-stream", messages=MSG, stream=True) as resp:
        hops = resp.headers["x-perilune-route"]
        chunks = list(resp.parse())
    assert hops.startswith("broken/res-stream:502") and hops.endswith("healthy/res-stream:200")
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text and all(getattr(ch, "provider", None) == "healthy" for ch in chunks)


def test_a_failing_provider_is_shut_out_by_its_breaker(gw: Gateway) -> None:
    routes = [route(chat(gw, {"model": "res-stream", "messages": MSG, "fallbacks": []})) for _ in range(8)]
    assert all(hops[-1] == ("healthy/res-stream", "200") for hops in routes)
    hits = [any(h.startswith("broken/") for h, _ in hops) for hops in routes]
    assert sum(hits) <= 3 and not any(hits[3:])  # 3 failures in a row open it (one came from the stream test)
    broken = providers_of(gw, "res-stream")["broken"]
    assert broken["status"] == "down" and broken["breaker"] == "open" and broken["error_rate"] == 1.0


def test_hedging_starts_the_next_provider_when_the_first_token_is_late(gw: Gateway) -> None:
    c = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)
    t0 = time.perf_counter()
    with c.chat.completions.with_streaming_response.create(model="res-hedge", messages=MSG, stream=True) as resp:
        first = next(iter(resp.parse()))
        ttft = time.perf_counter() - t0
        hops = resp.headers["x-perilune-route"]
    assert ttft < 1.0  # the laggard needs 1.5 s; the hedge starts after 150 ms
    assert getattr(first, "provider", None) == "healthy"
    assert hops == "laggard/res-hedge:499, healthy/res-hedge:200"
    # per request: "hedge": false waits for the laggard
    r = chat(gw, {"model": "res-hedge", "messages": MSG, "stream": True, "hedge": False})
    assert route(r) == [("laggard/res-hedge", "200")]


def test_provider_preferences_aliases_and_listing(gw: Gateway) -> None:
    r = chat(gw, {"model": "res-main", "messages": MSG, "provider": {"order": ["healthy"], "allow_fallbacks": False}})
    assert route(r) == [("healthy/res-main", "200")]
    r = chat(gw, {"model": "res-main", "messages": MSG, "provider": {"ignore": ["dead", "flaky", "slow"]}})
    assert r.json()["provider"] == "healthy"
    r = chat(gw, {"model": "claude-opus-4-8", "messages": MSG, "provider": {"order": ["healthy"]}})
    assert r.status_code == 200 and r.json()["provider"] == "healthy"
    r = chat(gw, {"model": "pinned-healthy", "messages": MSG})
    assert route(r) == [("healthy/res-main", "200")]
    r = httpx.get(gw.v1 + "/providers", headers={"Authorization": f"Bearer {gw.key}"})
    listing = {p["provider"]: p for p in r.json()["data"]}
    assert "res-main" in listing["healthy"]["models"] and listing["fb"]["models"] == ["res-fb"]
    r = httpx.get(gw.v1 + "/providers", params={"model": "nope"}, headers={"Authorization": f"Bearer {gw.key}"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    assert httpx.get(gw.v1 + "/providers").status_code == 401
    models = {m["id"]: m for m in httpx.get(gw.v1 + "/models").json()}
    assert models["res-main"]["avgThroughput"] > 0
    assert models["res-tiny"]["avgThroughput"] is None


@pytest.mark.parametrize(("field", "value", "param"), [
    ("provider", {"sort": "cheapest"}, "provider.sort"),
    ("provider", {"only": ["nobody"]}, "provider.only[0]"),
    ("provider", {"order": "healthy"}, "provider.order"),
    ("provider", {"colour": "red"}, "provider"),  # the message names the unknown field
    ("fallbacks", "res-fb", "fallbacks"),
    ("fallbacks", ["no-such-model"], "fallbacks[0]"),
    ("fallback_model", 3, "fallback_model"),
    ("hedge", "yes", "hedge"),
])
def test_bad_routing_fields_are_400_naming_the_param(gw: Gateway, field: str, value: Any, param: str) -> None:
    r = chat(gw, {"model": "res-main", "messages": MSG, field: value})
    assert r.status_code in (400, 404), r.text
    assert r.json()["error"]["param"] == param
    a = httpx.post(gw.v1 + "/messages", headers={"x-api-key": gw.key, "anthropic-version": "2023-06-01"},
                   json={"model": "res-main", "max_tokens": 10, "messages": MSG, field: value})
    assert a.status_code in (400, 404) and a.json()["type"] == "error"
