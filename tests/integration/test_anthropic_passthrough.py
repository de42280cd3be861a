"""Native passthrough to an Anthropic upstream, seen from the upstream's side: a recording upstream that
answers with Anthropic's documented examples (tests/fixtures/anthropic). Nothing the client sent is
lost; anthropic-beta is forwarded; the documented answers come back untouched except for perilune's
enrichment. Also: fallback from a failing Anthropic deployment to an OpenAI-shaped one, per deployment."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import pytest
from aiohttp import web

from perilune._sse import SSEDecoder
from tests.conftest import Gateway, StartGateway, free_port

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "anthropic"
M = Decimal(1_000_000)


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.stream_fixture = "stream_tool_use.sse"

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.path, dict(request.headers), body))
        if not body.get("stream"):
            return web.Response(
                body=(FIXTURES / "message_text.json").read_bytes(), content_type="application/json"
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        await resp.write((FIXTURES / self.stream_fixture).read_bytes())
        await resp.write_eof()
        return resp

    async def count(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers), await request.json()))
        return web.json_response({"input_tokens": 2095})


@pytest.fixture(scope="module")
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    app = web.Application()
    app.router.add_post("/v1/messages", rec.messages)
    app.router.add_post("/v1/messages/count_tokens", rec.count)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield rec, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway, recorder: tuple[Recorder, str]) -> Gateway:
    return start_gateway(
        config=f"""
simulator = "never"
log_level = "warning"

[[providers]]
name = "sim-anthropic"
type = "anthropic"
base_url = "{{sim_url}}"
forward_headers = ["x-sim-*"]

[[providers]]
name = "sim-plain"
base_url = "{{sim_url}}/v1"
models = ["sim-claude"]

[[providers]]
name = "recorder"
type = "anthropic"
base_url = "{recorder[1]}"
api_key_env = "TEST_RECORDER_KEY"
models = ["sim-claude"]
""",
        env={"TEST_RECORDER_KEY": "sk-ant-recorder"},
    )


@pytest.fixture
def client(gw: Gateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key=gw.key, max_retries=0)


REQUEST: dict[str, Any] = {
    "max_tokens": 1024,
    "system": [
        {"type": "text", "text": "You answer from the document.", "cache_control": {"type": "ephemeral"}}
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "source": {"type": "url", "url": "https://example.com/spec.pdf"},
                    "citations": {"enabled": True},
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                },
                {"type": "text", "text": "What is the weather in San Francisco?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "thinking",
                    "thinking": "The user wants weather.",
                    "signature": "EqQBCgIYAhIM1gbcDa9GJwZA",
                },
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "get_weather",
                    "input": {"location": "San Francisco, CA"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                    "content": [{"type": "text", "text": "72F and sunny"}],
                    "is_error": False,
                }
            ],
        },
    ],
    "tools": [
        {
            "name": "get_weather",
            "description": "Weather",
            "input_schema": {"type": "object"},
            "cache_control": {"type": "ephemeral"},
        }
    ],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "metadata": {"user_id": "user-7"},
}
# fields this SDK version has no keyword for: sent as extra body, they must arrive all the same
EXTRA: dict[str, Any] = {"top_k": 5, "service_tier": "auto", "a_future_anthropic_field": {"x": [1]}}


async def test_request_passes_through_untouched(
    gw: Gateway, recorder: tuple[Recorder, str], client: anthropic.AsyncAnthropic
) -> None:
    rec, _ = recorder
    rec.requests.clear()
    raw = await client.messages.with_raw_response.create(
        model="recorder/sim-claude",
        **REQUEST,
        extra_body=EXTRA,
        extra_headers={"anthropic-beta": "context-1m-2025-08-07,files-api-2025-04-14"},
    )
    path, headers, sent = rec.requests[-1]
    assert path == "/v1/messages"
    assert sent == {**REQUEST, **EXTRA, "model": "sim-claude"}
    assert headers["anthropic-beta"] == "context-1m-2025-08-07,files-api-2025-04-14"
    assert headers["x-api-key"] == "sk-ant-recorder" and headers["anthropic-version"] == "2023-06-01"
    assert gw.key not in json.dumps(headers)  # the client's perilune key never goes upstream
    body = json.loads(raw.http_response.text)
    usage = body.pop("usage")
    documented = json.loads((FIXTURES / "message_text.json").read_text())
    documented_usage = documented.pop("usage")
    assert body == {**documented, "provider": "recorder"}
    assert {k: usage[k] for k in documented_usage} == documented_usage  # Anthropic's own fields survive
    inp, cache_read, cache_write, out = 2095, 2051, 2051, 503
    assert Decimal(str(usage["input_cost_usd"])) == inp * Decimal("3.00") / M
    assert (
        Decimal(str(usage["cache_input_cost_usd"]))
        == (cache_read * Decimal("0.30") + cache_write * Decimal("3.75")) / M
    )
    assert (
        Decimal(str(usage["total_cost_usd"]))
        == (
            inp * Decimal("3.00")
            + cache_read * Decimal("0.30")
            + cache_write * Decimal("3.75")
            + out * Decimal("15.00")
        )
        / M
    )


async def test_stream_relays_documented_events(
    recorder: tuple[Recorder, str], client: anthropic.AsyncAnthropic
) -> None:
    rec, _ = recorder
    rec.stream_fixture = "stream_tool_use.sse"
    async with client.messages.with_streaming_response.create(
        model="recorder/sim-claude", stream=True, **REQUEST, extra_body=EXTRA
    ) as resp:
        raw = await resp.read()
    assert rec.requests[-1][2]["stream"] is True
    got = [(e.event, json.loads(e.data)) for e in SSEDecoder().feed(raw)]
    documented = [
        (e.event, json.loads(e.data))
        for e in SSEDecoder().feed((FIXTURES / "stream_tool_use.sse").read_bytes() + b"\n\n")
    ]
    assert [n for n, _ in got] == [n for n, _ in documented]
    for (name, ours), (_, theirs) in zip(got, documented, strict=True):
        if name == "message_start":
            assert ours == {**theirs, "message": {**theirs["message"], "provider": "recorder"}}
        elif name == "message_delta":
            usage = ours.pop("usage")
            assert ours == {k: v for k, v in theirs.items() if k != "usage"}
            assert (usage["input_tokens"], usage["output_tokens"]) == (472, 89)
            assert (
                Decimal(str(usage["total_cost_usd"])) == (472 * Decimal("3.00") + 89 * Decimal("15.00")) / M
            )
        else:
            assert ours == theirs
    # and through the SDK's own accumulator
    async with client.messages.stream(model="recorder/sim-claude", **REQUEST) as stream:
        final = await stream.get_final_message()
    assert final.content[1].type == "tool_use" and final.content[1].input == {"location": "San Francisco, CA"}


async def test_documented_mid_stream_error(
    recorder: tuple[Recorder, str], client: anthropic.AsyncAnthropic
) -> None:
    rec, _ = recorder
    rec.stream_fixture = "stream_error.sse"
    try:
        with pytest.raises(anthropic.APIStatusError) as info:
            async with client.messages.stream(model="recorder/sim-claude", **REQUEST) as stream:
                async for _ in stream:
                    pass
    finally:
        rec.stream_fixture = "stream_tool_use.sse"
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "overloaded_error: Overloaded" in body["error"]["message"]


async def test_count_tokens_native(recorder: tuple[Recorder, str], client: anthropic.AsyncAnthropic) -> None:
    rec, _ = recorder
    req = {k: REQUEST[k] for k in ("system", "messages", "tools", "thinking")}
    counted = await client.messages.count_tokens(model="recorder/sim-claude", **req)
    assert counted.input_tokens == 2095
    path, _, sent = rec.requests[-1]
    assert path == "/v1/messages/count_tokens" and sent == {**req, "model": "sim-claude"}


async def test_fallback_switches_form_per_deployment(gw: Gateway, client: anthropic.AsyncAnthropic) -> None:
    """sim-claude is served by sim-anthropic (native, receives the fault) then sim-plain (OpenAI-shaped, no
    forwarded headers): the retryable 529 falls through to the converted form."""
    msgs: Any = [{"role": "user", "content": "Tell me about the sea"}]
    r = await client.messages.with_raw_response.create(
        model="sim-claude", max_tokens=50, messages=msgs, extra_headers={"x-sim-fault": "529"}
    )
    body = json.loads(r.http_response.text)
    assert body["provider"] == "sim-plain" and body["id"].startswith("msg_")
    assert body["content"][0]["type"] == "text" and body["stop_reason"] == "end_turn"
    async with client.messages.stream(
        model="sim-claude", max_tokens=50, messages=msgs, extra_headers={"x-sim-fault": "529"}
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == body["content"][0]["text"]  # type: ignore[union-attr]
    plain = await client.messages.with_raw_response.create(model="sim-claude", max_tokens=50, messages=msgs)
    assert json.loads(plain.http_response.text)["provider"] == "sim-anthropic"
