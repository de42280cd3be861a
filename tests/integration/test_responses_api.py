"""POST /v1/responses with the official openai SDK, in front of the simulator's three personalities
(OpenAI-compatible, Anthropic, Gemini); stored responses; every object and event checked against
OpenAI's schemas."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway, StartGateway, perilune
from tests.openai_schema import check, check_event

CONFIG = """
simulator = "never"
log_level = "warning"

[[providers]]
name = "sim"
base_url = "{sim_url}/v1"
forward_headers = ["x-sim-*"]

[[providers]]
name = "sim-anthropic"
type = "anthropic"
base_url = "{sim_url}"
forward_headers = ["x-sim-*"]

[[providers]]
name = "sim-gemini"
type = "gemini"
base_url = "{sim_url}"
forward_headers = ["x-sim-*"]
"""

MODELS = ("sim-gpt", "sim-claude", "sim-gemini")
TOOL: dict[str, Any] = {"type": "function", "name": "get_weather", "description": "Weather for a city",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                       "required": ["city"], "additionalProperties": False},
                        "strict": True}


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    return start_gateway(CONFIG)


@pytest.fixture(scope="module")
def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)


def _http(gw: Gateway, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, gw.v1 + path, headers={"Authorization": f"Bearer {gw.key}"}, timeout=30, **kw)


@pytest.mark.parametrize("model", MODELS)
def test_create_returns_a_valid_response(client: openai.OpenAI, gw: Gateway, model: str) -> None:
    r = client.responses.create(model=model, input="Tell me about the sea", instructions="Be brief.",
                                max_output_tokens=200, metadata={"run": "t1"})
    assert r.object == "response" and r.status == "completed" and r.id.startswith("resp_")
    assert r.output_text and r.metadata == {"run": "t1"} and r.instructions == "Be brief."
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    extra = r.usage.model_extra or {}
    assert Decimal(extra["total_cost_usd"]) > 0 and "latency_ms" in extra
    body = _http(gw, "GET", f"/responses/{r.id}").json()
    check("Response", body)
    assert body["id"] == r.id and body["output"][0]["content"][0]["text"] == r.output_text


@pytest.mark.parametrize("model", MODELS)
def test_stream_event_sequence(gw: Gateway, model: str) -> None:
    with httpx.stream("POST", gw.v1 + "/responses", headers={"Authorization": f"Bearer {gw.key}"}, timeout=30,
                      json={"model": model, "input": "Tell me about the sea", "stream": True}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in resp.iter_lines() if ln.startswith("data: ")]
    evs = [json.loads(ln[6:]) for ln in lines]
    for ev in evs:
        check_event(ev)
    types = [e["type"] for e in evs]
    assert types[:5] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added", "response.output_text.delta"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    text = "".join(e["delta"] for e in evs if e["type"] == "response.output_text.delta")
    final = evs[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == text and final["usage"]["output_tokens"] > 0
    assert Decimal(final["usage"]["total_cost_usd"]) > 0


@pytest.mark.parametrize("model", MODELS)
def test_sdk_stream_with_a_function_tool_round_trip(client: openai.OpenAI, model: str) -> None:
    with client.responses.stream(model=model, input="What is the weather in Paris?", tools=[TOOL]) as stream:
        kinds = [ev.type for ev in stream]
        first = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.completed"
    calls = [i for i in first.output if i.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    args = json.loads(calls[0].arguments)
    assert isinstance(args.get("city"), str)
    follow: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}, calls[0].model_dump(),
                         {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"}]
    second = client.responses.create(model=model, input=follow, tools=[TOOL])
    assert second.status == "completed" and second.output_text
    assert not [i for i in second.output if i.type == "function_call"]


def test_previous_response_id_continues_the_conversation(client: openai.OpenAI, gw: Gateway) -> None:
    first = client.responses.create(model="sim-gpt", input="Tell me about the sea")
    second = client.responses.create(model="sim-gpt", input="And the mountains?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    # the stored conversation reached the upstream: the prompt is longer than the new input alone
    alone = client.responses.create(model="sim-gpt", input="And the mountains?", store=False)
    assert second.usage and alone.usage and second.usage.input_tokens > alone.usage.input_tokens
    items = _http(gw, "GET", f"/responses/{second.id}/input_items").json()
    check("ResponseItemList", items)
    assert [i["content"][0]["text"] for i in items["data"]] == ["And the mountains?"]
    # store: false stored nothing
    assert _http(gw, "GET", f"/responses/{alone.id}").status_code == 404
    missing = _http(gw, "POST", "/responses", json={"model": "sim-gpt", "input": "x",
                                                    "previous_response_id": "resp_nope"})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "previous_response_id"


def test_stored_responses_are_scoped_to_the_account_and_deletable(client: openai.OpenAI, gw: Gateway) -> None:
    r = client.responses.create(model="sim-gpt", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "Describe"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}]}])
    listed = client.responses.input_items.list(r.id)
    assert listed.data[0].type == "message"
    acct = perilune("accounts", "create", "other", "--home", str(gw.home), "--config", str(gw.config),
                    env=gw.env).stdout.strip().splitlines()[-1]
    other_key = gw.new_key("--account", acct)
    other = httpx.get(f"{gw.v1}/responses/{r.id}", headers={"Authorization": f"Bearer {other_key}"})
    assert other.status_code == 404
    deleted = _http(gw, "DELETE", f"/responses/{r.id}")
    assert deleted.json() == {"id": r.id, "object": "response", "deleted": True}
    assert _http(gw, "GET", f"/responses/{r.id}").status_code == 404
    assert _http(gw, "DELETE", f"/responses/{r.id}").status_code == 404


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "sim-gpt", "input": "x", "temperature": "hot"}, "temperature"),
    ({"model": "sim-gpt", "input": [{"role": "user", "content": 5}]}, "input[0].content"),
    ({"model": "sim-gpt", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": "x"}, "model"),
])
def test_bad_requests_are_400s_in_openai_shape(gw: Gateway, body: dict[str, Any], param: str) -> None:
    r = _http(gw, "POST", "/responses", json=body)
    assert r.status_code == 400
    check("ErrorResponse", r.json())
    assert r.json()["error"]["param"] == param


NATIVE_CONFIG = CONFIG.replace('name = "sim"\n', 'name = "sim"\ntype = "openai"\n', 1)


@pytest.fixture(scope="module")
def native_gw(start_gateway: StartGateway) -> Gateway:
    """The simulator's OpenAI personality as a provider of type "openai": Responses pass natively."""
    return start_gateway(NATIVE_CONFIG)


def test_native_passthrough_non_streamed(native_gw: Gateway) -> None:
    client = openai.OpenAI(base_url=native_gw.v1, api_key=native_gw.key, max_retries=0)
    r = client.responses.create(model="sim-gpt", input="Tell me about the sea", metadata={"k": "v"})
    body = _http(native_gw, "GET", f"/responses/{r.id}").json()
    check("Response", body)
    assert body["background"] is False  # a field only the upstream's own Response object has
    assert body["id"] == r.id and r.id.startswith("resp_") and body["store"] is True and body["metadata"] == {"k": "v"}
    assert body["provider"] == "sim" and body["usage"]["input_tokens"] > 0
    assert Decimal(body["usage"]["total_cost_usd"]) > 0
    assert body["max_output_tokens"] is None  # the client set none (perilune's granted limit is not echoed)
    follow = client.responses.create(model="sim-gpt", input="More", previous_response_id=r.id)
    assert follow.status == "completed" and follow.previous_response_id == r.id
    alone = client.responses.create(model="sim-gpt", input="More", store=False)
    assert follow.usage and alone.usage and follow.usage.input_tokens > alone.usage.input_tokens


def test_native_passthrough_streamed_with_tool_round_trip(native_gw: Gateway) -> None:
    with httpx.stream("POST", native_gw.v1 + "/responses", headers={"Authorization": f"Bearer {native_gw.key}"},
                      timeout=30, json={"model": "sim-gpt", "input": "Weather in Paris?", "tools": [TOOL],
                                        "stream": True}) as resp:
        evs = [json.loads(ln[6:]) for ln in resp.iter_lines() if ln.startswith("data: ")]
    for ev in evs:
        check_event(ev)
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    final = evs[-1]
    assert final["type"] == "response.completed" and Decimal(final["response"]["usage"]["total_cost_usd"]) > 0
    rid = final["response"]["id"]
    assert all(e["response"]["id"] == rid for e in evs if "response" in e)
    call = final["response"]["output"][0]
    assert call["type"] == "function_call"
    client = openai.OpenAI(base_url=native_gw.v1, api_key=native_gw.key, max_retries=0)
    second = client.responses.create(model="sim-gpt", tools=[TOOL], previous_response_id=rid, input=[
        {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}])
    assert second.output_text and second.output[0].type == "message"


def test_builtin_tools_only_reach_a_native_upstream(gw: Gateway, native_gw: Gateway) -> None:
    body = {"model": "sim-gpt", "input": "x", "tools": [{"type": "web_search"}]}
    assert _http(gw, "POST", "/responses", json=body).status_code == 400
    assert _http(native_gw, "POST", "/responses", json=body).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_usage_record_and_observability_payload(gw: Gateway, stream: bool) -> None:
    from tests.integration.test_usage_api import wait_record

    body = {"model": "sim-claude", "input": "Tell me about the sea", "observability": True, "stream": stream}
    r = _http(gw, "POST", "/responses", json=body)
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    rec = wait_record(gw, rid)
    assert rec["endpoint"] == "responses" and rec["dialect"] == "openai" and rec["stream"] is stream
    assert rec["model_served"] == "sim-claude" and rec["provider"] == "sim-anthropic" and rec["status"] == 200
    assert rec["usage"]["input_tokens"] > 0 and rec["usage"]["completion_tokens"] > 0
    assert Decimal(str(rec["cost"]["total_usd"])) > 0 and rec["ttft_ms"] is not None
    assert rec["payload"]["request"]["input"] == "Tell me about the sea"
    response = rec["payload"]["response"]
    assert response["object"] == "response" and response["id"] == "resp_" + rid.removeprefix("req_")
    assert response["status"] == "completed" and response["output"][0]["content"][0]["text"]
