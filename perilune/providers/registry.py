"""Known providers (rows of data) and the adapter for each wire format."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from perilune.providers.anthropic import AnthropicAdapter
from perilune.providers.base import Adapter, Provider
from perilune.providers.gemini import GeminiAdapter
from perilune.providers.openai_compat import OpenAICompatAdapter
from perilune.settings import ProviderConfig, Settings, SettingsError


@dataclass(frozen=True, slots=True)
class Preset:
    type: str
    base_url: str
    api_key_env: str | None  # None: a local server that needs no key


PRESETS: dict[str, Preset] = {
    "openai": Preset("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "groq": Preset("openai-compatible", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "together": Preset("openai-compatible", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "mistral": Preset("openai-compatible", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "deepseek": Preset("openai-compatible", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "fireworks": Preset("openai-compatible", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    "openrouter": Preset("openai-compatible", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "xai": Preset("openai-compatible", "https://api.x.ai/v1", "XAI_API_KEY"),
    "vllm": Preset("openai-compatible", "http://127.0.0.1:8000/v1", None),
    "ollama": Preset("openai-compatible", "http://127.0.0.1:11434/v1", None),
    "llamacpp": Preset("openai-compatible", "http://127.0.0.1:8080/v1", None),
    "lmstudio": Preset("openai-compatible", "http://127.0.0.1:1234/v1", None),
    "anthropic": Preset("anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
    "gemini": Preset("gemini", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY"),
}

ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAICompatAdapter(responses=True),
    "openai-compatible": OpenAICompatAdapter(),
    "gemini": GeminiAdapter(),
    "anthropic": AnthropicAdapter(),
}

SIM_PROVIDER = "sim"
SIM_GEMINI = "sim-gemini"  # the simulator's Gemini personality, through the native Gemini adapter
SIM_ANTHROPIC = "sim-anthropic"  # the simulator's Anthropic personality, through the Anthropic adapter


def _provider(cfg: ProviderConfig, settings: Settings, environ: Mapping[str, str]) -> Provider:
    preset = PRESETS.get(cfg.name)
    ptype = cfg.type if cfg.base_url or preset is None else preset.type
    if ptype not in ADAPTERS:
        raise SettingsError(f"providers[{cfg.name}].type: {ptype!r} has no adapter yet "
                            f"(available: {', '.join(sorted(ADAPTERS))})")
    base_url = cfg.base_url or (preset.base_url if preset else None)
    if not base_url:
        raise SettingsError(f"providers[{cfg.name}].base_url is required (no preset named {cfg.name!r})")
    key_env = cfg.api_key_env if cfg.api_key_env is not None else (preset.api_key_env if preset else None)
    return Provider(
        name=cfg.name, type=ptype, base_url=base_url.rstrip("/"),
        api_key=environ.get(key_env) if key_env else None, api_key_env=key_env,
        needs_key=bool(key_env), timeouts=cfg.timeouts or settings.timeouts, headers=dict(cfg.headers),
        model_map=dict(cfg.model_map), max_connections=cfg.max_connections,
        forward_headers=tuple(h.lower() for h in cfg.forward_headers),
    )


def sim_provider(settings: Settings, base_url: str) -> dict[str, Provider]:
    """The built-in simulator as providers: one per wire format it speaks, keyed by name."""
    base = base_url.rstrip("/")

    def make(name: str, ptype: str, url: str) -> Provider:
        return Provider(name=name, type=ptype, base_url=url, api_key=None, api_key_env=None, needs_key=False,
                        timeouts=settings.timeouts, forward_headers=("x-sim-*",))

    return {SIM_PROVIDER: make(SIM_PROVIDER, "openai", base + "/v1"),  # its OpenAI personality speaks Responses
            SIM_GEMINI: make(SIM_GEMINI, "gemini", base),
            SIM_ANTHROPIC: make(SIM_ANTHROPIC, "anthropic", base)}


def build_providers(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, Provider]:
    """Configured providers; with none configured, the cloud presets whose key is in the environment."""
    env = os.environ if environ is None else environ
    configs = list(settings.providers)
    if not configs:
        configs = [ProviderConfig(name=name) for name, p in PRESETS.items()
                   if p.api_key_env and env.get(p.api_key_env) and p.type in ADAPTERS]
    return {c.name: _provider(c, settings, env) for c in configs}


def wants_simulator(settings: Settings, providers: Mapping[str, Provider]) -> bool:
    if settings.simulator == "always":
        return True
    if settings.simulator == "never":
        return False
    return not any(p.ready for p in providers.values())
