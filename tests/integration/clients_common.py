"""Shared by the client-matrix tests (tests/integration/test_clients_*.py): one gateway in front of the
simulator's three personalities, the OpenAI one as a provider of type "openai" (Responses natively)."""

from __future__ import annotations

import pytest

from tests.conftest import Gateway, StartGateway
from tests.integration.test_responses_api import NATIVE_CONFIG

MODELS = ("sim-gpt", "sim-claude", "sim-gemini")


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    return start_gateway(NATIVE_CONFIG)


def weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"
