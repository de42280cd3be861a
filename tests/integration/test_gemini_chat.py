"""The native Gemini adapter end to end: the official openai SDK -> perilune -> the simulator's Gemini
personality (provider ``gemini``, type gemini), with exact usage and cost."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest

from perilune.sim import SimConfig, make_server
from perilune.tokens import count_tokens
from tests.conftest import Gateway, StartGateway, free_port

M = Decimal(1_000_000)
# sim-gemini list prices (perilune/data/models.json): input 0.30, output 2.50, cache read 0.075 per million
P_IN, P_OUT, P_CACHE = Decimal("0.30"), Decimal("2.50"), Decimal("0.075")
TEXT = "Tell me about the sea"
MSG = [{"role": "user", "content": TEXT}]
PROMPT = 4 + count_tokens(TEXT)  # the simulator's count: 4 per turn + the text
LONG = " ".join(["harbour"] * 1200)  # 1200 tokens: past the simulator's 1024-token cache threshold
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "additionalProperties": False, "$schema": "https://json-schema.org/draft/2020-12",
                   "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}},
                   "required": ["city"]}}}]
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]

CONFIG = """
simulator = "never"
log_level = "warning"

[[providers]]
name = "gemini"
type = "gemini"
base_url = "{sim_url}"
api_key_env = "TEST_GEMINI_KEY"
forward_headers = ["x-sim-*"]
models = ["sim-gemini"]
"""


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    return start_gateway(CONFIG, env={"TEST_GEMINI_KEY": "g-test-key"})


@pytest.fixture(scope="module")
def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)


def cached_of(prompt: int) -> int:
    return ((prompt - 1) // 128) * 128 if prompt > 1024 else 0


def assert_usage(u: dict[str, Any], prompt: int, completion: int, *, cached: int = 0,
                 reasoning: int = 0) -> None:
    assert u["prompt_tokens"] == prompt and u["completion_tokens"] == completion
    assert u["total_tokens"] == prompt + completion
    assert (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0) == cached
    assert (u.get("completion_tokens_details") or {}).get("reasoning_tokens", 0) == reasoning
    inp, out, cache = (prompt - cached) * P_IN / M, completion * P_OUT / M, cached * P_CACHE / M
    assert Decimal(str(u["input_cost_usd"])) == inp
    assert Decimal(str(u["output_cost_usd"])) == out
    assert Decimal(str(u["cache_input_cost_usd"])) == cache
    assert Decimal(str(u["total_cost_usd"])) == inp + out + cache
    assert "estimated" not in u


def stream_all(client: openai.OpenAI, **kw: Any) -> list[Any]:
    return list(client.chat.completions.create(model="sim-gemini", stream=True,
                                               stream_options={"include_usage": True}, **kw))


def test_chat_non_stream(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="sim-gemini", messages=MSG)  # type: ignore[arg-type]
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == "sim-gemini"
    c = r.choices[0]
    assert c.index == 0 and c.finish_reason == "stop" and c.message.role == "assistant"
    assert count_tokens(c.message.content or "") == 16
    assert (r.model_extra or {})["provider"] == "gemini"
    assert r.usage is not None
    assert_usage(r.usage.model_dump(), PROMPT, 16)


def test_chat_stream_matches_non_stream(client: openai.OpenAI) -> None:
    one = client.chat.completions.create(model="sim-gemini", messages=MSG)  # type: ignore[arg-type]
    chunks = stream_all(client, messages=MSG)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].index == 0 for c in chunks if c.choices)
    assert all((c.model_extra or {})["provider"] == "gemini" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == one.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    assert sum(1 for c in chunks if c.usage is not None) == 1
    assert_usage(final.usage.model_dump(), PROMPT, 16)


def test_stream_without_usage_request(gw: Gateway) -> None:
    with httpx.stream("POST", gw.v1 + "/chat/completions", headers={"Authorization": f"Bearer {gw.key}"},
                      json={"model": "sim-gemini", "messages": MSG, "stream": True}) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    bodies = [json.loads(line[6:]) for line in lines[:-1]]
    assert bodies and all("usage" not in b and b["choices"] for b in bodies)


def test_n_max_tokens_and_stop(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="sim-gemini", messages=MSG, n=2, max_tokens=5)  # type: ignore[arg-type]
    assert [(c.index, c.finish_reason) for c in r.choices] == [(0, "length"), (1, "length")]
    assert r.usage is not None and r.usage.completion_tokens == 10
    chunks = stream_all(client, messages=MSG, n=2, max_completion_tokens=5)
    assert {c.choices[0].index for c in chunks if c.choices} == {0, 1}
    for i in (0, 1):
        text = "".join(c.choices[0].delta.content or "" for c in chunks
                       if c.choices and c.choices[0].index == i)
        assert text == r.choices[i].message.content
    assert_usage(chunks[-1].usage.model_dump(), PROMPT, 10)
    word = (r.choices[0].message.content or "").split()[2]
    s = client.chat.completions.create(model="sim-gemini", messages=MSG, stop=word)  # type: ignore[arg-type]
    assert word not in (s.choices[0].message.content or "")


def test_cache_and_thoughts_priced_exactly(client: openai.OpenAI) -> None:
    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": LONG}]
    prompt = 4 + count_tokens("You are terse.") + 4 + 1200
    cached = cached_of(prompt)
    assert cached == 1152
    r = client.chat.completions.create(model="sim-gemini", messages=msgs, reasoning_effort="high")  # type: ignore
    msg = r.choices[0].message
    assert count_tokens((msg.model_extra or {})["reasoning_content"]) == 8
    assert count_tokens(msg.content or "") == 16
    assert r.usage is not None
    assert_usage(r.usage.model_dump(), prompt, 16 + 8, cached=cached, reasoning=8)
    chunks = stream_all(client, messages=msgs, reasoning_effort="high")
    thought = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks
                      if c.choices)
    assert thought == (msg.model_extra or {})["reasoning_content"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == msg.content
    assert_usage(chunks[-1].usage.model_dump(), prompt, 24, cached=cached, reasoning=8)
    # cache alone, no thinking asked for
    plain = client.chat.completions.create(model="sim-gemini", messages=msgs)  # type: ignore[arg-type]
    assert_usage(plain.usage.model_dump(), prompt, 16, cached=cached)  # type: ignore[union-attr]


def test_tools_non_stream_and_stream(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="sim-gemini", messages=WEATHER, tools=TOOLS)  # type: ignore[arg-type]
    c = r.choices[0]
    assert c.finish_reason == "tool_calls" and c.message.content is None
    call = c.message.tool_calls[0]  # type: ignore[index]
    assert call.id.startswith("call_") and call.type == "function" and call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert args == {"city": "Paris", "days": 1}
    u = r.usage.model_dump()  # type: ignore[union-attr]
    compact = json.dumps(args, separators=(",", ":"))
    assert u["completion_tokens"] == count_tokens("get_weather") + count_tokens(compact)
    assert_usage(u, u["prompt_tokens"], u["completion_tokens"])

    chunks = stream_all(client, messages=WEATHER, tools=TOOLS)
    calls = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or []]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].id and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == args
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"
    assert_usage(chunks[-1].usage.model_dump(), u["prompt_tokens"], u["completion_tokens"])

    # the conversation continues with the tool result (the function name is recovered from the call id)
    follow = client.chat.completions.create(model="sim-gemini", tools=TOOLS, messages=[  # type: ignore[arg-type]
        *WEATHER, {"role": "assistant", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'}])
    assert follow.choices[0].finish_reason == "stop" and follow.choices[0].message.content
    # tool_choice: none suppresses the call; required / named forces one without the trigger word
    none = client.chat.completions.create(model="sim-gemini", messages=WEATHER, tools=TOOLS,  # type: ignore
                                          tool_choice="none")
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason == "stop"
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        forced = client.chat.completions.create(model="sim-gemini", messages=MSG, tools=TOOLS,  # type: ignore
                                                tool_choice=choice)
        assert forced.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[index]


def test_unknown_tool_call_id_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="sim-gemini", messages=[  # type: ignore[arg-type]
            *WEATHER, {"role": "tool", "tool_call_id": "call_unknown", "content": "21"}])
    assert e.value.body["param"] == "messages[1].tool_call_id"  # type: ignore[index]


def test_images_inline(client: openai.OpenAI) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    msgs = [{"role": "user", "content": [
        {"type": "text", "text": "Describe this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.jpeg"}}]}]
    r = client.chat.completions.create(model="sim-gemini", messages=msgs)  # type: ignore[arg-type]
    assert r.usage is not None
    assert_usage(r.usage.model_dump(), 4 + count_tokens("Describe this") + 2 * 85, 16)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="sim-gemini", messages=[{"role": "user", "content": [  # type: ignore
            {"type": "image_url", "image_url": {"url": "https://example.com/no-extension"}}]}])
    assert e.value.body["code"] == "unsupported"  # type: ignore[index]


def test_json_response_format(client: openai.OpenAI) -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {"city": {"type": "string"}},
              "required": ["city"]}
    r = client.chat.completions.create(model="sim-gemini", messages=MSG, response_format={  # type: ignore
        "type": "json_schema", "json_schema": {"name": "place", "strict": True, "schema": schema}})
    assert json.loads(r.choices[0].message.content or "") == {"city": "Paris"}
    o = client.chat.completions.create(model="sim-gemini", messages=MSG,  # type: ignore[arg-type]
                                       response_format={"type": "json_object"})
    assert isinstance(json.loads(o.choices[0].message.content or ""), dict)


def test_thinking_budget_for_gemini_25(client: openai.OpenAI) -> None:
    """gemini-2.5-* gets thinkingBudget: 'none' is budget 0 (no thoughts), 'low' thinks."""
    off = client.chat.completions.create(model="gemini-2.5-flash", messages=MSG,  # type: ignore[arg-type]
                                         reasoning_effort="none")
    on = client.chat.completions.create(model="gemini-2.5-flash", messages=MSG,  # type: ignore[arg-type]
                                        reasoning_effort="low")
    assert off.usage is not None and on.usage is not None
    assert off.usage.completion_tokens == 16 and off.usage.completion_tokens_details is None
    assert on.usage.completion_tokens == 24 and on.usage.completion_tokens_details.reasoning_tokens == 8  # type: ignore


@pytest.mark.parametrize("fault", ["429", "500"])
def test_http_failures(client: openai.OpenAI, fault: str) -> None:
    err = openai.RateLimitError if fault == "429" else openai.InternalServerError
    for stream in (False, True):
        with pytest.raises(err) as e:
            client.chat.completions.create(model="sim-gemini", messages=MSG, stream=stream,  # type: ignore
                                           extra_headers={"x-sim-fault": fault})
        body = e.value.body
        assert isinstance(body, dict)
        if fault == "429":
            assert e.value.status_code == 429 and e.value.response.headers["retry-after"] == "2"
            assert body["code"] == "upstream_rate_limited" and "RESOURCE_EXHAUSTED" in body["message"]
        else:
            assert e.value.status_code == 502 and body["code"] == "upstream_unavailable"
            assert "INTERNAL" in body["message"]


@pytest.mark.parametrize("fault", ["error-event", "drop", "malformed"])
def test_mid_stream_failures(client: openai.OpenAI, fault: str) -> None:
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="sim-gemini", messages=MSG,  # type: ignore[arg-type]
                                       extra_headers={"x-sim-fault": fault})
    assert e.value.status_code == 502
    seen: list[Any] = []
    with pytest.raises(openai.APIError) as s:
        for chunk in client.chat.completions.create(model="sim-gemini", messages=MSG, stream=True,  # type: ignore
                                                    extra_headers={"x-sim-fault": fault}):
            seen.append(chunk)
    if fault != "malformed":
        assert seen and seen[0].choices[0].delta.role == "assistant"
    expected = {"error-event": "UNAVAILABLE", "drop": "dropped", "malformed": "malformed"}[fault]
    assert expected in s.value.message
    assert isinstance(s.value.body, dict)
    assert s.value.body["code"] == ("upstream_malformed" if fault == "malformed" else "upstream_unavailable")


def test_embeddings(client: openai.OpenAI, gw: Gateway) -> None:
    r = client.embeddings.create(model="gemini-embedding-2", input=["alpha", "beta gamma"])  # SDK asks base64
    assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) == 3072
    assert r.model == "gemini-embedding-2"
    tokens = count_tokens("alpha") + count_tokens("beta gamma")
    assert r.usage.prompt_tokens == tokens
    h = {"Authorization": f"Bearer {gw.key}"}
    one = {"model": "gemini-embedding-2", "input": "alpha", "dimensions": 8}
    f = httpx.post(gw.v1 + "/embeddings", headers=h, json={**one, "encoding_format": "float"}).json()
    b = httpx.post(gw.v1 + "/embeddings", headers=h, json={**one, "encoding_format": "base64"}).json()
    vec = f["data"][0]["embedding"]
    assert isinstance(vec, list) and len(vec) == 8
    assert list(struct.unpack("<8f", base64.b64decode(b["data"][0]["embedding"]))) == vec
    u = f["usage"]
    assert u["estimated"] is True and u["prompt_tokens"] == count_tokens("alpha")  # Gemini reports no usage
    assert Decimal(str(u["total_cost_usd"])) == count_tokens("alpha") * Decimal("0.20") / M
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="gemini-embedding-2", input=[[1, 2, 3]])


def test_builtin_simulator_serves_sim_gemini(start_gateway: StartGateway) -> None:
    """With no provider configured, perilune serves its simulator: sim-gemini goes through the Gemini
    adapter to the simulator's Gemini personality."""
    gw = start_gateway(f'simulator = "always"\nsimulator_port = {free_port()}\nlog_level = "warning"\n')
    c = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)
    r = c.chat.completions.create(model="sim-gemini", messages=MSG)  # type: ignore[arg-type]
    assert (r.model_extra or {})["provider"] == "sim-gemini"
    assert r.usage is not None
    assert_usage(r.usage.model_dump(), PROMPT, 16)
    g = c.chat.completions.create(model="sim-gpt", messages=MSG)  # type: ignore[arg-type]
    assert (g.model_extra or {})["provider"] == "sim"


@pytest.fixture(scope="module")
def keyed_sim_url() -> Iterator[str]:
    """A simulator that checks the Gemini key (x-goog-api-key), served in a thread."""
    port = free_port()
    server: Any = make_server("127.0.0.1", port, SimConfig(api_key="g-right-key"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "simulator did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_api_key_header_and_fallback_on_bad_key(start_gateway: StartGateway, keyed_sim_url: str) -> None:
    """The key travels as x-goog-api-key; Gemini's 400 API_KEY_INVALID is perilune's credential problem
    (502 upstream_auth_failed), so the next provider of the model is tried."""
    providers = "".join(f"""
[[providers]]
name = "{name}"
type = "gemini"
base_url = "{keyed_sim_url}"
api_key_env = "{env}"
models = ["sim-gemini"]
""" for name, env in (("gemini-bad", "BAD_GEMINI_KEY"), ("gemini-good", "GOOD_GEMINI_KEY")))
    gw = start_gateway('simulator = "never"\nlog_level = "warning"\n' + providers,
                       env={"BAD_GEMINI_KEY": "g-wrong-key", "GOOD_GEMINI_KEY": "g-right-key"})
    c = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)
    r = c.chat.completions.create(model="sim-gemini", messages=MSG)  # type: ignore[arg-type]
    assert (r.model_extra or {})["provider"] == "gemini-good"
    with pytest.raises(openai.InternalServerError) as e:
        c.chat.completions.create(model="gemini-bad/sim-gemini", messages=MSG)  # type: ignore[arg-type]
    assert e.value.status_code == 502 and e.value.body["code"] == "upstream_auth_failed"  # type: ignore[index]
    assert "API key not valid" in e.value.body["message"]  # type: ignore[index]


def test_anthropic_dialect_reaches_gemini(gw: Gateway) -> None:
    """The adapter speaks the OpenAI-shaped contract, so /v1/messages clients reach Gemini too, with
    Anthropic's usage meaning (input_tokens excludes cache reads)."""
    c = anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0)
    tools = [{"name": "get_weather", "input_schema": TOOLS[0]["function"]["parameters"]}]  # type: ignore[index]
    r = c.messages.create(model="sim-gemini", max_tokens=100, tools=tools,  # type: ignore[arg-type]
                          messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    assert r.stop_reason == "tool_use"
    block = next(b for b in r.content if b.type == "tool_use")
    assert block.name == "get_weather" and block.input == {"city": "Paris", "days": 1}
    prompt = 4 + 1200
    with c.messages.stream(model="sim-gemini", max_tokens=100,
                           messages=[{"role": "user", "content": LONG}]) as s:
        final = s.get_final_message()
    assert final.stop_reason == "end_turn" and count_tokens(final.content[0].text) == 16  # type: ignore[union-attr]
    assert final.usage.cache_read_input_tokens == cached_of(prompt) == 1152
    assert final.usage.input_tokens == prompt - 1152 and final.usage.output_tokens == 16
