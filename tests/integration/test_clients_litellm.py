"""litellm as a client of perilune (its OpenAI and Anthropic providers pointed at the gateway), in front of
the three simulator personalities: chat, stream, tools, Responses. Installed by `make clients`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Gateway
from tests.integration.clients_common import MODELS, gw

litellm = pytest.importorskip("litellm")

__all__ = ["gw"]
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
MSGS = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.mark.parametrize("route", ["openai", "anthropic"])
@pytest.mark.parametrize("model", MODELS)
def test_litellm_chat_stream_tools(gw: Gateway, model: str, route: str) -> None:
    base = gw.v1 if route == "openai" else gw.url
    kw: dict[str, Any] = {"model": f"{route}/{model}", "api_base": base, "api_key": gw.key, "max_tokens": 200}
    r = litellm.completion(messages=[{"role": "user", "content": "Tell me about the sea"}], **kw)
    assert r.choices[0].message.content and r.usage.prompt_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in litellm.completion(
        messages=[{"role": "user", "content": "Tell me about the sea"}], stream=True, **kw))
    assert text
    t = litellm.completion(messages=MSGS, tools=TOOLS, **kw)
    call = t.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and "city" in call.function.arguments


@pytest.mark.parametrize("model", MODELS)
def test_litellm_responses(gw: Gateway, model: str) -> None:
    r = litellm.responses(model=f"openai/{model}", input="Tell me about the sea", api_base=gw.v1, api_key=gw.key)
    assert r.output and r.usage.input_tokens > 0
