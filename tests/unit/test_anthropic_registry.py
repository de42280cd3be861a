"""The built-in simulator's Anthropic personality is served through the Anthropic adapter."""

from __future__ import annotations

from perilune.accounting.catalog import build_catalog
from perilune.gateway.routing import Router
from perilune.providers.anthropic import COUNT_TOKENS, MESSAGES, AnthropicAdapter
from perilune.providers.base import CHAT
from perilune.providers.registry import ADAPTERS, PRESETS, sim_provider
from perilune.settings import Settings


def test_sim_claude_goes_through_the_anthropic_adapter() -> None:
    settings = Settings()
    providers = sim_provider(settings, "http://127.0.0.1:8788/")
    sim = providers["sim-anthropic"]
    assert (sim.type, sim.base_url, sim.forward_headers, sim.ready) == (
        "anthropic", "http://127.0.0.1:8788", ("x-sim-*",), True)
    d = Router(build_catalog(settings), providers).resolve("sim-claude", CHAT)[0]
    assert d.provider is sim and isinstance(d.adapter, AnthropicAdapter)
    assert {CHAT, MESSAGES, COUNT_TOKENS} <= d.adapter.supports


def test_anthropic_preset_has_an_adapter() -> None:
    assert PRESETS["anthropic"].type == "anthropic" and isinstance(ADAPTERS["anthropic"], AnthropicAdapter)
