"""Anthropic personality, exercised with the official ``anthropic`` SDK."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from perilune.tokens import count_tokens

MSGS: list[Any] = [{"role": "user", "content": "Tell me about gateways."}]
INPUT = 4 + count_tokens("Tell me about gateways.")
TOOL: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["location"],
    },
}


@pytest.fixture(scope="module")
def client(sim_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim_url, api_key="sk-ant-anything", max_retries=0)


def sse_events(raw: str) -> list[tuple[str, Any]]:
    out = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_create_whole_body(client: anthropic.Anthropic) -> None:
    r = client.messages.with_raw_response.create(model="claude-sim", max_tokens=100, messages=MSGS)
    body = json.loads(r.http_response.text)
    assert body["id"].startswith("msg_") and r.headers["request-id"].startswith("req_")
    text = body["content"][0]["text"]
    assert count_tokens(text) == 16
    del body["id"]
    assert body == {
        "type": "message",
        "role": "assistant",
        "model": "claude-sim",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": INPUT,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 16,
            "service_tier": "standard",
        },
    }
    msg = client.messages.create(model="claude-sim", max_tokens=5, messages=MSGS, system="Be brief.")
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 5
    assert msg.usage.input_tokens == INPUT + 4 + count_tokens("Be brief.")
    word = text.split()[2]
    msg = client.messages.create(model="claude-sim", max_tokens=100, messages=MSGS, stop_sequences=[word])
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == word
    assert msg.content[0].text == text[: text.index(word)]


def test_stream_event_sequence_raw(sim_url: str) -> None:
    r = httpx.post(
        sim_url + "/v1/messages",
        json={"model": "claude-sim", "max_tokens": 100, "messages": MSGS, "stream": True},
        headers={"anthropic-version": "2023-06-01", "x-sim-chunks": "3"},
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    names = [e for e, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == INPUT and start["usage"]["output_tokens"] == 1
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == count_tokens(text) == 16


def test_sdk_stream_text(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="claude-sim", max_tokens=100, messages=MSGS) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.content[0].text == text
    assert final.usage.output_tokens == count_tokens(text) == 16
    assert final.usage.input_tokens == INPUT
    assert final.stop_reason == "end_turn"


def test_tool_use(client: anthropic.Anthropic, sim_url: str) -> None:
    msgs: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    msg = client.messages.create(model="claude-sim", max_tokens=200, messages=msgs, tools=[TOOL])
    assert msg.stop_reason == "tool_use"
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    tu = msg.content[1]
    assert tu.type == "tool_use" and tu.id.startswith("toolu_") and tu.name == "get_weather"
    assert tu.input == {"location": "Paris", "unit": "c"}
    pre = msg.content[0].text
    assert msg.usage.output_tokens == count_tokens(pre) + count_tokens("get_weather") + count_tokens(
        json.dumps(tu.input, separators=(",", ":"))
    )
    with client.messages.stream(
        model="claude-sim",
        max_tokens=200,
        messages=MSGS,
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["tool_use"]
    assert final.content[0].input == {"location": "Paris", "unit": "c"}
    raw = httpx.post(
        sim_url + "/v1/messages",
        json={
            "model": "c",
            "max_tokens": 99,
            "messages": MSGS,
            "tools": [TOOL],
            "tool_choice": {"type": "any"},
            "stream": True,
        },
    ).text
    deltas = [d["delta"] for n, d in sse_events(raw) if n == "content_block_delta"]
    assert deltas[0] == {"type": "input_json_delta", "partial_json": ""}
    assert len(deltas) > 3 and json.loads("".join(d["partial_json"] for d in deltas)) == tu.input
    # tool result turn -> text answer
    follow: Any = [
        *msgs,
        {"role": "assistant", "content": [tu.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tu.id, "content": "18C"}]},
    ]
    msg = client.messages.create(model="claude-sim", max_tokens=200, messages=follow, tools=[TOOL])
    assert msg.stop_reason == "end_turn"


def test_thinking_stream(client: anthropic.Anthropic, sim_url: str) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    with client.messages.stream(
        model="claude-sim", max_tokens=4096, messages=MSGS, thinking=thinking
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    th = final.content[0]
    assert th.type == "thinking" and th.signature and count_tokens(th.thinking) == 16
    assert "thinking" in kinds and "signature" in kinds
    assert final.usage.output_tokens == 16 + count_tokens(final.content[1].text)
    raw = httpx.post(
        sim_url + "/v1/messages",
        json={"model": "c", "max_tokens": 4096, "messages": MSGS, "thinking": thinking, "stream": True},
        headers={"x-sim-chunks": "2"},
    ).text
    seq = [
        (n, d.get("delta", {}).get("type") or d.get("content_block", {}).get("type"))
        for n, d in sse_events(raw)
    ]
    assert seq[:9] == [
        ("message_start", None),
        ("content_block_start", "thinking"),
        ("ping", None),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "signature_delta"),
        ("content_block_stop", None),
        ("content_block_start", "text"),
        ("content_block_delta", "text_delta"),
    ]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model="c", max_tokens=500, messages=MSGS, thinking={"type": "enabled", "budget_tokens": 1024}
        )


def test_cache_control_and_count_tokens(client: anthropic.Anthropic) -> None:
    system: Any = [
        {"type": "text", "text": "Long cached instructions " * 20, "cache_control": {"type": "ephemeral"}}
    ]
    cached = 4 + count_tokens("Long cached instructions " * 20)
    msg = client.messages.create(model="claude-sim", max_tokens=50, system=system, messages=MSGS)
    assert msg.usage.cache_creation_input_tokens == cached
    assert msg.usage.cache_read_input_tokens == 0
    assert msg.usage.input_tokens == INPUT
    msg = client.messages.create(
        model="claude-sim", max_tokens=50, system=system, messages=MSGS, extra_headers={"x-sim-cache": "read"}
    )
    assert msg.usage.cache_read_input_tokens == cached and msg.usage.cache_creation_input_tokens == 0
    assert msg.usage.input_tokens == INPUT
    counted = client.messages.count_tokens(model="claude-sim", system=system, messages=MSGS)
    assert counted.input_tokens == cached + INPUT


def test_errors(client: anthropic.Anthropic, sim_url: str, sim_auth_url: str) -> None:
    missing = httpx.post(sim_url + "/v1/messages", json={"model": "c", "messages": MSGS})
    assert missing.status_code == 400
    assert missing.json()["type"] == "error"
    assert missing.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    with pytest.raises(anthropic.BadRequestError) as ei:
        client.messages.create(model="c", max_tokens=9, messages=[])
    assert ei.value.body["error"]["type"] == "invalid_request_error"
    for fault, exc in (
        ("429", anthropic.RateLimitError),
        ("500", anthropic.InternalServerError),
        ("529", anthropic.InternalServerError),
    ):
        with pytest.raises(exc) as ei2:
            client.messages.create(
                model="c", max_tokens=9, messages=MSGS, extra_headers={"x-sim-fault": fault}
            )
        assert ei2.value.status_code == int(fault)
        body: Any = ei2.value.body
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    assert isinstance(ei2.value, anthropic.OverloadedError)
    assert ei2.value.body["error"]["type"] == "overloaded_error"
    r = httpx.post(
        sim_url + "/v1/messages",
        json={"model": "c", "max_tokens": 9, "messages": MSGS},
        headers={"x-sim-fault": "429"},
    )
    assert r.headers["retry-after"] == "2" and r.json()["error"]["type"] == "rate_limit_error"
    bad = anthropic.Anthropic(base_url=sim_auth_url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as ei3:
        bad.messages.create(model="c", max_tokens=9, messages=MSGS)
    assert ei3.value.body["error"]["type"] == "authentication_error"
    good = anthropic.Anthropic(base_url=sim_auth_url, api_key="sk-sim-test-key", max_retries=0)
    assert good.messages.create(model="c", max_tokens=9, messages=MSGS).content
    # mid-stream provider error: event: error with overloaded_error
    stream_cm = client.messages.stream(
        model="c", max_tokens=99, messages=MSGS, extra_headers={"x-sim-fault": "error-event"}
    )
    with pytest.raises(anthropic.APIStatusError) as ei4, stream_cm as stream:
        for _ in stream:
            pass
    assert ei4.value.body["error"]["type"] == "overloaded_error"


def test_models_list_anthropic_shape(client: anthropic.Anthropic) -> None:
    page = client.models.list()
    assert page.data and page.data[0].type == "model"
