"""The Responses dialect: request -> canonical chat, chat completion -> Response, chunks -> events,
every Response object and stream event checked against OpenAI's official schemas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from perilune._sse import SSEDecoder
from perilune.dialects.responses.encoder import ResponsesEncoder
from perilune.dialects.responses.schema import ResponsesRequest
from perilune.dialects.responses.to_hub import to_chat
from perilune.errors import InvalidRequest, Unsupported, UpstreamUnavailable
from perilune.schema.canonical import Usage
from perilune.schema.openai import validate
from tests.openai_schema import check, check_event


@dataclass
class FakeServed:
    model: str = "gpt-test"
    provider: str = "sim"
    usage: Usage | None = None


def ext(served: Any) -> dict[str, Any]:
    return {"total_cost_usd": 0.000123, "latency_ms": 12.5}


def events(data: bytes) -> list[dict[str, Any]]:
    out = []
    for ev in SSEDecoder().feed(data):
        payload = orjson.loads(ev.data)
        assert ev.event == payload["type"]
        out.append(payload)
    return out


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_string_input_and_settings_become_a_chat_request() -> None:
    raw = {"model": "m", "input": "Hello", "instructions": "Be brief.", "max_output_tokens": 50,
           "temperature": 0.5, "top_p": 0.9, "reasoning": {"effort": "low"}, "metadata": {"k": "v"},
           "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
           "user": "u1"}
    validate(raw, ResponsesRequest)
    assert to_chat(raw) == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        "max_completion_tokens": 50, "temperature": 0.5, "top_p": 0.9,
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True}},
        "reasoning_effort": "low", "user": "u1"}


def test_items_with_tool_round_trip_and_image() -> None:
    raw = {"model": "m", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "get_weather"}, "input": [
        {"role": "developer", "content": "sys"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Look: "},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Paris sunny, Oslo rain."}]},
    ]}
    out = to_chat(raw)
    assert out["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "Look: "},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                                                         "detail": "low"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        {"role": "assistant", "content": "Paris sunny, Oslo rain."},
    ]
    assert out["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                                              "parameters": WEATHER["parameters"]}}]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_history_comes_before_input_and_allowed_tools_narrow_the_list() -> None:
    other = {**WEATHER, "name": "other"}
    raw = {"model": "m", "input": "again", "tools": [WEATHER, other],
           "tool_choice": {"type": "allowed_tools", "mode": "required",
                           "tools": [{"type": "function", "name": "other"}]}}
    out = to_chat(raw, history=[{"type": "message", "role": "user", "content": "first"},
                                {"type": "message", "role": "assistant", "content": [fh_text("reply")]}])
    assert [m["content"] for m in out["messages"]] == ["first", "reply", "again"]
    assert [t["function"]["name"] for t in out["tools"]] == ["other"]
    assert out["tool_choice"] == "required"


def fh_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


@pytest.mark.parametrize(("raw", "param"), [
    ({"model": "m", "input": 5}, "input"),
    ({"model": "m", "input": "x", "temperature": 3}, "temperature"),
    ({"model": "m", "input": "x", "max_output_tokens": "a"}, "max_output_tokens"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
    ({"model": "m", "input": "x", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
    ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
])
def test_bad_fields_are_400s_naming_the_param(raw: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        validate(raw, ResponsesRequest)
    assert e.value.param == param


@pytest.mark.parametrize(("inp", "param", "kind"), [
    ([{"role": "robot", "content": "x"}], "input[0].role", InvalidRequest),
    ([{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}], "input[0].content[0].file_id",
     Unsupported),
    ([{"type": "function_call_output", "output": "x"}], "input[0].call_id", InvalidRequest),
    ([{"type": "web_search_call", "id": "w"}], "input[0].type", Unsupported),
    ([{"role": "user", "content": [{"type": "input_text", "text": 3}]}], "input[0].content[0].text", InvalidRequest),
])
def test_bad_items_are_400s_naming_their_path(inp: Any, param: str, kind: type[Exception]) -> None:
    with pytest.raises(kind) as e:
        to_chat({"model": "m", "input": inp})
    assert isinstance(e.value, InvalidRequest) and e.value.param == param


def test_builtin_tools_need_a_native_upstream() -> None:
    with pytest.raises(Unsupported) as e:
        to_chat({"model": "m", "input": "x", "tools": [{"type": "web_search"}]})
    assert e.value.param == "tools[0].type"


def test_unknown_fields_pass_validation() -> None:
    raw = {"model": "m", "input": "x", "some_new_option": {"a": 1}, "prompt_cache_key": "k"}
    validate(raw, ResponsesRequest)


def completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}]}


def test_non_streamed_response_matches_the_schema() -> None:
    raw = {"model": "gpt-test", "input": "hi", "tools": [WEATHER], "metadata": {"a": "b"}}
    enc = ResponsesEncoder(raw, "resp_abc", extension=ext)
    served = FakeServed(usage=Usage(input_tokens=7, cache_read_tokens=3, output_tokens=5, reasoning_tokens=2))
    body = orjson.loads(enc.body(completion({"content": "Hello there", "reasoning_content": "think",
                                             "tool_calls": [{"id": "call_9", "type": "function", "function": {
                                                 "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
                                            "tool_calls"), served))
    check("Response", body)
    assert body["status"] == "completed" and body["id"] == "resp_abc" and body["metadata"] == {"a": "b"}
    assert [i["type"] for i in body["output"]] == ["reasoning", "message", "function_call"]
    assert body["output"][1]["content"][0]["text"] == "Hello there"
    assert body["output"][2]["call_id"] == "call_9" and body["output"][2]["arguments"] == "{\"city\":\"Rome\"}"
    assert body["usage"] == {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                             "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2},
                             "total_tokens": 15, "total_cost_usd": 0.000123, "latency_ms": 12.5}
    assert body["provider"] == "sim"


def test_length_finish_is_incomplete() -> None:
    enc = ResponsesEncoder({"model": "m", "input": "hi", "max_output_tokens": 3}, "resp_x", extension=ext)
    body = orjson.loads(enc.body(completion({"content": "abc"}, "length"), FakeServed(usage=Usage(1, 3))))
    check("Response", body)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}


def test_streamed_text_is_the_exact_event_sequence() -> None:
    served = FakeServed()
    enc = ResponsesEncoder({"model": "gpt-test", "input": "hi"}, "resp_1", extension=ext)
    data = enc.start(served)
    data += enc.item(chunk({"role": "assistant", "content": "Hel"}), served)
    data += enc.item(chunk({"content": "lo"}), served)
    data += enc.item(chunk({}, "stop"), served)
    served.usage = Usage(input_tokens=4, output_tokens=2)
    data += enc.finish(served)
    evs = events(data)
    for ev in evs:
        check_event(ev)
    assert [e["type"] for e in evs] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    assert evs[6]["text"] == "Hello"
    final = evs[-1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == "Hello"
    assert final["usage"]["input_tokens"] == 4 and final["usage"]["total_cost_usd"] == 0.000123
    assert enc.final == final


def test_streamed_tool_calls_and_reasoning() -> None:
    served = FakeServed(usage=Usage(input_tokens=4, output_tokens=9))
    enc = ResponsesEncoder({"model": "gpt-test", "input": "hi", "tools": [WEATHER]}, "resp_2",
                           extension=ext)
    data = enc.start(served)
    data += enc.item(chunk({"reasoning_content": "Let me think"}), served)
    data += enc.item(chunk({"content": "Checking."}), served)
    data += enc.item(chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                            "function": {"name": "get_weather", "arguments": ""}}]}), served)
    data += enc.item(chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                            "function": {"name": "get_weather", "arguments": "{\"city\":"}}]}), served)
    data += enc.item(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":\"Rome\"}"}}]}), served)
    data += enc.item(chunk({"tool_calls": [{"index": 1, "function": {"arguments": "\"Oslo\"}"}}]}), served)
    data += enc.item(chunk({}, "tool_calls"), served)
    data += enc.finish(served)
    evs = events(data)
    for ev in evs:
        check_event(ev)
    types = [e["type"] for e in evs]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types.count("response.output_item.added") == 4 and types.count("response.output_item.done") == 4
    assert types[-1] == "response.completed"
    done = {e["item_id"]: e["arguments"] for e in evs if e["type"] == "response.function_call_arguments.done"}
    assert sorted(done.values()) == ["{\"city\":\"Oslo\"}", "{\"city\":\"Rome\"}"]
    final = evs[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert final["output"][2]["call_id"] == "call_a" and final["output"][3]["call_id"] == "call_b"
    assert final["output"][0]["content"] == [{"type": "reasoning_text", "text": "Let me think"}]


def test_mid_stream_failure_is_error_then_failed() -> None:
    served = FakeServed()
    enc = ResponsesEncoder({"model": "gpt-test", "input": "hi"}, "resp_3", extension=ext)
    data = enc.start(served) + enc.item(chunk({"content": "par"}), served)
    data += enc.error(UpstreamUnavailable("upstream dropped the connection"), served)
    evs = events(data)
    for ev in evs:
        check_event(ev)
    assert [e["type"] for e in evs][-2:] == ["error", "response.failed"]
    assert evs[-1]["response"]["status"] == "failed"
    assert evs[-1]["response"]["error"] == {"code": "server_error", "message": "upstream dropped the connection"}
