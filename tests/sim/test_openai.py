"""OpenAI personality, exercised with the official ``openai`` SDK."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import httpx
import openai
import pytest

from perilune.sim import text as T
from perilune.tokens import count_tokens

MSGS: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say something about gateways."},
]
PROMPT_TOKENS = (4 + count_tokens("You are terse.")) + (4 + count_tokens("Say something about gateways."))
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "detailed": {"type": "boolean"},
            },
            "required": ["city"],
        },
    },
}
WEATHER_ARGS = {"city": "Paris", "unit": "celsius", "days": 1, "detailed": True}


@pytest.fixture(scope="module")
def client(sim_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim_url + "/v1", api_key="sk-anything", max_retries=0)


@pytest.fixture
def aclient(sim_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sim_url + "/v1", api_key="sk-anything", max_retries=0)


def test_chat_non_stream_whole_body(client: openai.OpenAI) -> None:
    r = client.chat.completions.with_raw_response.create(model="sim-chat", messages=MSGS)
    body = json.loads(r.text)
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    text = body["choices"][0]["message"]["content"]
    assert count_tokens(text) == 16
    del body["id"], body["created"]
    assert body == {
        "object": "chat.completion",
        "model": "sim-chat",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": 16,
            "total_tokens": PROMPT_TOKENS + 16,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_perilune_sim",
    }
    # deterministic: same request, same text
    again = client.chat.completions.create(model="sim-chat", messages=MSGS)
    assert again.choices[0].message.content == text


def test_chat_stream_sync(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model="sim-chat", messages=MSGS).choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            model="sim-chat", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == count_tokens(text) == 16
    assert last.usage.prompt_tokens == PROMPT_TOKENS
    assert all(c.usage is None for c in chunks[:-1])
    # one chunk per token by default (+ role chunk + finish chunk + usage chunk)
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 16


def test_chat_stream_without_usage_and_chunks_header(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="sim-chat", messages=MSGS, stream=True, extra_headers={"x-sim-chunks": "4"}
    )
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)
    contents = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(contents) == 4


@pytest.mark.asyncio
async def test_chat_stream_async(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model="sim-chat",
        messages=MSGS,
        stream=True,
        n=2,
        stream_options={"include_usage": True},
        extra_headers={"x-sim-output-tokens": "10"},
    )
    texts = ["", ""]
    usage = None
    async for chunk in stream:
        for ch in chunk.choices:
            texts[ch.index] += ch.delta.content or ""
        usage = chunk.usage or usage
    assert texts[0] != texts[1]
    assert usage is not None
    assert usage.completion_tokens == count_tokens(texts[0]) + count_tokens(texts[1]) == 20


@pytest.mark.asyncio
async def test_chat_async_non_stream(aclient: openai.AsyncOpenAI) -> None:
    r = await aclient.chat.completions.create(model="sim-chat", messages=MSGS, max_tokens=5)
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 5
    assert count_tokens(r.choices[0].message.content or "") == 5


def test_stop_sequence(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model="sim-chat", messages=MSGS).choices[0].message.content or ""
    word = full.split()[3]
    r = client.chat.completions.create(model="sim-chat", messages=MSGS, stop=[word])
    content = r.choices[0].message.content or ""
    assert content == full[: full.index(word)]
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens == count_tokens(content)


def test_tool_call_non_stream(client: openai.OpenAI) -> None:
    msgs: Any = [{"role": "user", "content": "What's the weather in Paris?"}]
    r = client.chat.completions.create(model="sim-chat", messages=msgs, tools=[WEATHER_TOOL])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    assert r.usage is not None
    assert r.usage.completion_tokens == count_tokens("get_weather") + count_tokens(call.function.arguments)
    # after a tool result the model answers in text
    msgs2: Any = [
        *msgs,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    r2 = client.chat.completions.create(model="sim-chat", messages=msgs2, tools=[WEATHER_TOOL])
    assert r2.choices[0].finish_reason == "stop" and r2.choices[0].message.content
    # tool_choice none -> text; forced -> tool even without trigger words
    r3 = client.chat.completions.create(
        model="sim-chat", messages=msgs, tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert r3.choices[0].finish_reason == "stop"
    forced = {"type": "function", "function": {"name": "get_weather"}}
    r4 = client.chat.completions.create(
        model="sim-chat", messages=MSGS, tools=[WEATHER_TOOL], tool_choice=forced
    )
    assert r4.choices[0].finish_reason == "tool_calls"


def test_tool_call_stream(client: openai.OpenAI) -> None:
    msgs: Any = [{"role": "user", "content": "use the tool please"}]
    chunks = list(
        client.chat.completions.create(model="sim-chat", messages=msgs, tools=[WEATHER_TOOL], stream=True)
    )
    deltas = [c.choices[0].delta for c in chunks]
    first = deltas[0].tool_calls[0]
    assert deltas[0].role == "assistant"
    assert first.index == 0 and first.id and first.type == "function"
    assert (
        first.function is not None and first.function.name == "get_weather" and first.function.arguments == ""
    )
    frags = [d.tool_calls[0].function.arguments for d in deltas[1:] if d.tool_calls]
    assert len(frags) > 3
    assert all(d.tool_calls[0].index == 0 for d in deltas if d.tool_calls)
    assert json.loads("".join(frags)) == WEATHER_ARGS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_json_modes_and_logprobs(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    r = client.chat.completions.create(model="sim-chat", messages=MSGS, response_format=fmt)
    assert json.loads(r.choices[0].message.content or "") == {"name": "Paris", "age": 1}
    r = client.chat.completions.create(
        model="sim-chat", messages=MSGS, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(r.choices[0].message.content or ""), dict)
    r = client.chat.completions.create(model="sim-chat", messages=MSGS, logprobs=True, top_logprobs=2)
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content is not None
    assert "".join(e.token for e in lp.content) == r.choices[0].message.content
    assert all(
        e.logprob < 0 and len(e.top_logprobs) == 2 and bytes(e.bytes or []) == e.token.encode()
        for e in lp.content
    )


def test_reasoning_cached_and_images(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="sim-reasoning", messages=MSGS)
    u = r.usage
    assert u is not None and u.completion_tokens_details is not None
    assert u.completion_tokens_details.reasoning_tokens == 8
    assert u.completion_tokens == 16 + 8 and count_tokens(r.choices[0].message.content or "") == 16
    long_text = "lorem ipsum " * 700
    r = client.chat.completions.create(model="sim-chat", messages=[{"role": "user", "content": long_text}])
    u = r.usage
    assert u is not None and u.prompt_tokens_details is not None
    assert u.prompt_tokens == 4 + count_tokens(long_text) > 1024
    assert u.prompt_tokens_details.cached_tokens == T.cached_prefix_tokens(u.prompt_tokens)
    assert u.prompt_tokens_details.cached_tokens % 128 == 0 and u.prompt_tokens_details.cached_tokens > 0
    parts: Any = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    r = client.chat.completions.create(model="sim-chat", messages=[{"role": "user", "content": parts}])
    assert r.usage is not None and r.usage.prompt_tokens == 4 + count_tokens("what is this") + 85


def test_legacy_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(model="sim-instruct", prompt="Once upon a time", max_tokens=8)
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert r.choices[0].finish_reason == "length" and count_tokens(r.choices[0].text) == 8
    assert r.usage is not None and r.usage.prompt_tokens == count_tokens("Once upon a time")
    stream = client.completions.create(
        model="sim-instruct",
        prompt="Once upon a time",
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "text_completion" for c in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == r.choices[0].text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8


def test_embeddings_float_and_base64(client: openai.OpenAI, sim_url: str) -> None:
    r = client.embeddings.create(
        model="sim-embedding-small", input=["hello", "world"], encoding_format="float"
    )
    assert [d.index for d in r.data] == [0, 1]
    v = r.data[0].embedding
    assert len(v) == 1536 and math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5)
    assert r.usage.prompt_tokens == r.usage.total_tokens == 2
    assert r.data[0].embedding != r.data[1].embedding
    big = client.embeddings.create(model="sim-embedding-large", input="hello", encoding_format="float")
    assert len(big.data[0].embedding) == 3072
    small = client.embeddings.create(model="x", input=[[1, 2, 3]], dimensions=100, encoding_format="float")
    assert len(small.data[0].embedding) == 100 and small.usage.prompt_tokens == 3
    # base64: raw little-endian float32, the very same numbers as the float encoding
    raw = httpx.post(
        sim_url + "/v1/embeddings",
        json={"model": "sim-embedding-small", "input": "hello", "encoding_format": "base64"},
    ).json()
    b = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(b) // 4}f", b)) == v
    # the SDK decodes base64 transparently
    sdk = client.embeddings.create(model="sim-embedding-small", input="hello", encoding_format="base64")
    assert sdk.data[0].embedding == v or base64.b64decode(sdk.data[0].embedding) == b


def test_images(client: openai.OpenAI, sim_url: str) -> None:
    r = client.images.generate(model="dall-e-2", prompt="a cat", n=2, size="256x256")
    assert len(r.data or []) == 2 and (r.data or [])[0].url
    png = httpx.get((r.data or [])[0].url or "")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    r = client.images.generate(model="dall-e-3", prompt="a cat", response_format="b64_json")
    assert base64.b64decode((r.data or [])[0].b64_json or "").startswith(b"\x89PNG")
    r = client.images.generate(model="gpt-image-1", prompt="a cat", quality="low")
    assert r.usage is not None
    assert r.usage.input_tokens == count_tokens("a cat") and r.usage.output_tokens == 272
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert (r.data or [])[0].b64_json


def test_transcriptions(client: openai.OpenAI) -> None:
    audio = ("sample.wav", b"\x00" * 48000, "audio/wav")  # 3 s at 16000 bytes/s
    r = client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert count_tokens(r.text) == 9
    v = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="verbose_json")
    assert v.duration == 3.0 and v.text == r.text and v.segments and v.segments[0].start == 0.0
    t = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="text")
    assert str(t).strip() == r.text
    srt = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="srt")
    assert str(srt).startswith("1\n00:00:00,000 --> 00:00:03,000\n")
    j = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=audio)
    assert j.usage is not None and j.usage.type == "tokens"


def test_models_and_errors(client: openai.OpenAI, sim_auth_url: str) -> None:
    ids = [m.id for m in client.models.list()]
    assert "sim-chat" in ids
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="sim-chat", messages=[])
    bad = openai.OpenAI(base_url=sim_auth_url + "/v1", api_key="sk-wrong-key-123", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as ei:
        bad.models.list()
    assert ei.value.code == "invalid_api_key"
    good = openai.OpenAI(base_url=sim_auth_url + "/v1", api_key="sk-sim-test-key", max_retries=0)
    assert good.chat.completions.create(model="m", messages=MSGS).choices[0].message.content
