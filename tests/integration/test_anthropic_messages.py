"""The official anthropic SDK against perilune's /v1/messages, in front of the simulator's OpenAI
personality (sim-gpt, converted) and its Anthropic personality (sim-claude, native passthrough)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import pytest

from perilune.tokens import count_tokens
from tests.conftest import Gateway, StartGateway

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
"""

M = Decimal(1_000_000)
# list prices per million tokens (perilune/data/models.json): input, output, cache read, cache write
PRICES = {
    "sim-gpt": (Decimal("1.00"), Decimal("2.00"), Decimal("0.50"), Decimal("1.00")),
    "sim-claude": (Decimal("3.00"), Decimal("15.00"), Decimal("0.30"), Decimal("3.75")),
}
PROVIDER = {"sim-gpt": "sim", "sim-claude": "sim-anthropic"}
MODELS = ("sim-gpt", "sim-claude")
TEXT = "Tell me about the sea"
MSGS: list[Any] = [{"role": "user", "content": TEXT}]
TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def blocks(content: Any) -> list[dict[str, Any]]:
    """Content blocks as plain data (stream helpers return Parsed* subclasses of the same blocks)."""
    return [b.model_dump(exclude={"parsed_output"}) for b in content]


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    return start_gateway(config=CONFIG)


@pytest.fixture(scope="module")
def client(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0)


def expected_cost(
    model: str, inp: int, out: int, cache_read: int = 0, cache_write: int = 0
) -> dict[str, Decimal]:
    p_in, p_out, p_cr, p_cw = PRICES[model]
    cost = {
        "input_cost_usd": inp * p_in / M,
        "output_cost_usd": out * p_out / M,
        "cache_input_cost_usd": (cache_read * p_cr + cache_write * p_cw) / M,
    }
    cost["total_cost_usd"] = sum(cost.values(), Decimal(0))
    return cost


def assert_usage(
    model: str, usage: dict[str, Any], inp: int, out: int, cache_read: int = 0, cache_write: int = 0
) -> None:
    assert (usage["input_tokens"], usage["output_tokens"]) == (inp, out)
    assert (
        usage["cache_read_input_tokens"] == cache_read and usage["cache_creation_input_tokens"] == cache_write
    )
    for name, value in expected_cost(model, inp, out, cache_read, cache_write).items():
        assert Decimal(str(usage[name])) == value, (name, usage[name], value)
    assert usage["latency_ms"] > 0 and usage["ttft_ms"] > 0


@pytest.mark.parametrize("model", MODELS)
def test_create_whole_body(client: anthropic.Anthropic, model: str) -> None:
    raw = client.messages.with_raw_response.create(model=model, max_tokens=100, messages=MSGS)
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    body = json.loads(raw.http_response.text)
    text = body["content"][0]["text"]
    assert count_tokens(text) == 16
    usage = body.pop("usage")
    assert body.pop("id").startswith("msg_")
    expected: dict[str, Any] = {
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "provider": PROVIDER[model],
    }
    assert body == expected
    assert_usage(model, usage, 4 + count_tokens(TEXT), 16)
    if model == "sim-claude":  # native: Anthropic's own usage fields survive
        assert usage["service_tier"] == "standard" and usage["cache_creation"] == {
            "ephemeral_5m_input_tokens": 0,
            "ephemeral_1h_input_tokens": 0,
        }
    # the SDK's typed view
    msg = raw.parse()
    assert msg.content[0].type == "text" and msg.usage.input_tokens == 4 + count_tokens(TEXT)


@pytest.mark.parametrize("model", MODELS)
def test_system_stop_sequences_and_max_tokens(client: anthropic.Anthropic, model: str) -> None:
    msg = client.messages.create(model=model, max_tokens=5, messages=MSGS, system="Be brief.")
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 5
    assert msg.usage.input_tokens == 4 + count_tokens(TEXT) + 4 + count_tokens("Be brief.")
    full = client.messages.create(model=model, max_tokens=100, messages=MSGS)
    word = full.content[0].text.split()[2]  # type: ignore[union-attr]
    cut = client.messages.create(model=model, max_tokens=100, messages=MSGS, stop_sequences=[word])
    assert cut.content[0].text == full.content[0].text[: full.content[0].text.index(word)]  # type: ignore[union-attr]
    # Anthropic reports which sequence matched; an OpenAI-shaped upstream cannot say, so it is end_turn
    assert (cut.stop_reason, cut.stop_sequence) == (
        ("stop_sequence", word) if model == "sim-claude" else ("end_turn", None)
    )


@pytest.mark.parametrize("model", MODELS)
def test_stream_text_agrees_with_create(client: anthropic.Anthropic, model: str) -> None:
    whole = client.messages.create(model=model, max_tokens=100, messages=MSGS)
    with client.messages.stream(
        model=model, max_tokens=100, messages=MSGS, extra_headers={"x-sim-chunks": "4"}
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) == 4 and "".join(pieces) == whole.content[0].text  # type: ignore[union-attr]
    assert blocks(final.content) == blocks(whole.content) and final.stop_reason == "end_turn"
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert final.usage.output_tokens == whole.usage.output_tokens == 16


@pytest.mark.parametrize("model", MODELS)
def test_stream_raw_event_sequence_and_enriched_usage(gw: Gateway, model: str) -> None:
    with httpx.stream(
        "POST",
        gw.v1 + "/messages",
        headers={"x-api-key": gw.key, "x-sim-chunks": "2", "anthropic-version": "2026-09-01"},
        json={"model": model, "max_tokens": 100, "messages": MSGS, "stream": True},
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        blocks = r.read().decode().strip().split("\n\n")
    events = []
    for block in blocks:
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        payload = json.loads(data[6:])
        assert payload["type"] == name[7:]
        events.append(payload)
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0]["message"]["provider"] == PROVIDER[model]
    assert events[0]["message"]["model"] == model
    # message_start carries the prompt's token count (translated streams: the local estimate, flagged)
    assert events[0]["message"]["usage"]["input_tokens"] == 4 + count_tokens(TEXT)
    assert events[0]["message"]["usage"].get("estimated") is (True if PROVIDER[model] == "sim" else None)
    delta = events[-2]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert_usage(model, delta["usage"], 4 + count_tokens(TEXT), 16)


@pytest.mark.parametrize("model", MODELS)
def test_tool_use_create_stream_and_result(client: anthropic.Anthropic, model: str) -> None:
    msgs: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.messages.create(model=model, max_tokens=200, messages=msgs, tools=[TOOL])  # type: ignore[list-item]
    assert r.stop_reason == "tool_use"
    call = r.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather" and "city" in call.input
    with client.messages.stream(
        model=model,
        max_tokens=200,
        messages=msgs,
        tools=[TOOL],  # type: ignore[list-item]
        extra_headers={"x-sim-chunks": "3"},
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    streamed = final.content[-1]
    assert streamed.type == "tool_use" and streamed.input == call.input and streamed.name == call.name
    assert final.stop_reason == "tool_use"
    json_deltas = [
        e for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert json_deltas and "".join(e.delta.partial_json for e in json_deltas)  # type: ignore[union-attr]
    # the conversation continues with the tool result
    follow = client.messages.create(
        model=model,
        max_tokens=100,
        tools=[TOOL],
        messages=[  # type: ignore[list-item]
            *msgs,
            {"role": "assistant", "content": [c.model_dump() for c in r.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21 C"}]},
        ],
    )
    assert follow.stop_reason == "end_turn" and follow.content[0].type == "text"


@pytest.mark.parametrize("model", MODELS)
def test_forced_tool_choice(client: anthropic.Anthropic, model: str) -> None:
    r = client.messages.create(
        model=model,
        max_tokens=200,
        messages=MSGS,
        tools=[TOOL],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert r.stop_reason == "tool_use" and [b.type for b in r.content] == ["tool_use"]
    none = client.messages.create(
        model=model,
        max_tokens=200,
        tools=[TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tool_choice={"type": "none"},
    )
    assert none.stop_reason == "end_turn" and [b.type for b in none.content] == ["text"]


def test_thinking_native(client: anthropic.Anthropic) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    r = client.messages.create(model="sim-claude", max_tokens=4096, messages=MSGS, thinking=thinking)
    assert [b.type for b in r.content] == ["thinking", "text"]
    assert r.content[0].signature  # type: ignore[union-attr]
    with client.messages.stream(
        model="sim-claude", max_tokens=4096, messages=MSGS, thinking=thinking
    ) as stream:
        kinds = {e.delta.type for e in stream if e.type == "content_block_delta"}
        final = stream.get_final_message()
    assert kinds == {"thinking_delta", "signature_delta", "text_delta"}
    assert blocks(final.content) == blocks(r.content)  # thinking text and signature survive the passthrough
    assert final.usage.output_tokens == r.usage.output_tokens


def test_thinking_to_openai_upstream_is_accepted(client: anthropic.Anthropic) -> None:
    r = client.messages.create(
        model="sim-gpt", max_tokens=4096, messages=MSGS, thinking={"type": "enabled", "budget_tokens": 2048}
    )
    assert r.stop_reason == "end_turn" and r.content[0].type == "text"


@pytest.mark.parametrize("model", MODELS)
def test_images_base64_and_url(client: anthropic.Anthropic, model: str) -> None:
    content: Any = [
        {"type": "text", "text": "Describe"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]
    r = client.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": content}])
    assert r.usage.input_tokens == 4 + count_tokens("Describe") + 2 * 85
    with client.messages.stream(
        model=model, max_tokens=50, messages=[{"role": "user", "content": content}]
    ) as s:
        assert s.get_final_message().usage.input_tokens == r.usage.input_tokens


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens_matches_usage(client: anthropic.Anthropic, model: str) -> None:
    msgs: Any = [{"role": "user", "content": "How many tokens is this sentence, really?"}]
    counted = client.messages.count_tokens(model=model, messages=msgs, system="Be exact.")
    used = client.messages.create(model=model, max_tokens=10, messages=msgs, system="Be exact.")
    assert counted.input_tokens == used.usage.input_tokens > 0
    # an exact upstream count for Anthropic providers; perilune's own count (flagged) otherwise
    assert (counted.model_extra or {}).get("estimated") is (None if model == "sim-claude" else True)


def test_prompt_cache_read_priced_once(client: anthropic.Anthropic) -> None:
    system: Any = [
        {"type": "text", "text": "You are a careful assistant. " * 40, "cache_control": {"type": "ephemeral"}}
    ]
    cached = 4 + count_tokens("You are a careful assistant. " * 40)
    raw = client.messages.with_raw_response.create(
        model="sim-claude", max_tokens=20, system=system, messages=MSGS, extra_headers={"x-sim-cache": "read"}
    )
    usage = json.loads(raw.http_response.text)["usage"]
    assert_usage("sim-claude", usage, 4 + count_tokens(TEXT), 16, cache_read=cached)
    total = Decimal(str(usage["total_cost_usd"]))
    assert (
        total
        == (
            Decimal(4 + count_tokens(TEXT)) * Decimal("3.00")
            + Decimal(cached) * Decimal("0.30")
            + 16 * Decimal("15.00")
        )
        / M
    )
    # without the knob the simulator reports a cache write, priced at the cache-write rate
    raw = client.messages.with_raw_response.create(
        model="sim-claude", max_tokens=20, system=system, messages=MSGS
    )
    assert_usage(
        "sim-claude",
        json.loads(raw.http_response.text)["usage"],
        4 + count_tokens(TEXT),
        16,
        cache_write=cached,
    )
    # streamed: message_delta carries the same numbers (read raw: SDKs keep only the usage fields they know)
    with client.messages.with_streaming_response.create(
        model="sim-claude",
        max_tokens=20,
        system=system,
        messages=MSGS,
        stream=True,
        extra_headers={"x-sim-cache": "read"},
    ) as resp:
        frames = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
    delta = next(f for f in frames if f["type"] == "message_delta")
    assert_usage("sim-claude", delta["usage"], 4 + count_tokens(TEXT), 16, cache_read=cached)
    assert Decimal(str(delta["usage"]["total_cost_usd"])) == total


def test_auth_and_versions(gw: Gateway) -> None:
    body = {"model": "sim-claude", "max_tokens": 10, "messages": MSGS}
    bearer = httpx.post(gw.v1 + "/messages", json=body, headers={"Authorization": f"Bearer {gw.key}"})
    assert bearer.status_code == 200
    dated = httpx.post(
        gw.v1 + "/messages", json=body, headers={"x-api-key": gw.key, "anthropic-version": "2027-01-01"}
    )
    assert dated.status_code == 200
    bad = httpx.post(gw.v1 + "/messages", json=body, headers={"x-api-key": "pk_live_nope"})
    assert bad.status_code == 401
    assert bad.json()["type"] == "error" and bad.json()["error"]["type"] == "authentication_error"


def test_validation_errors_in_anthropic_shape(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model="sim-gpt",
            max_tokens=10,
            messages=[
                {
                    "role": "user",
                    "content": [  # type: ignore[list-item]
                        {"type": "text", "text": "hi"},
                        {"type": "hologram", "data": "x"},
                    ],
                }
            ],
        )
    assert info.value.status_code == 400
    assert info.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": info.value.body["error"]["message"]},
    }  # type: ignore[index]
    assert "messages[0].content[1]: unknown content block type 'hologram'" in info.value.message
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model="sim-gpt",
            max_tokens=10,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}],
                }
            ],
        )
    assert "toolu_x" in info.value.message
    with pytest.raises(anthropic.NotFoundError) as nf:
        client.messages.create(model="no-such-model", max_tokens=10, messages=MSGS)
    assert nf.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_native_only_content_to_openai_upstream_is_a_clear_400(client: anthropic.Anthropic) -> None:
    doc: Any = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="sim-gpt", max_tokens=10, messages=[{"role": "user", "content": [doc]}])
    assert "can only be sent to an Anthropic provider" in info.value.message
    # the same request to an Anthropic-typed provider passes through untouched
    r = client.messages.create(
        model="sim-claude", max_tokens=10, messages=[{"role": "user", "content": [doc]}]
    )
    assert r.usage.input_tokens == 4 + 85


async def test_async_client(gw: Gateway) -> None:
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key=gw.key, max_retries=0)
    for model in MODELS:
        r = await client.messages.create(model=model, max_tokens=7, messages=MSGS)
        assert r.stop_reason == "max_tokens" and r.usage.output_tokens == 7
        async with client.messages.stream(model=model, max_tokens=7, messages=MSGS) as stream:
            final = await stream.get_final_message()
        assert blocks(final.content) == blocks(r.content)
    await client.close()
