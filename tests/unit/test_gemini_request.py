"""The Gemini adapter's request side: OpenAI-shaped chat/embeddings -> Gemini wire requests (no I/O)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from perilune.errors import InvalidRequest, Unsupported
from perilune.providers.base import CHAT, EMBEDDINGS, IMAGES, Provider
from perilune.providers.gemini import SIGNATURE_SENTINEL, GeminiAdapter, gemini_schema
from perilune.settings import Timeouts

ADAPTER = GeminiAdapter()
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"


def provider(base: str = "https://generativelanguage.googleapis.com", key: str | None = "g-key") -> Provider:
    return Provider(name="gemini", type="gemini", base_url=base, api_key=key, api_key_env="GEMINI_API_KEY",
                    needs_key=True, timeouts=Timeouts(), headers={"x-extra": "1"})


def body_of(req: dict[str, Any], model: str = "gemini-2.5-flash", *, stream: bool = False) -> Any:
    up = ADAPTER.build(CHAT, provider(), model, req, stream=stream)
    assert up.body is not None
    return orjson.loads(up.body)


def test_url_headers_and_stream_path() -> None:
    req = {"model": "x", "messages": [{"role": "user", "content": "Hi"}]}
    up = ADAPTER.build(CHAT, provider(), "gemini-2.5-flash", req, stream=False)
    assert up.method == "POST" and not up.stream
    assert up.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert up.headers == {"Content-Type": "application/json", "Accept": "application/json",
                          "x-goog-api-key": "g-key", "x-extra": "1"}
    up = ADAPTER.build(CHAT, provider("http://sim:1/v1beta/"), "models/gemini-3.5-flash", req, stream=True)
    assert up.url == "http://sim:1/v1beta/models/gemini-3.5-flash:streamGenerateContent?alt=sse"
    assert up.stream and up.headers["Accept"] == "text/event-stream"
    up = ADAPTER.build(CHAT, provider(key=None), "m", req, stream=False)
    assert "x-goog-api-key" not in up.headers
    with pytest.raises(Unsupported):
        ADAPTER.build(IMAGES, provider(), "m", {"prompt": "a cat"}, stream=False)


def test_messages_system_user_assistant_and_media() -> None:
    body = body_of({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg?size=2",
                                                "detail": "low"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=",
                                      "filename": "a.pdf"}}]},
        {"role": "assistant", "content": "A cat and a dog."},
        {"role": "user", "content": "Thanks"},
    ]})
    assert body == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use metric units."}]},
        "contents": [
            {"role": "user", "parts": [
                {"text": "What is in these?"},
                {"inlineData": {"mimeType": "image/png", "data": PNG}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg?size=2"}},
                {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}]},
            {"role": "model", "parts": [{"text": "A cat and a dog."}]},
            {"role": "user", "parts": [{"text": "Thanks"}]},
        ],
    }


@pytest.mark.parametrize("url", ["https://example.com/image", "ftp://example.com/a.png", "data:,plain",
                                 "data:image/png,notbase64"])
def test_unusable_image_urls_are_a_clear_400(url: str) -> None:
    with pytest.raises(Unsupported) as e:
        part = {"type": "image_url", "image_url": {"url": url}}
        body_of({"messages": [{"role": "user", "content": [part]}]})
    assert e.value.status_code == 400 and e.value.param == "messages[0].content[0]"


def test_only_system_messages_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as e:
        body_of({"messages": [{"role": "system", "content": "x"}]})
    assert e.value.param == "messages"


def test_tools_schema_cleanup_and_tool_choice() -> None:
    params = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "city": {"type": "string", "description": "City name", "minLength": 1, "format": "hostname"},
            "unit": {"type": ["string", "null"], "enum": ["c", "f", None]},
            "when": {"type": "string", "format": "date-time"},
            "days": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}], "default": None},
            "place": {"$ref": "#/$defs/Place"},
            "mode": {"const": "fast"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        },
        "required": ["city"],
        "$defs": {"Place": {"type": "object", "properties": {"lat": {"type": "number", "format": "double"}},
                            "additionalProperties": False}},
    }
    empty = {"type": "object", "properties": {}}
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                               "strict": True, "parameters": params}},
             {"type": "function", "function": {"name": "now", "parameters": empty}}]
    body = body_of({"messages": [{"role": "user", "content": "Weather?"}], "tools": tools,
                    "tool_choice": "auto"})
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather", "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name", "minLength": 1},
                "unit": {"nullable": True, "type": "string", "enum": ["c", "f"]},
                "when": {"type": "string", "format": "date-time"},
                "days": {"nullable": True, "type": "integer", "minimum": 1, "default": None},
                "place": {"type": "object", "properties": {"lat": {"type": "number", "format": "double"}}},
                "mode": {"enum": ["fast"]},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            },
            "required": ["city"]}},
        {"name": "now"}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    msgs = [{"role": "user", "content": "x"}]
    for choice, expected in [("none", {"mode": "NONE"}), ("required", {"mode": "ANY"}),
                             ({"type": "function", "function": {"name": "now"}},
                              {"mode": "ANY", "allowedFunctionNames": ["now"]})]:
        assert body_of({"messages": msgs, "tools": tools, "tool_choice": choice})["toolConfig"] == {
            "functionCallingConfig": expected}
    assert "toolConfig" not in body_of({"messages": msgs, "tools": tools})


def test_schema_unresolvable_ref_and_recursion() -> None:
    with pytest.raises(Unsupported):
        gemini_schema({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}})
    node = {"$ref": "#/$defs/Node"}
    with pytest.raises(Unsupported):
        gemini_schema({"$defs": {"Node": {"type": "object", "properties": {"next": node}}}, **node})


def test_tool_calls_results_and_thought_signatures() -> None:
    def convo(model: str, signature: bool) -> Any:
        first: dict[str, Any] = {"id": "call_a", "type": "function",
                                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        if signature:
            first["extra_content"] = {"google": {"thought_signature": "c2lnLW9uZQ=="}}
        return body_of({"messages": [
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                first,
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
            {"role": "tool", "tool_call_id": "call_a",
             "content": [{"type": "text", "text": '{"temp_c": 21}'}]},
            {"role": "user", "content": "And tomorrow?"},
        ]}, model)

    body = convo("gemini-3.5-flash", signature=True)
    assert body["contents"][1:] == [
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
             "thoughtSignature": "c2lnLW9uZQ=="},
            {"functionCall": {"name": "get_time", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_time", "response": {"result": "12:00"}}},
            {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}]},
        {"role": "user", "parts": [{"text": "And tomorrow?"}]},
    ]
    # a client that dropped the signature: Gemini 3 gets the documented sentinel, Gemini 2.5 nothing
    parts = convo("gemini-3.5-flash", signature=False)["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == SIGNATURE_SENTINEL and "thoughtSignature" not in parts[1]
    parts = convo("gemini-2.5-flash", signature=False)["contents"][1]["parts"]
    assert all("thoughtSignature" not in p for p in parts)


def test_tool_result_without_matching_call_and_bad_arguments() -> None:
    with pytest.raises(InvalidRequest) as e:
        body_of({"messages": [{"role": "user", "content": "x"},
                              {"role": "tool", "tool_call_id": "call_zzz", "content": "1"}]})
    assert e.value.param == "messages[1].tool_call_id"
    with pytest.raises(InvalidRequest) as e:
        body_of({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]})
    assert e.value.param == "messages[1].tool_calls[0].function.arguments"


def test_generation_config() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    body = body_of({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 50,
                    "max_tokens": 9, "stop": "END", "temperature": 0.2, "top_p": 0.9, "n": 2, "seed": 7,
                    "presence_penalty": 0.5,
                    "frequency_penalty": -0.5, "logprobs": True, "top_logprobs": 3, "reasoning_effort": "low",
                    "response_format": {"type": "json_schema", "json_schema": {"name": "a", "strict": True,
                                                                                "schema": schema}},
                    "user": "u1", "parallel_tool_calls": False, "metadata": {"k": "v"}})
    assert body["generationConfig"] == {
        "temperature": 0.2, "topP": 0.9, "candidateCount": 2, "seed": 7, "presencePenalty": 0.5,
        "frequencyPenalty": -0.5, "maxOutputTokens": 50, "stopSequences": ["END"], "responseLogprobs": True,
        "logprobs": 3, "responseMimeType": "application/json",
        "responseSchema": {"type": "object", "properties": {"answer": {"type": "string"}},
                           "required": ["answer"]},
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
    }
    msgs = [{"role": "user", "content": "x"}]
    assert body_of({"messages": msgs, "max_tokens": 9, "stop": ["a", "b"],
                    "response_format": {"type": "json_object"}})["generationConfig"] == {
        "maxOutputTokens": 9, "stopSequences": ["a", "b"], "responseMimeType": "application/json"}
    assert "generationConfig" not in body_of({"messages": msgs, "response_format": {"type": "text"}})
    cases = [("gemini-2.5-flash", "none"), ("gemini-2.5-pro", "high"), ("gemini-3.5-flash", "medium"),
             ("gemini-3.1-pro-preview", "none"), ("sim-gemini", "high")]
    think = [body_of({"messages": msgs, "reasoning_effort": e}, m)["generationConfig"]["thinkingConfig"]
             for m, e in cases]
    assert think == [
        {"thinkingBudget": 0}, {"thinkingBudget": 24576, "includeThoughts": True},
        {"thinkingLevel": "medium", "includeThoughts": True}, {"thinkingLevel": "minimal"},
        {"thinkingLevel": "high", "includeThoughts": True}]
    with pytest.raises(InvalidRequest) as e:
        body_of({"messages": msgs, "reasoning_effort": "extreme"})
    assert e.value.param == "reasoning_effort"


def test_embeddings_request() -> None:
    req = {"model": "e", "input": ["a", "b c"], "dimensions": 8, "encoding_format": "base64"}
    up = ADAPTER.build(EMBEDDINGS, provider(), "gemini-embedding-2", req, stream=True)
    assert up.url.endswith("/v1beta/models/gemini-embedding-2:batchEmbedContents") and not up.stream
    model = {"model": "models/gemini-embedding-2", "outputDimensionality": 8}
    assert orjson.loads(up.body or b"") == {"requests": [
        {**model, "content": {"parts": [{"text": "a"}]}}, {**model, "content": {"parts": [{"text": "b c"}]}}]}
    one = ADAPTER.build(EMBEDDINGS, provider(), "e", {"input": "solo"}, stream=False)
    assert orjson.loads(one.body or b"") == {"requests": [{"model": "models/e",
                                                           "content": {"parts": [{"text": "solo"}]}}]}
    with pytest.raises(Unsupported) as e:
        ADAPTER.build(EMBEDDINGS, provider(), "e", {"input": [[1, 2, 3]]}, stream=False)
    assert e.value.param == "input"
