"""Anthropic dialect <-> OpenAI shape: requests, responses and the exact Anthropic event sequence."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from perilune.errors import Unsupported, UpstreamUnavailable
from perilune.schema.anthropic import CountTokensRequest, MessagesRequest, parse_body
from perilune.schema.convert import EventEncoder, to_anthropic_message, to_openai_request

JSON = dict[str, Any]
USAGE = {"input_tokens": 10, "output_tokens": 5}


def chunk(delta: JSON, finish: str | None = None) -> JSON:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def call(index: int, args: str, id_: str | None = None, name: str | None = None) -> JSON:
    tc: JSON = {"index": index, "function": {"arguments": args}}
    if id_:
        tc.update(id=id_, type="function")
        tc["function"]["name"] = name
    return tc


def encode(chunks: list[JSON], usage: JSON | None = None) -> list[tuple[str, JSON]]:
    enc = EventEncoder()
    events = [enc.start("msg_1", "gpt-x", input_tokens=12)]
    for c in chunks:
        events += enc.feed(c)
    return events + enc.finish(usage or USAGE)


def accumulate(events: list[tuple[str, JSON]]) -> JSON:
    """Rebuild the message from an event stream the way Anthropic's SDKs do, checking the sequence
    rules on the way: names match types, blocks open/close strictly in order, ping after the first
    start, deltas only for the open block, message_delta then message_stop last."""
    assert events[0][0] == "message_start"
    msg = dict(events[0][1]["message"])
    msg["content"] = []
    open_index: int | None = None
    parts: dict[int, list[str]] = {}
    assert [n for n, _ in events[-2:]] == ["message_delta", "message_stop"]
    for i, (name, ev) in enumerate(events[1:-2], start=1):
        assert ev["type"] == name
        if name == "content_block_start":
            assert open_index is None and ev["index"] == len(msg["content"])
            open_index = ev["index"]
            msg["content"].append(dict(ev["content_block"]))
            parts[open_index] = []
            if open_index == 0:
                assert events[i + 1][0] == "ping"
        elif name == "content_block_delta":
            assert ev["index"] == open_index
            d = ev["delta"]
            parts[ev["index"]].append(d.get("text") or d.get("partial_json") or d.get("thinking") or "")
        elif name == "content_block_stop":
            assert ev["index"] == open_index
            block = msg["content"][open_index]
            text = "".join(parts[open_index])
            if block["type"] == "tool_use":
                block["input"] = orjson.loads(text) if text else {}
            else:
                block[block["type"] if block["type"] == "text" else "thinking"] = text
            open_index = None
        else:
            assert name == "ping"
    assert open_index is None
    delta = events[-2][1]
    msg.update(delta["delta"])
    msg["usage"] = delta["usage"]
    return msg


# ---- requests ----------------------------------------------------------------------------------


def test_request_to_openai() -> None:
    req = {
        "model": "sim-gpt",
        "max_tokens": 300,
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Use metric units."},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look:"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                    {
                        "type": "document",
                        "title": "spec.pdf",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "21 C"}],
                        "is_error": False,
                    },
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        "stop_sequences": ["END"],
        "temperature": 0.3,
        "top_k": 40,
        "stream": True,
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u-1"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    assert to_openai_request(req) == {
        "model": "sim-gpt",
        "max_tokens": 300,
        "messages": [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "You are terse."},
                    {"type": "text", "text": "Use metric units."},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look:"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                    {
                        "type": "file",
                        "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
                    },
                    {"type": "text", "text": "plain doc"},
                ],
            },
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "21 C"},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "stop": ["END"],
        "temperature": 0.3,
        "top_k": 40,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {"type": "object"},
                },
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "user": "u-1",
        "reasoning_effort": "low",
    }


def test_request_simple_and_choices() -> None:
    base = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
        "system": "Be kind.",
    }
    assert to_openai_request(base) == {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"}],
    }
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    for choice, expected in [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ]:
        assert to_openai_request({**base, "tools": tools, "tool_choice": choice})["tool_choice"] == expected
    for thinking, effort in [
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 8000}, "medium"),
        ({"type": "enabled", "budget_tokens": 20000}, "high"),
        ({"type": "adaptive"}, "medium"),
    ]:
        assert to_openai_request({**base, "thinking": thinking})["reasoning_effort"] == effort
    assert "reasoning_effort" not in to_openai_request({**base, "thinking": {"type": "disabled"}})
    assert to_openai_request({**base, "output_config": {"effort": "high"}})["reasoning_effort"] == "high"
    # OpenAI rejects a tool_choice without tools: it is only sent with them
    assert "tool_choice" not in to_openai_request({**base, "tool_choice": {"type": "auto"}})
    fmt = {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}}
    assert to_openai_request({**base, **fmt})["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": {"type": "object"}, "strict": True},
    }


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (
            [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}],
            "messages[0].content[0]",
        ),
        ([{"type": "image", "source": {"type": "file", "file_id": "file_1"}}], "messages[0].content[0]"),
        ([{"type": "search_result", "source": "s", "title": "t", "content": []}], "messages[0].content[0]"),
    ],
)
def test_request_native_only_content(content: list[JSON], param: str) -> None:
    with pytest.raises(Unsupported) as info:
        to_openai_request({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": content}]})
    assert info.value.param == param and "Anthropic provider" in info.value.message


def test_request_native_only_tools_and_results() -> None:
    base: JSON = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(Unsupported) as info:
        to_openai_request({**base, "tools": [{"type": "web_search_20250305", "name": "web_search"}]})
    assert info.value.param == "tools[0]"
    msgs = [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "x"},
                        }
                    ],
                }
            ],
        },
    ]
    with pytest.raises(Unsupported) as info:
        to_openai_request({**base, "messages": msgs})
    assert info.value.param == "messages[1].content[0].content"
    with pytest.raises(Unsupported):
        to_openai_request({**base, "mcp_servers": [{"type": "url", "url": "https://x"}]})


def test_claude_code_request_shapes_translate() -> None:
    """What Claude Code sends (mid-conversation system turns, context_management, output_config effort
    'max', cache_control, thinking.display): accepted, and translated or dropped for OpenAI upstreams."""
    raw = {
        "model": "sim-gpt", "max_tokens": 32000, "stream": True,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": [{"type": "text", "text": "<system-reminder>today</system-reminder>"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "sig"},
                                              {"type": "text", "text": "hello"}]},
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "again"},
        ],
        "thinking": {"type": "enabled", "budget_tokens": 31999, "display": "summarized"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "max"},
        "metadata": {"user_id": "user_abc"},
    }
    typed, _ = parse_body(orjson.dumps(raw), MessagesRequest)
    assert [m.role for m in typed.messages] == ["user", "system", "assistant", "system", "user"]
    out = to_openai_request(raw)
    assert out["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "You are Claude Code."},
                                       {"type": "text", "text": "<system-reminder>today</system-reminder>"},
                                       {"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"},
    ]
    assert out["reasoning_effort"] == "high" and "context_management" not in out
    assert to_openai_request({**raw, "thinking": None})["reasoning_effort"] == "high"  # effort 'max'
    count, _ = parse_body(orjson.dumps({k: raw[k] for k in ("model", "messages", "system")}), CountTokensRequest)
    assert count.messages[1].role == "system"


# ---- responses ---------------------------------------------------------------------------------


def test_response_to_anthropic() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "reasoning_content": "Think first.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
            }
        ],
    }
    assert to_anthropic_message(body, "msg_x") == {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "gpt-x",
        "content": [
            {"type": "thinking", "thinking": "Think first.", "signature": ""},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
    }


@pytest.mark.parametrize(
    ("finish", "reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"), (None, "end_turn")],
)
def test_response_stop_reasons(finish: str | None, reason: str) -> None:
    body = {
        "model": "m",
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": "x"}}],
    }
    assert to_anthropic_message(body, "msg")["stop_reason"] == reason


def test_response_bad_tool_arguments() -> None:
    body = {
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": '}}
                    ],
                },
            }
        ],
    }
    with pytest.raises(UpstreamUnavailable):
        to_anthropic_message(body, "msg")


# ---- streams: the exact event sequence ---------------------------------------------------------

START = (
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "gpt-x",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "output_tokens": 0, "estimated": True},
        },
    },
)


def test_message_start_carries_the_prompt_count() -> None:
    exact = EventEncoder.start("m", "x", input_tokens=40, estimated=False)[1]["message"]["usage"]
    assert exact == {"input_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                     "output_tokens": 0}
    assert EventEncoder.start("m", "x", input_tokens=7)[1]["message"]["usage"]["estimated"] is True


def block_start(i: int, block: JSON) -> tuple[str, JSON]:
    return "content_block_start", {"type": "content_block_start", "index": i, "content_block": block}


def block_delta(i: int, delta: JSON) -> tuple[str, JSON]:
    return "content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}


def block_stop(i: int) -> tuple[str, JSON]:
    return "content_block_stop", {"type": "content_block_stop", "index": i}


PING = ("ping", {"type": "ping"})


def end(reason: str) -> list[tuple[str, JSON]]:
    return [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": None},
                "usage": USAGE,
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def text(i: int, t: str) -> tuple[str, JSON]:
    return block_delta(i, {"type": "text_delta", "text": t})


def args(i: int, t: str) -> tuple[str, JSON]:
    return block_delta(i, {"type": "input_json_delta", "partial_json": t})


def tool(i: int, id_: str, name: str) -> tuple[str, JSON]:
    return block_start(i, {"type": "tool_use", "id": id_, "name": name, "input": {}})


TEXT_BLOCK = {"type": "text", "text": ""}


def test_stream_text() -> None:
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hello"}),
        chunk({"content": " world"}),
        chunk({}, "stop"),
    ]
    assert encode(chunks) == [
        START,
        block_start(0, TEXT_BLOCK),
        PING,
        text(0, "Hello"),
        text(0, " world"),
        block_stop(0),
        *end("end_turn"),
    ]


def test_stream_one_chunk_with_text_and_a_tool_call() -> None:
    chunks = [
        chunk(
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [call(0, "", "call_1", "get_weather")],
            }
        ),
        chunk({"tool_calls": [call(0, '{"city":')]}),
        chunk({"tool_calls": [call(0, '"Paris"}')]}),
        chunk({}, "tool_calls"),
    ]
    assert encode(chunks) == [
        START,
        block_start(0, TEXT_BLOCK),
        PING,
        text(0, "Let me check."),
        block_stop(0),
        tool(1, "call_1", "get_weather"),
        args(1, '{"city":'),
        args(1, '"Paris"}'),
        block_stop(1),
        *end("tool_use"),
    ]


def test_stream_interleaved_tool_calls() -> None:
    chunks = [
        chunk({"role": "assistant", "tool_calls": [call(0, "", "call_a", "f"), call(1, "", "call_b", "g")]}),
        chunk({"tool_calls": [call(0, '{"a":')]}),
        chunk({"tool_calls": [call(1, '{"b":')]}),
        chunk({"tool_calls": [call(0, "1}")]}),
        chunk({"tool_calls": [call(1, "2}")]}),
        chunk({}, "tool_calls"),
    ]
    events = encode(chunks)
    assert events == [
        START,
        tool(0, "call_a", "f"),
        PING,
        args(0, '{"a":'),
        args(0, "1}"),
        block_stop(0),
        tool(1, "call_b", "g"),
        args(1, '{"b":'),
        args(1, "2}"),
        block_stop(1),
        *end("tool_use"),
    ]
    msg = accumulate(events)
    assert [b["input"] for b in msg["content"]] == [{"a": 1}, {"b": 2}]


def test_stream_sequential_parallel_tool_calls_stay_live() -> None:
    chunks = [
        chunk({"tool_calls": [call(0, "", "call_a", "f")]}),
        chunk({"tool_calls": [call(0, "{}")]}),
        chunk({"tool_calls": [call(1, "", "call_b", "g")]}),
        chunk({"tool_calls": [call(1, '{"x":')]}),
        chunk({"tool_calls": [call(1, "true}")]}),
        chunk({}, "tool_calls"),
    ]
    assert encode(chunks) == [
        START,
        tool(0, "call_a", "f"),
        PING,
        args(0, "{}"),
        block_stop(0),
        tool(1, "call_b", "g"),
        args(1, '{"x":'),
        args(1, "true}"),
        block_stop(1),
        *end("tool_use"),
    ]


def test_stream_thinking_then_text_then_text_after_a_tool() -> None:
    chunks = [
        chunk({"role": "assistant", "reasoning_content": "Hmm"}),
        chunk({"reasoning_content": "."}),
        chunk({"content": "Answer"}),
        chunk({"tool_calls": [call(0, '{"q": 1', "c1", "f")]}),
        chunk({"content": " (more)"}),
        chunk({"tool_calls": [call(0, "}")]}),
        chunk({}, "tool_calls"),
    ]
    assert encode(chunks) == [
        START,
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        PING,
        block_delta(0, {"type": "thinking_delta", "thinking": "Hmm"}),
        block_delta(0, {"type": "thinking_delta", "thinking": "."}),
        block_stop(0),
        block_start(1, TEXT_BLOCK),
        text(1, "Answer"),
        block_stop(1),
        tool(2, "c1", "f"),
        args(2, '{"q": 1'),
        args(2, "}"),
        block_stop(2),
        block_start(3, TEXT_BLOCK),
        text(3, " (more)"),
        block_stop(3),
        *end("tool_use"),
    ]


def test_stream_empty_and_length() -> None:
    assert encode([chunk({"role": "assistant"}, "length")]) == [START, *end("max_tokens")]


def test_stream_other_choices_ignored_and_usage_passed() -> None:
    other = {"choices": [{"index": 1, "delta": {"content": "nope"}, "finish_reason": None}]}
    events = encode(
        [chunk({"content": "yes"}), other, chunk({}, "stop")],
        {"input_tokens": 3, "output_tokens": 1, "total_cost_usd": 0.5},
    )
    assert accumulate(events)["content"] == [{"type": "text", "text": "yes"}]
    assert events[-2][1]["usage"] == {"input_tokens": 3, "output_tokens": 1, "total_cost_usd": 0.5}
