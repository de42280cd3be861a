"""LangChain (langchain-openai ChatOpenAI, chat and Responses; langchain-anthropic ChatAnthropic) against
perilune in front of the three simulator personalities: chat, stream, tools. Installed by `make clients`."""

from __future__ import annotations

import pytest

from tests.conftest import Gateway
from tests.integration.clients_common import MODELS, gw, weather

langchain_openai = pytest.importorskip("langchain_openai")
langchain_anthropic = pytest.importorskip("langchain_anthropic")

__all__ = ["gw"]


@pytest.mark.parametrize("use_responses", [False, True], ids=["chat", "responses"])
@pytest.mark.parametrize("model", MODELS)
def test_chat_openai(gw: Gateway, model: str, use_responses: bool) -> None:
    llm = langchain_openai.ChatOpenAI(model=model, base_url=gw.v1, api_key=gw.key, max_retries=0,
                                      use_responses_api=use_responses)
    msg = llm.invoke("Tell me about the sea")
    assert msg.text and msg.usage_metadata and msg.usage_metadata["input_tokens"] > 0
    chunks = list(llm.stream("Tell me about the sea"))
    assert "".join(c.text for c in chunks)
    ai = llm.bind_tools([weather]).invoke("What is the weather in Paris?")
    assert ai.tool_calls and ai.tool_calls[0]["name"] == "weather"
    assert isinstance(ai.tool_calls[0]["args"].get("city"), str)


@pytest.mark.parametrize("model", MODELS)
def test_chat_anthropic(gw: Gateway, model: str) -> None:
    llm = langchain_anthropic.ChatAnthropic(model=model, base_url=gw.url, api_key=gw.key, max_retries=0,
                                            max_tokens=256)
    msg = llm.invoke("Tell me about the sea")
    assert msg.text and msg.usage_metadata and msg.usage_metadata["input_tokens"] > 0
    chunks = list(llm.stream("Tell me about the sea"))
    assert "".join(c.text for c in chunks)
    ai = llm.bind_tools([weather]).invoke("What is the weather in Paris?")
    assert ai.tool_calls and ai.tool_calls[0]["name"] == "weather"
