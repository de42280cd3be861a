"""The Anthropic adapter from fixture files (Anthropic's documented wire examples), no network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from perilune._sse import SSEDecoder
from perilune.errors import (
    InvalidRequest,
    Unsupported,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from perilune.providers.anthropic import (
    COUNT_TOKENS,
    MESSAGES,
    AnthropicAdapter,
    AnthropicChatDecoder,
    AnthropicNativeDecoder,
)
from perilune.providers.base import CHAT, Provider
from perilune.schema.canonical import Usage
from perilune.settings import Timeouts

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "anthropic"
A = AnthropicAdapter()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def provider(base_url: str = "https://api.anthropic.com", key: str | None = "sk-ant-test") -> Provider:
    return Provider(
        name="anthropic",
        type="anthropic",
        base_url=base_url,
        api_key=key,
        api_key_env="ANTHROPIC_API_KEY",
        needs_key=True,
        timeouts=Timeouts(),
    )


def decode(decoder: Any, raw: bytes) -> list[dict[str, Any]]:
    sse = SSEDecoder()
    out: list[dict[str, Any]] = []
    for ev in [*sse.feed(raw), *sse.flush()]:
        out.extend(decoder.feed(ev))
    return out


def deltas(chunks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str | None]]:
    return [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks]


# ---- streams -> OpenAI chunks ------------------------------------------------------------------


def test_stream_text_to_chunks() -> None:
    d = AnthropicChatDecoder("anthropic")
    chunks = decode(d, fixture("stream_text.sse"))
    assert deltas(chunks) == [
        ({"role": "assistant", "content": "Hello"}, None),
        ({"content": "!"}, None),
        ({}, "stop"),
    ]
    assert {c["id"] for c in chunks} == {"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"}
    assert {c["model"] for c in chunks} == {"claude-opus-4-8"}
    assert all(c["object"] == "chat.completion.chunk" and c["choices"][0]["index"] == 0 for c in chunks)
    assert d.done and d.usage == Usage(input_tokens=25, output_tokens=15)


def test_stream_tool_use_to_chunks() -> None:
    d = AnthropicChatDecoder("anthropic")
    chunks = decode(d, fixture("stream_tool_use.sse"))
    got = deltas(chunks)
    assert got[0] == ({"role": "assistant", "content": "Okay"}, None)
    text = "".join(delta.get("content") or "" for delta, _ in got)
    assert text == "Okay, let's check the weather for San Francisco, CA:"
    calls = [delta["tool_calls"][0] for delta, _ in got if "tool_calls" in delta]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(c == {"index": 0, "function": {"arguments": c["function"]["arguments"]}} for c in calls[1:])
    args = "".join(c["function"]["arguments"] for c in calls)
    assert orjson.loads(args) == {"location": "San Francisco, CA"}
    assert len(calls) == 6  # the start, then one per non-empty input_json_delta
    assert got[-1] == ({}, "tool_calls")
    assert d.usage == Usage(input_tokens=472, output_tokens=89)


def test_stream_thinking_to_reasoning_content_and_unknown_usage() -> None:
    d = AnthropicChatDecoder("anthropic")
    chunks = decode(d, fixture("stream_thinking.sse"))
    got = deltas(chunks)
    assert got[0][0]["role"] == "assistant"
    reasoning = "".join(delta.get("reasoning_content") or "" for delta, _ in got)
    assert reasoning.startswith("I need to find the GCD") and reasoning.endswith("GCD(1071, 462) = 21.")
    assert (
        "".join(delta.get("content") or "" for delta, _ in got)
        == "The greatest common divisor of 1071 and 462 is **21**."
    )
    assert got[-1] == ({}, "stop")
    # this documented stream reports no usage at all: unknown, never zero
    assert d.done and d.usage is None


def test_stream_error_event_raises_mid_stream() -> None:
    d = AnthropicChatDecoder("anthropic")
    sse = SSEDecoder()
    seen: list[dict[str, Any]] = []
    with pytest.raises(UpstreamUnavailable) as info:
        for ev in sse.feed(fixture("stream_error.sse")):
            seen.extend(d.feed(ev))
    assert deltas(seen) == [({"role": "assistant", "content": "Hello"}, None)]
    assert "overloaded_error: Overloaded" in info.value.message
    assert not d.done and d.usage is None
    assert d.interim_usage(3) == Usage(input_tokens=25, output_tokens=3, estimated=True)


def test_stream_rate_limit_error_event() -> None:
    raw = (
        b'event: error\ndata: {"type": "error", "error": {"type": "rate_limit_error", '
        b'"message": "Number of requests has exceeded your rate limit"}}\n\n'
    )
    with pytest.raises(UpstreamRateLimited):
        decode(AnthropicChatDecoder("anthropic"), raw)


def test_stream_malformed_event() -> None:
    with pytest.raises(UpstreamUnavailable) as info:
        decode(
            AnthropicChatDecoder("anthropic"), b'event: content_block_delta\ndata: {"type": "content_blo\n\n'
        )
    assert info.value.code == "upstream_malformed"


def test_native_decoder_passes_events_through() -> None:
    d = AnthropicNativeDecoder("anthropic")
    raw = fixture("stream_tool_use.sse")
    events = decode(d, raw)
    expected = [orjson.loads(ev.data) for ev in SSEDecoder().feed(raw + b"\n\n")]
    assert events == expected
    assert d.done and d.usage == Usage(input_tokens=472, output_tokens=89)


# ---- responses ---------------------------------------------------------------------------------


def test_parse_text_message_with_cache_usage() -> None:
    r = A.parse(CHAT, fixture("message_text.json"), "application/json")
    body = dict(r.body)
    assert isinstance(body.pop("created"), int)
    assert body == {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "object": "chat.completion",
        "model": "claude-opus-5",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi! My name is Claude.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 2095 + 2051 + 2051,
            "completion_tokens": 503,
            "total_tokens": 2095 + 2051 + 2051 + 503,
            "prompt_tokens_details": {"cached_tokens": 2051},
        },
    }
    assert r.usage == Usage(
        input_tokens=2095, output_tokens=503, cache_read_tokens=2051, cache_write_tokens=2051
    )


def test_parse_tool_use_message_without_usage() -> None:
    r = A.parse(CHAT, fixture("message_tool_use.json"), "application/json")
    choice = r.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "I'll check the current weather in San Francisco for you.",
        "tool_calls": [
            {
                "id": "toolu_01A09q90qw90lq917835lq9",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"location":"San Francisco, CA","unit":"celsius"}',
                },
            }
        ],
        "refusal": None,
    }
    assert r.usage is None and "usage" not in r.body


def test_parse_native_keeps_the_body() -> None:
    raw = fixture("message_text.json")
    r = A.parse(MESSAGES, raw, "application/json")
    assert r.body == orjson.loads(raw)
    assert r.usage == Usage(
        input_tokens=2095, output_tokens=503, cache_read_tokens=2051, cache_write_tokens=2051
    )
    assert A.parse(COUNT_TOKENS, b'{"input_tokens": 2095}', "application/json").body == {"input_tokens": 2095}


def test_parse_malformed_body() -> None:
    with pytest.raises(UpstreamUnavailable) as info:
        A.parse(CHAT, fixture("message_text.json")[:40], "application/json")
    assert info.value.code == "upstream_malformed"


# ---- errors ------------------------------------------------------------------------------------


def test_errors() -> None:
    e = A.error("anthropic", 404, fixture("error_not_found.json"), {})
    assert isinstance(e, UpstreamRejected) and e.status_code == 404
    assert e.message == "anthropic: not_found_error: The requested resource could not be found."
    e = A.error("anthropic", 529, fixture("error_overloaded.json"), {})
    assert isinstance(e, UpstreamUnavailable) and e.status_code == 502 and e.retryable
    assert "overloaded_error: Overloaded" in e.message
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    e = A.error("anthropic", 429, body, {"retry-after": "7"})
    assert isinstance(e, UpstreamRateLimited) and e.retry_after_s == 7.0
    assert e.headers() == {"Retry-After": "7"}
    e = A.error("anthropic", 502, b"<html>Bad gateway</html>", {})
    assert isinstance(e, UpstreamUnavailable) and "<html>Bad gateway</html>" in e.message


# ---- requests ----------------------------------------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_build_chat_request() -> None:
    req = {
        "model": "claude-sonnet-4-6",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these pictures, and the weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "21 C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "no city"}]},
            {"role": "user", "content": "Thanks!"},
        ],
        "max_completion_tokens": 8000,
        "stop": "END",
        "temperature": 0.5,
        "top_p": 0.9,
        "tools": TOOLS,
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "user": "u-42",
        "reasoning_effort": "medium",
        "seed": 3,
        "stream_options": {"include_usage": True},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
        "provider": "anthropic",
    }
    r = A.build(CHAT, provider(), "claude-sonnet-4-6-20260101", req, stream=True)
    assert r.method == "POST" and r.url == "https://api.anthropic.com/v1/messages" and r.stream
    assert r.headers == {
        "Content-Type": "application/json",
        "anthropic-version": "2023-06-01",
        "Accept": "text/event-stream",
        "x-api-key": "sk-ant-test",
    }
    assert orjson.loads(r.body or b"") == {
        "model": "claude-sonnet-4-6-20260101",
        "max_tokens": 8000,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in English."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these pictures, and the weather?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "21 C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_2",
                        "content": [{"type": "text", "text": "no city"}],
                    },
                    {"type": "text", "text": "Thanks!"},
                ],
            },
        ],
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u-42"},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "stream": True,
    }


def test_build_defaults_and_choices() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    body = orjson.loads(
        A.build(CHAT, provider("http://sim:1/v1/", None), "m", {"messages": msgs}, stream=False).body or b""
    )
    assert body == {
        "model": "m",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
    r = A.build(CHAT, provider("http://sim:1/v1/", None), "m", {"messages": msgs}, stream=False)
    assert r.url == "http://sim:1/v1/messages" and "x-api-key" not in r.headers
    assert r.headers["Accept"] == "application/json"
    for choice, expected in [
        ("none", {"type": "none"}),
        ("auto", {"type": "auto"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ]:
        b = orjson.loads(
            A.build(
                CHAT, provider(), "m", {"messages": msgs, "tools": TOOLS, "tool_choice": choice}, stream=False
            ).body
            or b""
        )
        assert b["tool_choice"] == expected
    b = orjson.loads(
        A.build(CHAT, provider(), "m", {"messages": msgs, "reasoning_effort": "high"}, stream=False).body
        or b""
    )
    assert b["thinking"] == {"type": "enabled", "budget_tokens": 16384} and b["max_tokens"] == 16384 + 4096
    b = orjson.loads(
        A.build(
            CHAT,
            provider(),
            "m",
            {"messages": msgs, "reasoning_effort": "high", "max_tokens": 2000},
            stream=False,
        ).body
        or b""
    )
    assert b["thinking"] == {"type": "enabled", "budget_tokens": 1999} and b["max_tokens"] == 2000
    b = orjson.loads(
        A.build(CHAT, provider(), "m", {"messages": msgs, "reasoning_effort": "minimal"}, stream=False).body
        or b""
    )
    assert "thinking" not in b
    b = orjson.loads(
        A.build(
            CHAT,
            provider(),
            "m",
            {"messages": msgs, "thinking": {"type": "adaptive"}, "top_k": 5},
            stream=False,
        ).body
        or b""
    )
    assert b["thinking"] == {"type": "adaptive"} and b["top_k"] == 5


@pytest.mark.parametrize(
    ("extra", "error", "param"),
    [
        ({"n": 2}, Unsupported, "n"),
        ({"logprobs": True}, Unsupported, "logprobs"),
        ({"logit_bias": {"1": 2}}, Unsupported, "logit_bias"),
        ({"presence_penalty": 0.5}, Unsupported, "presence_penalty"),
        ({"temperature": 1.5}, Unsupported, "temperature"),
        ({"response_format": {"type": "json_object"}}, Unsupported, "response_format"),
        ({"reasoning_effort": "extreme"}, InvalidRequest, "reasoning_effort"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            Unsupported,
            "messages[0].content[0]",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]},
            Unsupported,
            "messages[0].content[0].file",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2"}}
                        ],
                    }
                ]
            },
            InvalidRequest,
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_build_rejects_what_anthropic_cannot_do(
    extra: dict[str, Any], error: type[Exception], param: str
) -> None:
    req: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(error) as info:
        A.build(CHAT, provider(), "m", req, stream=False)
    assert getattr(info.value, "param", None) == param
    assert info.value.status_code == 400  # type: ignore[attr-defined]


def test_build_zero_penalties_and_n1_are_fine() -> None:
    req = {"messages": [{"role": "user", "content": "hi"}], "n": 1, "presence_penalty": 0, "logit_bias": {}}
    assert orjson.loads(A.build(CHAT, provider(), "m", req, stream=False).body or b"")["messages"]


def test_build_pdf_file_part_and_openrouter_cache_control() -> None:
    req = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "file",
                        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
                    },
                    {"type": "text", "text": "Summarise", "cache_control": {"type": "ephemeral"}},
                ],
            }
        ]
    }
    body = orjson.loads(A.build(CHAT, provider(), "m", req, stream=False).body or b"")
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "a.pdf",
        },
        {"type": "text", "text": "Summarise", "cache_control": {"type": "ephemeral"}},
    ]


def test_build_native_passthrough() -> None:
    raw = {
        "model": "sim-claude",
        "max_tokens": 10,
        "stream": True,
        "provider": "anthropic",
        "system": [{"type": "text", "text": "long", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
                ],
            }
        ],
        "metadata": {"user_id": "u"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    r = A.build(MESSAGES, provider(), "claude-x", raw, stream=False)
    expected = {k: v for k, v in raw.items() if k not in ("provider", "stream")}
    assert orjson.loads(r.body or b"") == {**expected, "model": "claude-x"}
    assert r.url == "https://api.anthropic.com/v1/messages"
    r = A.build(MESSAGES, provider(), "claude-x", raw, stream=True)
    assert orjson.loads(r.body or b"")["stream"] is True
    r = A.build(COUNT_TOKENS, provider(), "claude-x", raw, stream=False)
    assert r.url == "https://api.anthropic.com/v1/messages/count_tokens"
    assert "stream" not in orjson.loads(r.body or b"")
    assert raw["provider"] == "anthropic"  # the client's mapping is not mutated
