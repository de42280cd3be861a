"""The usage log through the real gateway: one record per request with every field (stream or not,
errors, X-App-ID), opt-in payloads, the query API's scoping, pagination and aggregates, /ready and
/metrics."""

from __future__ import annotations

import json
import statistics
import time
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway, StartGateway, perilune

MSG = [{"role": "user", "content": "Tell me about the tides"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object", "properties": {
                                               "city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    return start_gateway(config="""
simulator = "never"
log_level = "warning"
usage_flush_s = 0.05

[[providers]]
name = "sim"
base_url = "{sim_url}/v1"
forward_headers = ["x-sim-*"]

[[providers]]
name = "backup"
base_url = "{sim_url}/v1"
forward_headers = ["x-sim-*"]
models = ["sim-gpt"]
""")


def h(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def wait_record(gw: Gateway, rid: str, key: str | None = None, timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        r = httpx.get(f"{gw.v1}/usage/records/{rid}", headers=h(key or gw.admin_key))
        if r.status_code == 200:
            return dict(r.json())
        assert r.status_code == 404, r.text
        if time.monotonic() > deadline:
            raise AssertionError(f"no usage record for {rid}")
        time.sleep(0.05)


def chat(gw: Gateway, key: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(gw.v1 + "/chat/completions", headers=h(key, **headers), json=body, timeout=30)


def test_one_record_per_request_with_every_field(gw: Gateway) -> None:
    r = chat(gw, gw.key, {"model": "sim-gpt", "messages": MSG}, **{"X-App-ID": "tide-app"})
    assert r.status_code == 200
    body = r.json()
    rec = wait_record(gw, r.headers["x-request-id"])
    u = body["usage"]
    assert rec["id"] == r.headers["x-request-id"] and rec["object"] == "usage.record"
    assert (rec["app"], rec["dialect"], rec["endpoint"], rec["status"], rec["error_type"]) == (
        "tide-app", "openai", "chat", 200, None)
    assert (rec["model_requested"], rec["model_served"], rec["provider"], rec["stream"]) == (
        "sim-gpt", "sim-gpt", "sim", False)
    assert rec["account_id"] == gw.account and rec["key_id"].startswith("key_")
    assert rec["usage"] == {"prompt_tokens": u["prompt_tokens"], "input_tokens": u["prompt_tokens"],
                            "completion_tokens": u["completion_tokens"], "cache_read_tokens": 0,
                            "cache_write_tokens": 0, "reasoning_tokens": 0, "total_tokens": u["total_tokens"],
                            "estimated": False}
    assert rec["cost"] == {"input_usd": u["input_cost_usd"], "output_usd": u["output_cost_usd"],
                           "cache_usd": u["cache_input_cost_usd"], "unit_usd": 0, "total_usd": u["total_cost_usd"]}
    assert rec["latency_ms"] == pytest.approx(u["latency_ms"], abs=0.01)
    assert rec["ttft_ms"] == pytest.approx(u["ttft_ms"], abs=0.01)
    assert rec["tokens_per_s"] == pytest.approx(u["completion_tokens"] * 1000 / rec["generation_ms"], rel=1e-3)
    assert rec["route"] == [{"provider": "sim", "model": "sim-gpt", "status": 200, "error": None}]
    assert rec["observability"] is False and rec["payload"] is None

    # streamed, without an app header
    with httpx.stream("POST", gw.v1 + "/chat/completions", headers=h(gw.key, **{"x-sim-chunk-delay-ms": "5"}),
                      json={"model": "sim-gpt", "messages": MSG, "stream": True,
                            "stream_options": {"include_usage": True}}) as s:
        lines = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
        rid = s.headers["x-request-id"]
    su = lines[-1]["usage"]
    rec = wait_record(gw, rid)
    assert (rec["app"], rec["stream"], rec["status"]) == ("unknown", True, 200)
    assert rec["usage"]["completion_tokens"] == su["completion_tokens"]
    assert rec["cost"]["total_usd"] == su["total_cost_usd"]
    assert 0 < rec["ttft_ms"] < rec["latency_ms"]
    assert rec["generation_ms"] == pytest.approx(rec["latency_ms"] - rec["ttft_ms"], abs=0.01)
    assert rec["tokens_per_s"] > 0


def test_errors_and_fallbacks_are_recorded(gw: Gateway) -> None:
    r = chat(gw, gw.key, {"model": "no-such-model", "messages": MSG}, **{"X-App-ID": "err-app"})
    assert r.status_code == 404
    rec = wait_record(gw, r.headers["x-request-id"])
    assert (rec["status"], rec["error_type"], rec["model_requested"], rec["model_served"]) == (
        404, "model_not_found", "no-such-model", None)
    assert rec["usage"]["total_tokens"] is None and rec["cost"]["total_usd"] is None and rec["route"] == []
    r = chat(gw, gw.key, {"model": "sim-gpt", "messages": MSG}, **{"x-sim-fault": "500"})
    assert r.status_code == 502
    rec = wait_record(gw, r.headers["x-request-id"])
    # both providers serving sim-gpt were tried (the fallback is in the route), both failed, and the
    # pass was retried once after a backoff ([resilience] retry_rounds = 1)
    assert rec["status"] == 502 and rec["error_type"] == "upstream_unavailable"
    assert sorted(a["provider"] for a in rec["route"]) == ["backup", "backup", "sim", "sim"]
    assert all(a["status"] == 502 and a["error"] for a in rec["route"])
    assert rec["provider"] == rec["route"][-1]["provider"]
    # client-controlled values longer than their column are cut, never a batch the database refuses
    r = chat(gw, gw.key, {"model": "sim-gpt", "messages": MSG}, **{"X-App-ID": "a" * 300})
    assert wait_record(gw, r.headers["x-request-id"])["app"] == "a" * 200


def test_observability_stores_payloads_only_when_asked(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)
    plain = client.chat.completions.with_raw_response.create(model="sim-gpt", messages=MSG)
    seen = client.chat.completions.with_raw_response.create(model="sim-gpt", messages=MSG,
                                                            extra_body={"observability": True})
    rec = wait_record(gw, plain.headers["x-request-id"])
    assert rec["observability"] is False and rec["payload"] is None
    rec = wait_record(gw, seen.headers["x-request-id"])
    assert rec["observability"] is True
    assert rec["payload"]["request"]["messages"] == MSG and rec["payload"]["request"]["observability"] is True
    answer = seen.parse().choices[0].message.content
    assert rec["payload"]["response"]["choices"][0]["message"]["content"] == answer

    # a stream with a tool call: the assembled output is stored
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    stream = client.chat.completions.with_raw_response.create(model="sim-gpt", messages=msgs, tools=TOOLS,
                                                              stream=True, extra_body={"observability": True})
    chunks = list(stream.parse())
    args = "".join(tc.function.arguments or "" for c in chunks if c.choices
                   for tc in (c.choices[0].delta.tool_calls or []) if tc.function)
    rec = wait_record(gw, stream.headers["x-request-id"])
    out = rec["payload"]["response"]
    assert out["streamed"] is True and out["choices"][0]["finish_reason"] == "tool_calls"
    call = out["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": args} and call["id"]
    assert rec["payload"]["request"]["tools"] == TOOLS

    # legacy completions and embeddings too; an error keeps its message
    comp = client.completions.with_raw_response.create(model="sim-gpt", prompt="Once", max_tokens=4,
                                                       extra_body={"observability": True})
    rec = wait_record(gw, comp.headers["x-request-id"])
    assert rec["payload"]["request"]["prompt"] == "Once"
    assert rec["payload"]["response"]["choices"][0]["text"] == comp.parse().choices[0].text
    bad = chat(gw, gw.key, {"model": "sim-gpt", "messages": MSG, "observability": True}, **{"x-sim-fault": "500"})
    rec = wait_record(gw, bad.headers["x-request-id"])
    assert rec["payload"]["response"]["error"]["message"] == bad.json()["error"]["message"]


def _second_account(gw: Gateway, name: str) -> tuple[str, str]:
    a = httpx.post(gw.url + "/admin/accounts", headers=h(gw.admin_key), json={"name": name}).json()
    k = httpx.post(gw.url + "/admin/keys", headers=h(gw.admin_key), json={"account_id": a["id"], "name": name})
    perilune("accounts", "topup", a["id"], "100", "--reason", "test", "--home", str(gw.home), "--config",
             str(gw.config), env=gw.env)
    return a["id"], k.json()["key"]


def test_query_api_scoping(gw: Gateway) -> None:
    acct_b, key_b = _second_account(gw, "other-co")
    ra = chat(gw, gw.key, {"model": "sim-gpt", "messages": MSG}, **{"X-App-ID": "scope-a"})
    rb = chat(gw, key_b, {"model": "sim-gpt", "messages": MSG}, **{"X-App-ID": "scope-b"})
    assert ra.status_code == rb.status_code == 200, rb.text
    wait_record(gw, ra.headers["x-request-id"])
    wait_record(gw, rb.headers["x-request-id"])
    mine = httpx.get(gw.v1 + "/usage/records", headers=h(gw.key), params={"limit": 500}).json()["data"]
    theirs = httpx.get(gw.v1 + "/usage/records", headers=h(key_b), params={"limit": 500}).json()["data"]
    assert {r["account_id"] for r in mine} == {gw.account} and {r["account_id"] for r in theirs} == {acct_b}
    assert [r["id"] for r in theirs] == [rb.headers["x-request-id"]]
    assert httpx.get(f"{gw.v1}/usage/records/{ra.headers['x-request-id']}", headers=h(key_b)).status_code == 404
    assert httpx.get(gw.v1 + "/usage/records", headers=h(key_b),
                     params={"account_id": gw.account}).status_code == 403
    agg = httpx.get(gw.v1 + "/usage/aggregate", headers=h(key_b), params={"group_by": "app"}).json()
    assert [(g["group"], g["requests"]) for g in agg["data"]] == [({"app": "scope-b"}, 1)]
    every = httpx.get(gw.v1 + "/usage/records", headers=h(gw.admin_key), params={"limit": 500}).json()["data"]
    assert {gw.account, acct_b} <= {r["account_id"] for r in every}
    only_b = httpx.get(gw.v1 + "/usage/records", headers=h(gw.admin_key), params={"account_id": acct_b}).json()
    assert [r["id"] for r in only_b["data"]] == [rb.headers["x-request-id"]]
    assert httpx.get(gw.v1 + "/usage/records").status_code == 401


def test_filters_pagination_and_aggregates_match_records(gw: Gateway) -> None:
    app = f"agg-{time.time_ns()}"
    ids = []
    for i in range(7):
        model = "sim-gpt" if i % 2 == 0 else "backup/sim-gpt"
        r = chat(gw, gw.key, {"model": model, "messages": MSG, "max_tokens": 3 + i}, **{"X-App-ID": app})
        assert r.status_code == 200
        ids.append(r.headers["x-request-id"])
    for rid in ids:
        wait_record(gw, rid)
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"app": app, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(gw.v1 + "/usage/records", headers=h(gw.key), params=params).json()
        pages += page["data"]
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if cursor is None:
            break
    assert [r["id"] for r in pages] == ids[::-1]  # newest first
    groq = httpx.get(gw.v1 + "/usage/records", headers=h(gw.key), params={"app": app, "provider": "backup"}).json()
    assert [r["id"] for r in groq["data"]] == ids[1::2][::-1]
    t_from = min(r["created_at"] for r in pages)
    res = httpx.get(gw.v1 + "/usage/aggregate", headers=h(gw.key),
                    params={"app": app, "group_by": "provider", "from": str(t_from)}).json()
    assert res["from"] is not None and res["percentiles"]["method"] == "exact"
    for g in res["data"]:
        recs = [r for r in pages if r["provider"] == g["group"]["provider"]]
        lat = [r["latency_ms"] for r in recs]
        assert g["requests"] == len(recs) and g["errors"] == 0 and g["error_rate"] == 0
        assert g["tokens"]["output"] == sum(r["usage"]["completion_tokens"] for r in recs)
        assert g["tokens"]["prompt"] == sum(r["usage"]["prompt_tokens"] for r in recs)
        assert Decimal(str(g["cost_usd"]["total"])) == sum(Decimal(str(r["cost"]["total_usd"])) for r in recs)
        assert g["latency_ms"]["p50"] == pytest.approx(statistics.median(lat), abs=0.002)
        assert g["latency_ms"]["avg"] == pytest.approx(statistics.fmean(lat), abs=0.002)
    assert sorted(g["group"]["provider"] for g in res["data"]) == ["backup", "sim"]
    by_day = httpx.get(gw.v1 + "/usage/aggregate", headers=h(gw.key),
                       params={"app": app, "group_by": "day,model"}).json()
    assert sum(g["requests"] for g in by_day["data"]) == 7
    assert all(g["group"]["day"].endswith("T00:00:00Z") for g in by_day["data"])
    for bad in ({"group_by": "color"}, {"from": "yesterday"}, {"status": "nope"}, {"limit": "0"}):
        r = httpx.get(gw.v1 + "/usage/aggregate" if "group_by" in bad else gw.v1 + "/usage/records",
                      headers=h(gw.key), params=bad)
        assert r.status_code == 400 and r.json()["error"]["param"] in bad, r.text
    assert httpx.get(gw.v1 + "/usage/records", headers=h(gw.key), params={"cursor": "zz"}).status_code == 400


def test_ready_and_metrics(gw: Gateway) -> None:
    r = httpx.get(gw.url + "/ready")
    assert r.status_code == 200 and r.json()["database"] == "ok" and r.json()["status"] == "ready"
    chat(gw, gw.key, {"model": "sim-gpt", "messages": MSG})
    assert httpx.get(gw.url + "/metrics").status_code == 401
    assert httpx.get(gw.url + "/metrics", headers=h(gw.key)).status_code == 403

    def scrape() -> str:
        return httpx.get(gw.url + "/metrics", headers=h(gw.admin_key)).text

    deadline = time.monotonic() + 5
    text = scrape()
    while 'perilune_requests_total{model="sim-gpt",provider="sim",status="200"}' not in text:
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
        text = scrape()
    for name in ("perilune_request_latency_seconds_bucket", "perilune_ttft_seconds_bucket",
                 "perilune_tokens_total", "perilune_cost_usd_total", "perilune_usage_queue_depth",
                 "perilune_usage_spool_bytes", "perilune_usage_database_up 1.0"):
        assert name in text
    assert gw.key not in text and "pk_live" not in text


def test_json_logs_with_request_ids(start_gateway: StartGateway, capfd: pytest.CaptureFixture[str]) -> None:
    g = start_gateway(env={"PERILUNE_LOG_LEVEL": "info", "PERILUNE_USAGE_ACCESS_LOG": "true"})
    r = chat(g, g.key, {"model": "sim-gpt", "messages": MSG}, **{"X-App-ID": "logged"})
    rid = r.headers["x-request-id"]
    wait_record(g, rid)
    g.stop()
    err = capfd.readouterr().err
    lines: list[dict[str, Any]] = []
    for line in err.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))  # every structured line is one JSON object
    access = [x for x in lines if x.get("request_id") == rid]
    assert access and access[0]["logger"] == "perilune.access" and access[0]["app"] == "logged"
    assert access[0]["status"] == 200 and access[0]["model"] == "sim-gpt"
    assert g.key not in err and g.admin_key not in err



def test_observability_on_messages_native_and_translated(start_gateway: StartGateway) -> None:
    import anthropic

    gw = start_gateway("""
simulator = "never"
[[providers]]
name = "sim"
base_url = "{sim_url}/v1"
[[providers]]
name = "sim-anthropic"
type = "anthropic"
base_url = "{sim_url}"
""")
    client = anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0)
    for model in ("sim-claude", "sim-gpt"):  # native passthrough, then translated
        raw = client.messages.with_raw_response.create(model=model, max_tokens=20, messages=MSG,
                                                       extra_body={"observability": True})
        rec = wait_record(gw, raw.headers["x-request-id"])
        assert rec["observability"] is True and rec["payload"]["request"]["messages"] == MSG
        text = raw.parse().content[0].text  # type: ignore[union-attr]
        assert rec["payload"]["response"]["content"][0]["text"] == text
        with client.messages.stream(model=model, max_tokens=20, messages=MSG,
                                    extra_body={"observability": True}) as s:
            streamed = "".join(s.text_stream)
            rid = s.response.headers["x-request-id"]
        out = wait_record(gw, rid)["payload"]["response"]
        got = "".join(b.get("text", "") for b in out["content"]) if "content" in out else \
            out["choices"][0]["message"]["content"]
        assert got == streamed
