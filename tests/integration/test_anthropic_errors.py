"""Each upstream failure class, streamed and not, in the caller's dialect: the anthropic SDK on
/v1/messages (sim-gpt converted, sim-claude native) and the openai SDK with an Anthropic upstream."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Gateway, StartGateway
from tests.integration.test_anthropic_messages import CONFIG

MSGS: list[Any] = [{"role": "user", "content": "Tell me about the sea"}]
MODELS = ("sim-gpt", "sim-claude")


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    return start_gateway(config=CONFIG)


@pytest.fixture(scope="module")
def ant(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0)


@pytest.fixture(scope="module")
def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)


def fault(name: str) -> dict[str, str]:
    return {"x-sim-fault": name}


def anthropic_sse(gw: Gateway, model: str, headers: dict[str, str]) -> tuple[int, list[tuple[str, Any]]]:
    with httpx.stream(
        "POST",
        gw.v1 + "/messages",
        headers={"x-api-key": gw.key, **headers},
        json={"model": model, "max_tokens": 100, "messages": MSGS, "stream": True},
    ) as r:
        raw = r.read().decode()
    events = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return r.status_code, events


# ---- before the answer starts: a status in Anthropic's shape ------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_429_with_retry_after(ant: anthropic.Anthropic, model: str, stream: bool) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        r = ant.messages.create(
            model=model, max_tokens=50, messages=MSGS, stream=stream, extra_headers=fault("429")
        )
        list(r) if stream else None  # type: ignore[call-overload]
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert info.value.body["type"] == "error"  # type: ignore[index]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("status", ["500", "529"])
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_5xx(ant: anthropic.Anthropic, model: str, status: str, stream: bool) -> None:
    with pytest.raises(anthropic.InternalServerError) as info:
        r = ant.messages.create(
            model=model, max_tokens=50, messages=MSGS, stream=stream, extra_headers=fault(status)
        )
        list(r) if stream else None  # type: ignore[call-overload]
    assert info.value.status_code == 502
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert f"HTTP {status}" in body["error"]["message"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", ["error-event", "drop", "malformed"])
def test_anthropic_non_stream_failures(ant: anthropic.Anthropic, model: str, name: str) -> None:
    with pytest.raises(anthropic.InternalServerError) as info:
        ant.messages.create(model=model, max_tokens=50, messages=MSGS, extra_headers=fault(name))
    assert info.value.status_code == 502
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]


# ---- mid-stream: an error event, then the end --------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", ["error-event", "drop", "malformed"])
def test_anthropic_mid_stream_failures(gw: Gateway, ant: anthropic.Anthropic, model: str, name: str) -> None:
    status, events = anthropic_sse(gw, model, {**fault(name), "x-sim-chunks": "8"})
    assert status == 200
    names = [n for n, _ in events]
    assert names[0] == "message_start" and "content_block_delta" in names
    assert names[-1] == "error" and names.count("error") == 1
    assert "message_stop" not in names
    payload = events[-1][1]
    assert payload == {
        "type": "error",
        "error": {"type": "api_error", "message": payload["error"]["message"]},
    }
    # the SDK raises on the error event
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        ant.messages.stream(
            model=model, max_tokens=100, messages=MSGS, extra_headers={**fault(name), "x-sim-chunks": "8"}
        ) as s,
    ):
        for _ in s:
            pass
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error"


def test_anthropic_mid_stream_messages_name_the_cause(gw: Gateway) -> None:
    for name, words in [("error-event", "error in stream"), ("malformed", "malformed"), ("drop", "dropped")]:
        _, events = anthropic_sse(gw, "sim-claude", {**fault(name), "x-sim-chunks": "8"})
        assert words in events[-1][1]["error"]["message"], (name, events[-1])
    _, events = anthropic_sse(gw, "sim-claude", {**fault("error-event"), "x-sim-chunks": "8"})
    assert "overloaded_error" in events[-1][1]["error"]["message"]


# ---- the openai SDK with an Anthropic upstream -------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_openai_429_with_retry_after(oai: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        r = oai.chat.completions.create(
            model="sim-claude", messages=MSGS, stream=stream, extra_headers=fault("429")
        )
        list(r) if stream else None  # type: ignore[call-overload]
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.body["type"] == "rate_limit_error"  # type: ignore[index]


@pytest.mark.parametrize("status", ["500", "529"])
@pytest.mark.parametrize("stream", [False, True])
def test_openai_5xx(oai: openai.OpenAI, status: str, stream: bool) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        r = oai.chat.completions.create(
            model="sim-claude", messages=MSGS, stream=stream, extra_headers=fault(status)
        )
        list(r) if stream else None  # type: ignore[call-overload]
    assert info.value.status_code == 502
    assert info.value.body["code"] == "upstream_unavailable"  # type: ignore[index]


@pytest.mark.parametrize("name", ["error-event", "drop", "malformed"])
def test_openai_non_stream_failures(oai: openai.OpenAI, name: str) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        oai.chat.completions.create(model="sim-claude", messages=MSGS, extra_headers=fault(name))
    assert info.value.status_code == 502


@pytest.mark.parametrize("name", ["error-event", "drop", "malformed"])
def test_openai_mid_stream_failures(gw: Gateway, oai: openai.OpenAI, name: str) -> None:
    with httpx.stream(
        "POST",
        gw.v1 + "/chat/completions",
        headers={"Authorization": f"Bearer {gw.key}", **fault(name), "x-sim-chunks": "8"},
        json={"model": "sim-claude", "messages": MSGS, "stream": True},
    ) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert r.status_code == 200 and lines[-1] == "data: [DONE]"
    bodies = [json.loads(line[6:]) for line in lines[:-1]]
    assert bodies[0]["choices"][0]["delta"]["role"] == "assistant"
    err = bodies[-1]["error"]
    assert err["type"] == "upstream_error" and err["code"] in ("upstream_unavailable", "upstream_malformed")
    assert all("error" not in b for b in bodies[:-1])
    with pytest.raises(openai.APIError):
        for _ in oai.chat.completions.create(
            model="sim-claude", messages=MSGS, stream=True, extra_headers={**fault(name), "x-sim-chunks": "8"}
        ):
            pass
