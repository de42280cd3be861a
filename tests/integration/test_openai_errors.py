"""Every error class of the OpenAI dialect, against real sockets; hostile bodies never give a 500."""

from __future__ import annotations

import json
import socket

import httpx
import openai
import pytest

from tests.conftest import Gateway, StartGateway

MSG = [{"role": "user", "content": "hi"}]


def post(gw: Gateway, path: str, body: object = None, *, key: str | None = "default", raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    h = {"Content-Type": "application/json", **(headers or {})}
    if key == "default":
        key = gw.key
    if key:
        h["Authorization"] = f"Bearer {key}"
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(gw.v1 + path, content=content, headers=h, timeout=30)


def envelope(r: httpx.Response) -> dict[str, object]:
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert {"message", "type", "code", "param"} <= set(err)
    assert isinstance(err["message"], str) and err["message"]
    assert r.headers["x-request-id"].startswith("req_")
    return err  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def gw(gateway: Gateway) -> Gateway:
    return gateway


def test_missing_and_invalid_key(gw: Gateway) -> None:
    r = post(gw, "/chat/completions", {"model": "sim-gpt", "messages": MSG}, key=None)
    assert r.status_code == 401 and envelope(r)["type"] == "authentication_error"
    r = post(gw, "/chat/completions", {"model": "sim-gpt", "messages": MSG}, key="pk_live_nope")
    assert r.status_code == 401 and envelope(r)["code"] == "invalid_api_key"
    # x-api-key works like Bearer
    ok = httpx.post(gw.v1 + "/chat/completions", json={"model": "sim-gpt", "messages": MSG},
                    headers={"x-api-key": gw.key})
    assert ok.status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.v1, api_key="pk_live_wrong", max_retries=0).chat.completions.create(
            model="sim-gpt", messages=MSG)  # type: ignore[arg-type]


def test_malformed_json(gw: Gateway) -> None:
    for raw in (b"{", b"not json", b"", b"\xff\xfe", b"[1, 2]", b"null", b'"str"'):
        r = post(gw, "/chat/completions", raw=raw)
        assert r.status_code == 400, raw
        assert envelope(r)["type"] == "invalid_request_error"


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": MSG}, "model"),
    ({"model": "sim-gpt"}, "messages"),
    ({"model": "sim-gpt", "messages": []}, "messages"),
    ({"model": "sim-gpt", "messages": MSG, "temperature": 3}, "temperature"),
    ({"model": "sim-gpt", "messages": MSG, "max_tokens": "ten"}, "max_tokens"),
    ({"model": "sim-gpt", "messages": MSG, "n": 0}, "n"),
    ({"model": "sim-gpt", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "sim-gpt", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"model": "sim-gpt", "messages": [{"role": "user", "content": [{"type": "hologram"}]}]},
     "messages[0].content[0].type"),
    ({"model": "sim-gpt", "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "sim-gpt", "messages": MSG, "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "sim-gpt", "messages": MSG, "stream_options": {"include_usage": True}}, "stream_options"),
])
def test_invalid_field_names_param(gw: Gateway, body: dict[str, object], param: str) -> None:
    r = post(gw, "/chat/completions", body)
    assert r.status_code == 400
    assert envelope(r)["param"] == param


def test_invalid_fields_other_endpoints(gw: Gateway) -> None:
    r = post(gw, "/embeddings", {"model": "sim-embed", "input": ["a", 1]})
    assert r.status_code == 400 and envelope(r)["param"] == "input"
    r = post(gw, "/embeddings", {"model": "sim-embed", "input": "a", "encoding_format": "hex"})
    assert r.status_code == 400 and envelope(r)["param"] == "encoding_format"
    r = post(gw, "/completions", {"model": "sim-gpt"})
    assert r.status_code == 400 and envelope(r)["param"] == "prompt"


def test_unknown_model_and_wrong_kind(gw: Gateway) -> None:
    r = post(gw, "/chat/completions", {"model": "no-such-model", "messages": MSG})
    assert r.status_code == 404
    err = envelope(r)
    assert err["param"] == "model" and err["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0).chat.completions.create(
            model="nope", messages=MSG)  # type: ignore[arg-type]
    r = post(gw, "/chat/completions", {"model": "sim-embed", "messages": MSG})
    assert r.status_code == 400 and envelope(r)["param"] == "model"
    r = post(gw, "/chat/completions", {"model": "sim/sim-embed-nope", "messages": MSG})
    assert r.status_code == 404


def test_unknown_route_and_method(gw: Gateway) -> None:
    r = httpx.get(gw.url + "/v1/nothing-here")
    assert r.status_code == 404 and envelope(r)["code"] == "unknown_url"
    r = httpx.get(gw.v1 + "/chat/completions")
    assert r.status_code == 405 and envelope(r)


def test_body_too_large(gw: Gateway) -> None:
    big = b'{"model": "sim-gpt", "messages": [{"role": "user", "content": "' + b"a" * (9 * 1024 * 1024) + b'"}]}'
    r = post(gw, "/chat/completions", raw=big)
    assert r.status_code == 413 and envelope(r)["code"] == "request_too_large"


def test_body_too_large_chunked(gw: Gateway) -> None:
    def gen():  # type: ignore[no-untyped-def]
        yield b'{"model": "sim-gpt", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"a" * (1024 * 1024)
        yield b'"}]}'
    r = httpx.post(gw.v1 + "/chat/completions", content=gen(), headers={"Authorization": f"Bearer {gw.key}"})
    assert r.status_code == 413


def test_upstream_429_passes_retry_after(gw: Gateway) -> None:
    r = post(gw, "/chat/completions", {"model": "sim-gpt", "messages": MSG}, headers={"x-sim-fault": "429"})
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "2"
    err = envelope(r)
    assert err["type"] == "rate_limit_error" and err["retry_after"] == 2


@pytest.mark.parametrize("fault", ["500", "503", "drop"])
def test_upstream_failure_is_502(gw: Gateway, fault: str) -> None:
    r = post(gw, "/chat/completions", {"model": "sim-gpt", "messages": MSG}, headers={"x-sim-fault": fault})
    assert r.status_code == 502, r.text
    assert envelope(r)["type"] == "upstream_error"


def test_upstream_unreachable_is_502(start_gateway: StartGateway) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    gw = start_gateway(f"""
simulator = "never"
[[providers]]
name = "sim"
base_url = "http://127.0.0.1:{dead}/v1"
""")
    r = post(gw, "/chat/completions", {"model": "sim-gpt", "messages": MSG})
    assert r.status_code == 502 and "unreachable" in str(envelope(r)["message"])


@pytest.fixture(scope="module")
def impatient(start_gateway: StartGateway) -> Gateway:
    return start_gateway("""
simulator = "never"
[timeouts]
first_byte_s = 0.5
stream_idle_s = 0.5
[[providers]]
name = "sim"
base_url = "{sim_url}/v1"
forward_headers = ["x-sim-*"]
""")


def test_upstream_timeout_is_504(impatient: Gateway) -> None:
    for fault in ("hang", "timeout-first-byte"):
        r = post(impatient, "/chat/completions", {"model": "sim-gpt", "messages": MSG},
                 headers={"x-sim-fault": fault})
        assert r.status_code == 504, fault
        assert envelope(r)["type"] == "timeout_error"


def sse_events(gw: Gateway, body: dict[str, object], headers: dict[str, str]) -> list[str]:
    with httpx.stream("POST", gw.v1 + "/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {gw.key}", **headers}) as r:
        assert r.status_code == 200
        return [line[6:] for line in r.iter_lines() if line.startswith("data: ")]


@pytest.mark.parametrize("fault", ["drop", "malformed", "error-event"])
def test_mid_stream_failure_becomes_error_event(gw: Gateway, fault: str) -> None:
    events = sse_events(gw, {"model": "sim-gpt", "messages": MSG, "stream": True, "max_tokens": 40},
                        {"x-sim-fault": fault})
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert set(last) == {"error"} and last["error"]["message"]
    assert all("choices" in json.loads(e) for e in events[:-2])


def test_mid_stream_failure_raises_in_sdk(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0,
                           default_headers={"x-sim-fault": "error-event"})
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model="sim-gpt", messages=MSG, stream=True):  # type: ignore[arg-type]
            pass


def test_stream_timeout_mid_stream(impatient: Gateway) -> None:
    # chunks paced slower than stream_idle_s: the stall is reported in-stream
    events = sse_events(impatient, {"model": "sim-gpt", "messages": MSG, "stream": True, "max_tokens": 4},
                        {"x-sim-chunk-delay-ms": "1500"})
    assert events[-1] == "[DONE]" and "error" in json.loads(events[-2])


@pytest.mark.parametrize("raw", [
    b'{"model": "sim-gpt", "messages": [{"role": "user", "content": null}]}',
    b'{"model": {"$gt": ""}, "messages": []}',
    b'{"model": "sim-gpt", "messages": [{"role": "user", "content": "x"}], "n": 1e308}',
    b'{"model": "sim-gpt", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
    b'{"model": "sim-gpt", "messages": "' + b"\\u0000" * 50 + b'"}',
    b'{"model": "sim-gpt", "messages": [' + b"[" * 2000 + b"]" * 2000 + b"]}",
    b'{"model": "../../etc/passwd", "messages": [{"role": "user", "content": "x"}]}',
    b'{"model": "sim-gpt", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
    b'{"model": "sim-gpt", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}',
])
def test_hostile_bodies_never_500(gw: Gateway, raw: bytes) -> None:
    r = post(gw, "/chat/completions", raw=raw)
    assert 400 <= r.status_code < 500, (raw[:60], r.status_code, r.text[:200])
    envelope(r)
