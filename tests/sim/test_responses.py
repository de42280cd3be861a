"""OpenAI personality: the Responses API, with the official openai SDK and against OpenAI's schemas."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from perilune.tokens import count_tokens
from tests.openai_schema import check, check_event

TOOL: Any = {"type": "function", "name": "get_weather", "description": "Weather for a city", "strict": False,
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def client(sim_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim_url + "/v1", api_key="x", max_retries=0)


def _events(sim_url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    with httpx.stream("POST", sim_url + "/v1/responses", json={**body, "stream": True}, headers=headers,
                      timeout=30) as r:
        assert r.status_code == 200
        blocks = r.read().decode().strip().split("\n\n")
    out = []
    for block in blocks:
        name, data = block.split("\n")
        ev = json.loads(data.removeprefix("data: "))
        assert name == "event: " + ev["type"]
        check_event(ev)
        out.append(ev)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    return out


def test_create_text(client: openai.OpenAI, sim_url: str) -> None:
    r = client.responses.create(model="sim-gpt", input="Say something", instructions="Be terse.")
    assert r.status == "completed" and r.output_text
    assert r.usage is not None
    assert r.usage.input_tokens == 4 + count_tokens("Be terse.") + 4 + count_tokens("Say something")
    assert r.usage.output_tokens == 16
    raw = httpx.post(sim_url + "/v1/responses", json={"model": "sim-gpt", "input": "Say something"}).json()
    check("Response", raw)


def test_function_call_then_output(client: openai.OpenAI) -> None:
    r = client.responses.create(model="sim-gpt", input="What is the weather in Paris?", tools=[TOOL])
    call = r.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert "city" in json.loads(call.arguments)
    r2 = client.responses.create(model="sim-gpt", tools=[TOOL], input=[
        {"role": "user", "content": "What is the weather in Paris?"}, call.model_dump(),
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert r2.output[0].type == "message" and r2.output_text


def test_stream_text_and_tool_sequences(sim_url: str) -> None:
    evs = _events(sim_url, {"model": "sim-gpt", "input": "Say something"}, {"x-sim-chunks": "3"})
    assert [e["type"] for e in evs] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        *["response.output_text.delta"] * 3, "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    text = "".join(e["delta"] for e in evs if e["type"] == "response.output_text.delta")
    assert evs[-1]["response"]["output"][0]["content"][0]["text"] == text
    evs = _events(sim_url, {"model": "sim-gpt", "input": "weather in Paris?", "tools": [TOOL]})
    types = [e["type"] for e in evs]
    assert types[2] == "response.output_item.added" and types[-3:] == [
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]


def test_stream_limit_and_error_event(sim_url: str) -> None:
    evs = _events(sim_url, {"model": "sim-gpt", "input": "Say something", "max_output_tokens": 4})
    assert evs[-1]["type"] == "response.incomplete"
    assert evs[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    evs = _events(sim_url, {"model": "sim-gpt", "input": "Say something"}, {"x-sim-fault": "error-event"})
    assert [e["type"] for e in evs][-2:] == ["error", "response.failed"]


def test_sdk_stream_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model="sim-gpt", input="Say something") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text and final.usage is not None
