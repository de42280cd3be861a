"""Live providers, opt-in: PERILUNE_E2E=1 and the provider's key in the environment. Never in CI.

Each test starts perilune with one real provider and asks its cheapest catalog chat model a short
question through the official SDK, streamed and not; the usage must carry a positive, exact cost."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest

from tests.conftest import StartGateway

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.environ.get("PERILUNE_E2E") != "1",
                                                  reason="live-provider tests are opt-in: PERILUNE_E2E=1")]
CATALOG = json.loads((Path(__file__).resolve().parents[2] / "perilune/data/models.json").read_text())["models"]
PROVIDERS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}


def cheapest_chat_model(provider: str) -> str:
    models = [m for m in CATALOG if m["kind"] == "chat" and m["providers"][:1] == [provider]
              and m["price"]["input"] is not None and not m["reasoning"]]
    return min(models, key=lambda m: Decimal(m["price"]["input"]) + Decimal(m["price"]["output"]))["id"]


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_live_chat_through_perilune(provider: str, start_gateway: StartGateway) -> None:
    key_env = PROVIDERS[provider]
    if not os.environ.get(key_env):
        pytest.skip(f"{key_env} is not set")
    gw = start_gateway(f'simulator = "never"\n[[providers]]\nname = "{provider}"\n')
    model = cheapest_chat_model(provider)
    client = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=1)
    r = client.chat.completions.create(model=model, max_tokens=20,
                                       messages=[{"role": "user", "content": "Say hi in one word."}])
    assert r.choices[0].message.content
    usage = r.usage.model_dump()  # type: ignore[union-attr]
    assert Decimal(str(usage["total_cost_usd"])) > 0 and (r.model_extra or {})["provider"] == provider
    chunks = list(client.chat.completions.create(model=model, max_tokens=20, stream=True,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "Count to three."}]))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    msg = anthropic.Anthropic(base_url=gw.url, api_key=gw.key).messages.create(
        model=model, max_tokens=20, messages=[{"role": "user", "content": "Say hi in one word."}])
    assert msg.content and msg.usage.output_tokens > 0
