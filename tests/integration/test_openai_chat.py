"""The official openai SDK, sync and async, against perilune in front of the simulator."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import openai
import pytest

from perilune.tokens import count_tokens
from tests.conftest import Gateway

MSG = [{"role": "user", "content": "Tell me about the sea"}]
M = Decimal(1_000_000)
# sim-gpt list prices (perilune/data/models.json): input 1.00, output 2.00, cache read 0.50 per million
P_IN, P_OUT, P_CACHE = Decimal("1.00"), Decimal("2.00"), Decimal("0.50")


def expected_costs(prompt: int, completion: int, cached: int = 0) -> dict[str, Decimal]:
    inp = (prompt - cached) * P_IN / M
    out = completion * P_OUT / M
    cache = cached * P_CACHE / M
    return {"input_cost_usd": inp, "output_cost_usd": out, "cache_input_cost_usd": cache,
            "total_cost_usd": inp + out + cache}


def assert_costs(usage: dict[str, object], prompt: int, completion: int, cached: int = 0) -> None:
    for name, value in expected_costs(prompt, completion, cached).items():
        assert Decimal(str(usage[name])) == value, (name, usage[name], value)


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0)


@pytest.fixture
def aclient(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0)


def test_chat_non_stream_enriched(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="sim-gpt", messages=MSG)
    assert raw.headers["x-request-id"].startswith("req_")
    r = raw.parse()
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    text = r.choices[0].message.content or ""
    assert text and r.choices[0].finish_reason == "stop"
    u = r.usage.model_dump()  # type: ignore[union-attr]
    assert u["prompt_tokens"] == count_tokens(MSG[0]["content"]) + 4
    assert u["completion_tokens"] == count_tokens(text)
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert_costs(u, u["prompt_tokens"], u["completion_tokens"])
    assert u["latency_ms"] > 0 and u["ttft_ms"] > 0
    assert r.model_extra is not None and r.model_extra["provider"] == "sim"


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="sim-gpt", messages=MSG, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].index == 0 for c in chunks if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    u = final.usage.model_dump()
    assert u["completion_tokens"] == count_tokens(text)
    assert_costs(u, u["prompt_tokens"], u["completion_tokens"])
    assert u["ttft_ms"] > 0 and u["latency_ms"] >= u["ttft_ms"]
    assert sum(1 for c in chunks if c.usage is not None) == 1
    assert all((c.model_extra or {}).get("provider") == "sim" for c in chunks)


def test_stream_usage_stripped_when_not_asked(gateway: Gateway) -> None:
    with httpx.stream("POST", gateway.v1 + "/chat/completions", headers={"Authorization": f"Bearer {gateway.key}"},
                      json={"model": "sim-gpt", "messages": MSG, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    bodies = [json.loads(line[6:]) for line in lines[:-1]]
    assert bodies and all("usage" not in b for b in bodies)
    assert all(b["choices"] for b in bodies)


def test_stream_and_non_stream_agree(client: openai.OpenAI) -> None:
    one = client.chat.completions.create(model="sim-gpt", messages=MSG, seed=7)
    chunks = list(client.chat.completions.create(model="sim-gpt", messages=MSG, seed=7, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == one.choices[0].message.content
    assert chunks[-1].usage is not None and one.usage is not None
    assert chunks[-1].usage.completion_tokens == one.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == one.usage.prompt_tokens


async def test_async_client_stream_and_not(aclient: openai.AsyncOpenAI) -> None:
    r = await aclient.chat.completions.create(model="sim-gpt", messages=MSG, max_tokens=5)
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 5
    stream = await aclient.chat.completions.create(model="sim-gpt", messages=MSG, stream=True, max_tokens=5,
                                                   stream_options={"include_usage": True})
    finish = None
    usage = None
    async for c in stream:
        if c.choices and c.choices[0].finish_reason:
            finish = c.choices[0].finish_reason
        usage = c.usage or usage
    assert finish == "length" and usage is not None and usage.completion_tokens == 5
    await aclient.close()


def test_n_choices_and_stop(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="sim-gpt", messages=MSG, n=3, max_completion_tokens=12)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert r.usage is not None
    assert r.usage.completion_tokens == sum(count_tokens(c.message.content or "") for c in r.choices)
    words = (r.choices[0].message.content or "").split()
    stop_word = words[2]
    s = client.chat.completions.create(model="sim-gpt", messages=MSG, stop=[stop_word], max_completion_tokens=12)
    assert stop_word not in (s.choices[0].message.content or "")


def test_tools_non_stream_and_stream(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                               "parameters": {"type": "object", "properties": {
                                                   "city": {"type": "string"}, "days": {"type": "integer"}},
                                                   "required": ["city"]}}}]
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.chat.completions.create(model="sim-gpt", messages=msgs, tools=tools, tool_choice="auto")
    call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert set(args) >= {"city"}
    chunks = list(client.chat.completions.create(model="sim-gpt", messages=msgs, tools=tools, stream=True))
    name = "".join(tc.function.name or "" for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])
                   if tc.function)
    streamed_args = "".join(tc.function.arguments or "" for c in chunks if c.choices
                            for tc in (c.choices[0].delta.tool_calls or []) if tc.function)
    assert name == "get_weather"
    assert json.loads(streamed_args) == args
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # the conversation continues with the tool result
    follow = client.chat.completions.create(model="sim-gpt", tools=tools, messages=[
        *msgs, {"role": "assistant", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'}], tool_choice="none")
    assert follow.choices[0].message.content


def test_response_format_logprobs_seed_penalties_and_images(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="sim-gpt", messages=[{"role": "user", "content": [
            {"type": "text", "text": "Describe this picture as JSON"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]}],
        response_format={"type": "json_object"}, logprobs=True, top_logprobs=2, seed=1, temperature=0.2,
        top_p=0.9, frequency_penalty=0.1, presence_penalty=0.1)
    json.loads(r.choices[0].message.content or "")
    assert r.choices[0].logprobs is not None and r.choices[0].logprobs.content
    assert r.usage is not None and r.usage.prompt_tokens > 85  # an image part is counted


def test_unknown_fields_pass_through(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="sim-gpt", messages=MSG,
                                       extra_body={"a_future_openai_parameter": {"x": 1}, "metadata": {"k": "v"}})
    assert r.choices[0].message.content


def test_provider_pin_and_field(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="openai/gpt-4o-mini", messages=MSG)
    assert (r.model_extra or {})["provider"] == "openai"
    r2 = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_body={"provider": "openai"})
    assert (r2.model_extra or {})["provider"] == "openai"


def test_legacy_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(model="sim-gpt", prompt="Once upon a time", max_tokens=8)
    assert r.object == "text_completion" and r.choices[0].text
    assert r.usage is not None and r.usage.completion_tokens == 8
    chunks = list(client.completions.create(model="sim-gpt", prompt="Once upon a time", max_tokens=8, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8


def test_embeddings_float_base64_batch(client: openai.OpenAI, gateway: Gateway) -> None:
    r = client.embeddings.create(model="sim-embed", input=["alpha", "beta gamma"])
    assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) == 1536
    assert r.usage.prompt_tokens == count_tokens("alpha") + count_tokens("beta gamma")
    # the SDK asks for base64 by default and decodes it; the vectors must be the same
    raw = httpx.post(gateway.v1 + "/embeddings", headers={"Authorization": f"Bearer {gateway.key}"},
                     json={"model": "sim-embed", "input": "alpha", "encoding_format": "base64"}).json()
    assert isinstance(raw["data"][0]["embedding"], str)
    assert raw["usage"]["total_cost_usd"] == format(Decimal(raw["usage"]["prompt_tokens"]) * Decimal("0.02") / M, "f")
    f = client.embeddings.create(model="sim-embed", input="alpha", encoding_format="float", dimensions=8)
    assert len(f.data[0].embedding) == 8
