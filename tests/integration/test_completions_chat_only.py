"""Legacy /v1/completions to chat-only models (the simulator's Anthropic and Gemini personalities): the
prompt becomes one user message, the answer a text_completion, streamed or not."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from tests.conftest import Gateway, StartGateway
from tests.integration.test_responses_api import CONFIG
from tests.openai_schema import check


@pytest.fixture(scope="module")
def client(start_gateway: StartGateway) -> openai.OpenAI:
    gw: Gateway = start_gateway(CONFIG)
    return openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)


@pytest.mark.parametrize("model", ["sim-claude", "sim-gemini"])
def test_completions_for_chat_only_models(client: openai.OpenAI, model: str) -> None:
    raw = client.completions.with_raw_response.create(model=model, prompt="Say this is a test", max_tokens=50)
    body = raw.http_response.json()
    check("CreateCompletionResponse", body)
    r = raw.parse()
    assert r.object == "text_completion" and r.choices[0].text and r.choices[0].finish_reason == "stop"
    assert r.usage and r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert Decimal((r.usage.model_extra or {})["total_cost_usd"]) > 0
    assert (r.model_extra or {})["provider"].startswith("sim-")
    chunks = list(client.completions.create(model=model, prompt="Say this is a test", max_tokens=50, stream=True,
                                            stream_options={"include_usage": True}))
    assert all(c.object == "text_completion" for c in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text and chunks[-1].usage and chunks[-1].usage.completion_tokens > 0
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model, prompt="x", echo=True)
    assert e.value.body["param"] == "echo"  # type: ignore[index]


def test_completion_models_still_go_native(client: openai.OpenAI) -> None:
    r = client.completions.create(model="sim-gpt", prompt="Say this is a test", max_tokens=5)
    assert r.object == "text_completion" and r.choices[0].text
