"""The Gemini adapter's answer side, from fixture files of real Gemini shapes (no I/O)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from perilune._sse import SSEDecoder
from perilune.accounting.catalog import Price
from perilune.accounting.pricing import cost_of
from perilune.errors import (
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from perilune.providers.base import CHAT, EMBEDDINGS
from perilune.providers.gemini import GeminiAdapter
from perilune.schema.canonical import JSON, Usage

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gemini"
ADAPTER = GeminiAdapter()
M = Decimal(1_000_000)


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def decode(name: str, *, split: int = 7) -> tuple[list[JSON], Any]:
    """Feed a raw SSE fixture through the real SSE decoder in small network-sized pieces."""
    data = raw(name)
    sse, dec = SSEDecoder(), ADAPTER.stream_decoder(CHAT, "gemini")
    chunks: list[JSON] = []
    for i in range(0, len(data), split):
        for event in sse.feed(data[i:i + split]):
            chunks.extend(dec.feed(event))
    for event in sse.flush():
        chunks.extend(dec.feed(event))
    return chunks, dec


def test_text_answer_with_thoughts_and_cache() -> None:
    r = ADAPTER.parse(CHAT, raw("generate_text.json"), "application/json")
    body = r.body
    assert isinstance(body.pop("created"), int)
    assert body == {
        "id": "chatcmpl-mAitaLmkHPPlz7IPvtfUqQ4",
        "object": "chat.completion",
        "model": "gemini-2.5-flash",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": {
            "role": "assistant", "content": "A gateway is one front door for many model providers.",
            "refusal": None, "reasoning_content": "Let me weigh the trade-offs first."}}],
    }
    # promptTokenCount (1200) includes the 1024 cached tokens; thoughts (100) are output but not candidates
    assert r.usage == Usage(input_tokens=176, cache_read_tokens=1024, output_tokens=112, reasoning_tokens=100)
    assert r.usage.prompt_tokens == 1200 and r.usage.total_tokens == 1312  # == totalTokenCount


def test_golden_cost_gemini_25_flash() -> None:
    """gemini-2.5-flash list prices: $0.30/M input, $2.50/M output (thinking included), $0.03/M cached."""
    usage = ADAPTER.parse(CHAT, raw("generate_text.json"), "application/json").usage
    assert usage is not None
    c = cost_of(usage, Price(input=Decimal("0.30"), output=Decimal("2.50"), cache_read=Decimal("0.03")))
    assert c.input_usd == 176 * Decimal("0.30") / M == Decimal("0.0000528")
    assert c.cache_usd == 1024 * Decimal("0.03") / M == Decimal("0.00003072")
    assert c.output_usd == 112 * Decimal("2.50") / M == Decimal("0.00028")
    assert c.total_usd == Decimal("0.00036352")


def test_tool_calls_answer() -> None:
    r = ADAPTER.parse(CHAT, raw("generate_tools.json"), "application/json")
    choice = r.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    msg = choice["message"]
    assert msg["content"] is None
    calls = msg["tool_calls"]
    assert [c["id"][:5] for c in calls] == ["call_", "call_"] and calls[0]["id"] != calls[1]["id"]
    assert [{k: v for k, v in c.items() if k != "id"} for c in calls] == [
        {"type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris","days":2}'},
         "extra_content": {"google": {"thought_signature": "CiQBcsjafAbc123signature=="}}},
        {"type": "function", "function": {"name": "get_time", "arguments": '{"tz":"Europe/Paris"}'}}]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris", "days": 2}
    assert r.usage == Usage(input_tokens=70, output_tokens=20)


def test_candidates_finish_reasons_and_blocked_prompt() -> None:
    r = ADAPTER.parse(CHAT, raw("generate_two_candidates.json"), "application/json")
    assert [(c["index"], c["finish_reason"], c["message"]["content"]) for c in r.body["choices"]] == [
        (0, "length", "One two"), (1, "content_filter", "Three")]
    b = ADAPTER.parse(CHAT, raw("prompt_blocked.json"), "application/json")
    empty = {"role": "assistant", "content": None, "refusal": None}
    assert b.body["choices"] == [{"index": 0, "message": empty, "finish_reason": "content_filter",
                                  "logprobs": None}]
    assert b.usage == Usage(input_tokens=15)


def test_logprobs_result() -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}, "finishReason": "STOP",
                            "logprobsResult": {
                                "topCandidates": [{"candidates": [{"token": "Hi", "logProbability": -0.1},
                                                                  {"token": "Hey", "logProbability": -2.5}]}],
                                "chosenCandidates": [{"token": "Hi", "logProbability": -0.1}]}}]}
    r = ADAPTER.parse(CHAT, json.dumps(body).encode(), "application/json")
    assert r.body["choices"][0]["logprobs"] == {"refusal": None, "content": [
        {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": [
            {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
            {"token": "Hey", "logprob": -2.5, "bytes": [72, 101, 121]}]}]}
    assert r.usage is None  # no usageMetadata: unknown, not zero


def test_malformed_answers() -> None:
    with pytest.raises(UpstreamUnavailable) as e:
        ADAPTER.parse(CHAT, b'{"candidates": [', "application/json")
    assert e.value.code == "upstream_malformed"
    with pytest.raises(UpstreamUnavailable):
        ADAPTER.parse(CHAT, b"[1, 2]", "application/json")


def test_stream_text() -> None:
    chunks, dec = decode("stream_text.sse")
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-sTreAm1" for c in chunks)
    assert all(c["model"] == "gemini-2.5-flash" for c in chunks)
    choices = [c["choices"][0] for c in chunks]
    assert all(ch["index"] == 0 for ch in choices)
    assert choices[0]["delta"] == {"role": "assistant", "content": "",
                                   "reasoning_content": "Thinking about it"}
    assert all("role" not in ch["delta"] for ch in choices[1:])
    assert "".join(ch["delta"].get("content", "") for ch in choices) == "A gateway is one front door."
    assert [ch["finish_reason"] for ch in choices] == [None, None, None, "stop"]
    assert choices[-1]["delta"] == {}
    assert dec.usage == Usage(input_tokens=176, cache_read_tokens=1024, output_tokens=107,
                              reasoning_tokens=100)
    assert dec.upstream_usage is None and not dec.done


def test_stream_usage_only_once_finished() -> None:
    """A stream cut before its finishReason has no usage: the pipeline reports it truncated."""
    data = raw("stream_text.sse")
    cut = data[: data.rfind(b"data: ")]
    sse, dec = SSEDecoder(), ADAPTER.stream_decoder(CHAT, "gemini")
    for event in sse.feed(cut):
        dec.feed(event)
    assert dec.usage is None and not dec.done


def test_stream_tool_calls() -> None:
    chunks, dec = decode("stream_tools.sse", split=5)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant" and "content" not in deltas[0]
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    seen = [(tc["index"], tc["type"], tc["function"]["name"], tc["function"]["arguments"]) for tc in calls]
    assert seen == [(0, "function", "get_weather", '{"city":"Paris"}'), (1, "function", "get_time", "{}")]
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "c2lnLW9uZQ=="}}
    assert all(tc["id"].startswith("call_") for tc in calls)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert dec.usage == Usage(input_tokens=70, output_tokens=15)


def test_stream_candidates_interleaved() -> None:
    def ev(i: int, text: str, finish: str | None = None, usage: bool = False) -> str:
        cand: JSON = {"content": {"parts": [{"text": text}], "role": "model"}, "index": i}
        if finish:
            cand["finishReason"] = finish
        obj: JSON = {"candidates": [cand], "responseId": "r", "modelVersion": "m"}
        if usage:
            obj["usageMetadata"] = {"promptTokenCount": 5, "candidatesTokenCount": 4, "totalTokenCount": 9}
        return "data: " + json.dumps(obj) + "\n\n"

    sse, dec = SSEDecoder(), ADAPTER.stream_decoder(CHAT, "gemini")
    out: list[JSON] = []
    for e in sse.feed((ev(0, "a") + ev(1, "b") + ev(0, "c", "STOP", usage=True)).encode()):
        out.extend(dec.feed(e))
    assert dec.usage is None  # candidate 1 has not finished yet
    for e in sse.feed(ev(1, "d", "MAX_TOKENS", usage=True).encode()):
        out.extend(dec.feed(e))
    assert [(c["choices"][0]["index"], c["choices"][0]["delta"].get("role")) for c in out] == [
        (0, "assistant"), (1, "assistant"), (0, None), (1, None)]
    assert out[-1]["choices"][0]["finish_reason"] == "length"
    assert dec.usage == Usage(input_tokens=5, output_tokens=4)


def test_stream_error_event() -> None:
    with pytest.raises(UpstreamUnavailable) as e:
        decode("stream_error.sse")
    assert "UNAVAILABLE" in e.value.message and "overloaded" in e.value.message
    sse, dec = SSEDecoder(), ADAPTER.stream_decoder(CHAT, "gemini")
    [event] = sse.feed(b"data: " + raw("error_429.json").replace(b"\n", b"") + b"\n\n")
    with pytest.raises(UpstreamRateLimited) as r:
        dec.feed(event)
    assert r.value.retry_after_s == 17.0
    [bad] = SSEDecoder().feed(b'data: {"candidates": [{"content"\n\n')
    with pytest.raises(UpstreamUnavailable) as m:
        ADAPTER.stream_decoder(CHAT, "gemini").feed(bad)
    assert m.value.code == "upstream_malformed"


def test_errors() -> None:
    e = ADAPTER.error("gemini", 429, raw("error_429.json"), {})
    assert isinstance(e, UpstreamRateLimited) and e.retry_after_s == 17.0 and e.status_code == 429
    assert e.message == ("gemini: RESOURCE_EXHAUSTED: You exceeded your current quota, please check your "
                         "plan and billing details.")
    assert ADAPTER.error("gemini", 429, raw("error_429.json"), {"Retry-After": "3"}).retry_after_s == 3.0
    k = ADAPTER.error("gemini", 400, raw("error_key.json"), {})
    assert isinstance(k, UpstreamUnavailable) and k.code == "upstream_auth_failed" and k.retryable
    bad = ADAPTER.error("gemini", 400, raw("error_400.json"), {})
    assert isinstance(bad, UpstreamRejected) and bad.status_code == 400 and not bad.retryable
    assert "contents is not specified" in bad.message
    internal = b'{"error": {"code": 500, "message": "x", "status": "INTERNAL"}}'
    assert isinstance(ADAPTER.error("gemini", 500, internal, {}), UpstreamUnavailable)
    assert isinstance(ADAPTER.error("gemini", 504, b"<html>gateway timeout</html>", {}), UpstreamTimeout)


def test_embeddings_answer() -> None:
    r = ADAPTER.parse(EMBEDDINGS, raw("batch_embed.json"), "application/json")
    assert r.body == {"object": "list", "data": [
        {"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125, 1.0]},
        {"object": "embedding", "index": 1, "embedding": [0.0, 0.75, -0.25, 0.5]}]}
    assert r.usage is None  # batchEmbedContents reports no usage; the gateway estimates and flags it
