"""POST /v1/router, GET /v1/router/profiles and POST /v1/feedback through a real gateway process, with
the simulator upstream and the official openai SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from perilune.router.dataset import read_labelled
from perilune.router.embedder import minilm_available
from tests.conftest import (
    ADMIN_KEY,
    Gateway,
    StartGateway,
    default_config,
    first_key,
    free_port,
    perilune,
    wait_http,
)

PROFILED = ["WizardLM/WizardLM-13B-V1.2", "claude-instant-v1", "claude-v1", "claude-v2", "gpt-3.5-turbo-1106",
            "gpt-4-1106-preview", "meta/code-llama-instruct-34b-chat", "meta/llama-2-70b-chat",
            "mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat"]
# Two profiled models are served here: one under its own id (a catalog entry), one through an alias.
ROUTER_CONFIG = """
[router]
embedder = "hashing"

[router.aliases]
"mistralai/mistral-7b-chat" = "sim-gpt"

[models."gpt-4-1106-preview"]
providers = ["sim"]
kind = "chat"
price = {input = "10.00", output = "30.00"}
"""
ARC = ("Which of the following statements best explains why magnets usually stick to a refrigerator door?\n"
       "A) The refrigerator door is smooth.\nB) The refrigerator door contains iron.\nC) The refrigerator door "
       "is a good conductor.\nD) The refrigerator door has electric wires in it.\nPrint only a single choice "
       "from \"A\" or \"B\" or \"C\" or \"D\" without explanation.\nAnswer:")
MSG = [{"role": "user", "content": ARC}]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway, sim_url: str) -> Gateway:
    return start_gateway(default_config(sim_url) + ROUTER_CONFIG)


def post(gw: Gateway, body: Any, key: str | None = None, path: str = "/v1/router") -> httpx.Response:
    return httpx.post(gw.url + path, json=body, headers={"Authorization": f"Bearer {key or gw.key}"}, timeout=30)


def test_decision_only_with_the_11_profiled_models(gw: Gateway) -> None:
    r = post(gw, {"messages": MSG, "execute": False, "models": PROFILED, "cost_weight": 0.5})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["object"] == "router.decision"
    assert d["model"] in PROFILED and d["cost_weight"] == 0.5
    assert sorted(c["model"] for c in d["candidates"]) == sorted(PROFILED)
    scores = [c["score"] for c in d["candidates"]]
    assert scores == sorted(scores) and d["candidates"][0]["model"] == d["model"]
    max_cost = max(c["expected_cost_pusd"] for c in d["candidates"])
    for c in d["candidates"]:
        assert 0.0 <= c["predicted_quality"] <= 1.0
        assert Decimal(c["expected_cost_usd"]) == Decimal(c["expected_cost_pusd"]) / 10**12  # exact, a string
        assert c["score"] == pytest.approx((1 - c["predicted_quality"]) + 0.5 * c["expected_cost_pusd"] / max_cost,
                                           abs=2e-6)
    assert d["embedder"] == "hashing-1024" and d["routing_ms"] >= 0
    assert 0 <= d["cluster"]["index"] < d["cluster"]["k"]
    # served here under its own id (priced by the catalog) or through the alias; the rest are not
    servable = {c["model"] for c in d["candidates"] if c["servable"]}
    assert servable == {"gpt-4-1106-preview", "mistralai/mistral-7b-chat"}
    again = post(gw, {"messages": MSG, "execute": False, "models": PROFILED, "cost_weight": 0.5}).json()
    assert again["cached"] is True and again["model"] == d["model"]


def test_higher_cost_weight_never_picks_a_dearer_model(gw: Gateway) -> None:
    costs = []
    for w in (0, 0.01, 0.05, 0.1, 0.3, 1, 3, 10, 100):
        d = post(gw, {"messages": MSG, "execute": False, "models": PROFILED, "cost_weight": w}).json()
        chosen = next(c for c in d["candidates"] if c["model"] == d["model"])
        costs.append(chosen["expected_cost_pusd"])
    assert costs == sorted(costs, reverse=True)
    assert costs[0] > costs[-1]  # the sweep does move: from the best model to the cheapest


def test_a_cost_weight_sweep_scored_by_the_known_labels(gw: Gateway) -> None:
    """What the issue's check does, on labelled prompts of the bundled data: each prompt sent with the 11
    models at a sweep of cost weights, each choice scored by that model's known correctness and cost on
    that prompt. Per prompt the chosen model never gets dearer; over the set, the cheap end costs less
    and the quality end is more accurate."""
    data = read_labelled(sorted((ROOT / "bench" / "data" / "routerbench").glob("*.csv.gz")))
    rows = list(range(0, len(data), 110))  # 21 prompts of the three tasks
    sweep = (0.0, 0.1, 0.5, 2.0, 100.0)
    accuracy, cost = {w: 0.0 for w in sweep}, {w: 0.0 for w in sweep}
    for i in rows:
        expected = []
        for w in sweep:
            r = post(gw, {"messages": [{"role": "user", "content": data.prompts[i]}], "execute": False,
                          "models": PROFILED, "cost_weight": w})
            assert r.status_code == 200, r.text
            d = r.json()
            expected.append(next(c for c in d["candidates"] if c["model"] == d["model"])["expected_cost_pusd"])
            j = data.models.index(d["model"])
            accuracy[w] += data.correct[i, j] / len(rows)
            cost[w] += data.cost_pusd[i, j] / len(rows)
        assert expected == sorted(expected, reverse=True), (i, expected)
    assert cost[100.0] < cost[0.0] / 5
    assert accuracy[0.0] > accuracy[100.0]


def test_all_profiled_models_are_candidates_without_models(gw: Gateway) -> None:
    d = post(gw, {"messages": MSG, "execute": False}).json()
    assert len(d["candidates"]) == len(PROFILED)


@pytest.mark.parametrize(("body", "param", "needle"), [
    ({"messages": []}, "messages", ""),
    ({}, "messages", ""),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", ""),
    ({"messages": MSG, "models": ["claude-v1"]}, "models", "at least 2"),
    ({"messages": MSG, "models": ["claude-v1", "claude-v1"]}, "models", "claude-v1"),
    ({"messages": MSG, "models": ["claude-v1", "no-such-model"], "execute": False}, "models", "no-such-model"),
    ({"messages": MSG, "models": "claude-v1"}, "models", ""),
    ({"messages": MSG, "cost_weight": -1}, "cost_weight", ""),
    ({"messages": MSG, "cost_weight": "cheap"}, "cost_weight", ""),
    ({"messages": MSG, "cost_weight": True}, "cost_weight", ""),
    ({"messages": MSG, "execute": "yes"}, "execute", ""),
    ({"messages": MSG, "execute": 1}, "execute", ""),
    ({"messages": MSG, "temperature": "hot", "execute": False}, "temperature", ""),
    ({"messages": MSG, "models": ["claude-v1", "gpt-4-1106-preview"]}, "models", "claude-v1"),  # not served
])
def test_bad_input_is_a_400_naming_the_param(gw: Gateway, body: dict[str, Any], param: str, needle: str) -> None:
    r = post(gw, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error"
    assert needle in err["message"]


def test_malformed_json_and_missing_key(gw: Gateway) -> None:
    r = httpx.post(gw.url + "/v1/router", content=b"{nope", headers={"Authorization": f"Bearer {gw.key}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(gw.url + "/v1/router", json={"messages": MSG})
    assert r.status_code == 401


def test_profiles(gw: Gateway) -> None:
    r = httpx.get(gw.url + "/v1/router/profiles", headers={"Authorization": f"Bearer {gw.key}"})
    assert r.status_code == 200
    body = r.json()
    assert sorted(m["id"] for m in body["data"]) == sorted(PROFILED)
    k = body["clusters"]
    for m in body["data"]:
        assert m["validation_size"] > 1000 and m["clusters"] == k and len(m["quality"]) == k
        assert all(0 <= q <= 1 for q in m["quality"]) and Decimal(m["mean_cost_usd"]) > 0
    prov = body["provenance"]
    assert prov["embedder"] == body["embedder"] == "hashing-1024"
    assert set(prov["datasets"]) == {"arc_challenge_train.csv.gz", "mbpp_train.csv.gz", "winograde_train.csv.gz"}
    assert prov["built_at"][:2] == "20"


def _served_candidates(d: dict[str, Any]) -> set[str]:
    return {c["model"] for c in d["candidates"]}


def test_execute_with_the_openai_sdk(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=gw.v1 + "/router", api_key=gw.key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="router", messages=MSG, max_tokens=12, extra_body={"cost_weight": 0})  # type: ignore[arg-type]
    completion = raw.parse()
    assert completion.object == "chat.completion" and completion.choices[0].message.content
    routed = raw.headers["x-perilune-routed-model"]
    decision = json.loads(raw.text)["router"]
    assert decision["model"] == routed
    # without `models`, the servable profiled models are the candidates
    assert _served_candidates(decision) == {"gpt-4-1106-preview", "mistralai/mistral-7b-chat"}
    served = decision["served_model"]
    assert completion.model == served == {"gpt-4-1106-preview": "gpt-4-1106-preview",
                                          "mistralai/mistral-7b-chat": "sim-gpt"}[routed]
    assert completion.usage is not None and completion.usage.completion_tokens == 12
    # a high cost weight takes the cheaper one; the chosen model is what was served
    cheap = client.chat.completions.with_raw_response.create(
        model="router", messages=MSG, extra_body={"cost_weight": 100})  # type: ignore[arg-type]
    assert cheap.headers["x-perilune-routed-model"] == "mistralai/mistral-7b-chat"
    assert cheap.parse().model == "sim-gpt"


def test_execute_streamed_with_the_openai_sdk(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=gw.v1 + "/router", api_key=gw.key, max_retries=0)
    with client.chat.completions.with_streaming_response.create(
            model="router", messages=MSG, stream=True, stream_options={"include_usage": True},
            extra_body={"models": ["gpt-4-1106-preview", "mistralai/mistral-7b-chat"], "cost_weight": 0}) as resp:
        routed = resp.headers["x-perilune-routed-model"]
        chunks = list(resp.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert routed in ("gpt-4-1106-preview", "mistralai/mistral-7b-chat")
    assert {c.model for c in chunks if c.choices} == {"sim-gpt" if routed.startswith("mistralai") else routed}


def test_execute_through_client_post_on_v1_router(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)
    body = client.post("/router", cast_to=object, body={"messages": MSG, "cost_weight": 100, "max_tokens": 5})
    assert isinstance(body, dict)
    assert body["object"] == "chat.completion" and body["router"]["model"] == "mistralai/mistral-7b-chat"
    stream = client.post("/router", cast_to=openai.types.chat.ChatCompletionChunk,
                         body={"messages": MSG, "stream": True, "cost_weight": 100}, stream=True,
                         stream_cls=openai.Stream[openai.types.chat.ChatCompletionChunk])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_stream_starts_with_the_decision_comment(gw: Gateway) -> None:
    with httpx.stream("POST", gw.url + "/v1/router", json={"messages": MSG, "stream": True, "cost_weight": 100},
                      headers={"Authorization": f"Bearer {gw.key}"}) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[0].startswith(": router {")
    assert json.loads(lines[0][len(": router "):])["model"] == r.headers["x-perilune-routed-model"]
    assert lines[-1] == "data: [DONE]"


def test_feedback_and_rebuild_from_feedback(gw: Gateway, tmp_path: Any) -> None:
    r = post(gw, {"messages": MSG, "models": ["gpt-4-1106-preview", "mistralai/mistral-7b-chat"],
                  "observability": True})
    assert r.status_code == 200, r.text
    rid = r.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while True:  # the usage record is written within a flush interval
        fb = post(gw, {"request_id": rid, "score": 0.25}, path="/v1/feedback")
        if fb.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert fb.status_code == 200, fb.text
    assert fb.json() == {"object": "feedback", "request_id": rid, "score": 0.25}
    assert post(gw, {"request_id": rid, "score": 1.5}, path="/v1/feedback").json()["error"]["param"] == "score"
    assert post(gw, {"request_id": "req_nope", "score": 1}, path="/v1/feedback").status_code == 404
    other = gw.new_key("--account", perilune("accounts", "create", "other", "--home", str(gw.home), "--config",
                                             str(gw.config), env=gw.env).stdout.strip().splitlines()[-1])
    assert post(gw, {"request_id": rid, "score": 1}, key=other, path="/v1/feedback").status_code == 404
    out = tmp_path / "fb.json"
    res = perilune("router", "build", "--from-feedback", "--embedder", "hashing", "--home", str(gw.home),
                   "--config", str(gw.config), "--out", str(out), env=gw.env, check=False)
    assert res.returncode == 0, res.stderr
    built = {m["id"]: m for m in json.loads(out.read_text())["models"]}
    served = r.json()["router"]["served_model"]
    assert built[served]["source"] == "feedback" and built[served]["validation_size"] == 1
    assert built[served]["accuracy"] == 0.25
    assert built["claude-v1"]["source"] != "feedback"  # models without feedback keep their profile


def test_dashboard_log_detail_shows_the_decision(gw: Gateway) -> None:
    r = post(gw, {"messages": MSG, "models": ["gpt-4-1106-preview", "mistralai/mistral-7b-chat"], "cost_weight": 0.2})
    assert r.status_code == 200, r.text
    rid, decision = r.headers["x-request-id"], r.json()["router"]
    with httpx.Client(base_url=gw.url, follow_redirects=False) as c:
        assert c.post("/dashboard/login", data={"key": gw.key, "next": "/dashboard/logs"}).status_code == 303
        deadline = time.monotonic() + 10
        while (page := c.get(f"/dashboard/logs/{rid}")).status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert page.status_code == 200
    html = page.text
    assert "Router decision" in html and f"Chose <b>{decision['model']}</b>" in html
    for cand in decision["candidates"]:
        assert cand["model"] in html and f"{cand['score']:.4f}" in html


def test_decision_latency_in_metrics(gw: Gateway) -> None:
    def count() -> float:
        text = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {gw.admin_key}"}).text
        line = next(ln for ln in text.splitlines() if ln.startswith("perilune_router_decision_seconds_count"))
        return float(line.split()[-1])

    before = count()
    assert post(gw, {"messages": [{"role": "user", "content": f"metrics {time.time()}"}], "execute": False}
                ).status_code == 200
    assert count() == before + 1


@pytest.mark.skipif(not minilm_available(), reason="the router extra is not installed")
def test_minilm_embedder_loaded_at_start(tmp_path: Path, sim_url: str) -> None:
    # started here rather than by start_gateway: loading torch may take longer than its 30 s wait
    cfg = tmp_path / "perilune.toml"
    cfg.write_text(default_config(sim_url))
    env = {"PERILUNE_ADMIN_KEY": ADMIN_KEY, "PERILUNE_ROUTER__EMBEDDER": "minilm"}
    key, _ = first_key(tmp_path, cfg, env, "10")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "perilune", "serve", "--home", str(tmp_path), "--config",
                             str(cfg), "--port", str(port)], env={**os.environ, **env})
    gw = Gateway(f"http://127.0.0.1:{port}", tmp_path, cfg, key, proc, env)
    try:
        wait_http(gw.url + "/health", proc, timeout_s=120)  # ready before the model has loaded
        d = httpx.post(gw.url + "/v1/router", json={"messages": MSG, "execute": False, "models": PROFILED},
                       headers={"Authorization": f"Bearer {key}"}, timeout=300).json()  # waits for the load
        assert d["embedder"] == "minilm-l6-v2-int8" and d["profiles"] == "shipped:default_profile_minilm.json"
        assert len(d["candidates"]) == 11
    finally:
        gw.stop()


def test_gateway_embedder_bills_the_calling_key(gw: Gateway, start_gateway: StartGateway, sim_url: str,
                                                 tmp_path: Any) -> None:
    """router.embedder = "gateway:<model>": the profile is built through a gateway's /v1/embeddings (the
    simulator's embedding model), and each uncached decision is an embeddings request of its own on the
    caller's key, with its usage record."""
    rows = [{"sample_id": str(i), "prompt": p, "eval_name": "t", "a": i % 2, "a|total_cost": "0.0001",
             "b": 1 - i % 2, "b|total_cost": "0.001"}
            for i, p in enumerate(f"question {i}: {w}" for i in range(24) for w in ("sum", "poem"))]
    data = tmp_path / "small.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    prof = tmp_path / "gw-profile.json"
    res = perilune("router", "build", str(data), "--embedder", "gateway:sim-embed", "--base-url", gw.url,
                   "--out", str(prof), env={**gw.env, "PERILUNE_API_KEY": gw.key}, check=False)
    assert res.returncode == 0, res.stderr
    assert json.loads(prof.read_text())["embedder"] == "gateway:sim-embed"
    bad = perilune("router", "build", str(data), "--embedder", "gateway:sim-embed", "--out",
                   str(tmp_path / "x.json"), env={k: v for k, v in gw.env.items() if k != "PERILUNE_API_KEY"},
                   check=False)
    assert bad.returncode == 2 and "--base-url" in bad.stderr

    g2 = start_gateway(default_config(sim_url) + f'\n[router]\nprofiles = "{prof}"\n',
                       env={"PERILUNE_ROUTER__EMBEDDER": "gateway:sim-embed"})
    prompt = [{"role": "user", "content": "question 3: sum, billed once"}]
    r = post(g2, {"messages": prompt, "execute": False, "models": ["a", "b"]})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["embedder"] == "gateway:sim-embed" and not d["cached"]
    assert post(g2, {"messages": prompt, "execute": False, "models": ["a", "b"]}).json()["cached"]
    h = {"Authorization": f"Bearer {g2.key}"}
    deadline = time.monotonic() + 10
    while True:  # usage records are written within a flush interval
        recs = httpx.get(g2.url + "/v1/usage/records", headers=h, params={"limit": 50}).json()["data"]
        emb = [x for x in recs if x["endpoint"] == "embeddings"]
        if emb or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(emb) == 1  # the cached second decision embedded nothing
    assert emb[0]["model_requested"] == "sim-embed" and emb[0]["status"] == 200
    assert emb[0]["id"] != r.headers["x-request-id"] and emb[0]["key_id"].startswith("key_")
    assert Decimal(emb[0]["cost"]["charged_usd"]) > 0 and emb[0]["usage"]["prompt_tokens"] > 0
