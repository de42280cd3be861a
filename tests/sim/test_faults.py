"""Fault injection and pacing knobs, for all three personalities."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest

from perilune.sim.common import Knobs, SimConfig

CHAT = ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
MESSAGES = ("/v1/messages", {"model": "c", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
GEMINI = ("/v1beta/models/g:generateContent", {"contents": [{"parts": [{"text": "hi"}]}]})
GEMINI_SSE = ("/v1beta/models/g:streamGenerateContent?alt=sse", GEMINI[1])


def post(
    url: str,
    route: tuple[str, dict[str, Any]],
    headers: dict[str, str],
    stream: bool = False,
    timeout: float = 10,
) -> httpx.Response:
    path, body = route
    if stream and not path.startswith("/v1beta"):
        body = {**body, "stream": True}
    return httpx.post(url + path, json=body, headers=headers, timeout=timeout)


@pytest.mark.parametrize("route", [CHAT, MESSAGES, GEMINI])
@pytest.mark.parametrize("status", ["429", "500", "503", "529"])
def test_status_faults(sim_url: str, route: tuple[str, dict[str, Any]], status: str) -> None:
    r = post(sim_url, route, {"x-sim-fault": status})
    assert r.status_code == int(status)
    body = r.json()
    if route is CHAT:
        assert set(body["error"]) == {"message", "type", "param", "code"}
    elif route is MESSAGES:
        assert body["type"] == "error" and body["error"]["type"]
        if status == "529":
            assert body["error"]["type"] == "overloaded_error"
    else:
        assert body["error"]["code"] == int(status) and body["error"]["status"]
    assert ("retry-after" in r.headers) == (status == "429")


@pytest.mark.parametrize("fault", ["hang", "timeout-first-byte"])
def test_hang_and_first_byte_timeout(sim_url: str, fault: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        post(sim_url, CHAT, {"x-sim-fault": fault}, timeout=0.3)
    assert time.monotonic() - t0 < 2
    # the server is still healthy afterwards
    assert httpx.get(sim_url + "/health").status_code == 200


@pytest.mark.parametrize("route", [CHAT, MESSAGES, GEMINI_SSE])
@pytest.mark.parametrize("paced", [False, True])
def test_drop(sim_url: str, route: tuple[str, dict[str, Any]], paced: bool) -> None:
    headers = {"x-sim-fault": "drop", "x-sim-chunks": "6"}
    if paced:
        headers["x-sim-chunk-delay-ms"] = "5"
    with pytest.raises(httpx.RemoteProtocolError):
        post(sim_url, route, headers, stream=True)
    with pytest.raises(httpx.RemoteProtocolError):
        post(sim_url, CHAT, {"x-sim-fault": "drop"})  # non-stream: truncated body, then close


def test_drop_with_sdk(sim_url: str) -> None:
    client = openai.OpenAI(base_url=sim_url + "/v1", api_key="k", max_retries=0)
    got = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_headers={"x-sim-fault": "drop"},
        ):
            got.append(chunk)
    assert 0 < len(got) < 16


@pytest.mark.parametrize("route", [CHAT, MESSAGES, GEMINI_SSE])
def test_malformed(sim_url: str, route: tuple[str, dict[str, Any]]) -> None:
    r = post(sim_url, route, {"x-sim-fault": "malformed", "x-sim-chunks": "4"}, stream=True)
    assert r.status_code == 200
    bad = 0
    for line in r.text.replace("\r\n", "\n").split("\n"):
        if line.startswith("data: ") and line != "data: [DONE]":
            try:
                json.loads(line[6:])
            except ValueError:
                bad += 1
    assert bad == 1
    r = post(sim_url, CHAT, {"x-sim-fault": "malformed"})
    with pytest.raises(ValueError):
        r.json()


def test_error_event(sim_url: str) -> None:
    headers = {"x-sim-fault": "error-event", "x-sim-chunks": "4"}
    text = post(sim_url, CHAT, headers, stream=True).text
    frames = [f for f in text.split("\n\n") if f]
    assert json.loads(frames[-1][6:])["error"]["type"] == "server_error"
    assert "[DONE]" not in text
    client = openai.OpenAI(base_url=sim_url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.APIError, match="server had an error"):
        list(
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=headers
            )
        )
    text = post(sim_url, MESSAGES, headers, stream=True).text
    last = [f for f in text.split("\n\n") if f][-1]
    assert last.startswith("event: error\ndata: ")
    assert json.loads(last.split("data: ", 1)[1])["error"]["type"] == "overloaded_error"
    text = post(sim_url, GEMINI_SSE, headers).text
    last = [f for f in text.split("\r\n\r\n") if f][-1]
    assert json.loads(last[6:])["error"]["status"] == "UNAVAILABLE"
    # non-stream: the provider's overload/server error as an HTTP status
    assert post(sim_url, MESSAGES, headers).status_code == 529


def test_pacing_and_latency(sim_url: str) -> None:
    t0 = time.monotonic()
    arrivals: list[float] = []
    with httpx.stream(
        "POST",
        sim_url + CHAT[0],
        json={**CHAT[1], "stream": True},
        headers={
            "x-sim-chunks": "5",
            "x-sim-chunk-delay-ms": "40",
            "x-sim-ttft-ms": "100",
            "x-sim-latency-ms": "50",
        },
    ) as r:
        for line in r.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                arrivals.append(time.monotonic() - t0)
    assert len(arrivals) == 5
    assert arrivals[0] >= 0.14  # latency + ttft
    # chunks keep a schedule (ttft, then every 40 ms after it), so the last one comes no earlier than
    # 50 + 100 + 4 x 40 ms; a first chunk that reached this client late shortens the span it sees
    assert arrivals[-1] >= 0.305
    assert arrivals[-1] - arrivals[0] >= 0.12
    # tokens/s pacing: 16 tokens at 200 tok/s ~ 75 ms after the first
    t0 = time.monotonic()
    post(sim_url, CHAT, {"x-sim-tokens-per-s": "200"}, stream=True)
    assert time.monotonic() - t0 >= 0.07
    # non-stream answers take as long as their streamed twin
    t0 = time.monotonic()
    post(sim_url, CHAT, {"x-sim-chunks": "5", "x-sim-chunk-delay-ms": "30"})
    assert time.monotonic() - t0 >= 0.12


def test_knobs_from_config_and_headers() -> None:
    from perilune.sim.common import knobs_from_headers

    base = Knobs.from_config(SimConfig(latency_ms=5, output_tokens=3, fault="500"))
    assert knobs_from_headers(base, {b"host": b"x"}) is base
    k = knobs_from_headers(
        base, {b"x-sim-output-tokens": b"7", b"x-sim-fault": b"hang", b"x-sim-chunks": b"2"}
    )
    assert (k.output_tokens, k.fault, k.chunks, k.latency_ms) == (7, "hang", 2, 5)
    assert knobs_from_headers(base, {b"x-sim-fault": b"bogus"}).fault is None
    assert base.generation_delay(10) == 0


def test_not_found_and_bad_json(sim_url: str) -> None:
    r = httpx.get(sim_url + "/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(sim_url + "/v1beta/models/g:bogusVerb", json={})
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    for path, check in (
        ("/v1/chat/completions", lambda b: b["error"]["type"] == "invalid_request_error"),
        ("/v1/messages", lambda b: b["error"]["type"] == "invalid_request_error"),
        ("/v1beta/models/g:generateContent", lambda b: b["error"]["status"] == "INVALID_ARGUMENT"),
    ):
        r = httpx.post(sim_url + path, content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and check(r.json())
    assert httpx.get(sim_url + "/health").json() == {"status": "ok"}
