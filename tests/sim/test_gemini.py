"""Gemini personality, exercised with httpx (SSE parsed by hand)."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from perilune.tokens import count_tokens

CONTENTS = [{"role": "user", "parts": [{"text": "Tell me about gateways."}]}]
PROMPT = 4 + count_tokens("Tell me about gateways.")
FN = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER"}}},
}


@pytest.fixture(scope="module")
def http(sim_url: str) -> httpx.Client:
    return httpx.Client(base_url=sim_url + "/v1beta", timeout=10)


def sse_data(raw: str) -> list[Any]:
    out = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        if block.startswith("data: "):
            out.append(json.loads(block[6:]))
    return out


def test_generate_content_whole_body(http: httpx.Client) -> None:
    r = http.post("/models/gemini-sim-flash:generateContent", json={"contents": CONTENTS})
    body = r.json()
    text = body["candidates"][0]["content"]["parts"][0]["text"]
    assert count_tokens(text) == 16
    assert isinstance(body.pop("responseId"), str)
    assert body == {
        "candidates": [
            {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": PROMPT,
            "candidatesTokenCount": 16,
            "totalTokenCount": PROMPT + 16,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT}],
        },
        "modelVersion": "gemini-sim-flash",
    }
    cfg = {"maxOutputTokens": 4, "candidateCount": 2}
    body = http.post("/models/g:generateContent", json={"contents": CONTENTS, "generationConfig": cfg}).json()
    assert [c["finishReason"] for c in body["candidates"]] == ["MAX_TOKENS", "MAX_TOKENS"]
    assert [c["index"] for c in body["candidates"]] == [0, 1]
    assert body["usageMetadata"]["candidatesTokenCount"] == 8
    word = text.split()[2]
    cfg2 = {"stopSequences": [word]}
    body = http.post(
        "/models/gemini-sim-flash:generateContent", json={"contents": CONTENTS, "generation_config": cfg2}
    ).json()
    assert body["candidates"][0]["content"]["parts"][0]["text"] == text[: text.index(word)]


def test_stream_sse(http: httpx.Client) -> None:
    full = http.post("/models/gemini-sim-flash:generateContent", json={"contents": CONTENTS}).json()
    r = http.post(
        "/models/gemini-sim-flash:streamGenerateContent", params={"alt": "sse"}, json={"contents": CONTENTS}
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "\r\n\r\n" in r.text
    events = sse_data(r.text)
    assert len(events) == 16
    assert len({e["responseId"] for e in events}) == 1
    text = "".join(p["text"] for e in events for p in e["candidates"][0]["content"]["parts"])
    assert text == full["candidates"][0]["content"]["parts"][0]["text"]
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    last = events[-1]
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"]["candidatesTokenCount"] == count_tokens(text)
    assert last["usageMetadata"]["totalTokenCount"] == PROMPT + count_tokens(text)
    assert events[0]["usageMetadata"] == {
        "promptTokenCount": PROMPT,
        "totalTokenCount": PROMPT,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT}],
    }


def test_function_calling_and_modes(http: httpx.Client) -> None:
    req: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": "weather in Paris?"}]}],
        "tools": [{"functionDeclarations": [FN]}],
    }
    body = http.post("/models/g:generateContent", json=req).json()
    part = body["candidates"][0]["content"]["parts"][0]
    assert part == {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": 1}}}
    assert body["candidates"][0]["finishReason"] == "STOP"
    assert body["usageMetadata"]["candidatesTokenCount"] == count_tokens("get_weather") + count_tokens(
        '{"city":"Paris","days":1}'
    )
    none = {**req, "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}
    assert (
        "text"
        in http.post("/models/g:generateContent", json=none).json()["candidates"][0]["content"]["parts"][0]
    )
    anyreq = {
        "contents": CONTENTS,
        "tools": req["tools"],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }
    events = sse_data(http.post("/models/g:streamGenerateContent?alt=sse", json=anyreq).text)
    assert events[-1]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "get_weather"
    follow = {
        "contents": [
            *req["contents"],
            {"role": "model", "parts": [part]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 18}}}]},
        ],
        "tools": req["tools"],
    }
    assert (
        "text"
        in http.post("/models/g:generateContent", json=follow).json()["candidates"][0]["content"]["parts"][0]
    )


def test_thinking_json_and_system(http: httpx.Client) -> None:
    body = http.post("/models/gemini-sim-thinking:generateContent", json={"contents": CONTENTS}).json()
    u = body["usageMetadata"]
    assert u["thoughtsTokenCount"] == 8
    assert u["totalTokenCount"] == u["promptTokenCount"] + u["candidatesTokenCount"] + 8
    cfg = {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}
    parts = http.post(
        "/models/g:generateContent", json={"contents": CONTENTS, "generationConfig": cfg}
    ).json()["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True and count_tokens(parts[0]["text"]) == 8
    cfg = {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"name": {"type": "STRING"}}},
    }
    body = http.post("/models/g:generateContent", json={"contents": CONTENTS, "generationConfig": cfg}).json()
    assert json.loads(body["candidates"][0]["content"]["parts"][0]["text"]) == {"name": "Paris"}
    sysreq = {"contents": CONTENTS, "systemInstruction": {"parts": [{"text": "Be brief."}]}}
    u = http.post("/models/g:generateContent", json=sysreq).json()["usageMetadata"]
    assert u["promptTokenCount"] == PROMPT + 4 + count_tokens("Be brief.")
    long_req = {"contents": [{"parts": [{"text": "lorem ipsum " * 700}]}]}
    u = http.post("/models/g:generateContent", json=long_req).json()["usageMetadata"]
    assert u["cachedContentTokenCount"] == ((u["promptTokenCount"] - 1) // 128) * 128


def test_embed_and_count(http: httpx.Client) -> None:
    one = http.post(
        "/models/text-embedding-004:embedContent", json={"content": {"parts": [{"text": "hello"}]}}
    ).json()
    v = one["embedding"]["values"]
    assert len(v) == 768 and math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5)
    batch = http.post(
        "/models/gemini-embedding-001:batchEmbedContents",
        json={
            "requests": [
                {
                    "model": "models/gemini-embedding-001",
                    "content": {"parts": [{"text": "hello"}]},
                    "outputDimensionality": 768,
                },
                {"content": {"parts": [{"text": "x"}]}},
            ]
        },
    ).json()
    assert batch["embeddings"][0]["values"] == v and len(batch["embeddings"][1]["values"]) == 3072
    counted = http.post("/models/g:countTokens", json={"contents": CONTENTS}).json()
    assert counted == {
        "totalTokens": PROMPT,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT}],
    }
    assert http.get("/models").json()["models"][0]["name"].startswith("models/")


def test_errors_and_auth(http: httpx.Client, sim_auth_url: str) -> None:
    r = http.post("/models/g:generateContent", json={"contents": []})
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    r = http.post("/models/g:generateContent", json={"contents": CONTENTS}, headers={"x-sim-fault": "429"})
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.json()["error"]["code"] == 429 and r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    url = sim_auth_url + "/v1beta/models/g:generateContent"
    r = httpx.post(url, json={"contents": CONTENTS})
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"
    r = httpx.post(url, json={"contents": CONTENTS}, headers={"x-goog-api-key": "nope"})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert httpx.post(url, params={"key": "sk-sim-test-key"}, json={"contents": CONTENTS}).status_code == 200
    r = httpx.post(url, headers={"x-goog-api-key": "sk-sim-test-key"}, json={"contents": CONTENTS})
    assert r.status_code == 200
