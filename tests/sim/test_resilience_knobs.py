"""Knobs for resilience testing: a fault rate, a TTFT distribution with a slow tail, a context limit."""

from __future__ import annotations

import random
import time
from collections import Counter

import httpx

from perilune.sim.common import Knobs, SimConfig, knobs_from_headers

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_fault_rate_hits_about_that_share(sim_url: str) -> None:
    statuses = Counter(
        httpx.post(sim_url + "/v1/chat/completions", json=CHAT,
                   headers={"x-sim-fault": "503", "x-sim-fault-rate": "0.3"}).status_code
        for _ in range(300))
    assert set(statuses) == {200, 503}
    assert 0.2 < statuses[503] / 300 < 0.4


def test_slow_tail_per_request(sim_url: str) -> None:
    def ttft(headers: dict[str, str]) -> float:
        t0 = time.perf_counter()
        with httpx.stream("POST", sim_url + "/v1/chat/completions", json={**CHAT, "stream": True},
                          headers=headers) as r:
            for line in r.iter_lines():
                if '"content"' in line:
                    return (time.perf_counter() - t0) * 1000
        raise AssertionError("no content")

    always = ttft({"x-sim-ttft-ms": "10", "x-sim-slow-tail-rate": "1", "x-sim-slow-tail-ms": "300"})
    never = ttft({"x-sim-ttft-ms": "10", "x-sim-slow-tail-rate": "0", "x-sim-slow-tail-ms": "300"})
    assert always >= 300 and never < 200


def test_knob_draws_are_seeded_and_distributed() -> None:
    base = Knobs.from_config(SimConfig(ttft_ms=50, ttft_jitter_ms=10, slow_tail_rate=0.1, slow_tail_ms=1000,
                                       fault="500", fault_rate=0.25))
    assert base.random
    rng = random.Random(5)
    draws = [base.draw(rng) for _ in range(4000)]
    slow = sum(k.ttft_ms >= 1050 for k in draws) / len(draws)
    faults = sum(k.fault == "500" for k in draws) / len(draws)
    assert 0.08 < slow < 0.12 and 0.22 < faults < 0.28
    assert all(50 <= k.ttft_ms <= 1060 for k in draws)
    assert base.ttft_ms == 50 and base.fault == "500"  # the shared knobs are never changed
    assert not Knobs.from_config(SimConfig(ttft_ms=5)).random
    k = knobs_from_headers(Knobs.from_config(SimConfig()), {b"x-sim-fault-rate": b"7", b"x-sim-context-tokens": b"9"})
    assert k.fault_rate == 1.0 and k.context_tokens == 9


def test_context_limit_answers_each_providers_error(sim_url: str) -> None:
    long = {"model": "m", "messages": [{"role": "user", "content": "word " * 200}]}
    r = httpx.post(sim_url + "/v1/chat/completions", json=long, headers={"x-sim-context-tokens": "100"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"
    assert "maximum context length is 100 tokens" in r.json()["error"]["message"]
    ok = httpx.post(sim_url + "/v1/chat/completions", json=CHAT, headers={"x-sim-context-tokens": "100"})
    assert ok.status_code == 200
    r = httpx.post(sim_url + "/v1/messages", json={**long, "max_tokens": 10},
                   headers={"x-sim-context-tokens": "100", "anthropic-version": "2023-06-01"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("prompt is too long: ")
