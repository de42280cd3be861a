"""The OpenAI Agents SDK with its default model (the Responses API) against perilune, in front of the
three simulator personalities: an agent that calls a function tool and answers. Installed by `make clients`."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import Gateway
from tests.integration.clients_common import MODELS, gw

agents = pytest.importorskip("agents")

__all__ = ["gw"]


@pytest.mark.parametrize("model", MODELS)
def test_agent_with_a_function_tool(gw: Gateway, model: str) -> None:
    calls: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        calls.append(city)
        return f"sunny in {city}"

    client = openai.AsyncOpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)
    agents.set_tracing_disabled(True)
    agent = agents.Agent(name="weather", instructions="Answer with the weather tool.", tools=[get_weather],
                         model=agents.OpenAIResponsesModel(model=model, openai_client=client))
    result = agents.Runner.run_sync(agent, "What is the weather in Paris?")
    assert calls, "the agent never called its tool"
    assert isinstance(result.final_output, str) and result.final_output
    kinds = [item.type for item in result.new_items]
    assert "tool_call_item" in kinds and "tool_call_output_item" in kinds and kinds[-1] == "message_output_item"


def test_agents_default_client_uses_responses(gw: Gateway) -> None:
    """The SDK's default: set_default_openai_client + a model name = OpenAIResponsesModel."""
    agents.set_default_openai_client(openai.AsyncOpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0),
                                     use_for_tracing=False)
    agents.set_tracing_disabled(True)
    agent = agents.Agent(name="plain", instructions="Be brief.", model="sim-gpt")
    result = agents.Runner.run_sync(agent, "Tell me about the sea")
    assert result.final_output
    assert result.raw_responses and result.raw_responses[0].response_id.startswith("resp_")
