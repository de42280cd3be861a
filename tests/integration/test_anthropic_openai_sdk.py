"""The official openai SDK against perilune, with an Anthropic upstream (sim-claude is served by the
simulator's Anthropic personality through the native Anthropic adapter)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from perilune.tokens import count_tokens
from tests.conftest import Gateway, StartGateway
from tests.integration.test_anthropic_messages import CONFIG

M = Decimal(1_000_000)
P_IN, P_OUT, P_CACHE_READ = Decimal("3.00"), Decimal("15.00"), Decimal("0.30")
MODEL = "sim-claude"
MSG: list[Any] = [{"role": "user", "content": "Tell me about the sea"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]
WEATHER: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    return start_gateway(config=CONFIG)


@pytest.fixture(scope="module")
def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)


def assert_costs(u: dict[str, Any], prompt: int, completion: int, cached: int = 0) -> None:
    expected = {
        "input_cost_usd": (prompt - cached) * P_IN / M,
        "output_cost_usd": completion * P_OUT / M,
        "cache_input_cost_usd": cached * P_CACHE_READ / M,
    }
    expected["total_cost_usd"] = sum(expected.values(), Decimal(0))
    for name, value in expected.items():
        assert Decimal(str(u[name])) == value, (name, u[name], value)


def test_chat_whole_body(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MSG)
    body = json.loads(raw.http_response.text)
    text = body["choices"][0]["message"]["content"]
    assert count_tokens(text) == 16
    usage = body.pop("usage")
    assert body.pop("id").startswith("msg_") and isinstance(body.pop("created"), int)
    assert body == {
        "object": "chat.completion",
        "model": MODEL,
        "provider": "sim-anthropic",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
    }
    prompt = 4 + count_tokens(MSG[0]["content"])
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        prompt,
        16,
        prompt + 16,
    )
    assert_costs(usage, prompt, 16)
    assert usage["latency_ms"] > 0 and usage["ttft_ms"] > 0


def test_stream_first_chunk_has_role_and_agrees(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=MSG)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=MSG,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-sim-chunks": "3"},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    assert all(c.choices[0].index == 0 for c in chunks if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None and whole.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (whole.usage.prompt_tokens, 16)
    assert_costs(final.usage.model_dump(), final.usage.prompt_tokens, 16)
    assert sum(1 for c in chunks if c.usage is not None) == 1
    assert all((c.model_extra or {}).get("provider") == "sim-anthropic" for c in chunks)


def test_stream_usage_stripped_when_not_asked(gw: Gateway) -> None:
    with httpx.stream(
        "POST",
        gw.v1 + "/chat/completions",
        headers={"Authorization": f"Bearer {gw.key}"},
        json={"model": MODEL, "messages": MSG, "stream": True},
    ) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    bodies = [json.loads(line[6:]) for line in lines[:-1]]
    assert bodies and all("usage" not in b and b["choices"] for b in bodies)


def test_tools_streamed_reassemble_to_the_same_call(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=MODEL, messages=WEATHER, tools=TOOLS)
    assert r.choices[0].finish_reason == "tool_calls"
    call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.type == "function" and call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert set(args) >= {"city"}
    assert r.choices[0].message.content == "I'll use the get_weather tool."
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=WEATHER, tools=TOOLS, stream=True, extra_headers={"x-sim-chunks": "4"}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    first = deltas[0]
    assert (first.index, first.type, first.function.name, first.function.arguments) == (  # type: ignore[union-attr]
        0,
        "function",
        "get_weather",
        "",
    )
    assert first.id and first.id.startswith("toolu_")
    assert all(d.index == 0 and d.id is None and d.function.name is None for d in deltas[1:])  # type: ignore[union-attr]
    fragments = [d.function.arguments for d in deltas[1:]]  # type: ignore[union-attr]
    assert len(fragments) >= 2
    assert json.loads("".join(fragments)) == args  # type: ignore[arg-type]
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "I'll use the get_weather tool."
    )
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # the conversation continues with the tool result; tool_choice "none" forbids another call
    follow = client.chat.completions.create(
        model=MODEL,
        tools=TOOLS,
        tool_choice="none",
        messages=[
            *WEATHER,
            {"role": "assistant", "content": r.choices[0].message.content, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
        ],
    )
    assert follow.choices[0].finish_reason == "stop" and follow.choices[0].message.content
    assert not follow.choices[0].message.tool_calls
    none = client.chat.completions.create(model=MODEL, messages=WEATHER, tools=TOOLS, tool_choice="none")
    assert none.choices[0].finish_reason == "stop" and not none.choices[0].message.tool_calls
    forced = client.chat.completions.create(model=MODEL, messages=MSG, tools=TOOLS, tool_choice="required")
    assert forced.choices[0].finish_reason == "tool_calls" and forced.choices[0].message.content is None


def test_reasoning_effort_gives_reasoning_content(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=MODEL, messages=MSG, reasoning_effort="low")
    extra = r.choices[0].message.model_extra or {}
    assert count_tokens(extra["reasoning_content"]) == 16 and r.choices[0].message.content
    assert r.usage is not None and r.usage.completion_tokens == 16 + count_tokens(
        r.choices[0].message.content or ""
    )
    chunks = list(
        client.chat.completions.create(model=MODEL, messages=MSG, reasoning_effort="low", stream=True)
    )
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices
    )
    assert reasoning == extra["reasoning_content"]


def test_limits_stop_and_images(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=5)
    assert r.choices[0].finish_reason == "length" and r.usage is not None and r.usage.completion_tokens == 5
    full = client.chat.completions.create(model=MODEL, messages=MSG)
    word = (full.choices[0].message.content or "").split()[2]
    cut = client.chat.completions.create(model=MODEL, messages=MSG, stop=[word])
    assert cut.choices[0].finish_reason == "stop" and word not in (cut.choices[0].message.content or "")
    img = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            }
        ],
    )
    assert img.usage is not None and img.usage.prompt_tokens == 4 + count_tokens("Describe") + 2 * 85


def test_cache_control_parts_are_priced_as_cache_reads(client: openai.OpenAI) -> None:
    long = "You are a careful assistant. " * 40
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        extra_headers={"x-sim-cache": "read"},
        messages=[
            {
                "role": "system",
                "content": [
                    {
                        "type": "text",
                        "text": long,  # type: ignore[typeddict-unknown-key]
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            },
            *MSG,
        ],
    )
    usage = json.loads(raw.http_response.text)["usage"]
    cached = 4 + count_tokens(long)
    prompt = cached + 4 + count_tokens(MSG[0]["content"])
    assert usage["prompt_tokens"] == prompt and usage["prompt_tokens_details"] == {"cached_tokens": cached}
    assert_costs(usage, prompt, 16, cached)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
    ],
)
def test_what_anthropic_cannot_do_is_a_400(client: openai.OpenAI, extra: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=MSG, **extra)
    err = info.value.body
    assert isinstance(err, dict) and err["param"] == param and err["code"] == "unsupported"
    assert err["type"] == "invalid_request_error"
