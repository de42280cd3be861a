"""Validation of Anthropic-dialect requests: clear 400s in Anthropic's shape, naming the path."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from perilune.errors import InvalidRequest, MalformedJSON
from perilune.schema.anthropic import CountTokensRequest, MessagesRequest, ToolResultBlock, parse_body

MSG = [{"role": "user", "content": "Hello"}]


def body(**fields: Any) -> bytes:
    return orjson.dumps({"model": "sim-claude", "max_tokens": 64, "messages": MSG, **fields})


def rejected(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse_body(raw, MessagesRequest)
    return info.value


def test_valid_request_keeps_raw_mapping() -> None:
    history = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"},
                    "citations": {"enabled": True},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "EqQB"},
                {"type": "redacted_thinking", "data": "xyz"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok", "is_error": False}
            ],
        },
    ]
    raw = body(
        messages=history,
        system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        tools=[
            {"name": "f", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        tool_choice={"type": "any"},
        thinking={"type": "enabled", "budget_tokens": 2048},
        stop_sequences=["x"],
        temperature=1,
        top_p=0.5,
        top_k=3,
        metadata={"user_id": "u"},
        stream=True,
        service_tier="auto",
    )
    typed, mapping = parse_body(raw, MessagesRequest)
    assert mapping == orjson.loads(raw)  # everything, unknown fields included, travels on
    assert typed.model == "sim-claude" and typed.stream is True
    assert isinstance(typed.messages[2].content[0], ToolResultBlock)  # type: ignore[index]


def test_unknown_block_type_names_the_path() -> None:
    e = rejected(
        body(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "hologram", "data": "x"}],
                }
            ]
        )
    )
    assert e.param == "messages[0].content[1].type"
    assert e.message.startswith(
        "messages[0].content[1]: unknown content block type 'hologram'; expected one of: "
        "text, image, document"
    )
    assert orjson.loads(e.render("anthropic")) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": e.message},
    }
    assert e.status_code == 400


def test_unknown_source_and_choice_types() -> None:
    e = rejected(body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "ftp"}}]}]))
    assert e.param == "messages[0].content[0].source.type" and "base64, url, file" in e.message
    e = rejected(body(tool_choice={"type": "sometimes"}))
    assert e.param == "tool_choice.type" and "auto, any, tool, none" in e.message


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"max_tokens": 0}, "max_tokens", "max_tokens: Expected `int` >= 1"),
        ({"messages": []}, "messages", "messages: Expected `array` of length >= 1"),
        (
            {"messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role",
            "Invalid enum value 'robot'",
        ),
        (
            {"messages": [{"role": "system", "content": [{"type": "image", "source": {
                "type": "url", "url": "https://example.com/a.png"}}]}]},
            "messages[0].content[0]",
            "a system message may hold only text blocks",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
            "messages[0].content[0].text: Field required",
        ),
        ({"temperature": 1.5}, "temperature", "Expected `float` <= 1.0"),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.budget_tokens", ">= 1024"),
    ],
)
def test_invalid_fields(fields: dict[str, Any], param: str, message: str) -> None:
    raw = orjson.loads(body())
    raw.update(fields)
    raw = {k: v for k, v in raw.items() if v is not None}
    e = rejected(orjson.dumps(raw))
    assert e.param == param and message in e.message


def test_missing_max_tokens() -> None:
    e = rejected(orjson.dumps({"model": "m", "messages": MSG}))
    assert e.param == "max_tokens" and e.message == "max_tokens: Field required"


def test_tool_result_needs_an_earlier_tool_use() -> None:
    msgs = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_b", "content": "x"}]},
    ]
    e = rejected(body(messages=msgs))
    assert e.param == "messages[2].content[0].tool_use_id" and "toolu_b" in e.message
    # a result answering a *later* tool_use is just as wrong
    e = rejected(body(messages=[msgs[2], msgs[1]]))
    assert e.param == "messages[0].content[0].tool_use_id"
    e = rejected(
        body(
            messages=[
                {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}
            ]
        )
    )
    assert "only appear in assistant messages" in e.message


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(MalformedJSON):
        parse_body(b"{nope", MessagesRequest)
    e = rejected(b"[1, 2]")
    assert e.message == "The request body must be a JSON object."


def test_count_tokens_request_needs_no_max_tokens() -> None:
    typed, _ = parse_body(orjson.dumps({"model": "m", "messages": MSG}), CountTokensRequest)
    assert typed.model == "m"
